/**
 * The requests of the conformance harness protocol (spec/conformance.md §3.4, §4.3–§4.4) for the
 * reader and verifier profiles, answered with this package. `adapter.ts` does the I/O.
 */
import { readFileSync } from "node:fs";
import { fromBase64 } from "./bytes.js";
import { M2ktError } from "./errors.js";
import { readPacket, type Encoding } from "./packet.js";
import { summarize } from "./summary.js";
import { parseUtcTime } from "./time.js";
import { TrustStore } from "./trust.js";
import { verifyPacket } from "./verify.js";

export const PROFILES = ["reader", "verifier"];

type Input = Readonly<Record<string, unknown>>;
type Result = Record<string, unknown>;

/**
 * The reply to one `run` request without its `seq`: `{result}`, `{skipped}` or `{errored}`.
 */
export function runRequest(op: unknown, input: Input): Record<string, unknown> {
  try {
    if (op === "decode") return { result: decode(input) };
    if (op === "verify") return { result: verify(input) };
    return { skipped: { reason: `operation ${String(op)} belongs to the producer profile, which this package does not implement` } };
  } catch (error) {
    if (error instanceof M2ktError) return { result: { outcome: "invalid", ...error.toProblem() } };
    return { errored: { message: String(error), traceback: (error as Error).stack ?? "" } };
  }
}

function packetBytes(input: Input): Uint8Array {
  if (typeof input["path"] === "string") {
    try {
      return new Uint8Array(readFileSync(input["path"]));
    } catch (error) {
      throw new M2ktError("IO_ERROR", `cannot read ${input["path"]}: ${(error as Error).message}`);
    }
  }
  const bytes = typeof input["b64"] === "string" ? fromBase64(input["b64"]) : undefined;
  if (bytes === undefined) throw new M2ktError("USAGE", "the input needs b64 (standard base64) or path");
  return bytes;
}

function readOptions(input: Input): { encoding: Encoding; limits: Record<string, number> } {
  const encoding = input["encoding"];
  if (encoding !== "cbor" && encoding !== "json") throw new M2ktError("USAGE", "encoding is cbor or json");
  const limits = input["limits"] ?? {};
  if (limits === null || typeof limits !== "object" || Array.isArray(limits)) throw new M2ktError("USAGE", "limits is an object");
  return { encoding, limits: limits as Record<string, number> };
}

function decode(input: Input): Result {
  const packet = readPacket(packetBytes(input), readOptions(input));
  return { outcome: "valid", packet_id: packet.id, summary: summarize(packet, input["values"] === true) };
}

function verify(input: Input): Result {
  // trust_text: the store as the text of its JSON document, read as a trust-store file is
  const trust =
    typeof input["trust_text"] === "string"
      ? TrustStore.fromSources([{ bytes: new TextEncoder().encode(input["trust_text"]), name: "request trust store" }])
      : TrustStore.fromJson(input["trust"]);
  const minSigners = input["min_signers"] ?? 1;
  if (typeof minSigners !== "number" || !Number.isInteger(minSigners) || minSigners < 1) {
    throw new M2ktError("USAGE", "min_signers must be an integer of at least 1");
  }
  const now = input["now"] === undefined ? undefined : typeof input["now"] === "string" ? parseUtcTime(input["now"]) : undefined;
  if (input["now"] !== undefined && now === undefined) throw new M2ktError("USAGE", "now must be an RFC 3339 UTC time");
  const result = verifyPacket(packetBytes(input), { ...readOptions(input), trust, minSigners, ...(now === undefined ? {} : { now }) });
  const [first] = result.errors;
  if (first !== undefined) return { outcome: "invalid", ...first };
  const packet = result.packet as NonNullable<typeof result.packet>;
  const signers = [...new Set(result.signers.filter((s) => s.counted).map((s) => s.kid as string))].sort();
  return { outcome: "valid", packet_id: packet.id, summary: summarize(packet), signers };
}
