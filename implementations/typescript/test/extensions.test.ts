// The registered extensions of format 1.1 (spec/packet-1.1.md §3.12): read, and refused with
// the code and the path of the offending value.
import assert from "node:assert/strict";
import { test } from "node:test";
import { M2ktError } from "../src/errors.js";
import { readPacket } from "../src/packet.js";
import { SCHEMA_FILES } from "../src/generated/schemas.js";
import { REGISTERED_EXTENSIONS } from "../src/schema.js";
import type { DerivationData, OperatorsData } from "../src/types.js";
import { vector, vectorBytes } from "./helpers.js";

const failure = (id: string): M2ktError => {
  try {
    readPacket(vectorBytes(id));
  } catch (error) {
    assert.ok(error instanceof M2ktError);
    return error;
  }
  assert.fail(`${id} was accepted`);
};

test("the registered extensions' schemas are embedded", () => {
  for (const file of Object.values(REGISTERED_EXTENSIONS)) assert.ok(file in SCHEMA_FILES, file);
});

test("a 1.1 packet reads in both encodings, with one derivation per edge", () => {
  const cbor = readPacket(vectorBytes("r-valid-1-1-extensions"));
  const json = readPacket(vectorBytes("r-valid-1-1-extensions-json"));
  assert.equal(cbor.id, vector("r-valid-1-1-extensions").expected.packet_id);
  assert.equal(json.id, cbor.id);
  assert.equal(cbor.body.header.version, "1.1");
  const derivation = cbor.body.extensions?.["derivation"]?.data as unknown as DerivationData;
  assert.equal(derivation.edges.length, cbor.body.graph.edges.length);
  assert.equal(derivation.trace_selection?.method, "cover");
  const operators = cbor.body.extensions?.["operators"]?.data as unknown as OperatorsData;
  assert.deepEqual(
    operators.entries.map((e) => e.derivation),
    ["teacher-probe", "teacher-trace", "declared"],
  );
});

test("critical registered extensions are understood; integer probabilities are allowed", () => {
  assert.equal(readPacket(vectorBytes("r-valid-1-1-critical")).body.extensions?.["derivation"]?.critical, true);
  assert.equal(readPacket(vectorBytes("r-valid-1-1-integer-probability")).body.header.version, "1.1");
});

test("each rule of §3.12 is refused with its code and the path into the data", () => {
  const cases: [string, string, string][] = [
    ["r-ext-derivation-edges-short", "SCHEMA_VIOLATION", "/body/extensions/derivation/data/edges"],
    ["r-ext-derivation-edges-long", "SCHEMA_VIOLATION", "/body/extensions/derivation/data/edges"],
    ["r-ext-derivation-unknown-value", "SCHEMA_VIOLATION", "/body/extensions/derivation/data/edges/2"],
    ["r-ext-derivation-bad-decoding", "SCHEMA_VIOLATION", "/body/extensions/derivation/data/trace_steps"],
    ["r-ext-derivation-bad-selection-method", "SCHEMA_VIOLATION", "/body/extensions/derivation/data/trace_selection/method"],
    ["r-ext-derivation-selection-float-count", "SCHEMA_VIOLATION", "/body/extensions/derivation/data/trace_selection/candidates"],
    ["r-ext-operators-dangling-operator", "DANGLING_REFERENCE", "/body/extensions/operators/data/entries/0/operator"],
    ["r-ext-operators-dangling-source", "DANGLING_REFERENCE", "/body/extensions/operators/data/entries/0/source"],
    ["r-ext-operators-dangling-target", "DANGLING_REFERENCE", "/body/extensions/operators/data/entries/0/target"],
    ["r-ext-operators-probability-above-1", "SCHEMA_VIOLATION", "/body/extensions/operators/data/entries/0/probability"],
    ["r-ext-operators-missing-field", "SCHEMA_VIOLATION", "/body/extensions/operators/data/entries/1"],
    ["r-ext-order-schema-before-references", "SCHEMA_VIOLATION", "/body/extensions/operators/data/entries/1"],
  ];
  for (const [id, code, path] of cases) {
    const error = failure(id);
    assert.equal(error.code, code, id);
    assert.equal(error.path, path, id);
  }
});
