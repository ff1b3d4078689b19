/** Paths and loaders shared by the tests (compiled to build/test/). */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fromBase64 } from "../src/bytes.js";

/** The repository root (tests run from implementations/typescript/build/test/). */
export const REPO = fileURLToPath(new URL("../../../../", import.meta.url));

export const readRepoText = (path: string): string => readFileSync(REPO + path, "utf8");

export interface Vector {
  readonly id: string;
  readonly op: string;
  readonly profiles: readonly string[];
  readonly input: Record<string, unknown> & { b64?: string; encoding?: string };
  readonly expected: {
    outcome: "valid" | "invalid";
    code?: string;
    packet_id?: string;
    summary?: Record<string, unknown>;
    signers?: string[];
  };
}

/** Every vector of the conformance suite (conformance/manifest.json). */
export function vectors(): Vector[] {
  const manifest = JSON.parse(readRepoText("conformance/manifest.json")) as { vectors: { file: string }[] };
  return manifest.vectors.map((v) => JSON.parse(readRepoText(`conformance/${v.file}`)) as Vector);
}

export function vector(id: string): Vector {
  return JSON.parse(readRepoText(`conformance/vectors/${id}.json`)) as Vector;
}

/** The input packet bytes of a vector. */
export function vectorBytes(id: string): Uint8Array {
  return fromBase64(vector(id).input.b64 as string) as Uint8Array;
}
