import assert from "node:assert/strict";
import { test } from "node:test";
import { fromHex, toHex } from "../src/bytes.js";
import { decodeItem } from "../src/cbor/decode.js";
import { encodeItem } from "../src/cbor/encode.js";
import { halfToNumber, numberToHalfExact, shortestFloatWidth } from "../src/cbor/float.js";
import type { CborItem } from "../src/cbor/item.js";
import { M2ktError } from "../src/errors.js";

const decode = (hex: string, maxDepth = 32) => {
  const bytes = fromHex(hex.replace(/ /g, "")) as Uint8Array;
  return decodeItem(bytes, 0, bytes.length, { maxDepth });
};
const code = (f: () => unknown): string => {
  try {
    f();
  } catch (error) {
    assert.ok(error instanceof M2ktError, String(error));
    return error.code;
  }
  return "no error";
};

test("every binary16 value converts exactly both ways (NaN excepted)", () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const value = halfToNumber(bits);
    if (Number.isNaN(value)) continue;
    assert.equal(numberToHalfExact(value), bits, `bits ${bits.toString(16)}`);
  }
  assert.equal(numberToHalfExact(65520), undefined); // above the largest half
  assert.equal(numberToHalfExact(2 ** -25), undefined); // below the smallest subnormal
  assert.equal(numberToHalfExact(1 + 2 ** -11), undefined);
});

test("floats take the shortest width that holds them exactly (RFC 8949 §4.2.1)", () => {
  assert.equal(shortestFloatWidth(1.0), 16);
  assert.equal(shortestFloatWidth(-0), 16);
  assert.equal(shortestFloatWidth(Infinity), 16);
  assert.equal(shortestFloatWidth(NaN), 16);
  assert.equal(shortestFloatWidth(100000), 32);
  assert.equal(shortestFloatWidth(0.17), 64);
  assert.equal(toHex(encodeItem({ kind: "float", value: 1.0 })), "f93c00");
  assert.equal(toHex(encodeItem({ kind: "float", value: 0.17 })), "fb3fc5c28f5c28f5c3"); // spec §4.2's example
  assert.equal(toHex(encodeItem({ kind: "float", value: NaN })), "f97e00");
});

test("departures from the deterministic encoding are recorded, not thrown", () => {
  assert.equal(decode("1817").nonCanonical?.startsWith("argument not in its shortest form"), true);
  assert.equal(decode("1b0000000000000000").nonCanonical !== undefined, true);
  assert.equal(decode("fa3f800000").nonCanonical?.startsWith("float not in its shortest"), true);
  assert.equal(decode("fb7ff8000000000000").nonCanonical !== undefined, true); // NaN as binary64
  assert.equal(decode("f97e01").nonCanonical?.startsWith("NaN not written as f9 7e 00"), true);
  assert.equal(decode("a2616201616101").nonCanonical?.startsWith("map keys not in bytewise order"), true);
  assert.equal(decode("a2616101616201").nonCanonical, undefined);
  assert.equal(decode("a261620162616102").nonCanonical, undefined, "shorter keys sort first");
  assert.equal(decode("a262616102616201").nonCanonical !== undefined, true, "not alphabetical order");
});

test("well-formedness errors have their codes", () => {
  assert.equal(
    code(() => decode("")),
    "TRUNCATED",
  );
  assert.equal(
    code(() => decode("1c")),
    "CBOR_MALFORMED",
  ); // reserved additional information
  assert.equal(
    code(() => decode("ff")),
    "CBOR_MALFORMED",
  ); // lone break
  assert.equal(
    code(() => decode("f810")),
    "CBOR_MALFORMED",
  ); // two-byte simple value below 32
  assert.equal(
    code(() => decode("1f")),
    "CBOR_MALFORMED",
  );
  assert.equal(
    code(() => decode("63ff fe fd")),
    "CBOR_MALFORMED",
  ); // invalid UTF-8
  assert.equal(
    code(() => decode("63eda080")),
    "CBOR_MALFORMED",
  ); // a UTF-8-encoded surrogate
  assert.equal(
    code(() => decode("9f00ff")),
    "INDEFINITE_LENGTH",
  );
  assert.equal(
    code(() => decode("5f4100ff")),
    "INDEFINITE_LENGTH",
  );
  assert.equal(
    code(() => decode("a2616101616102")),
    "DUPLICATE_KEY",
  );
  assert.equal(
    code(() => decode("a27801610161610 2".replace(/ /g, ""))),
    "DUPLICATE_KEY",
    "the same key in two encodings",
  );
});

