/**
 * A strict JSON parser (RFC 8259) for the JSON form (spec/packet-1.1.md §4.5). It yields the
 * same {@link CborItem} tree as the CBOR decoder, keeping what `JSON.parse` loses: a number
 * written with a fraction or an exponent is a float, one without is an integer (held exactly).
 * Duplicate member names are `DUPLICATE_KEY`; invalid JSON and lone surrogates are
 * `JSON_MALFORMED`; nesting beyond `maxDepth` and items beyond their bounds are `LIMIT_EXCEEDED`.
 */
import type { CborItem } from "./cbor/item.js";
import { SIMPLE_FALSE, SIMPLE_NULL, SIMPLE_TRUE } from "./cbor/item.js";
import { M2ktError } from "./errors.js";

/**
 * Bounds on the items of a JSON form (spec/packet-1.1.md §4.5), counted as in CBOR: every
 * array, object, member name and value once.
 */
export interface ItemBounds {
  /** Most items in the value of the top-level member `body`. */
  readonly body: number;
  /** Most items everywhere else (the top-level object and its member names included). */
  readonly beside: number;
}

const NO_BOUNDS: ItemBounds = { body: Infinity, beside: Infinity };

/**
 * Parses one JSON text.
 *
 * @param maxDepth most arrays and objects that may enclose a value (a member of the top-level
 *   object lies inside one).
 * @param bounds items allowed in the top-level `body` member and beside it; each item is
 *   counted before it is built, so an excess stops the parse before it costs memory.
 */
export function parseJson(text: string, maxDepth: number, bounds: ItemBounds = NO_BOUNDS): CborItem {
  const parser = new JsonParser(text, maxDepth, bounds);
  parser.skipWhitespace();
  const value = parser.value(0);
  parser.skipWhitespace();
  if (parser.pos !== text.length) parser.fail("text after the JSON value");
  return value;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const PLAIN_RUN = /[^"\\\u0000-\u001f]*/y;
const ESCAPES: Readonly<Record<string, string>> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

class JsonParser {
  pos = 0;
  private bodyItems = 0;
  private besideItems = 0;
  /** Whether the parse is inside the value of the top-level member `body`. */
  private inBody = false;

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
    private readonly bounds: ItemBounds,
  ) {}

  /** Counts one item where the parse is, refusing the first past its bound. */
  private countItem(): void {
    if (this.inBody) {
      if (++this.bodyItems > this.bounds.body) {
        throw new M2ktError("LIMIT_EXCEEDED", `the body holds more than ${this.bounds.body} items (character ${this.pos})`, "/body");
      }
    } else if (++this.besideItems > this.bounds.beside) {
      throw new M2ktError("LIMIT_EXCEEDED", `more than ${this.bounds.beside} items beside the body (character ${this.pos})`);
    }
  }

  fail(message: string): never {
    throw new M2ktError("JSON_MALFORMED", `${message} (character ${this.pos})`);
  }

  skipWhitespace(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.pos++;
    }
  }

  value(depth: number): CborItem {
    if (depth > this.maxDepth) {
      throw new M2ktError("LIMIT_EXCEEDED", `JSON nested deeper than ${this.maxDepth} (character ${this.pos})`);
    }
    this.countItem();
    const c = this.text[this.pos];
    if (c === "{") return this.object(depth);
    if (c === "[") return this.array(depth);
    if (c === '"') return { kind: "text", value: this.string() };
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.number();
    for (const [word, value] of [
      ["true", SIMPLE_TRUE],
      ["false", SIMPLE_FALSE],
      ["null", SIMPLE_NULL],
    ] as const) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return { kind: "simple", value };
      }
    }
    return this.fail(c === undefined ? "the text ends where a value should be" : `unexpected ${JSON.stringify(c)}`);
  }

  private expect(c: string): void {
    if (this.text[this.pos] !== c) this.fail(`expected ${JSON.stringify(c)}`);
    this.pos++;
  }

  private object(depth: number): CborItem {
    this.pos++;
    const entries: [CborItem, CborItem][] = [];
    const seen = new Set<string>();
    this.skipWhitespace();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return { kind: "map", entries };
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') this.fail("expected a member name");
      const at = this.pos;
      this.countItem();
      const name = this.string();
      if (seen.has(name)) throw new M2ktError("DUPLICATE_KEY", `member ${JSON.stringify(name)} appears twice (character ${at})`);
      seen.add(name);
      this.skipWhitespace();
      this.expect(":");
      this.skipWhitespace();
      const body = depth === 0 && name === "body";
      if (body) this.inBody = true;
      entries.push([{ kind: "text", value: name }, this.value(depth + 1)]);
      if (body) this.inBody = false;
      this.skipWhitespace();
      if (this.text[this.pos] === "}") {
        this.pos++;
        return { kind: "map", entries };
      }
      this.expect(",");
    }
  }

  private array(depth: number): CborItem {
    this.pos++;
    const items: CborItem[] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return { kind: "array", items };
    }
    for (;;) {
      this.skipWhitespace();
      items.push(this.value(depth + 1));
      this.skipWhitespace();
      if (this.text[this.pos] === "]") {
        this.pos++;
        return { kind: "array", items };
      }
      this.expect(",");
    }
  }

  private number(): CborItem {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (match === null) return this.fail("malformed number");
    this.pos += match[0].length;
    if (match[1] === undefined && match[2] === undefined) return { kind: "int", value: BigInt(match[0]) };
    return { kind: "float", value: Number(match[0]) };
  }

  private string(): string {
    this.pos++; // the opening quote
    let out = "";
    for (;;) {
      PLAIN_RUN.lastIndex = this.pos;
      const run = PLAIN_RUN.exec(this.text)?.[0] ?? "";
      out += run;
      this.pos += run.length;
      const c = this.text[this.pos];
      if (c === '"') {
        this.pos++;
        return out;
      }
      if (c !== "\\") this.fail(c === undefined ? "unterminated string" : "control character in a string");
      this.pos++;
      const e = this.text[this.pos];
      if (e === "u") out += this.unicodeEscape();
      else if (e !== undefined && ESCAPES[e] !== undefined) {
        out += ESCAPES[e];
        this.pos++;
      } else this.fail("invalid escape");
    }
  }

  /** `\uXXXX`, pairing surrogates; a lone surrogate is not a Unicode scalar value. */
  private unicodeEscape(): string {
    const high = this.hex4();
    if (high < 0xd800 || high > 0xdfff) return String.fromCharCode(high);
    if (high >= 0xdc00 || this.text.slice(this.pos, this.pos + 2) !== "\\u") this.fail("lone surrogate escape");
    this.pos++;
    const low = this.hex4();
    if (low < 0xdc00 || low > 0xdfff) this.fail("lone surrogate escape");
    return String.fromCharCode(high, low);
  }

  /** Reads `uXXXX` (the `u` included) and returns the code unit. */
  private hex4(): number {
    const digits = this.text.slice(this.pos + 1, this.pos + 5);
    if (!/^[0-9a-fA-F]{4}$/.test(digits)) this.fail("invalid \\u escape");
    this.pos += 5;
    return parseInt(digits, 16);
  }
}
