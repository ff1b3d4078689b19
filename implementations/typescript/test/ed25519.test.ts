import assert from "node:assert/strict";
import { test } from "node:test";
import { ed25519, ED25519_TORSION_SUBGROUP } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { concatBytes, fromHex, toHex } from "../src/bytes.js";
import { L, publicKeyProblem, SMALL_ORDER_ENCODINGS, signatureProblem } from "../src/ed25519.js";

const hex = (h: string): Uint8Array => fromHex(h) as Uint8Array;
const le = (n: bigint): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
const fromLe = (b: Uint8Array): bigint => b.reduceRight((n, byte) => (n << 8n) | BigInt(byte), 0n);

test("RFC 8032 §7.1 test 1 verifies; a flipped bit does not", () => {
  const publicKey = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  const signature = hex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  );
  assert.equal(publicKeyProblem(publicKey), undefined);
  assert.equal(signatureProblem(signature, new Uint8Array(0), publicKey), undefined);
  signature[63] = (signature[63] as number) ^ 1;
  assert.match(signatureProblem(signature, new Uint8Array(0), publicKey) ?? "", /equation/);
});

test("signatures made by another library verify (custom vectors: made with noble, checked here)", () => {
  for (let i = 0; i < 20; i++) {
    const { secretKey, publicKey } = ed25519.keygen(new Uint8Array(32).fill(i));
    const message = Uint8Array.from({ length: i * 7 }, (_, j) => (j * 31 + i) & 0xff);
    assert.equal(signatureProblem(ed25519.sign(message, secretKey), message, publicKey), undefined);
  }
});

test("the small-order list is the eight torsion points (sign bit cleared) plus the non-canonical p and p + 1", () => {
  const cleared = new Set(ED25519_TORSION_SUBGROUP.map((h) => toHex(Uint8Array.from(hex(h), (b, i) => (i === 31 ? b & 0x7f : b)))));
  const p = 2n ** 255n - 19n;
  assert.deepEqual(new Set(SMALL_ORDER_ENCODINGS), new Set([...cleared, toHex(le(p)), toHex(le(p + 1n))]));
  for (const torsion of ED25519_TORSION_SUBGROUP) assert.ok(publicKeyProblem(hex(torsion)) !== undefined, torsion);
});

test("public keys: length, canonical y, small order, prime-order subgroup (signing.md §3.1)", () => {
  const { publicKey } = ed25519.keygen(new Uint8Array(32).fill(9));
  assert.match(publicKeyProblem(publicKey.subarray(0, 31)) ?? "", /32 bytes/);
  assert.match(publicKeyProblem(le(2n ** 255n - 19n + 5n)) ?? "", /not below p/);
  const mixed = ed25519.Point.fromBytes(publicKey).add(ed25519.Point.fromHex(ED25519_TORSION_SUBGROUP[1] as string));
  assert.match(publicKeyProblem(mixed.toBytes()) ?? "", /prime-order subgroup/);
  assert.match(publicKeyProblem(le(2n)) ?? "", /not a point of the curve/); // y = 2 has no x
});

test("signatures: S below L, R canonical and not of small order", () => {
  const { secretKey, publicKey } = ed25519.keygen(new Uint8Array(32).fill(3));
  const message = new Uint8Array([1, 2, 3]);
  const signature = ed25519.sign(message, secretKey);
  const s = fromLe(signature.subarray(32));
  assert.match(signatureProblem(concatBytes([signature.subarray(0, 32), le(s + L)]), message, publicKey) ?? "", /below the group order/);
  assert.match(signatureProblem(concatBytes([hex(SMALL_ORDER_ENCODINGS[1] as string), le(0n)]), message, publicKey) ?? "", /small order/);
  assert.match(signatureProblem(signature.subarray(0, 63), message, publicKey) ?? "", /64 bytes/);
});

test("verification is cofactorless: an R with an order-8 component fails here, though noble's cofactored check passes", () => {
  const seed = new Uint8Array(32).fill(7);
  const { publicKey } = ed25519.keygen(seed);
  const h = sha512(seed).slice(0, 32);
  h[0] = (h[0] as number) & 248;
  h[31] = ((h[31] as number) & 127) | 64;
  const a = fromLe(h) % L;
  const message = new TextEncoder().encode("m2kt torsion test");
  const r = 12345678901234567890n;
  const R = ed25519.Point.BASE.multiply(r)
    .add(ed25519.Point.fromHex(ED25519_TORSION_SUBGROUP[1] as string))
    .toBytes();
  const k = fromLe(sha512(concatBytes([R, publicKey, message]))) % L;
  const signature = concatBytes([R, le((r + k * a) % L)]);
  assert.equal(ed25519.verify(signature, message, publicKey, { zip215: false }), true);
  assert.match(signatureProblem(signature, message, publicKey) ?? "", /equation/);
});
