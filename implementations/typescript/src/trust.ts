/**
 * Trust stores (spec/signing.md §6.1): trusted Ed25519 keys with a display name and an optional
 * validity window, from JSON documents shaped like a JWK Set or from COSE_Key `.pub` files (§5).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { isBlank } from "./blank.js";
import { bytesEqual, decodeUtf8, fromBase64UrlCanonical, toHex } from "./bytes.js";
import { decodeItem } from "./cbor/decode.js";
import { mapGetLabel, type CborItem } from "./cbor/item.js";
import { publicKeyProblem } from "./ed25519.js";
import { M2ktError } from "./errors.js";
import { parseJson } from "./json.js";
import { parseUtcTime } from "./time.js";
import { toJsonView } from "./view.js";

export interface TrustedKey {
  /** Lowercase hex SHA-256 of the public key. */
  readonly kid: string;
  /** The raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  readonly name: string;
  /** Validity window in seconds since the epoch, bounds included (§6.3). */
  readonly notBefore?: number;
  readonly notAfter?: number;
}

/** A source of trusted keys: a JSON trust store or a `.pub` file, with the file's name. */
export interface TrustSource {
  readonly bytes: Uint8Array;
  /** Name given to a `.pub` key: the file name without its extension. */
  readonly name: string;
}

const malformed = (message: string): M2ktError => new M2ktError("TRUST_STORE_MALFORMED", message);
const JWK_MEMBERS = new Set(["kty", "crv", "x", "name", "kid", "alg", "use", "not_before", "not_after"]);

/** A set of trusted keys, looked up by key id. */
export class TrustStore {
  private readonly byKid = new Map<string, TrustedKey>();

  private constructor(keys: readonly TrustedKey[]) {
    for (const key of keys) this.add(key);
  }

  /** The trusted keys, in the order they were first listed. */
  get keys(): readonly TrustedKey[] {
    return [...this.byKid.values()];
  }

  /** The trusted key whose key id is `kid` (lowercase hex), if any. */
  get(kid: string): TrustedKey | undefined {
    return this.byKid.get(kid);
  }

  private add(key: TrustedKey): void {
    const known = this.byKid.get(key.kid);
    if (known === undefined) this.byKid.set(key.kid, key);
    else if (known.name !== key.name || known.notBefore !== key.notBefore || known.notAfter !== key.notAfter) {
      throw malformed(`key ${key.kid} is listed twice with different names or windows`);
    }
  }

  /**
   * A trust store from a parsed JSON document `{"keys": [JWK…]}` (§6.1).
   *
   * @throws M2ktError `TRUST_STORE_MALFORMED`, or `KEY_MALFORMED` for a key that fails §3.1.
   */
  static fromJson(document: unknown): TrustStore {
    if (!isObject(document) || Object.keys(document).join() !== "keys" || !Array.isArray(document["keys"])) {
      throw malformed('a trust store is {"keys": [...]} and nothing else');
    }
    return new TrustStore(document["keys"].map(jwkToKey));
  }

