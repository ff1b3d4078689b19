/**
 * A strict CBOR decoder (RFC 8949 §3) for the packet's rules (spec/packet-1.1.md §4.1, §4.2):
 * well-formedness, definite lengths only, no duplicate map keys, valid UTF-8 and a nesting
 * bound are errors; every departure from the deterministic encoding (§4.2.1: shortest heads and
 * floats, keys in bytewise order) is recorded, so that callers decide whether it is one.
 *
 * Nothing is allocated from a size the input announces before the input is known to hold it:
 * lengths and counts are compared with the bytes that remain, and byte strings are views.
 */
import { compareBytes, decodeUtf8, toHex } from "../bytes.js";
import { M2ktError } from "../errors.js";
import { encodeItem } from "./encode.js";
import { halfToNumber, shortestFloatWidth } from "./float.js";
import type { CborItem } from "./item.js";

export interface DecodeOptions {
  /**
   * Most arrays, maps and tags that may enclose an item (an entry of the outermost map lies
   * inside one). Deeper input is `LIMIT_EXCEEDED`.
   */
  readonly maxDepth: number;
  /**
   * Most data items the item may hold, itself included (every array, map, key and value once);
   * the item past it is `LIMIT_EXCEEDED`, before it is built. No bound when absent.
   */
  readonly maxItems?: number;
  /** JSON Pointer reported with errors (the envelope part being decoded, e.g. `/body`). */
  readonly path?: string;
}

export interface Decoded {
  readonly item: CborItem;
  /** Offset just after the item. */
  readonly end: number;
  /** The first departure from deterministic encoding, or `undefined` when there is none. */
  readonly nonCanonical: string | undefined;
  /** Data items read (the item itself and every item inside it). */
  readonly items: number;
}

/**
 * Decodes one item of `input[start, end)`.
 *
 * @throws M2ktError `TRUNCATED`, `CBOR_MALFORMED`, `INDEFINITE_LENGTH`, `DUPLICATE_KEY` or
 *   `LIMIT_EXCEEDED` (nesting or items).
 */
export function decodeItem(input: Uint8Array, start: number, end: number, options: DecodeOptions): Decoded {
  const decoder = new Decoder(input, start, end, options);
  const item = decoder.item(0);
  return { item, end: decoder.pos, nonCanonical: decoder.nonCanonical, items: decoder.items };
}

const INDEFINITE = 31;

/** A head of major type 0 to 6 (RFC 8949 §3): the major type, its argument, where it ends. */
export interface Head {
  readonly major: number;
  readonly argument: bigint;
  readonly end: number;
  /** Whether the argument is in its shortest form. */
  readonly shortest: boolean;
}

/**
 * Reads the head at `input[start]`, for the envelope's map and byte-string heads.
 *
 * @throws M2ktError `TRUNCATED`, `CBOR_MALFORMED` (reserved or misplaced additional information)
 *   or `INDEFINITE_LENGTH`.
 */
export function readHead(input: Uint8Array, start: number, end: number, path?: string): Head {
  const decoder = new Decoder(input, start, end, path === undefined ? { maxDepth: 0 } : { maxDepth: 0, path });
  return decoder.head();
}

class Decoder {
  pos: number;
  nonCanonical: string | undefined;
  /** Departures from deterministic encoding seen so far. */
  private notes = 0;
  /** Data items begun so far, for `maxItems`. */
  items = 0;
  private readonly view: DataView;

  constructor(
    private readonly input: Uint8Array,
    start: number,
    private readonly end: number,
    private readonly options: DecodeOptions,
  ) {
    this.pos = start;
    this.view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  }

  private fail(
    code: "TRUNCATED" | "CBOR_MALFORMED" | "INDEFINITE_LENGTH" | "DUPLICATE_KEY" | "LIMIT_EXCEEDED",
    message: string,
    at: number,
  ): never {
    throw new M2ktError(code, `${message} (byte ${at})`, this.options.path);
  }

  private note(message: string, at: number): void {
    this.notes++;
    this.nonCanonical ??= `${message} (byte ${at})`;
  }

  private need(n: number | bigint, at: number): void {
    if (BigInt(this.end - this.pos) < BigInt(n)) this.fail("TRUNCATED", "input ends inside an item", at);
  }

  /** Reads the argument of a head whose additional information is `info` (below 28). */
  private argument(info: number, at: number): bigint {
    if (info < 24) return BigInt(info);
    const size = 1 << (info - 24);
    this.need(size, at);
    let value: bigint;
    if (size === 1) value = BigInt(this.input[this.pos] as number);
    else if (size === 2) value = BigInt(this.view.getUint16(this.pos));
    else if (size === 4) value = BigInt(this.view.getUint32(this.pos));
    else value = this.view.getBigUint64(this.pos);
    this.pos += size;
    const floor = size === 1 ? 24n : 1n << BigInt(4 * size);
    if (value < floor) this.note("argument not in its shortest form", at);
    return value;
  }

