/**
 * Validation against the shipped JSON Schemas (schemas/, embedded at build time) with ajv, in
 * the strict typing of spec/packet-1.1.md §4.2: integer and number are distinct types (a float
 * in an integer field is `SCHEMA_VIOLATION`; an integer in a number field is recorded, since it
 * must be re-encoded as a float, §10 step 6), and values the JSON data model cannot hold are
 * refused with their own codes. The data of the registered extensions (§3.12) is validated the
 * same way against its own schema, in step 5, except that an integer in a number field is
 * allowed there (the data is free-form for the encodings).
 *
 * The strict typing is added to the schemas mechanically, next to every `"type": "integer"` and
 * `"type": "number"`, so that structure stays defined by the shipped files alone.
 */
import Ajv2020Module, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { M2ktError } from "./errors.js";
import { SCHEMA_FILES } from "./generated/schemas.js";
import { resolvePointer, Unrepresentable, type JsonView } from "./view.js";

/** What validating a view records for the later steps. */
export interface SchemaTyping {
  /** JSON Pointers of the integers in fields of type number, which are floats (§4.2). */
  readonly integersInNumberFields: ReadonlySet<string>;
}

interface ValidationContext {
  readonly floatPaths: ReadonlySet<string>;
  readonly integersInNumberFields: Set<string>;
}

type KeywordValidate = (
  this: ValidationContext,
  schema: unknown,
  data: unknown,
  parentSchema?: unknown,
  dataCxt?: { instancePath: string },
) => boolean;

/**
 * Validation failures that the specification assigns a more specific code, reported in step 5
 * (§6: "the reference models report them with the specific code above").
 */
const DEFERRED_TO_SEMANTICS: ReadonlyArray<(error: ErrorObject, value: unknown) => boolean> = [
  // An unregistered relation of the form of a name is UNKNOWN_RELATION (§3.5).
  (error, value) =>
    /^\/graph\/edges\/\d+\/relation$/.test(error.instancePath) && typeof value === "string" && /^[a-z][a-z_]{0,63}$/.test(value),
  // `scale` present for a dtype other than i8, or missing for i8, is TENSOR_DTYPE (§3.10).
  (error) => /^\/tensors\/\d+$/.test(error.instancePath) && (error.keyword === "if" || /\/(then|else)\/[^/]+$/.test(error.schemaPath)),
];

const Ajv2020 = Ajv2020Module.default;

/** The extensions registered by format 1.1 (§3.12, §9), with the schema of their data. */
export const REGISTERED_EXTENSIONS: Readonly<Record<string, string>> = {
  derivation: "ext-derivation.schema.json",
  operators: "ext-operators.schema.json",
};

class Validators {
  readonly body: ValidateFunction;
  /** The data of each registered extension, by extension name. */
  readonly extensions: ReadonlyMap<string, ValidateFunction>;
  /** The JSON form's members (packet.schema.json with any body: the body is checked later). */
  readonly jsonMembers: ValidateFunction;

  constructor() {
    const ajv = new Ajv2020({ allErrors: true, strict: false, passContext: true, unicodeRegExp: true });
    const integerOnly: KeywordValidate = function (_schema, data, _parent, cxt) {
      return !(typeof data === "number" && this.floatPaths.has(cxt?.instancePath ?? ""));
    };
    const recordNumber: KeywordValidate = function (_schema, data, _parent, cxt) {
      const path = cxt?.instancePath ?? "";
      if (typeof data === "number" && !this.floatPaths.has(path)) this.integersInNumberFields.add(path);
      return true;
    };
    ajv.addKeyword({ keyword: "m2ktIntegerOnly", schemaType: "boolean", validate: integerOnly });
    ajv.addKeyword({ keyword: "m2ktNumber", schemaType: "boolean", validate: recordNumber });
    for (const schema of Object.values(SCHEMA_FILES)) ajv.addSchema(withStrictTyping(schema) as object);
    this.body = ajv.getSchema(schemaId("body.schema.json")) as ValidateFunction;
    this.extensions = new Map(
      Object.entries(REGISTERED_EXTENSIONS).map(([name, file]) => [name, ajv.getSchema(schemaId(file)) as ValidateFunction]),
    );
    const packet = SCHEMA_FILES["packet.schema.json"] as { $id: string; properties: Record<string, unknown> };
    this.jsonMembers = ajv.compile({
      ...packet,
      $id: packet.$id.replace(/packet\.schema\.json$/, "packet-members.schema.json"),
      properties: { ...packet.properties, body: true },
    });
  }
}

let validators: Validators | undefined;
const compiled = (): Validators => (validators ??= new Validators());