test("announced sizes beyond the input are truncation, without allocating for them", () => {
  assert.equal(
    code(() => decode("9b0000000100000000")),
    "TRUNCATED",
  ); // 2^32 items
  assert.equal(
    code(() => decode("7b0000010000000000")),
    "TRUNCATED",
  ); // 2^40 bytes of text
  assert.equal(
    code(() => decode("bbffffffffffffffff")),
    "TRUNCATED",
  );
});

test("max_depth bounds the arrays, maps and tags around an item", () => {
  assert.equal(
    code(() => decode("818100", 2)),
    "no error",
  ); // 0 lies inside two arrays
  assert.equal(
    code(() => decode("81818100", 2)),
    "LIMIT_EXCEEDED",
  );
  assert.equal(
    code(() => decode("818180", 2)),
    "no error",
  ); // an empty array at the last level
  assert.equal(
    code(() => decode("c1c100", 2)),
    "no error",
  );
  assert.equal(
    code(() => decode("c1c1c100", 2)),
    "LIMIT_EXCEEDED",
  ); // tags count
});

/** Items of every kind from a seeded generator (xorshift), for the round-trip property. */
function randomItem(next: () => number, depth: number): CborItem {
  const kind = next() % (depth > 3 ? 5 : 8);
  switch (kind) {
    case 0:
      return { kind: "int", value: BigInt(next()) * (next() % 2 ? -1n : 1n) * (next() % 3 ? 1n : 2n ** 40n) };
    case 1:
      return { kind: "float", value: [0.5, -0, 1e300, 65504, 3.4028234663852886e38, (next() % 1000) / 7][next() % 6] as number };
    case 2:
      return { kind: "text", value: ["", "a", "é", "😀", "key" + next()][next() % 5] as string };
    case 3:
      return { kind: "bytes", value: Uint8Array.from({ length: next() % 30 }, () => next() % 256) };
    case 4:
      return { kind: "simple", value: [20, 21, 22, 23, 99][next() % 5] as number };
    case 5:
      return { kind: "array", items: Array.from({ length: next() % 4 }, () => randomItem(next, depth + 1)) };
    case 6: {
      const keys = new Map<string, CborItem>();
      for (let i = next() % 4; i > 0; i--) {
        const key = randomItem(next, depth + 1);
        keys.set(toHex(encodeItem(key)), key);
      }
      return { kind: "map", entries: [...keys.values()].map((k) => [k, randomItem(next, depth + 1)] as const) };
    }
    default:
      return { kind: "tag", tag: BigInt(next() % 300), item: randomItem(next, depth + 1) };
  }
}

test("encoding is deterministic: decoding the encoding and encoding again gives the same bytes", () => {
  let state = 0x9e3779b9;
  const next = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  for (let i = 0; i < 2000; i++) {
    const bytes = encodeItem(randomItem(next, 0));
    const decoded = decodeItem(bytes, 0, bytes.length, { maxDepth: 64 });
    assert.equal(decoded.end, bytes.length);
    assert.equal(decoded.nonCanonical, undefined, toHex(bytes));
    assert.equal(toHex(encodeItem(decoded.item)), toHex(bytes));
  }
});

test("maxItems counts every item, map keys included, and refuses the first past it", () => {
  const bytes = Uint8Array.of(0xa2, 0x61, 0x61, 0x80, 0x61, 0x62, 0x01); // {"a": [], "b": 1}: 5 items
  assert.equal(decodeItem(bytes, 0, bytes.length, { maxDepth: 4, maxItems: 5 }).end, bytes.length);
  assert.throws(
    () => decodeItem(bytes, 0, bytes.length, { maxDepth: 4, maxItems: 4 }),
    (error: unknown) => error instanceof M2ktError && error.code === "LIMIT_EXCEEDED",
  );
});
