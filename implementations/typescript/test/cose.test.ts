// The worked example of spec/signing.md §10, byte for byte, and its mutations.
import assert from "node:assert/strict";
import { test } from "node:test";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, fromHex, toHex } from "../src/bytes.js";
import { decodeItem } from "../src/cbor/decode.js";
import { encodeItem } from "../src/cbor/encode.js";
import type { CborItem } from "../src/cbor/item.js";
import { parseCoseSign, parseSigner, sigStructure, SignerHeaderError } from "../src/cose.js";
import { L, signatureProblem } from "../src/ed25519.js";
import { M2ktError } from "../src/errors.js";
import { readRepoText } from "./helpers.js";

/** The hex blocks of signing.md §10, in order: key and kid, protected header, Sig_structure, signature, entry. */
function exampleBlocks(): string[] {
  const text = readRepoText("spec/signing.md");
  const section = text.slice(text.indexOf("## 10. Example"), text.indexOf("## 11."));
  const blocks = [...section.matchAll(/```\n([0-9a-f\n]+)```/g)].map((m) => (m[1] as string).replace(/\n/g, ""));
  assert.equal(blocks.length, 5);
  return blocks;
}

const [keyAndKid, protectedHex, sigStructureHex, signatureHex, entryHex] = exampleBlocks() as [string, string, string, string, string];
const entry = fromHex(entryHex) as Uint8Array;
const payload = sha256(new TextEncoder().encode("m2kt signing example"));

const signerItem = (bytes: Uint8Array): CborItem => {
  const cose = parseCoseSign(bytes, 32);
  return cose.signers[0] as CborItem;
};

test("the example entry parses, and its signer header is the documented one", () => {
  const cose = parseCoseSign(entry, 32);
  assert.equal(toHex(cose.payload), toHex(payload));
  const header = parseSigner(signerItem(entry), 0, 32);
  assert.equal(toHex(header.publicKey) + toHex(header.kid), keyAndKid);
  assert.equal(toHex(header.protectedBytes), protectedHex);
  assert.equal(header.signingTime, 1767225600);
  assert.equal(toHex(sigStructure(header.protectedBytes, cose.payload)), sigStructureHex);
  assert.equal(toHex(header.signature), signatureHex);
  assert.equal(signatureProblem(header.signature, sigStructure(header.protectedBytes, payload), header.publicKey), undefined);
});

/** The example entry with its signer's protected header and signature replaced. */
function withSigner(protectedBytes: Uint8Array, signature: Uint8Array): Uint8Array {
  const { item } = decodeItem(entry, 0, entry.length, { maxDepth: 32 });
  const tagged = item as Extract<CborItem, { kind: "tag" }>;
  const sign = tagged.item as Extract<CborItem, { kind: "array" }>;
  const signer: CborItem = {
    kind: "array",
    items: [
      { kind: "bytes", value: protectedBytes },
      { kind: "map", entries: [] },
      { kind: "bytes", value: signature },
    ],
  };
  return encodeItem({
    kind: "tag",
    tag: 98n,
    item: { kind: "array", items: [...sign.items.slice(0, 3), { kind: "array", items: [signer] }] },
  });
}

const headerFailure = (bytes: Uint8Array): [string, string] => {
  try {
    parseSigner(signerItem(bytes), 0, 32);
  } catch (error) {
    assert.ok(error instanceof SignerHeaderError);
    return [error.check, error.code];
  }
  return ["none", "none"];
};

test("the documented mutations give the documented codes (signing.md §10)", () => {
  const protectedBytes = fromHex(protectedHex) as Uint8Array;
  const signature = fromHex(signatureHex) as Uint8Array;
  const flipped = signature.slice();
  flipped[63] = (flipped[63] as number) ^ 1;
  assert.match(
    signatureProblem(flipped, sigStructure(protectedBytes, payload), parseSigner(signerItem(entry), 0, 32).publicKey) ?? "",
    /equation/,
  );

  const kidFlipped = protectedBytes.slice();
  kidFlipped[6] = (kidFlipped[6] as number) ^ 1; // inside the kid, which starts at byte 5
  assert.deepEqual(headerFailure(withSigner(kidFlipped, signature)), ["key", "SIGNATURE_MALFORMED"]);

  const es256 = protectedBytes.slice();
  es256[2] = 0x26; // alg -7
  assert.deepEqual(headerFailure(withSigner(es256, signature)), ["algorithm", "ALG_UNSUPPORTED"]);

  const s = signature.subarray(32).reduceRight((n, b) => (n << 8n) | BigInt(b), 0n) + L;
  const sPlusL = concatBytes([signature.subarray(0, 32), Uint8Array.from({ length: 32 }, (_, i) => Number((s >> BigInt(8 * i)) & 0xffn))]);
  assert.match(
    signatureProblem(sPlusL, sigStructure(protectedBytes, payload), parseSigner(signerItem(entry), 0, 32).publicKey) ?? "",
    /group order/,
  );
});

test("the COSE_Sign structure: tag, shape, content type, payload, signer count, deterministic encoding", () => {
  const malformed = (bytes: Uint8Array): string => {
    try {
      parseCoseSign(bytes, 32);
    } catch (error) {
      assert.ok(error instanceof M2ktError);
      return error.code;
    }
    return "none";
  };
  assert.equal(malformed(entry.subarray(2)), "SIGNATURE_MALFORMED"); // without the tag 98 head d8 62
  const nonCanonical = concatBytes([entry.subarray(0, 2), Uint8Array.of(0x98, 0x04), entry.subarray(3)]);
  assert.equal(malformed(nonCanonical), "SIGNATURE_MALFORMED");
  const tooMany = encodeItem({
    kind: "tag",
    tag: 98n,
    item: {
      kind: "array",
      items: [
        { kind: "bytes", value: fromHex("a103781a6170706c69636174696f6e2f6d326b742d7061636b65742d6964") as Uint8Array },
        { kind: "map", entries: [] },
        { kind: "bytes", value: payload },
        { kind: "array", items: Array.from({ length: 257 }, () => ({ kind: "array", items: [] }) as CborItem) },
      ],
    },
  });
  assert.equal(malformed(tooMany), "LIMIT_EXCEEDED");
});