  /**
   * A trust store from sources: each a JSON trust store when its first non-blank byte is `{`,
   * else a COSE_Key `.pub` file (§5).
   *
   * @throws M2ktError `TRUST_STORE_MALFORMED` or `KEY_MALFORMED`.
   */
  static fromSources(sources: readonly TrustSource[]): TrustStore {
    const keys = sources.flatMap((source) => {
      const first = source.bytes.find((b) => b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d);
      if (first !== 0x7b) return [coseKeyToKey(source.bytes, source.name)];
      const text = decodeUtf8(source.bytes);
      if (text === undefined) throw malformed(`${source.name}: not UTF-8`);
      let document: CborItem;
      try {
        document = parseJson(text, 8);
      } catch (error) {
        throw error instanceof M2ktError ? malformed(`${source.name}: ${error.message}`) : error;
      }
      return TrustStore.fromJson(toJsonView(document).value).keys;
    });
    return new TrustStore(keys);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function jwkToKey(entry: unknown, index: number): TrustedKey {
  const where = `keys[${index}]`;
  if (!isObject(entry)) throw malformed(`${where} is not an object`);
  const unknown = Object.keys(entry).find((k) => !JWK_MEMBERS.has(k));
  if (unknown !== undefined) throw malformed(`${where} has the unknown member ${JSON.stringify(unknown)}`);
  const { kty, crv, x, name, kid, alg, use, not_before: notBefore, not_after: notAfter } = entry;
  if (kty !== "OKP" || crv !== "Ed25519") throw malformed(`${where} is not an OKP Ed25519 key`);
  if (typeof name !== "string" || isBlank(name) || [...name].length > 1024)
    throw malformed(`${where} needs a non-blank name of at most 1024 characters`);
  if (alg !== undefined && alg !== "EdDSA") throw malformed(`${where}: alg is not "EdDSA"`);
  if (use !== undefined && use !== "sig") throw malformed(`${where}: use is not "sig"`);
  const publicKey = typeof x === "string" && x.length === 43 ? fromBase64UrlCanonical(x) : undefined;
  if (publicKey === undefined) throw malformed(`${where}: x is not 32 bytes in canonical unpadded base64url`);
  const keyProblem = publicKeyProblem(publicKey);
  if (keyProblem !== undefined) throw new M2ktError("KEY_MALFORMED", `${where}: ${keyProblem}`);
  const keyId = toHex(sha256(publicKey));
  if (kid !== undefined && kid !== keyId) throw malformed(`${where}: kid is not the SHA-256 of x`);
  const window: { notBefore?: number; notAfter?: number } = {};
  for (const [field, value] of [
    ["not_before", notBefore],
    ["not_after", notAfter],
  ] as const) {
    if (value === undefined) continue;
    const seconds = typeof value === "string" ? parseUtcTime(value) : undefined;
    if (seconds === undefined) throw malformed(`${where}: ${field} is not an RFC 3339 UTC time`);
    window[field === "not_before" ? "notBefore" : "notAfter"] = seconds;
  }
  if (window.notBefore !== undefined && window.notAfter !== undefined && window.notBefore > window.notAfter) {
    throw malformed(`${where}: not_before is after not_after`);
  }
  return { kid: keyId, publicKey, name, ...window };
}

/** A public COSE_Key file `{1: 1, 2: kid, 3: -8, -1: 6, -2: x}` (§5); kid and alg optional. */
function coseKeyToKey(encoded: Uint8Array, name: string): TrustedKey {
  const bad = (message: string): M2ktError => new M2ktError("KEY_MALFORMED", `${name}: ${message}`);
  let decoded: ReturnType<typeof decodeItem>;
  try {
    decoded = decodeItem(encoded, 0, encoded.length, { maxDepth: 1 });
  } catch (error) {
    throw error instanceof M2ktError ? bad(error.message) : error;
  }
  const item = decoded.item;
  if (decoded.end !== encoded.length || decoded.nonCanonical !== undefined) throw bad("not one deterministically encoded CBOR item");
  if (item.kind !== "map") throw bad("a key file is a COSE_Key map");
  if (mapGetLabel(item, -4) !== undefined) throw bad("a secret key file is not a source of trusted keys; use the .pub file");
  const allowed = new Set(["1", "2", "3", "-1", "-2"]);
  if (item.entries.some(([k]) => k.kind !== "int" || !allowed.has(String(k.value))))
    throw bad("a COSE_Key label other than 1, 2, 3, -1, -2");
  const int = (label: number): bigint | undefined => {
    const v = mapGetLabel(item, label);
    return v?.kind === "int" ? v.value : undefined;
  };
  if (int(1) !== 1n || int(-1) !== 6n) throw bad("not an OKP (kty 1) Ed25519 (crv 6) key");
  if (mapGetLabel(item, 3) !== undefined && int(3) !== -8n) throw bad("alg is not EdDSA (-8)");
  const x = mapGetLabel(item, -2);
  if (x?.kind !== "bytes") throw bad("x (label -2) is not a byte string");
  const problem = publicKeyProblem(x.value);
  if (problem !== undefined) throw bad(problem);
  const kid = mapGetLabel(item, 2);
  const keyId = sha256(x.value);
  if (kid !== undefined && !(kid.kind === "bytes" && bytesEqual(kid.value, keyId))) throw bad("kid is not the SHA-256 of x");
  return { kid: toHex(keyId), publicKey: x.value.slice(), name };
}
