/**
 * The body of a packet through §10 steps 2 to 6 (spec/packet-1.1.md): decode the deterministic
 * CBOR, check limits and version, validate against the schema, check the semantic rules, and
 * encode it with the schema's types, which must give the body's bytes.
 */
import { decodeItem } from "./cbor/decode.js";
import { encodeItem } from "./cbor/encode.js";
import { mapGet, type CborItem } from "./cbor/item.js";
import { M2ktError, pointer } from "./errors.js";
import type { Limits } from "./limits.js";
import { validateBody } from "./schema.js";
import { checkSemantics } from "./semantics.js";
import type { Body } from "./types.js";
import { toJsonView } from "./view.js";

/** A body that passed steps 2 to 6. */
export interface ValidBody {
  readonly body: Body;
  /** The body's deterministic encoding: the bytes the packet id hashes. */
  readonly bytes: Uint8Array;
}

/**
 * §10 step 2: the body bytes are one well-formed, deterministically encoded item without tags,
 * within `max_depth` and `max_body_items`.
 *
 * @throws M2ktError `TRUNCATED`, `CBOR_MALFORMED`, `TRAILING_BYTES`, `INDEFINITE_LENGTH`,
 *   `DUPLICATE_KEY`, `LIMIT_EXCEEDED` or `NON_CANONICAL`.
 */
export function decodeBody(bytes: Uint8Array, limits: Limits): CborItem {
  const decoded = decodeItem(bytes, 0, bytes.length, {
    maxDepth: limits.max_depth,
    maxItems: limits.max_body_items,
    path: "/body",
  });
  if (decoded.end !== bytes.length) {
    throw new M2ktError("TRAILING_BYTES", `${bytes.length - decoded.end} bytes after the body item`, "/body");
  }
  if (decoded.nonCanonical !== undefined) throw new M2ktError("NON_CANONICAL", decoded.nonCanonical, "/body");
  if (containsTag(decoded.item)) throw new M2ktError("NON_CANONICAL", "the body holds a tagged item", "/body");
  return decoded.item;
}

function containsTag(item: CborItem): boolean {
  if (item.kind === "tag") return true;
  if (item.kind === "array") return item.items.some(containsTag);
  if (item.kind === "map") return item.entries.some(([k, v]) => containsTag(k) || containsTag(v));
  return false;
}

/**
 * §10 steps 3 to 6 on a decoded body.
 *
 * @param item the body, from the CBOR form's body bytes or the JSON form's `body` member.
 * @param encoded the body bytes of the CBOR form, which step 6 compares with the re-encoding;
 *   `undefined` for the JSON form, whose body bytes are that encoding.
 */
export function validateBodyItem(item: CborItem, encoded: Uint8Array | undefined, limits: Limits): ValidBody {
  checkVersion(item);
  checkCounts(item, limits);
  const view = toJsonView(item);
  const typing = validateBody(view, "/body");
  // Values outside the JSON data model at free-form places (§6, last rows), reported before
  // the other rules of step 5. In the JSON form an integer literal in a number field is a float.
  const integers = typing.integersInNumberFields;
  const issue = view.issues.find((i) => !(i.integerOutOfRange && encoded === undefined && integers.has(i.path)));
  if (issue !== undefined) throw new M2ktError(issue.code, issue.message, `/body${issue.path}`);
  const body = view.value as Body;
  checkSemantics(body, "/body", view.floatPaths);
  // Step 6. Step 2 found the CBOR body to be its own deterministic encoding, item by item, so
  // the only way its encoding with the schema's types can differ is an integer in a field of
  // type number, which that encoding writes as a float.
  if (encoded === undefined) return { body, bytes: encodeItem(integers.size === 0 ? item : withNumberFloats(item, integers, "")) };
  const [first] = integers;
  if (first !== undefined)
    throw new M2ktError("NON_CANONICAL", "an integer is written where the schema's type is number (a float)", `/body${first}`);
  return { body, bytes: encoded };
}

/** `format` and the major version, before anything else in the body (§9); other types are the schema's. */
function checkVersion(item: CborItem): void {
  const header = mapGet(item, "header");
  const format = mapGet(header, "format");
  if (format?.kind === "text" && format.value !== "m2kt") {
    throw new M2ktError("UNSUPPORTED_VERSION", 'header.format is not "m2kt"', "/body/header/format");
  }
  const version = mapGet(header, "version");
  if (version?.kind === "text" && version.value.split(".")[0] !== "1") {
    throw new M2ktError(
      "UNSUPPORTED_VERSION",
      `format version ${JSON.stringify(version.value)}: this reader implements 1.x`,
      "/body/header/version",
    );
  }
}

/** The counts and tensor sizes of §8, before the schema builds per-item objects. */
function checkCounts(item: CborItem, limits: Limits): void {
  const count = (list: CborItem | undefined, limit: number, name: string, path: string): void => {
    if (list?.kind === "array" && list.items.length > limit) {
      throw new M2ktError("LIMIT_EXCEEDED", `${list.items.length} entries in ${path} exceed ${name} = ${limit}`, path);
    }
  };
  count(mapGet(item, "concepts"), limits.max_concepts, "max_concepts", "/body/concepts");
  count(mapGet(mapGet(item, "graph"), "edges"), limits.max_edges, "max_edges", "/body/graph/edges");
  count(mapGet(item, "anchors"), limits.max_anchors, "max_anchors", "/body/anchors");
  const traces = mapGet(item, "traces");
  count(traces, limits.max_traces, "max_traces", "/body/traces");
  if (traces?.kind === "array") {
    traces.items.forEach((t, i) => count(mapGet(t, "steps"), limits.max_trace_steps, "max_trace_steps", `/body/traces/${i}/steps`));
  }
  const tensors = mapGet(item, "tensors");
  count(tensors, limits.max_tensors, "max_tensors", "/body/tensors");
  if (tensors?.kind === "array") {
    tensors.items.forEach((t, i) => {
      const length = mapGet(t, "length");
      if (length?.kind === "int" && length.value > BigInt(limits.max_tensor_bytes)) {
        throw new M2ktError(
          "LIMIT_EXCEEDED",
          `tensor length ${length.value} exceeds max_tensor_bytes = ${limits.max_tensor_bytes}`,
          `/body/tensors/${i}/length`,
        );
      }
    });
  }
}

/** `item` with the integers at `paths` made floats (the schema's types, §4.2). */
function withNumberFloats(item: CborItem, paths: ReadonlySet<string>, path: string): CborItem {
  if (item.kind === "int" && paths.has(path)) {
    const value = Number(item.value);
    if (!Number.isFinite(value)) throw new M2ktError("NONFINITE_VALUE", `${item.value} is beyond binary64`, `/body${path}`);
    return { kind: "float", value };
  }
  if (item.kind === "array") return { kind: "array", items: item.items.map((child, i) => withNumberFloats(child, paths, `${path}/${i}`)) };
  if (item.kind === "map") {
    return {
      kind: "map",
      entries: item.entries.map(([k, v]) => [k, k.kind === "text" ? withNumberFloats(v, paths, path + pointer(k.value)) : v] as const),
    };
  }
  return item;
}
