// One source of truth: the error codes and the schemas come from spec/ and schemas/.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ERROR_CODES } from "../src/errors.js";
import { SCHEMA_FILES } from "../src/generated/schemas.js";
import { readRepoText } from "./helpers.js";

test("the error codes are the registry of spec/errors.md, in its order", () => {
  const text = readRepoText("spec/errors.md");
  const table = text.slice(text.indexOf("<!-- BEGIN GENERATED: errors -->"), text.indexOf("<!-- END GENERATED: errors -->"));
  const codes = [...table.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual([...ERROR_CODES], codes);
});

test("the embedded schemas are the files of schemas/, every one the packet schema reaches", () => {
  for (const [name, schema] of Object.entries(SCHEMA_FILES)) {
    assert.deepEqual(schema, JSON.parse(readRepoText(`schemas/${name}`)), name);
  }
  const refs = JSON.stringify(SCHEMA_FILES).matchAll(/"\$ref":"([^"#]+)/g);
  for (const [, file] of refs) assert.ok(file !== undefined && file in SCHEMA_FILES, `${file} is referenced but not embedded`);
});
