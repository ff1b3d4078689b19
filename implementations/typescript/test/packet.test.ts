import assert from "node:assert/strict";
import { test } from "node:test";
import { readEnvelope } from "../src/envelope.js";
import { M2ktError } from "../src/errors.js";
import { DEFAULT_LIMITS } from "../src/limits.js";
import { detectEncoding, readPacket } from "../src/packet.js";
import { vector, vectorBytes } from "./helpers.js";

const failure = (f: () => unknown): M2ktError => {
  try {
    f();
  } catch (error) {
    assert.ok(error instanceof M2ktError);
    return error;
  }
  assert.fail("no error");
};

test("reading the full packet: id, body, tensors in descriptor order", () => {
  const packet = readPacket(vectorBytes("r-valid-full"));
  assert.equal(packet.id, vector("r-valid-full").expected.packet_id);
  assert.equal(packet.encoding, "cbor");
  assert.deepEqual(
    packet.tensors.map((t) => t.name),
    packet.body.tensors.map((t) => t.name),
  );
  assert.equal(packet.tensor(packet.body.concepts[0]?.embedding as string).shape[0], packet.body.teacher.latent_dim);
  assert.equal(failure(() => packet.tensor("no/such/tensor")).code, "DANGLING_REFERENCE");
});

test("tensors are views of the input when aligned, and copies with the same values otherwise", () => {
  const input = vectorBytes("r-valid-full");
  const inPlace = readPacket(input).tensors.find((t) => t.dtype === "f32");
  assert.ok(inPlace !== undefined);
  const view = inPlace.elements();
  assert.equal(view.buffer, input.buffer, "f32 elements are a view of the input");
  const shifted = new Uint8Array(input.length + 1);
  shifted.set(input, 1);
  const copied = readPacket(shifted.subarray(1)).tensor(inPlace.name).elements();
  assert.notEqual(copied.buffer, shifted.buffer);
  assert.deepEqual(Array.from(copied), Array.from(view));
});

test("the JSON form reads to the same packet id and tensor values as the CBOR form", () => {
  const cbor = readPacket(vectorBytes("r-valid-full"));
  const json = readPacket(vectorBytes("r-valid-json-full"));
  assert.equal(json.encoding, "json");
  assert.equal(json.id, cbor.id);
  assert.deepEqual(
    json.tensors.map((t) => Array.from(t.toFloat32())),
    cbor.tensors.map((t) => Array.from(t.toFloat32())),
  );
  assert.equal(readPacket(vectorBytes("r-valid-json-integral-number")).id, cbor.id, "a weight written 1 is the float 1.0");
});

test("the encoding is told from the first byte", () => {
  assert.equal(detectEncoding(vectorBytes("r-valid-full")), "cbor");
  assert.equal(detectEncoding(new TextEncoder().encode(' \n{"m2kt_json": "1.0"}')), "json");
  assert.equal(failure(() => readPacket(new TextEncoder().encode("[]"))).code, "NOT_A_PACKET");
});

test("errors carry the JSON Pointer of the offending value", () => {
  assert.match(failure(() => readPacket(vectorBytes("r-dangling-edge"))).path ?? "", /^\/body\/graph\/edges\/\d+\/(source|target)$/);
  assert.match(failure(() => readPacket(vectorBytes("r-schema-weight-range"))).path ?? "", /^\/body\/graph\/edges\/\d+\/weight$/);
  assert.equal(failure(() => readPacket(vectorBytes("r-bad-padding-nonzero"))).path, "/pad");
  assert.match(failure(() => readPacket(vectorBytes("r-tensor-digest-flipped-byte"))).path ?? "", /^\/body\/tensors\/0\/sha256$/);
});

test("limits: defaults, overrides by name, and bad overrides refused as USAGE", () => {
  const full = vectorBytes("r-valid-full");
  assert.equal(failure(() => readPacket(full, { limits: { max_concepts: 2 } })).code, "LIMIT_EXCEEDED");
  assert.equal(readPacket(full, { limits: { max_concepts: 3 } }).body.concepts.length, 3);
  assert.equal(failure(() => readPacket(full, { limits: { max_widgets: 1 } as never })).code, "USAGE");
  assert.equal(failure(() => readPacket(full, { limits: { max_depth: -1 } })).code, "USAGE");
});

