/**
 * Verification of a packet's signatures (spec/signing.md §7): the COSE_Sign structure, the
 * payload, complete provenance, each COSE_Signature, and the k-of-n policy against a trust store.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { isBlank } from "./blank.js";
import { bytesEqual, toHex } from "./bytes.js";
import { parseCoseSign, parseSigner, sigStructure, SignerHeaderError, type HeaderCheck } from "./cose.js";
import { signatureProblem } from "./ed25519.js";
import { M2ktError, type ErrorCode, type Problem } from "./errors.js";
import { resolveLimits } from "./limits.js";
import { Packet, readPacket, type ReadOptions } from "./packet.js";
import { formatUtcTime } from "./time.js";
import type { TrustStore } from "./trust.js";
import type { Body } from "./types.js";

export interface VerifyOptions extends ReadOptions {
  /** The verifier's trusted keys. */
  readonly trust: TrustStore;
  /** k, the verifier's own requirement (default 1); the packet's `safety.min_signers` may raise it. */
  readonly minSigners?: number;
  /** The verification time in seconds since the epoch (default: the clock). */
  readonly now?: number;
}

/** One check of signing.md §7 step 7 on one COSE_Signature. */
export interface SignerCheck {
  readonly check: HeaderCheck | "signature" | "trust" | "validity";
  readonly passed: boolean;
  readonly message: string;
  readonly code?: ErrorCode;
}

/** What the verification found about one COSE_Signature. */
export interface SignerReport {
  readonly index: number;
  /** Lowercase hex key id, once the header was read. */
  readonly kid?: string;
  /** The trust store's name for the key, when trusted. */
  readonly name?: string;
  /** The signing time the signer asserts (RFC 3339). */
  readonly signingTime?: string;
  readonly trusted: boolean;
  /** Whether it counts toward k (trusted, valid, in its window, and the first of its key). */
  readonly counted: boolean;
  readonly checks: readonly SignerCheck[];
}

export interface Verification {
  /** True only when no problem was recorded. */
  readonly valid: boolean;
  /** The packet, when it decoded (steps 1 and 2 passed). */
  readonly packet?: Packet;
  /** k: distinct trusted signers required. */
  readonly required: number;
  /** Distinct trusted signers that counted. */
  readonly counted: number;
  /** Every problem, in step order. */
  readonly errors: readonly Problem[];
  readonly signers: readonly SignerReport[];
}

/**
 * Verifies a packet (signing.md §7): decoding and tensor data (format §10 steps 1–7), then the
 * signatures, trust and k-of-n policy. Problems of the packet are reported in the result, never
 * thrown.
 *
 * @param input the packet's bytes (either encoding), or a packet {@link readPacket} returned.
 * @returns the verification; `valid` is true only when no problem was found.
 * @throws M2ktError `USAGE` when `minSigners` is not an integer of at least 1 or a limit is bad.
 * @example
 * const trust = TrustStore.fromJson(JSON.parse(trustText));
 * const result = verifyPacket(bytes, { trust });
 * if (!result.valid) console.log(result.errors.map((e) => e.code));
 */
export function verifyPacket(input: Uint8Array | Packet, options: VerifyOptions): Verification {
  const minSigners = options.minSigners ?? 1;
  if (!Number.isInteger(minSigners) || minSigners < 1) throw new M2ktError("USAGE", "k (min signers) must be an integer of at least 1");
  const maxDepth = resolveLimits(options.limits).max_depth;
  let packet: Packet;
  try {
    packet = input instanceof Packet ? input : readPacket(input, options);
  } catch (error) {
    if (error instanceof M2ktError && error.code !== "USAGE") {
      return { valid: false, required: minSigners, counted: 0, errors: [error.toProblem()], signers: [] };
    }
    throw error;
  }
  const required = Math.max(minSigners, packet.body.safety.min_signers);
  const stopped = (error: M2ktError): Verification => ({
    valid: false,
    packet,
    required,
    counted: 0,
    errors: [error.toProblem()],
    signers: [],
  });
  // 3
  if (packet.signatures === undefined) return stopped(new M2ktError("UNSIGNED", "the packet carries no signatures entry", "/signatures"));
  // 4
  let cose: ReturnType<typeof parseCoseSign>;
  try {
    cose = parseCoseSign(packet.signatures, maxDepth);
  } catch (error) {
    if (error instanceof M2ktError) return stopped(error);
    throw error;
  }
  // 5
  const packetId = sha256(packet.bodyBytes);
  if (!bytesEqual(cose.payload, packetId)) {
    return stopped(
      new M2ktError("PAYLOAD_MISMATCH", "the COSE payload is not this packet's id: the signatures belong to another packet", "/signatures"),
    );
  }
  // 6
  const errors: Problem[] = provenanceProblems(packet.body);
  // 7
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const signers = cose.signers.map((item, index) => checkSigner(item, index, packetId, options.trust, now, maxDepth));
  const countedKids = new Set<string>();
  const reports: SignerReport[] = [];
  for (const { report, broken, countable } of signers) {
    const counted = countable && report.kid !== undefined && !countedKids.has(report.kid);
    if (counted) countedKids.add(report.kid as string);
    const failed = report.checks.find((c) => !c.passed);
    if (broken && failed !== undefined) errors.push(problemOf(failed, report.index));
    reports.push({ ...report, counted });
  }
  // 8
  if (countedKids.size < required) {
    for (const r of reports) {
      const failed = r.checks.find((c) => !c.passed && (c.check === "trust" || c.check === "validity"));
      if (failed !== undefined) errors.push(problemOf(failed, r.index));
    }
    errors.push({ code: "POLICY_UNMET", message: `${countedKids.size} of the ${required} distinct trusted signers required` });
  }
  return { valid: errors.length === 0, packet, required, counted: countedKids.size, errors, signers: reports };
}

