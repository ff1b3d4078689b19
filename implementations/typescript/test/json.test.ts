import assert from "node:assert/strict";
import { test } from "node:test";
import type { CborItem } from "../src/cbor/item.js";
import { M2ktError } from "../src/errors.js";
import { parseJson } from "../src/json.js";

const failure = (text: string, maxDepth = 32): string => {
  try {
    parseJson(text, maxDepth);
  } catch (error) {
    assert.ok(error instanceof M2ktError);
    return error.code;
  }
  return "no error";
};

test("numbers keep what JSON.parse loses: integer or float, and every digit of an integer", () => {
  const item = parseJson("[1, 1.0, 1e0, -0, 18446744073709551615, -9223372036854775809, 1e999]", 4);
  assert.deepEqual(item.kind === "array" && item.items, [
    { kind: "int", value: 1n },
    { kind: "float", value: 1 },
    { kind: "float", value: 1 },
    { kind: "int", value: 0n },
    { kind: "int", value: 18446744073709551615n },
    { kind: "int", value: -9223372036854775809n },
    { kind: "float", value: Infinity },
  ] satisfies CborItem[]);
});

test("strings: escapes, surrogate pairs, and lone surrogates refused", () => {
  assert.deepEqual(parseJson('"a\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"', 1), { kind: "text", value: 'a"\\/\b\f\n\r\t\u00e9😀' });
  assert.equal(failure('"\\ud800"'), "JSON_MALFORMED");
  assert.equal(failure('"\\udfff"'), "JSON_MALFORMED");
  assert.equal(failure('"\\ud800\\u0041"'), "JSON_MALFORMED");
  assert.equal(failure('"tab\there"'), "JSON_MALFORMED"); // a raw control character
});

test("what RFC 8259 does not allow is JSON_MALFORMED; duplicate names DUPLICATE_KEY", () => {
  for (const text of ["NaN", "[Infinity]", "01", "1.", ".5", "[1,]", "{'a': 1}", '{"a" 1}', "[1] x", "", "tru", "+1"]) {
    assert.equal(failure(text), "JSON_MALFORMED", text);
  }
  assert.equal(failure('{"a": 1, "a": 2}'), "DUPLICATE_KEY");
  assert.equal(failure('{"a": {"b": 1, "b": 1}}'), "DUPLICATE_KEY");
});

test("depth: a value may lie inside at most maxDepth arrays and objects", () => {
  assert.equal(failure("[[1]]", 2), "no error");
  assert.equal(failure("[[[1]]]", 2), "LIMIT_EXCEEDED");
  assert.equal(failure('{"a": {"b": []}}', 2), "no error");
});

test("items are counted as in CBOR, the body's apart from the rest, and refused before they are built", () => {
  // body: {"a": [1, 2]} = map, name, array, 2 numbers = 5; beside: top object, 2 names, "1.0" = 4
  const text = '{"body": {"a": [1, 2]}, "m2kt_json": "1.0"}';
  const bounded = (body: number, beside: number): string => {
    try {
      parseJson(text, 32, { body, beside });
    } catch (error) {
      assert.ok(error instanceof M2ktError);
      return `${error.code} ${error.path ?? ""}`.trim();
    }
    return "parsed";
  };
  assert.equal(bounded(5, 4), "parsed");
  assert.equal(bounded(4, 4), "LIMIT_EXCEEDED /body");
  assert.equal(bounded(5, 3), "LIMIT_EXCEEDED");
  // "body" below the top level is an ordinary member: its items count beside the body
  assert.equal(failureWithBounds('{"x": {"body": [1, 2, 3]}}', { body: 0, beside: 8 }), "no error");
  assert.equal(failureWithBounds('{"x": {"body": [1, 2, 3]}}', { body: 0, beside: 7 }), "LIMIT_EXCEEDED");
});

function failureWithBounds(text: string, bounds: { body: number; beside: number }): string {
  try {
    parseJson(text, 32, bounds);
  } catch (error) {
    assert.ok(error instanceof M2ktError);
    return error.code;
  }
  return "no error";
}
