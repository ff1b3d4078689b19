/**
 * §10 step 1 for the CBOR form: the envelope of spec/packet-1.1.md §4.1,
 * `tag 55799 {"pad": zeros, "body": bstr, "data": bstr, ? "signatures": item}`.
 */
import { toHex } from "./bytes.js";
import { decodeItem, readHead, type Decoded, type DecodeOptions } from "./cbor/decode.js";
import { encodeItem } from "./cbor/encode.js";
import type { CborItem } from "./cbor/item.js";
import { M2ktError } from "./errors.js";
import type { Limits } from "./limits.js";

export interface Envelope {
  /** The body's bytes (a view of the input). */
  readonly body: Uint8Array;
  /** The data section (a view of the input). */
  readonly data: Uint8Array;
  /** The signatures item's bytes, when the packet carries one (a view of the input). */
  readonly signatures: Uint8Array | undefined;
}

const MAGIC = [0xd9, 0xd9, 0xf7] as const;
const KEYS = ["pad", "body", "data", "signatures"] as const;

interface Entry {
  readonly keyCanonical: boolean;
  readonly value: CborItem;
  /** Whether the value is deterministically encoded (not asked of the signatures item). */
  readonly valueCanonical: boolean;
  /** Where the value's encoding starts and ends in the input. */
  readonly start: number;
  readonly end: number;
}

/**
 * Reads the envelope.
 *
 * @throws M2ktError `LIMIT_EXCEEDED`, `TRUNCATED`, `NOT_A_PACKET`, `CBOR_MALFORMED`,
 *   `INDEFINITE_LENGTH`, `DUPLICATE_KEY`, `TRAILING_BYTES`, `NON_CANONICAL` or `BAD_PADDING`.
 */
export function readEnvelope(input: Uint8Array, limits: Limits): Envelope {
  if (input.length > limits.max_packet_bytes) {
    throw new M2ktError("LIMIT_EXCEEDED", `${input.length} bytes exceed max_packet_bytes = ${limits.max_packet_bytes}`);
  }
  MAGIC.forEach((byte, i) => {
    if (i >= input.length) throw new M2ktError("TRUNCATED", "the input ends inside the self-describe tag d9 d9 f7");
    if (input[i] !== byte) throw new M2ktError("NOT_A_PACKET", "the input does not start with the self-describe tag d9 d9 f7");
  });
  const end = input.length;
  const maxDepth = limits.max_depth;
  // An envelope is a few byte strings and the signatures item: what is decoded here to tell
  // what is wrong with one is bounded in items, shared by every entry (§8), before it is built.
  const budget = { items: limits.max_signature_bytes + 16 };
  const decodeBounded = (start: number, options: DecodeOptions): Decoded => {
    const decoded = decodeItem(input, start, end, { ...options, maxItems: budget.items });
    budget.items -= decoded.items;
    return decoded;
  };
  const mapHead = (input[3] ?? 0) >> 5 === 5 ? readHead(input, 3, end) : undefined;
  if (mapHead === undefined) {
    // Not a map: tell malformed or trailing input from a well-formed item that is no packet.
    const item = decodeBounded(3, { maxDepth });
    if (item.end !== end) throw new M2ktError("TRAILING_BYTES", `${end - item.end} bytes after the item`);
    throw new M2ktError("NOT_A_PACKET", "the tagged item is not a map");
  }
  if (BigInt(end - mapHead.end) < 2n * mapHead.argument) throw new M2ktError("TRUNCATED", "the input ends inside the envelope map");

  const entries = new Map<string, Entry>();
  const order: string[] = [];
  const seen = new Set<string>();
  let pos = mapHead.end;
  let foreignKey = false;
  for (let i = Number(mapHead.argument); i > 0; i--) {
    const key = decodeBounded(pos, { maxDepth });
    const identity = toHex(encodeItem(key.item));
    if (seen.has(identity)) throw new M2ktError("DUPLICATE_KEY", "an envelope key appears twice");
    seen.add(identity);
    pos = key.end;
    const name = key.item.kind === "text" ? key.item.value : undefined;
    const value = readValue(input, pos, name, limits, decodeBounded);
    if (name !== undefined && (KEYS as readonly string[]).includes(name)) {
      entries.set(name, { keyCanonical: key.nonCanonical === undefined, ...value, start: pos });
      order.push(name);
    } else foreignKey = true;
    pos = value.end;
  }
  if (pos !== end) throw new M2ktError("TRAILING_BYTES", `${end - pos} bytes after the packet`);

  const pad = entries.get("pad");
  const body = entries.get("body");
  const data = entries.get("data");
  if (foreignKey || pad === undefined || body === undefined || data === undefined) {
    throw new M2ktError("NOT_A_PACKET", "the envelope map's keys are not pad, body, data and possibly signatures");
  }
  if (pad.value.kind !== "bytes" || body.value.kind !== "bytes" || data.value.kind !== "bytes") {
    throw new M2ktError("NOT_A_PACKET", "pad, body and data must be byte strings");
  }
  const canonicalOrder = KEYS.filter((k) => entries.has(k));
  const inOrder = order.every((k, i) => k === canonicalOrder[i]);
  if (!mapHead.shortest || !inOrder || [...entries.values()].some((e) => !e.keyCanonical || !e.valueCanonical)) {
    throw new M2ktError("NON_CANONICAL", "the envelope is not in its deterministic form (key order, shortest heads)");
  }
  checkPad(pad.value.value, body.value.value.length, data.value.value.length, data.end - data.value.value.length);
  const signatures = entries.get("signatures");
  return {
    body: body.value.value,
    data: data.value.value,
    signatures: signatures === undefined ? undefined : input.subarray(signatures.start, signatures.end),
  };
}

