/**
 * The packet's `signatures` entry (spec/signing.md §4): one deterministically encoded
 * COSE_Sign_Tagged item (RFC 9052) over the packet id, with EdDSA COSE_Signatures whose
 * protected headers carry the signer's key and the signing time.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesEqual, fromHex } from "./bytes.js";
import { decodeItem } from "./cbor/decode.js";
import { encodeItem } from "./cbor/encode.js";
import { bytes, mapGetLabel, text, type CborItem, type CborMap } from "./cbor/item.js";
import { publicKeyProblem } from "./ed25519.js";
import { M2ktError } from "./errors.js";

/** The body protected header, `{3: "application/m2kt-packet-id"}` (§4.1). */
const BODY_PROTECTED = fromHex("a103781a6170706c69636174696f6e2f6d326b742d7061636b65742d6964") as Uint8Array;
const COSE_SIGN_TAG = 98n;
const EDDSA = -8n;
const MAX_SIGNERS = 256;

const malformed = (message: string, path = "/signatures"): M2ktError => new M2ktError("SIGNATURE_MALFORMED", message, path);

/** Step 4 of signing.md §7: the COSE_Sign structure. */
export interface CoseSign {
  /** The attached payload: the packet id as 32 bytes. */
  readonly payload: Uint8Array;
  /** The COSE_Signature items, in array order. */
  readonly signers: readonly CborItem[];
}

/**
 * Checks the COSE_Sign structure (signing.md §4.1, §4.4; §7 step 4).
 *
 * @param encoded the signatures entry, already known to be one well-formed item.
 * @throws M2ktError `SIGNATURE_MALFORMED`, or `LIMIT_EXCEEDED` for more than 256 signers.
 */
export function parseCoseSign(encoded: Uint8Array, maxDepth: number): CoseSign {
  const decoded = decodeItem(encoded, 0, encoded.length, { maxDepth, path: "/signatures" });
  if (decoded.nonCanonical !== undefined) throw malformed(`not deterministically encoded: ${decoded.nonCanonical}`);
  const tagged = decoded.item;
  if (tagged.kind !== "tag" || tagged.tag !== COSE_SIGN_TAG) throw malformed("not a COSE_Sign_Tagged item (tag 98)");
  const sign = tagged.item;
  if (sign.kind !== "array" || sign.items.length !== 4) throw malformed("COSE_Sign is an array of four items");
  const [protectedHeader, unprotected, payload, signers] = sign.items as [CborItem, CborItem, CborItem, CborItem];
  if (protectedHeader.kind !== "bytes" || !bytesEqual(protectedHeader.value, BODY_PROTECTED)) {
    throw malformed('the body protected header is not {3: "application/m2kt-packet-id"}');
  }
  if (unprotected.kind !== "map" || unprotected.entries.length !== 0) throw malformed("the body unprotected header is not empty");
  if (payload.kind !== "bytes" || payload.value.length !== 32) throw malformed("the payload is not the 32-byte packet id (attached)");
  if (signers.kind !== "array" || signers.items.length === 0) throw malformed("COSE_Sign needs at least one COSE_Signature");
  if (signers.items.length > MAX_SIGNERS) {
    throw new M2ktError("LIMIT_EXCEEDED", `${signers.items.length} signers; a verifier accepts at most ${MAX_SIGNERS}`, "/signatures");
  }
  return { payload: payload.value, signers: signers.items };
}

/** A COSE_Signature that passed steps 7.1 to 7.5. */
export interface SignerHeader {
  /** The content of the protected header byte string. */
  readonly protectedBytes: Uint8Array;
  readonly signature: Uint8Array;
  /** SHA-256 of the public key. */
  readonly kid: Uint8Array;
  /** The raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** Seconds since the epoch, as the signer asserts it. */
  readonly signingTime: number;
}

/** The checks of signing.md §7 step 7 that a COSE_Signature's header passes or fails. */
export type HeaderCheck = "structure" | "algorithm" | "header" | "key";

/** A failed check of steps 7.1 to 7.5. */
export class SignerHeaderError extends M2ktError {
  constructor(
    readonly check: HeaderCheck,
    error: M2ktError,
  ) {
    super(error.code, error.message, error.path);
  }
}

/**
 * Steps 7.1 to 7.5 of signing.md §7 on the COSE_Signature at `index`.
 *
 * @throws SignerHeaderError with `SIGNATURE_MALFORMED`, `ALG_UNSUPPORTED` or `KEY_MALFORMED`.
 */