/** The JSON form of the full packet with `edit` applied to the parsed document. */
function editedJson(edit: (document: Record<string, any>) => void, raw?: (text: string) => string): Uint8Array {
  const document = JSON.parse(new TextDecoder().decode(vectorBytes("r-valid-json-full"))) as Record<string, any>;
  edit(document);
  const text = JSON.stringify(document);
  return new TextEncoder().encode(raw === undefined ? text : raw(text));
}

test("the JSON form: what only it can say (cross-checked against the reference, spec §3.2 and §4.5)", () => {
  const code = (bytes: Uint8Array): string => {
    try {
      readPacket(bytes);
      return "valid";
    } catch (error) {
      return (error as M2ktError).code;
    }
  };
  assert.equal(code(editedJson((d) => (d["body"].header.format = 5))), "SCHEMA_VIOLATION", "a format that is not text");
  assert.equal(code(editedJson((d) => (d["body"].header.format = "M2KT"))), "UNSUPPORTED_VERSION");
  assert.equal(code(editedJson((d) => (d["tensor_data"]["not a name"] = "AAAA"))), "DANGLING_REFERENCE");
  assert.equal(code(editedJson((d) => (d["tensor_data"]["anchor/a0/state"] = "****"))), "JSON_MALFORMED");
  const huge = editedJson(
    (d) => (d["body"].concepts[0].manifold.spread = "SPREAD"),
    (t) => t.replace('"SPREAD"', "100000000000000000000000"),
  );
  assert.equal(code(huge), "valid", "an integer literal in a number field is a float, however large");
  const freeForm = editedJson(
    (d) => (d["body"].provenance.parameters.big = "BIG"),
    (t) => t.replace('"BIG"', "100000000000000000000000"),
  );
  assert.equal(code(freeForm), "SCHEMA_VIOLATION", "in a free-form value it stays an integer, outside int");
  const proto = readPacket(
    editedJson((d) => Object.defineProperty(d["body"].provenance.parameters, "__proto__", { value: { a: 1 }, enumerable: true })),
  );
  assert.deepEqual(Object.getOwnPropertyDescriptor(proto.body.provenance.parameters, "__proto__")?.value, { a: 1 }, "a key like any other");
});

/** The full packet with `item` as its signatures entry (envelope map of 4 entries). */
function withSignaturesEntry(item: number[]): Uint8Array {
  const unsigned = vectorBytes("r-valid-full");
  assert.equal(unsigned[3], 0xa3);
  const key = [0x6a, ...new TextEncoder().encode("signatures")];
  const out = Uint8Array.from([...unsigned, ...key, ...item]);
  out[3] = 0xa4;
  return out;
}

test("the signatures entry: tags not interpreted, nesting bounded by max_depth with tags counted (§4.1, §8)", () => {
  assert.equal(readPacket(withSignaturesEntry([0xc1, 0x80])).signatures?.length, 2, "tag 1 around an array is well-formed");
  const tags = (n: number): number[] => [...Array.from({ length: n }, () => [0xd9, 0x03, 0xe8]).flat(), 0x00];
  assert.equal(readPacket(withSignaturesEntry(tags(32))).signatures?.length, 97);
  assert.equal(failure(() => readPacket(withSignaturesEntry(tags(33)))).code, "LIMIT_EXCEEDED");
  assert.equal(readPacket(withSignaturesEntry([...Array(32).fill(0x81), 0x80])).signatures?.length, 33, "an empty array at the last level");
  assert.equal(failure(() => readPacket(withSignaturesEntry([...Array(33).fill(0x81), 0x00]))).code, "LIMIT_EXCEEDED");
  assert.equal(
    failure(() => readPacket(withSignaturesEntry([0xa2, 0x61, 0x61, 0x01, 0x78, 0x01, 0x61, 0x02]))).code,
    "DUPLICATE_KEY",
    "one key in two encodings",
  );
});

test("what stands where the envelope should be is bounded in items before it is built", () => {
  const n = 2_000_000; // the magic tag, then an array of empty maps instead of the envelope's map
  const input = new Uint8Array(8 + n).fill(0xa0);
  input.set([0xd9, 0xd9, 0xf7, 0x9a, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  assert.throws(
    () => readEnvelope(input, DEFAULT_LIMITS),
    (error: unknown) => error instanceof M2ktError && error.code === "LIMIT_EXCEEDED",
  );
});
