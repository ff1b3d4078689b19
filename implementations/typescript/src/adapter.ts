#!/usr/bin/env node
/**
 * The conformance adapter: this package behind the harness protocol of spec/conformance.md §4
 * (JSON lines on stdin and stdout), for the reader and verifier profiles.
 *
 *   m2kt conformance run --impl "node implementations/typescript/dist/adapter.js" --profile verifier
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fromBase64 } from "./bytes.js";
import { M2ktError } from "./errors.js";
import { readPacket, type Encoding } from "./packet.js";
import { summarize } from "./summary.js";
import { parseUtcTime } from "./time.js";
import { TrustStore } from "./trust.js";
import { verifyPacket } from "./verify.js";

const PROFILES = ["reader", "verifier"];
const packageJson = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { name: string; version: string };

type Input = Record<string, unknown>;
type Result = Record<string, unknown>;

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
  const trust = TrustStore.fromJson(input["trust"]);
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

function reply(message: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function handle(message: Record<string, unknown>): void {
  const { cmd, seq } = message;
  if (cmd === "start") {
    if (message["protocol"] !== 1) process.exit(1);
    reply({ protocol: 1, implementation: { name: packageJson.name, version: packageJson.version, language: `typescript (node ${process.versions.node})`, profiles: PROFILES } });
  } else if (cmd === "stop") {
    process.exit(0);
  } else if (cmd === "run") {
    const op = message["op"];
    const input = (message["input"] ?? {}) as Input;
    try {
      if (op === "decode") reply({ seq, result: decode(input) });
      else if (op === "verify") reply({ seq, result: verify(input) });
      else reply({ seq, skipped: { reason: `operation ${String(op)} belongs to the producer profile, which this package does not implement` } });
    } catch (error) {
      if (error instanceof M2ktError) reply({ seq, result: { outcome: "invalid", ...error.toProblem() } });
      else reply({ seq, errored: { message: String(error), traceback: (error as Error).stack ?? "" } });
    }
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  if (line.trim() !== "") handle(JSON.parse(line) as Record<string, unknown>);
});
lines.on("close", () => process.exit(0));