  head(): Head {
    const at = this.pos;
    this.need(1, at);
    const initial = this.input[this.pos++] as number;
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (major === 7) this.fail("CBOR_MALFORMED", "expected a head of major type 0 to 6", at);
    if (info >= 28 && info <= 30) this.fail("CBOR_MALFORMED", `reserved additional information ${info}`, at);
    if (info === INDEFINITE) {
      if (major >= 2 && major <= 5) this.fail("INDEFINITE_LENGTH", "indefinite-length item", at);
      this.fail("CBOR_MALFORMED", `additional information 31 with major type ${major}`, at);
    }
    const notes = this.notes;
    const argument = this.argument(info, at);
    return { major, argument, end: this.pos, shortest: this.notes === notes };
  }

  item(depth: number): CborItem {
    const at = this.pos;
    if (depth > this.options.maxDepth) this.fail("LIMIT_EXCEEDED", `nesting deeper than ${this.options.maxDepth}`, at);
    this.items++;
    const maxItems = this.options.maxItems;
    if (maxItems !== undefined && this.items > maxItems) this.fail("LIMIT_EXCEEDED", `more than ${maxItems} data items`, at);
    this.need(1, at);
    const initial = this.input[this.pos] as number;
    if (initial >> 5 === 7) {
      this.pos++;
      return this.simpleOrFloat(initial & 0x1f, at);
    }
    const { major, argument: arg } = this.head();
    switch (major) {
      case 0:
        return { kind: "int", value: arg };
      case 1:
        return { kind: "int", value: -1n - arg };
      case 2:
        return { kind: "bytes", value: this.take(arg, at) };
      case 3: {
        const value = decodeUtf8(this.take(arg, at));
        if (value === undefined) this.fail("CBOR_MALFORMED", "text string is not valid UTF-8", at);
        return { kind: "text", value };
      }
      case 4: {
        this.need(arg, at); // every item takes at least one byte
        const items: CborItem[] = [];
        for (let i = Number(arg); i > 0; i--) items.push(this.item(depth + 1));
        return { kind: "array", items };
      }
      case 5:
        return this.map(arg, depth, at);
      default:
        return { kind: "tag", tag: arg, item: this.item(depth + 1) };
    }
  }

  private take(length: bigint, at: number): Uint8Array {
    this.need(length, at);
    const start = this.pos;
    this.pos += Number(length);
    return this.input.subarray(start, this.pos);
  }

  private map(count: bigint, depth: number, at: number): CborItem {
    this.need(2n * count, at); // every entry takes at least two bytes
    const entries: [CborItem, CborItem][] = [];
    const seen = new Set<string>();
    let previous: Uint8Array | undefined;
    for (let i = Number(count); i > 0; i--) {
      const keyAt = this.pos;
      const notes = this.notes;
      const key = this.item(depth + 1);
      // A key read without departures is its own deterministic encoding.
      const encoded = this.notes === notes ? this.input.subarray(keyAt, this.pos) : encodeItem(key);
      const identity = toHex(encoded);
      if (seen.has(identity)) this.fail("DUPLICATE_KEY", "map key appears twice", keyAt);
      seen.add(identity);
      if (previous !== undefined && compareBytes(previous, encoded) > 0) {
        this.note("map keys not in bytewise order of their encodings", keyAt);
      }
      previous = encoded;
      entries.push([key, this.item(depth + 1)]);
    }
    return { kind: "map", entries };
  }

  private simpleOrFloat(info: number, at: number): CborItem {
    if (info < 24) return { kind: "simple", value: info };
    if (info === 24) {
      this.need(1, at);
      const value = this.input[this.pos++] as number;
      if (value < 32) this.fail("CBOR_MALFORMED", `two-byte simple value ${value} below 32`, at);
      return { kind: "simple", value };
    }
    if (info >= 28) {
      this.fail(
        "CBOR_MALFORMED",
        info === INDEFINITE ? "break outside an indefinite-length item" : `reserved additional information ${info}`,
        at,
      );
    }
    const width = info === 25 ? 16 : info === 26 ? 32 : 64;
    this.need(width / 8, at);
    let value: number;
    if (width === 16) {
      const bits = this.view.getUint16(this.pos);
      value = halfToNumber(bits);
      if (Number.isNaN(value) && bits !== 0x7e00) this.note("NaN not written as f9 7e 00", at);
    } else {
      value = width === 32 ? this.view.getFloat32(this.pos) : this.view.getFloat64(this.pos);
    }
    this.pos += width / 8;
    if (shortestFloatWidth(value) !== width) this.note(`float not in its shortest exact width (binary${width})`, at);
    return { kind: "float", value };
  }
}
