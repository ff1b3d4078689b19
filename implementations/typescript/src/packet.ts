/**
 * Reading a packet: spec/packet-1.1.md §10, steps 1 to 7, in either encoding.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { toHex } from "./bytes.js";
import { decodeBody, validateBodyItem } from "./body.js";
import { readEnvelope } from "./envelope.js";
import { M2ktError } from "./errors.js";
import { readJsonForm, rebuildDataSection } from "./jsonform.js";
import { resolveLimits, type Limits } from "./limits.js";
import { checkTensorData, type Tensor } from "./tensors.js";
import type { Body } from "./types.js";

export type Encoding = "cbor" | "json";

export interface ReadOptions {
  /** Overrides of the default limits of §8, by name (`max_concepts`…). */
  readonly limits?: Readonly<Partial<Limits>>;
  /** The encoding of the input; by default told from its first byte (§2). */
  readonly encoding?: Encoding;
}

/** A packet that passed every step of §10. */
export class Packet {
  /** The packet id (§4.4): lowercase hex SHA-256 of the body bytes. */
  readonly id: string;

  constructor(
    /** The encoding it was read from. */
    readonly encoding: Encoding,
    /** The validated body. */
    readonly body: Body,
    /** The body's deterministic CBOR: what the packet id hashes and the signatures cover. */
    readonly bodyBytes: Uint8Array,
    /** The data section: every tensor's bytes at its offset (a view of the input for CBOR). */
    readonly data: Uint8Array,
    /** The tensors, in descriptor order; their bytes are views of {@link data}. */
    readonly tensors: readonly Tensor[],
    /** The encoded COSE_Sign item, when the packet is signed (spec/signing.md §4). */
    readonly signatures: Uint8Array | undefined,
  ) {
    this.id = toHex(sha256(bodyBytes));
  }

  /**
   * The tensor called `name`.
   *
   * @throws M2ktError `DANGLING_REFERENCE` when there is none.
   */
  tensor(name: string): Tensor {
    const found = this.tensors.find((t) => t.name === name);
    if (found === undefined) throw new M2ktError("DANGLING_REFERENCE", `no tensor ${JSON.stringify(name)}`);
    return found;
  }
}

/** The encoding of `input`: `json` when its first byte other than JSON white space is `{`. */
export function detectEncoding(input: Uint8Array): Encoding {
  const first = input.find((b) => b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d);
  return first === 0x7b ? "json" : "cbor";
}

/**
 * Decodes and validates a packet (spec/packet-1.1.md §10 steps 1–7). Signatures are not
 * verified here: see {@link verifyPacket}.
 *
 * @param input the packet's bytes, CBOR form or JSON form. CBOR tensors are views of `input`:
 *   keep it unchanged while the packet is in use.
 * @returns the validated packet.
 * @throws M2ktError with the code of the first failing step; `USAGE` for bad options.
 * @example
 * const packet = readPacket(new Uint8Array(await readFile("demo.m2kt")));
 * packet.id; packet.body.concepts[0].label; packet.tensor("concept/num:0/embedding").toFloat32();
 */
export function readPacket(input: Uint8Array, options: ReadOptions = {}): Packet {
  const limits = resolveLimits(options.limits);
  const encoding = options.encoding ?? detectEncoding(input);
  if (encoding === "cbor") {
    const envelope = readEnvelope(input, limits);
    const { body, bytes } = validateBodyItem(decodeBody(envelope.body, limits), envelope.body, limits);
    const tensors = checkTensorData(body.tensors, envelope.data, "/body/tensors");
    return new Packet(encoding, body, bytes, envelope.data, tensors, envelope.signatures);
  }
  const form = readJsonForm(input, limits);
  const { body, bytes } = validateBodyItem(form.body, undefined, limits);
  const data = rebuildDataSection(body.tensors, form.tensorData);
  const tensors = checkTensorData(body.tensors, data, "/body/tensors");
  return new Packet(encoding, body, bytes, data, tensors, form.signatures);
}
