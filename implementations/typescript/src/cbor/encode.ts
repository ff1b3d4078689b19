/**
 * The deterministic CBOR encoder (RFC 8949 §4.2.1, as spec/packet-1.1.md §4.2 applies it):
 * shortest heads, shortest exact floats (NaN as f9 7e 00), definite lengths, map entries sorted
 * by the bytewise order of their encoded keys.
 */
import { compareBytes } from "../bytes.js";
import { float32Bits, numberToHalfExact, shortestFloatWidth } from "./float.js";
import type { CborItem } from "./item.js";

/** The deterministic encoding of `item`. */
export function encodeItem(item: CborItem): Uint8Array {
  const writer = new Writer();
  writer.item(item);
  return writer.bytes();
}

const UTF8 = new TextEncoder();

/** Appends encodings to one buffer that doubles when full. */
class Writer {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  private length = 0;

  bytes(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }

  private reserve(n: number): number {
    if (this.length + n > this.buffer.length) {
      const grown = new Uint8Array(Math.max(2 * this.buffer.length, this.length + n));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  private raw(bytes: Uint8Array): void {
    const at = this.reserve(bytes.length); // first: reserving may replace the buffer
    this.buffer.set(bytes, at);
  }

  /** A head of major type `major` with the shortest encoding of `arg`. */
  head(major: number, arg: bigint | number): void {
    const m = major << 5;
    const n = typeof arg === "number" ? arg : arg <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(arg) : undefined;
    if (n !== undefined && n < 24) this.raw(Uint8Array.of(m | n));
    else if (n !== undefined && n < 0x100) this.raw(Uint8Array.of(m | 24, n));
    else if (n !== undefined && n < 0x10000) {
      const at = this.reserve(3);
      this.buffer[at] = m | 25;
      this.view.setUint16(at + 1, n);
    } else if (n !== undefined && n < 0x100000000) {
      const at = this.reserve(5);
      this.buffer[at] = m | 26;
      this.view.setUint32(at + 1, n);
    } else {
      const at = this.reserve(9);
      this.buffer[at] = m | 27;
      this.view.setBigUint64(at + 1, BigInt(arg));
    }
  }

  item(item: CborItem): void {
    switch (item.kind) {
      case "int":
        if (item.value >= 0n) this.head(0, item.value);
        else this.head(1, -1n - item.value);
        break;
      case "bytes":
        this.head(2, item.value.length);
        this.raw(item.value);
        break;
      case "text": {
        const utf8 = UTF8.encode(item.value);
        this.head(3, utf8.length);
        this.raw(utf8);
        break;
      }
      case "array":
        this.head(4, item.items.length);
        for (const child of item.items) this.item(child);
        break;
      case "map": {
        const entries = item.entries.map(([k, v]) => [encodeItem(k), v] as const).sort(([a], [b]) => compareBytes(a, b));
        this.head(5, entries.length);
        for (const [key, value] of entries) {
          this.raw(key);
          this.item(value);
        }
        break;
      }
      case "tag":
        this.head(6, item.tag);
        this.item(item.item);
        break;
      case "simple":
        if (item.value < 24) this.raw(Uint8Array.of(0xe0 | item.value));
        else this.raw(Uint8Array.of(0xf8, item.value));
        break;
      case "float":
        this.float(item.value);
        break;
    }
  }

  private float(value: number): void {
    const width = shortestFloatWidth(value);
    if (width === 16) {
      const at = this.reserve(3);
      this.buffer[at] = 0xf9;
      this.view.setUint16(at + 1, Number.isNaN(value) ? 0x7e00 : (numberToHalfExact(value) as number));
    } else if (width === 32) {
      const at = this.reserve(5);
      this.buffer[at] = 0xfa;
      this.view.setUint32(at + 1, float32Bits(value));
    } else {
      const at = this.reserve(9);
      this.buffer[at] = 0xfb;
      this.view.setFloat64(at + 1, value);
    }
  }
}