/** Decodes one envelope value, with the limits of §8 checked from the headers first. */
function readValue(
  input: Uint8Array,
  start: number,
  name: string | undefined,
  limits: Limits,
  decodeBounded: (start: number, options: DecodeOptions) => Decoded,
): { value: CborItem; valueCanonical: boolean; end: number } {
  const end = input.length;
  const maxDepth = limits.max_depth;
  if (name === "signatures") {
    const budget = Math.min(end, start + limits.max_signature_bytes);
    try {
      const item = decodeItem(input, start, budget, { maxDepth, path: "/signatures" });
      return { value: item.item, valueCanonical: true, end: item.end };
    } catch (error) {
      if (error instanceof M2ktError && error.code === "TRUNCATED" && budget < end) {
        throw new M2ktError(
          "LIMIT_EXCEEDED",
          `the signatures item exceeds max_signature_bytes = ${limits.max_signature_bytes}`,
          "/signatures",
        );
      }
      throw error;
    }
  }
  const path = name === "pad" || name === "body" || name === "data" ? `/${name}` : undefined;
  if (name === "body" && (input[start] ?? 0) >> 5 === 2) {
    const head = readHead(input, start, end, path);
    if (head.argument > BigInt(limits.max_body_bytes)) {
      throw new M2ktError("LIMIT_EXCEEDED", `a body of ${head.argument} bytes exceeds max_body_bytes = ${limits.max_body_bytes}`, "/body");
    }
  }
  const item = decodeBounded(start, path === undefined ? { maxDepth } : { maxDepth, path });
  return { value: item.item, valueCanonical: item.nonCanonical === undefined, end: item.end };
}

/** Byte-string head size for a length (§4.1's h). */
const headSize = (n: number): number => (n < 24 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : n < 2 ** 32 ? 5 : 9);

/** The pad rule of §4.1: the smallest n ≥ 0 that puts the data contents at a multiple of 64. */
function padLength(bodyLength: number, dataLength: number): number {
  const rest = 3 + 1 + 4 + 5 + headSize(bodyLength) + bodyLength + 5 + headSize(dataLength);
  let n = 0;
  while ((rest + headSize(n) + n) % 64 !== 0) n++;
  return n;
}

function checkPad(pad: Uint8Array, bodyLength: number, dataLength: number, dataStart: number): void {
  const expected = padLength(bodyLength, dataLength);
  if (pad.length !== expected) {
    throw new M2ktError(
      "BAD_PADDING",
      `a pad of ${pad.length} bytes puts the data at offset ${dataStart}; the pad rule gives ${expected}`,
      "/pad",
    );
  }
  if (pad.some((b) => b !== 0)) throw new M2ktError("BAD_PADDING", "the pad holds a non-zero byte", "/pad");
}