function schemaId(file: string): string {
  return (SCHEMA_FILES[file] as { $id: string }).$id;
}

/** Keywords whose values are instances, not schemas: left as they are. */
const INSTANCE_KEYWORDS = new Set(["const", "enum", "default", "examples"]);

/** A deep copy of `schema` with the strict-typing keywords beside each integer or number type. */
function withStrictTyping(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withStrictTyping);
  if (schema === null || typeof schema !== "object") return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) out[key] = INSTANCE_KEYWORDS.has(key) ? value : withStrictTyping(value);
  if (out["type"] === "integer") out["m2ktIntegerOnly"] = true;
  if (out["type"] === "number") out["m2ktNumber"] = true;
  return out;
}

/**
 * Validates the view of a body against body.schema.json (§10 step 4).
 *
 * @param pathPrefix JSON Pointer of the body in the packet's JSON form, for error paths.
 * @throws M2ktError `SCHEMA_VIOLATION`, or the code of a value outside the data model found at a
 *   typed field (`NONFINITE_VALUE`…).
 */
export function validateBody(view: JsonView, pathPrefix: string): SchemaTyping {
  const context: ValidationContext = { floatPaths: view.floatPaths, integersInNumberFields: new Set() };
  const validate = compiled().body;
  if (!validate.call(context, view.value)) {
    const error = firstError(validate.errors ?? [], view.value);
    if (error !== undefined) {
      const value = resolvePointer(view.value, error.instancePath);
      const path = pathPrefix + error.instancePath;
      if (value instanceof Unrepresentable) throw new M2ktError(value.code, value.message, path);
      throw new M2ktError("SCHEMA_VIOLATION", describe(error), path);
    }
  }
  return { integersInNumberFields: context.integersInNumberFields };
}

/**
 * Validates the data of the registered extension `name` against its schema (§3.12, §10 step 5).
 *
 * @param floatPaths JSON Pointers, relative to the body, of the values that are floats.
 * @param path JSON Pointer of the data in the packet's JSON form, for error paths.
 * @throws M2ktError `SCHEMA_VIOLATION` with the path of the offending value.
 */
export function validateExtensionData(name: string, data: unknown, floatPaths: ReadonlySet<string>, path: string): void {
  const validate = compiled().extensions.get(name);
  if (validate === undefined) throw new Error(`${name} is not a registered extension`);
  const prefix = `/extensions/${name}/data`;
  const local = new Set<string>();
  for (const p of floatPaths) if (p === prefix || p.startsWith(`${prefix}/`)) local.add(p.slice(prefix.length));
  const context: ValidationContext = { floatPaths: local, integersInNumberFields: new Set() };
  if (validate.call(context, data)) return;
  const [error] = validate.errors ?? [];
  if (error !== undefined) throw new M2ktError("SCHEMA_VIOLATION", describe(error), path + error.instancePath);
}

/**
 * Validates the members of a JSON-form document (§4.5) against packet.schema.json, the body
 * excepted. Text that is not base64 where base64 is due is `JSON_MALFORMED`.
 */
export function validateJsonMembers(document: unknown): void {
  const validate = compiled().jsonMembers;
  const context: ValidationContext = { floatPaths: new Set(), integersInNumberFields: new Set() };
  if (validate.call(context, document)) return;
  // A tensor_data member that names no tensor is DANGLING_REFERENCE when the data section is
  // rebuilt (§4.5), even when the name is not of the form of a tensor name.
  const error = (validate.errors ?? []).find(
    (e) => !(e.instancePath === "/tensor_data" && (e.keyword === "propertyNames" || e.propertyName !== undefined)),
  );
  if (error === undefined) return;
  const base64 = error.keyword === "pattern" && /^\/(tensor_data\/[^/]+|signatures)$/.test(error.instancePath);
  throw new M2ktError(
    base64 ? "JSON_MALFORMED" : "SCHEMA_VIOLATION",
    base64 ? "not base64 (RFC 4648 §4)" : describe(error),
    error.instancePath,
  );
}

function firstError(errors: readonly ErrorObject[], root: unknown): ErrorObject | undefined {
  return errors.find((e) => !DEFERRED_TO_SEMANTICS.some((deferred) => deferred(e, resolvePointer(root, e.instancePath))));
}

function describe(error: ErrorObject): string {
  const where = error.instancePath === "" ? "the body" : error.instancePath;
  if (error.keyword === "additionalProperties") {
    return `${where}: unknown field ${JSON.stringify((error.params as { additionalProperty: string }).additionalProperty)}`;
  }
  if (error.keyword === "m2ktIntegerOnly") return `${where}: must be an integer, not a float`;
  return `${where}: ${error.message ?? error.keyword} (${error.schemaPath})`;
}
