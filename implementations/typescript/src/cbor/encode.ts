/**
 * The deterministic CBOR encoder (RFC 8949 §4.2.1, as spec/packet-1.0.md §4.2 applies it):
 * shortest heads, shortest exact floats (NaN as f9 7e 00), definite lengths, map entries sorted
 * by the bytewise order of their encoded keys.
 */
import { compareBytes, concatBytes, encodeUtf8 } from "../bytes.js";
import { float32Bits, numberToHalfExact, shortestFloatWidth } from "./float.js";
import type { CborItem } from "./item.js";

/** The deterministic encoding of `item`. */
export function encodeItem(item: CborItem): Uint8Array {
  return concatBytes(encodeParts(item, []));
}

function encodeParts(item: CborItem, out: Uint8Array[]): Uint8Array[] {
  switch (item.kind) {
    case "int":
      out.push(item.value >= 0n ? head(0, item.value) : head(1, -1n - item.value));
      break;
    case "bytes":
      out.push(head(2, BigInt(item.value.length)), item.value);
      break;
    case "text": {
      const utf8 = encodeUtf8(item.value);
      out.push(head(3, BigInt(utf8.length)), utf8);
      break;
    }
    case "array":
      out.push(head(4, BigInt(item.items.length)));
      for (const child of item.items) encodeParts(child, out);
      break;
    case "map": {
      const entries = item.entries.map(([k, v]) => [encodeItem(k), v] as const);
      entries.sort(([a], [b]) => compareBytes(a, b));
      out.push(head(5, BigInt(entries.length)));
      for (const [key, value] of entries) {
        out.push(key);
        encodeParts(value, out);
      }
      break;
    }
    case "tag":
      out.push(head(6, item.tag));
      encodeParts(item.item, out);
      break;
    case "simple":
      out.push(item.value < 24 ? Uint8Array.of(0xe0 | item.value) : Uint8Array.of(0xf8, item.value));
      break;
    case "float":
      out.push(encodeFloat(item.value));
      break;
  }
  return out;
}

/** A head of major type `major` with the shortest encoding of `arg`. */
export function head(major: number, arg: bigint): Uint8Array {
  const m = major << 5;
  if (arg < 24n) return Uint8Array.of(m | Number(arg));
  if (arg < 0x100n) return Uint8Array.of(m | 24, Number(arg));
  if (arg < 0x10000n) return Uint8Array.of(m | 25, Number(arg >> 8n), Number(arg & 0xffn));
  const size = arg < 0x100000000n ? 4 : 8;
  const out = new Uint8Array(1 + size);
  out[0] = m | (size === 4 ? 26 : 27);
  const view = new DataView(out.buffer);
  if (size === 4) view.setUint32(1, Number(arg));
  else view.setBigUint64(1, arg);
  return out;
}

function encodeFloat(value: number): Uint8Array {
  const width = shortestFloatWidth(value);
  if (width === 16) {
    const bits = Number.isNaN(value) ? 0x7e00 : (numberToHalfExact(value) as number);
    return Uint8Array.of(0xf9, bits >> 8, bits & 0xff);
  }
  const out = new Uint8Array(width === 32 ? 5 : 9);
  const view = new DataView(out.buffer);
  if (width === 32) {
    out[0] = 0xfa;
    view.setUint32(1, float32Bits(value));
  } else {
    out[0] = 0xfb;
    view.setFloat64(1, value);
  }
  return out;
}
