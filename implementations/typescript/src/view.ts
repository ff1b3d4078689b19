/**
 * The JSON view of a decoded body: the plain JavaScript value that JSON Schema validation sees
 * (spec/packet-1.1.md §3 "types of the JSON data model"), with what that view cannot say kept
 * beside it: which numbers were floats (integer and number are distinct types, §4.2) and which
 * values the JSON data model cannot hold at all (NaN, byte strings, integers outside `int`,
 * non-text keys…).
 */
import type { CborItem } from "./cbor/item.js";
import { SIMPLE_FALSE, SIMPLE_NULL, SIMPLE_TRUE } from "./cbor/item.js";
import { pointer, type ErrorCode } from "./errors.js";

/** Stands in the view for a value the JSON data model cannot hold; no schema type accepts it. */
export class Unrepresentable {
  constructor(
    readonly code: ErrorCode,
    readonly message: string,
  ) {}
}

/** A value outside the JSON data model, found while building the view. */
export interface DataModelIssue {
  readonly code: ErrorCode;
  readonly message: string;
  /** JSON Pointer relative to the viewed item. */
  readonly path: string;
  /** An integer outside `int`: a float instead when the field is of type number (JSON form). */
  readonly integerOutOfRange: boolean;
}

export interface JsonView {
  readonly value: unknown;
  /** JSON Pointers of the values that are floats in the encoding. */
  readonly floatPaths: ReadonlySet<string>;
  readonly issues: readonly DataModelIssue[];
}

const INT_MIN = -(2n ** 63n);
const INT_MAX = 2n ** 64n - 1n;

/** The JSON view of `item` (see the module comment). */
export function toJsonView(item: CborItem): JsonView {
  const floatPaths = new Set<string>();
  const issues: DataModelIssue[] = [];

  function unrepresentable(code: ErrorCode, message: string, path: string): Unrepresentable {
    issues.push({ code, message, path, integerOutOfRange: false });
    return new Unrepresentable(code, message);
  }

  function convert(node: CborItem, path: string): unknown {
    switch (node.kind) {
      case "int":
        if (node.value < INT_MIN || node.value > INT_MAX) {
          issues.push({
            code: "SCHEMA_VIOLATION",
            message: `integer ${node.value} outside the range of int`,
            path,
            integerOutOfRange: true,
          });
        }
        return Number(node.value);
      case "float":
        if (!Number.isFinite(node.value)) return unrepresentable("NONFINITE_VALUE", `${node.value} is not a finite number`, path);
        floatPaths.add(path);
        return node.value;
      case "text":
        return node.value;
      case "simple":
        if (node.value === SIMPLE_FALSE) return false;
        if (node.value === SIMPLE_TRUE) return true;
        if (node.value === SIMPLE_NULL) return null;
        return unrepresentable("SCHEMA_VIOLATION", `simple value ${node.value} outside the JSON data model`, path);
      case "bytes":
        return unrepresentable("SCHEMA_VIOLATION", "a byte string is outside the JSON data model", path);
      case "tag":
        return unrepresentable("SCHEMA_VIOLATION", "a tagged item is outside the JSON data model", path);
      case "array":
        return node.items.map((child, i) => convert(child, `${path}/${i}`));
      case "map": {
        const object: Record<string, unknown> = {};
        for (const [key, value] of node.entries) {
          if (key.kind !== "text") {
            unrepresentable("SCHEMA_VIOLATION", `map key of type ${key.kind}: keys are text strings`, path);
            continue;
          }
          // defineProperty: a key "__proto__" is a member like any other.
          Object.defineProperty(object, key.value, {
            value: convert(value, path + pointer(key.value)),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        return object;
      }
    }
  }

  return { value: convert(item, ""), floatPaths, issues };
}

/** The value at JSON Pointer `path` inside `root`, or `undefined`. */
export function resolvePointer(root: unknown, path: string): unknown {
  if (path === "") return root;
  let node = root;
  for (const raw of path.slice(1).split("/")) {
    const token = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, token)) return undefined;
    node = (node as Record<string, unknown>)[token];
  }
  return node;
}
