#!/usr/bin/env node
/**
 * The conformance adapter: this package behind the harness protocol of spec/conformance.md §4
 * (JSON lines on stdin and stdout), for the reader and verifier profiles.
 *
 *   m2kt conformance run --impl "node implementations/typescript/dist/adapter.js" --profile verifier
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { PROFILES, runRequest } from "./protocol.js";

const packageJson = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { name: string; version: string };

function reply(message: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(message) + "\n"); // writes to a pipe are synchronous on POSIX
}

function handle(message: Record<string, unknown>): void {
  if (message["cmd"] === "start") {
    if (message["protocol"] !== 1) process.exit(1);
    const implementation = {
      name: packageJson.name,
      version: packageJson.version,
      language: `typescript (node ${process.versions.node})`,
      profiles: PROFILES,
    };
    reply({ protocol: 1, implementation });
  } else if (message["cmd"] === "stop") {
    process.exit(0);
  } else if (message["cmd"] === "run") {
    reply({ seq: message["seq"], ...runRequest(message["op"], (message["input"] ?? {}) as Record<string, unknown>) });
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  if (line.trim() !== "") handle(JSON.parse(line) as Record<string, unknown>);
});
lines.on("close", () => process.exit(0));
