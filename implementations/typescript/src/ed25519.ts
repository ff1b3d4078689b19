/**
 * Ed25519 with the strict checks of spec/signing.md §3, on top of @noble/curves' point
 * arithmetic. The verification equation is the cofactorless one, [S]B = R + [k]A, checked by
 * encoding [S]B − [k]A and comparing it with R's bytes, as libsodium does (signing.md §3.2).
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { concatBytes, fromHex } from "./bytes.js";

const Point = ed25519.Point;
type EdPoint = ReturnType<typeof Point.fromBytes>;

/** The field prime p = 2^255 − 19. */
const P = 2n ** 255n - 19n;
/** The group order L (RFC 8032 §5.1). */
export const L = 2n ** 252n + 27742317777372353535851937790883648493n;

/**
 * Encodings of the points of small order, compared on the first 31 bytes and the last byte
 * with bit 7 cleared (signing.md §3.1; the same list as libsodium's): 0 (order 4), 1 (order 1),
 * the two order-8 y coordinates, p − 1 (order 2), and p and p + 1, non-canonical forms of 0 and 1.
 */
export const SMALL_ORDER_ENCODINGS: readonly string[] = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];
const SMALL_ORDER = SMALL_ORDER_ENCODINGS.map((hex) => fromHex(hex) as Uint8Array);

function littleEndian(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] as number);
  return n;
}

function isSmallOrderEncoding(point: Uint8Array): boolean {
  return SMALL_ORDER.some((s) => s.every((b, i) => (i === 31 ? ((point[31] as number) & 0x7f) === b : point[i] === b)));
}

/** Why a 32-byte encoding is no acceptable point (§3.1 items 2–3), or `undefined`. */
function encodingProblem(point: Uint8Array): string | undefined {
  if (littleEndian(point) % 2n ** 255n >= P) return "its y coordinate is not below p (non-canonical encoding)";
  if (isSmallOrderEncoding(point)) return "it is a point of small order";
  return undefined;
}

/**
 * Why `key` is no valid Ed25519 public key under signing.md §3.1, or `undefined` when it is one.
 */
export function publicKeyProblem(key: Uint8Array): string | undefined {
  if (key.length !== 32) return `a public key is 32 bytes, not ${key.length}`;
  const problem = encodingProblem(key);
  if (problem !== undefined) return problem;
  let point: EdPoint;
  try {
    point = Point.fromBytes(key);
  } catch {
    return "it is not a point of the curve";
  }
  return point.isTorsionFree() ? undefined : "it is not in the prime-order subgroup";
}

/**
 * Why `signature` is no valid Ed25519 signature of `message` by `publicKey` under signing.md
 * §3.2, or `undefined` when it verifies. `publicKey` must have passed {@link publicKeyProblem}.
 */
export function signatureProblem(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): string | undefined {
  if (signature.length !== 64) return `a signature is 64 bytes, not ${signature.length}`;
  const r = signature.subarray(0, 32);
  const s = littleEndian(signature.subarray(32));
  if (s >= L) return "its scalar S is not below the group order L";
  const problem = encodingProblem(r);
  if (problem !== undefined) return `its point R: ${problem}`;
  const k = littleEndian(sha512(concatBytes([r, publicKey, message]))) % L;
  const expectedR = Point.BASE.multiplyUnsafe(s).subtract(Point.fromBytes(publicKey).multiplyUnsafe(k));
  const actual = expectedR.toBytes();
  return actual.every((b, i) => b === r[i]) ? undefined : "the Ed25519 verification equation does not hold";
}