export function parseSigner(item: CborItem, index: number, maxDepth: number): SignerHeader {
  const path = `/signatures/${index}`;
  const fail = (check: HeaderCheck, code: "SIGNATURE_MALFORMED" | "ALG_UNSUPPORTED" | "KEY_MALFORMED", message: string): never => {
    throw new SignerHeaderError(check, new M2ktError(code, message, path));
  };
  // 7.1
  if (item.kind !== "array" || item.items.length !== 3)
    return fail("structure", "SIGNATURE_MALFORMED", "a COSE_Signature is an array of three items");
  const [protectedItem, unprotected, signature] = item.items as [CborItem, CborItem, CborItem];
  if (protectedItem.kind !== "bytes" || protectedItem.value.length === 0)
    return fail("structure", "SIGNATURE_MALFORMED", "the protected header is not a non-empty byte string");
  const header = protectedMap(protectedItem.value, maxDepth);
  if (header === undefined)
    return fail("structure", "SIGNATURE_MALFORMED", "the protected header is not one deterministically encoded map");
  if (unprotected.kind !== "map" || unprotected.entries.length !== 0)
    return fail("structure", "SIGNATURE_MALFORMED", "the unprotected header is not empty");
  if (signature.kind !== "bytes") return fail("structure", "SIGNATURE_MALFORMED", "the signature is not a byte string");
  // 7.2
  const alg = mapGetLabel(header, 1);
  if (alg === undefined) return fail("algorithm", "SIGNATURE_MALFORMED", "the protected header has no alg (label 1)");
  if (!(alg.kind === "int" && alg.value === EDDSA)) return fail("algorithm", "ALG_UNSUPPORTED", "alg is not EdDSA (-8)");
  // 7.3
  if (labelsOf(header) !== "1,4,14,15")
    return fail("header", "SIGNATURE_MALFORMED", "the protected header's labels are not exactly 1, 4, 14 and 15");
  const kid = mapGetLabel(header, 4) as CborItem;
  if (kid.kind !== "bytes" || kid.value.length !== 32) return fail("header", "SIGNATURE_MALFORMED", "kid is not a 32-byte byte string");
  const signingTime = soleEntry(mapGetLabel(header, 15) as CborItem, 6);
  if (signingTime?.kind !== "int" || signingTime.value < 0n || signingTime.value >= 2n ** 53n) {
    return fail("header", "SIGNATURE_MALFORMED", "label 15 is not {6: t} with t an integer in [0, 2^53)");
  }
  const coseKey = soleEntry(soleEntry(mapGetLabel(header, 14) as CborItem, 8), 1);
  if (coseKey === undefined) return fail("header", "SIGNATURE_MALFORMED", "label 14 is not {8: {1: COSE_Key}}");
  // 7.4
  const x = mapGetLabel(coseKey, -2);
  const kty = mapGetLabel(coseKey, 1);
  const crv = mapGetLabel(coseKey, -1);
  if (
    coseKey.kind !== "map" ||
    labelsOf(coseKey) !== "-2,-1,1" ||
    kty?.kind !== "int" ||
    kty.value !== 1n ||
    crv?.kind !== "int" ||
    crv.value !== 6n ||
    x?.kind !== "bytes"
  ) {
    return fail("key", "KEY_MALFORMED", "the COSE_Key is not exactly {1: 1, -1: 6, -2: x}");
  }
  const problem = publicKeyProblem(x.value);
  if (problem !== undefined) return fail("key", "KEY_MALFORMED", `the signer's key: ${problem}`);
  // 7.5
  if (!bytesEqual(sha256(x.value), kid.value)) return fail("key", "SIGNATURE_MALFORMED", "kid is not SHA-256 of the signer's key");
  return {
    protectedBytes: protectedItem.value,
    signature: signature.value,
    kid: kid.value,
    publicKey: x.value,
    signingTime: Number(signingTime.value),
  };
}

/** The map a protected header holds, if it holds exactly one deterministically encoded map. */
function protectedMap(encoded: Uint8Array, maxDepth: number): CborMap | undefined {
  try {
    const { item, end, nonCanonical } = decodeItem(encoded, 0, encoded.length, { maxDepth });
    return end === encoded.length && nonCanonical === undefined && item.kind === "map" ? item : undefined;
  } catch (error) {
    if (error instanceof M2ktError) return undefined;
    throw error;
  }
}

/** A map's labels, sorted and joined by commas (a label other than an integer reads as NaN). */
function labelsOf(map: CborMap): string {
  return map.entries
    .map(([k]) => (k.kind === "int" ? Number(k.value) : NaN))
    .sort((a, b) => a - b)
    .join();
}

/** The value of a map that has exactly one entry, labelled `label`. */
function soleEntry(item: CborItem | undefined, label: number): CborItem | undefined {
  return item?.kind === "map" && item.entries.length === 1 ? mapGetLabel(item, label) : undefined;
}

/** The bytes each signer signs: the Sig_structure of RFC 9052 §4.4 (signing.md §4.3). */
export function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  return encodeItem({
    kind: "array",
    items: [text("Signature"), bytes(BODY_PROTECTED), bytes(protectedBytes), bytes(new Uint8Array(0)), bytes(payload)],
  });
}
