import assert from "node:assert/strict";
import { test } from "node:test";
import { M2ktError } from "../src/errors.js";
import { Packet, readPacket } from "../src/packet.js";
import { parseUtcTime } from "../src/time.js";
import { TrustStore } from "../src/trust.js";
import { provenanceProblems, verifyPacket, type Verification } from "../src/verify.js";
import { vector, vectorBytes } from "./helpers.js";

/** Verifies a verifier vector's packet with the vector's trust store, k and time. */
function verifyVector(id: string): Verification {
  const input = vector(id).input as { trust: unknown; min_signers?: number; now: string };
  return verifyPacket(vectorBytes(id), {
    trust: TrustStore.fromJson(input.trust),
    minSigners: input.min_signers ?? 1,
    now: parseUtcTime(input.now) as number,
  });
}

test("two of three: both signers counted, each check reported", () => {
  const result = verifyVector("v-valid-two-of-three");
  assert.equal(result.valid, true);
  assert.deepEqual([result.required, result.counted], [2, 2]);
  assert.deepEqual(
    result.signers.map((s) => [s.name, s.trusted, s.counted]),
    [
      ["alice", true, true],
      ["bob", true, true],
    ],
  );
  assert.deepEqual(
    result.signers[0]?.checks.map((c) => [c.check, c.passed]),
    [
      ["structure", true],
      ["algorithm", true],
      ["header", true],
      ["key", true],
      ["signature", true],
      ["trust", true],
      ["validity", true],
    ],
  );
  assert.equal(result.signers[0]?.signingTime, "2026-01-01T00:00:00Z");
});

test("an untrusted co-signer is checked and reported, and does not count", () => {
  const result = verifyVector("v-valid-extra-untrusted-signer");
  assert.equal(result.valid, true);
  assert.deepEqual(result.errors, []);
  assert.deepEqual(
    result.signers.map((s) => [s.trusted, s.counted]),
    [
      [true, true],
      [false, false],
      [false, false],
    ],
  );
});

test("errors come in step order: the signers that did not count, then POLICY_UNMET", () => {
  assert.deepEqual(
    verifyVector("v-key-expired").errors.map((e) => e.code),
    ["KEY_EXPIRED", "POLICY_UNMET"],
  );
  assert.deepEqual(
    verifyVector("v-untrusted-signer").errors.map((e) => e.code),
    ["SIGNER_UNTRUSTED", "POLICY_UNMET"],
  );
  assert.deepEqual(
    verifyVector("v-duplicate-signer").errors.map((e) => e.code),
    ["POLICY_UNMET"],
    "one key counts once",
  );
  assert.deepEqual(
    verifyVector("v-second-signature-invalid").errors.map((e) => e.code),
    ["SIGNATURE_INVALID"],
    "policy met, yet invalid",
  );
});

test("a packet that does not decode ends the verification with its code", () => {
  const result = verifyPacket(vectorBytes("r-truncated-1324"), { trust: TrustStore.fromJson({ keys: [] }) });
  assert.deepEqual([result.valid, result.packet, result.errors.map((e) => e.code)], [false, undefined, ["TRUNCATED"]]);
});

test("k must be an integer of at least 1", () => {
  assert.throws(
    () => verifyPacket(vectorBytes("r-valid-signed"), { trust: TrustStore.fromJson({ keys: [] }), minSigners: 0 }),
    (e) => e instanceof M2ktError && e.code === "USAGE",
  );
});

test("a blank provenance field is one made of str.isspace characters, not of ECMA-262 \\s (signing.md §8)", () => {
  const body = readPacket(vectorBytes("r-valid-full")).body;
  const named = (name: string) =>
    provenanceProblems({ ...body, provenance: { ...body.provenance, generator: { ...body.provenance.generator, name } } });
  assert.deepEqual(
    named("\u001c\u0085 \u3000").map((p) => [p.code, p.path]),
    [["PROVENANCE_INCOMPLETE", "/body/provenance/generator/name"]],
  );
  assert.deepEqual(named("\ufeff"), [], "U+FEFF is not white space here");
  assert.deepEqual(named(""), named(" \t"));
});

test("a signatures entry that a reader accepts can still be malformed for the verifier", () => {
  const p = readPacket(vectorBytes("r-valid-full"));
  const tagged = new Packet(p.encoding, p.body, p.bodyBytes, p.data, p.tensors, Uint8Array.of(0xc1, 0x80));
  const result = verifyPacket(tagged, { trust: TrustStore.fromJson({ keys: [] }) });
  assert.deepEqual(
    result.errors.map((e) => e.code),
    ["SIGNATURE_MALFORMED"],
  );
});
