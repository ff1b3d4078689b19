import assert from "node:assert/strict";
import { test } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { toBase64Url, toHex } from "../src/bytes.js";
import { encodeItem } from "../src/cbor/encode.js";
import { bytes, type CborItem } from "../src/cbor/item.js";
import { M2ktError } from "../src/errors.js";
import { parseUtcTime } from "../src/time.js";
import { TrustStore } from "../src/trust.js";

const int = (value: number): CborItem => ({ kind: "int", value: BigInt(value) });
const { publicKey } = ed25519.keygen(new Uint8Array(32).fill(1));
const x = toBase64Url(publicKey);
const kid = toHex(sha256(publicKey));
const jwk = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ kty: "OKP", crv: "Ed25519", x, name: "alice", ...extra });
const failure = (f: () => unknown): string => {
  try {
    f();
  } catch (error) {
    assert.ok(error instanceof M2ktError);
    return error.code;
  }
  return "no error";
};

test("a JWK Set trust store with every optional member", () => {
  const store = TrustStore.fromJson({
    keys: [jwk({ kid, alg: "EdDSA", use: "sig", not_before: "2026-01-01T00:00:00Z", not_after: "2027-01-01T00:00:00.999Z" })],
  });
  const key = store.get(kid);
  assert.equal(key?.name, "alice");
  assert.equal(key?.notBefore, parseUtcTime("2026-01-01T00:00:00Z"));
  assert.equal(key?.notAfter, 1798761600, "fractions are truncated to whole seconds");
});

test("trust store rules (signing.md §6.1)", () => {
  const bad = (document: unknown): string => failure(() => TrustStore.fromJson(document));
  assert.equal(bad({ keys: "alice" }), "TRUST_STORE_MALFORMED");
  assert.equal(bad({ keys: [], extra: 1 }), "TRUST_STORE_MALFORMED");
  assert.equal(bad({ keys: [jwk({ color: "red" })] }), "TRUST_STORE_MALFORMED");
  assert.equal(bad({ keys: [jwk({ name: "" })] }), "TRUST_STORE_MALFORMED");
  assert.equal(bad({ keys: [jwk({ x: x + "=" })] }), "TRUST_STORE_MALFORMED", "padded");
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const unusedBitSet = x.slice(0, 42) + alphabet[alphabet.indexOf(x[42] as string) | 1]; // 43 × 6 = 258 bits: two unused
  assert.equal(bad({ keys: [jwk({ x: unusedBitSet })] }), "TRUST_STORE_MALFORMED", "non-canonical last character");
  assert.equal(bad({ keys: [jwk({ kid: "00".repeat(32) })] }), "TRUST_STORE_MALFORMED");
  assert.equal(bad({ keys: [jwk({ not_before: "2027-01-01T00:00:00Z", not_after: "2026-01-01T00:00:00Z" })] }), "TRUST_STORE_MALFORMED");
  assert.equal(bad({ keys: [jwk({ not_after: "2026-02-30T00:00:00Z" })] }), "TRUST_STORE_MALFORMED", "no such date");
  assert.equal(bad({ keys: [jwk({ not_after: "2026-06-30T23:59:60Z" })] }), "TRUST_STORE_MALFORMED", "a leap second");
  assert.equal(bad({ keys: [jwk({ not_before: "0000-01-01T00:00:00Z" })] }), "TRUST_STORE_MALFORMED", "year 0000");
  assert.equal(bad({ keys: [jwk({ not_before: "2026-01-01T00:00:00+00:00" })] }), "TRUST_STORE_MALFORMED", "an offset, not Z");
  assert.equal(bad({ keys: [jwk(), jwk({ name: "bob" })] }), "TRUST_STORE_MALFORMED", "one key, two names");
  assert.equal(bad({ keys: [jwk(), jwk()] }), "no error", "the same key twice with the same attributes");
  assert.equal(bad({ keys: [jwk({ x: "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" })] }), "KEY_MALFORMED", "the identity point");
});

/** A `.pub` file (signing.md §5) for `key`, with `extra` entries. */
const coseKey = (key: Uint8Array, extra: (readonly [CborItem, CborItem])[] = []): Uint8Array =>
  encodeItem({
    kind: "map",
    entries: [[int(1), int(1)], [int(2), bytes(sha256(key))], [int(3), int(-8)], [int(-1), int(6)], [int(-2), bytes(key)], ...extra],
  });

test("sources: .pub files named after the file, JSON documents by their first byte", () => {
  const bob = ed25519.keygen(new Uint8Array(32).fill(2)).publicKey;
  const store = TrustStore.fromSources([
    { name: "bob", bytes: coseKey(bob) },
    { name: "store.json", bytes: new TextEncoder().encode(`  ${JSON.stringify({ keys: [jwk()] })}`) },
  ]);
  assert.deepEqual(
    store.keys.map((k) => k.name),
    ["bob", "alice"],
  );
  assert.equal(
    failure(() => TrustStore.fromSources([{ name: "alice", bytes: coseKey(publicKey, [[int(-4), bytes(new Uint8Array(32))]]) }])),
    "KEY_MALFORMED",
  );
  assert.equal(
    failure(() => TrustStore.fromSources([{ name: "x", bytes: coseKey(publicKey, [[int(7), int(0)]]) }])),
    "KEY_MALFORMED",
  );
  assert.equal(
    failure(() => TrustStore.fromSources([{ name: "x", bytes: new TextEncoder().encode('{"keys": [') }])),
    "TRUST_STORE_MALFORMED",
  );
  const twice = `{"keys": [], "keys": [${JSON.stringify(jwk())}]}`;
  assert.equal(
    failure(() => TrustStore.fromSources([{ name: "x", bytes: new TextEncoder().encode(twice) }])),
    "TRUST_STORE_MALFORMED",
    "a member twice",
  );
});
