/**
 * The JSON form (spec/packet-1.1.md §4.5): `{"m2kt_json": "1.0", "body": {...},
 * "tensor_data": {name: base64}, ? "signatures": base64}`.
 */
import { decodeUtf8, fromBase64 } from "./bytes.js";
import { decodeItem } from "./cbor/decode.js";
import { mapGet, type CborItem } from "./cbor/item.js";
import { M2ktError, pointer } from "./errors.js";
import { parseJson } from "./json.js";
import type { Limits } from "./limits.js";
import { validateJsonMembers } from "./schema.js";
import { dataSectionLength } from "./tensors.js";
import type { TensorDescriptor } from "./types.js";
import { toJsonView } from "./view.js";

export interface JsonForm {
  /** The body, for §10 steps 3 to 6. */
  readonly body: CborItem;
  /** `tensor_data`: base64 text by tensor name, checked to be base64. */
  readonly tensorData: ReadonlyMap<string, string>;
  /** The signatures item's bytes, when present. */
  readonly signatures: Uint8Array | undefined;
}

/**
 * Parses the text and checks the members (§4.5), leaving the body to §10 steps 3 to 6.
 *
 * @throws M2ktError `LIMIT_EXCEEDED`, `JSON_MALFORMED`, `DUPLICATE_KEY`, `NOT_A_PACKET`,
 *   `UNSUPPORTED_VERSION`, `SCHEMA_VIOLATION`, or the codes of §10 step 2 for the signatures item.
 */
export function readJsonForm(input: Uint8Array, limits: Limits): JsonForm {
  if (input.length > limits.max_packet_bytes) {
    throw new M2ktError("LIMIT_EXCEEDED", `${input.length} bytes exceed max_packet_bytes = ${limits.max_packet_bytes}`);
  }
  const text = decodeUtf8(input);
  if (text === undefined) throw new M2ktError("JSON_MALFORMED", "the text is not valid UTF-8");
  // The body's depth counts from the body map; the document adds one level around it.
  const document = parseJson(text, limits.max_depth + 1, {
    body: limits.max_body_items,
    beside: 2 * limits.max_tensors + 8,
  });
  const version = mapGet(document, "m2kt_json");
  const body = mapGet(document, "body");
  if (document.kind !== "map" || version === undefined || body === undefined) {
    throw new M2ktError("NOT_A_PACKET", "a JSON form is an object with the members m2kt_json and body");
  }
  if (version.kind === "text" && version.value.split(".")[0] !== "1") {
    throw new M2ktError(
      "UNSUPPORTED_VERSION",
      `JSON form version ${JSON.stringify(version.value)}: this reader implements 1.x`,
      "/m2kt_json",
    );
  }
  // The body is checked by steps 3 to 6; the members around it here.
  const withoutBody: CborItem = { kind: "map", entries: document.entries.filter(([k]) => !(k.kind === "text" && k.value === "body")) };
  const members = toJsonView(withoutBody).value as { tensor_data: Record<string, string>; signatures?: string };
  validateJsonMembers({ ...members, body: {} });
  return {
    body,
    tensorData: new Map(Object.entries(members.tensor_data)),
    signatures: members.signatures === undefined ? undefined : signaturesItem(members.signatures, limits),
  };
}

/** The signatures member: base64 of one well-formed CBOR item within the limit (§4.5, §4.1). */
function signaturesItem(base64: string, limits: Limits): Uint8Array {
  const bytes = fromBase64(base64);
  if (bytes === undefined) throw new M2ktError("JSON_MALFORMED", "signatures is not base64", "/signatures");
  if (bytes.length > limits.max_signature_bytes) {
    throw new M2ktError("LIMIT_EXCEEDED", `the signatures item exceeds max_signature_bytes = ${limits.max_signature_bytes}`, "/signatures");
  }
  const item = decodeItem(bytes, 0, bytes.length, { maxDepth: limits.max_depth, path: "/signatures" });
  if (item.end !== bytes.length) throw new M2ktError("TRAILING_BYTES", "bytes after the signatures item", "/signatures");
  return bytes;
}

/**
 * The data section rebuilt from `tensor_data` (§4.5): each tensor's bytes at its offset, zeros
 * elsewhere.
 *
 * @throws M2ktError `DANGLING_REFERENCE` (a member for no tensor, or a tensor without member),
 *   `JSON_MALFORMED` (not base64) or `TENSOR_SHAPE` (a wrong byte count).
 */
export function rebuildDataSection(descriptors: readonly TensorDescriptor[], tensorData: ReadonlyMap<string, string>): Uint8Array {
  const data = new Uint8Array(dataSectionLength(descriptors));
  const names = new Set<string>();
  for (const d of descriptors) {
    names.add(d.name);
    const text = tensorData.get(d.name);
    const at = pointer("tensor_data", d.name);
    if (text === undefined) throw new M2ktError("DANGLING_REFERENCE", `tensor_data has no member for tensor ${JSON.stringify(d.name)}`, at);
    const bytes = fromBase64(text);
    if (bytes === undefined) throw new M2ktError("JSON_MALFORMED", "not base64 (RFC 4648 §4)", at);
    if (bytes.length !== d.length) throw new M2ktError("TENSOR_SHAPE", `${bytes.length} bytes for a tensor of length ${d.length}`, at);
    data.set(bytes, d.offset);
  }
  for (const name of tensorData.keys()) {
    if (!names.has(name))
      throw new M2ktError("DANGLING_REFERENCE", `tensor_data member for no tensor: ${JSON.stringify(name)}`, pointer("tensor_data", name));
  }
  return data;
}