const problemOf = (check: SignerCheck, index: number): Problem => ({
  code: check.code as ErrorCode,
  message: check.message,
  path: `/signatures/${index}`,
});

interface SignerOutcome {
  readonly report: SignerReport;
  /** A failure of steps 7.1–7.6: an error of the packet. */
  readonly broken: boolean;
  /** Every check passed: the signer counts unless its key counted already. */
  readonly countable: boolean;
}

function checkSigner(
  item: Parameters<typeof parseSigner>[0],
  index: number,
  payload: Uint8Array,
  trust: TrustStore,
  now: number,
  maxDepth: number,
): SignerOutcome {
  const checks: SignerCheck[] = [];
  const done = (report: Omit<SignerReport, "index" | "checks" | "counted">, broken: boolean, countable: boolean): SignerOutcome => ({
    report: { index, checks, counted: false, ...report },
    broken,
    countable,
  });
  let header: ReturnType<typeof parseSigner>;
  try {
    header = parseSigner(item, index, maxDepth);
  } catch (error) {
    if (!(error instanceof SignerHeaderError)) throw error;
    const order: HeaderCheck[] = ["structure", "algorithm", "header", "key"];
    for (const check of order.slice(0, order.indexOf(error.check))) checks.push({ check, passed: true, message: "passed" });
    checks.push({ check: error.check, passed: false, message: error.message, code: error.code });
    return done({ trusted: false }, true, false);
  }
  for (const check of ["structure", "algorithm", "header", "key"] as const) checks.push({ check, passed: true, message: "passed" });
  const kid = toHex(header.kid);
  const signingTime = formatUtcTime(header.signingTime);
  const problem = signatureProblem(header.signature, sigStructure(header.protectedBytes, payload), header.publicKey);
  if (problem !== undefined) {
    checks.push({ check: "signature", passed: false, message: problem, code: "SIGNATURE_INVALID" });
    return done({ kid, signingTime, trusted: false }, true, false);
  }
  checks.push({ check: "signature", passed: true, message: "Ed25519 signature verifies" });
  const key = trust.get(kid);
  if (key === undefined || !bytesEqual(key.publicKey, header.publicKey)) {
    checks.push({ check: "trust", passed: false, message: `key ${kid} is not in the trust store`, code: "SIGNER_UNTRUSTED" });
    return done({ kid, signingTime, trusted: false }, false, false);
  }
  checks.push({ check: "trust", passed: true, message: `trusted as ${JSON.stringify(key.name)}` });
  const times = [header.signingTime, now];
  const early = key.notBefore !== undefined && times.some((t) => t < (key.notBefore as number));
  const late = key.notAfter !== undefined && times.some((t) => t > (key.notAfter as number));
  if (early || late) {
    const code = early ? "KEY_NOT_YET_VALID" : "KEY_EXPIRED";
    const bound = formatUtcTime((early ? key.notBefore : key.notAfter) as number);
    checks.push({
      check: "validity",
      passed: false,
      message: `signing or verification time ${early ? "before not_before" : "after not_after"} ${bound}`,
      code,
    });
    return done({ kid, name: key.name, signingTime, trusted: true }, false, false);
  }
  checks.push({ check: "validity", passed: true, message: "signing and verification time in the window" });
  return done({ kid, name: key.name, signingTime, trusted: true }, false, true);
}

/** Complete provenance (signing.md §8): one problem per failing rule, with its path. */
export function provenanceProblems(body: Body): Problem[] {
  const p = body.provenance;
  const problems: Problem[] = [];
  const blank = isBlank;
  const add = (path: string, message: string): void => {
    problems.push({ code: "PROVENANCE_INCOMPLETE", message, path: `/body/provenance${path}` });
  };
  if (blank(p.generator.name)) add("/generator/name", "the generator's name is blank");
  if (blank(p.generator.version)) add("/generator/version", "the generator's version is blank");
  if (blank(p.task.name)) add("/task/name", "the task's name is blank");
  if (Object.keys(p.parameters).length === 0) add("/parameters", "parameters is empty: how the packet was generated is not recorded");
  if (p.task_inputs_used < 1) add("/task_inputs_used", "task_inputs_used is 0: every packet is distilled from some task inputs");
  if (body.concepts.length > 0 && p.concept_probes_used < 1)
    add("/concept_probes_used", "concept_probes_used is 0 in a packet with concepts");
  const seen = new Set<string>();
  p.parents.forEach((id, i) => {
    if (seen.has(id)) add(`/parents/${i}`, `parent ${id} is listed twice`);
    seen.add(id);
  });
  return problems;
}
