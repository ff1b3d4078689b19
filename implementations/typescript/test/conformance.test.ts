// The conformance suite's reader and verifier vectors, run in process through the same request
// handler the adapter uses (the harness itself runs them in tests/test_typescript.py).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fromBase64 } from "../src/bytes.js";
import { runRequest } from "../src/protocol.js";
import { vectors, type Vector } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "m2kt-ts-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The request input the harness sends for a vector (spec/conformance.md §4.3). */
function requestInput(vector: Vector): Record<string, unknown> {
  const { file, ...input } = vector.input;
  if (file === undefined) return input;
  const path = join(dir, `${vector.id}.bin`);
  if (file === "present") writeFileSync(path, fromBase64(input.b64 as string) as Uint8Array);
  delete input.b64;
  return { ...input, path };
}

/** Equality of summaries, tensor values with the relative tolerance of §3.3. */
function assertSummary(actual: Record<string, unknown>, expected: Record<string, unknown>): void {
  const { tensor_values: values, ...rest } = actual;
  const { tensor_values: expectedValues, ...expectedRest } = expected;
  assert.deepEqual(rest, expectedRest);
  assert.equal(values === undefined, expectedValues === undefined);
  for (const [name, list] of Object.entries((expectedValues ?? {}) as Record<string, number[]>)) {
    const got = (values as Record<string, number[]>)[name] as number[];
    assert.equal(got.length, list.length, name);
    list.forEach((x, i) => assert.ok(Math.abs((got[i] as number) - x) <= 1e-6 * Math.abs(x), `${name}[${i}]: ${got[i]} vs ${x}`));
  }
}

const suite = vectors().filter((v) => v.op === "decode" || v.op === "verify");

test("the suite has reader and verifier vectors", () => {
  assert.ok(suite.filter((v) => v.op === "decode").length >= 180);
  assert.ok(suite.filter((v) => v.op === "verify").length >= 40);
});

for (const vector of suite) {
  test(vector.id, () => {
    const reply = runRequest(vector.op, requestInput(vector)) as { result?: Record<string, unknown> };
    assert.ok(reply.result !== undefined, JSON.stringify(reply));
    const { result } = reply;
    assert.equal(result["outcome"], vector.expected.outcome, JSON.stringify(result));
    if (vector.expected.outcome === "invalid") {
      assert.equal(result["code"], vector.expected.code, String(result["message"]));
      return;
    }
    assert.equal(result["packet_id"], vector.expected.packet_id);
    assertSummary(result["summary"] as Record<string, unknown>, vector.expected.summary as Record<string, unknown>);
    if (vector.op === "verify") assert.deepEqual(result["signers"], vector.expected.signers);
  });
}
