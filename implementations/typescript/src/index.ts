/**
 * m2kt: read and verify M2KT knowledge packets (spec/packet-1.1.md, spec/signing.md).
 *
 * ```ts
 * import { readPacket, verifyPacket, TrustStore } from "m2kt";
 * const packet = readPacket(bytes);                      // steps 1–7 of §10, or M2ktError
 * const result = verifyPacket(bytes, { trust: TrustStore.fromJson(doc) });
 * ```
 */
export { ERROR_CODES, M2ktError, type ErrorCode, type Problem } from "./errors.js";
export { DEFAULT_LIMITS, resolveLimits, type Limits } from "./limits.js";
export { detectEncoding, Packet, readPacket, type Encoding, type ReadOptions } from "./packet.js";
export { DTYPE_SIZE, Tensor } from "./tensors.js";
export { summarize, type Summary } from "./summary.js";
export { TrustStore, type TrustedKey, type TrustSource } from "./trust.js";
export { provenanceProblems, verifyPacket, type SignerCheck, type SignerReport, type Verification, type VerifyOptions } from "./verify.js";
export { parseUtcTime } from "./time.js";
export type * from "./types.js";
