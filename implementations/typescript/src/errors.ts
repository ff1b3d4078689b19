/**
 * Errors with the stable codes of the M2KT error registry (spec/errors.md).
 *
 * Every rejection the package reports is an {@link M2ktError}: a `code` from the registry, a
 * human-readable message and, where it applies, a JSON Pointer `path` into the packet's JSON form
 * (`/body/graph/edges/3`) or the envelope part (`/pad`, `/body`, `/data`, `/signatures`).
 */

/** Every code of the registry, in the order of spec/errors.md. */
export const ERROR_CODES = [
  "TRUNCATED",
  "CBOR_MALFORMED",
  "NOT_A_PACKET",
  "NON_CANONICAL",
  "INDEFINITE_LENGTH",
  "DUPLICATE_KEY",
  "TRAILING_BYTES",
  "BAD_PADDING",
  "JSON_MALFORMED",
  "LIMIT_EXCEEDED",
  "UNSUPPORTED_VERSION",
  "CRITICAL_EXTENSION",
  "SCHEMA_VIOLATION",
  "DUPLICATE_ID",
  "DANGLING_REFERENCE",
  "DIMENSION_MISMATCH",
  "NONFINITE_VALUE",
  "ISA_CYCLE",
  "UNKNOWN_RELATION",
  "TENSOR_DTYPE",
  "TENSOR_SHAPE",
  "TENSOR_LAYOUT",
  "TENSOR_DIGEST",
  "USAGE",
  "IO_ERROR",
  "UNSIGNED",
  "SIGNATURE_MALFORMED",
  "ALG_UNSUPPORTED",
  "PAYLOAD_MISMATCH",
  "SIGNATURE_INVALID",
  "KEY_MALFORMED",
  "TRUST_STORE_MALFORMED",
  "SIGNER_UNTRUSTED",
  "KEY_EXPIRED",
  "KEY_NOT_YET_VALID",
  "POLICY_UNMET",
  "PROVENANCE_INCOMPLETE",
  "INGEST_REFUSED",
  "INGEST_INCOMPATIBLE",
  "INGEST_ROLLED_BACK",
  "INGEST_BUDGET",
  "DIST_FAILED",
] as const;

/** A code of the registry. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** A coded problem, as the command line and the conformance protocol report it. */
export interface Problem {
  readonly code: ErrorCode;
  readonly message: string;
  readonly path?: string;
}

/** The one error class of the package: a registry code, a message and an optional path. */
export class M2ktError extends Error implements Problem {
  readonly code: ErrorCode;
  readonly path?: string;

  constructor(code: ErrorCode, message: string, path?: string) {
    super(path === undefined ? `${code}: ${message}` : `${code}: ${message} (at ${path})`);
    this.name = "M2ktError";
    this.code = code;
    this.message = message;
    if (path !== undefined) this.path = path;
  }

  /** The plain `{code, message, path?}` record of this error. */
  toProblem(): Problem {
    return this.path === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, path: this.path };
  }
}

/** Joins JSON Pointer tokens (RFC 6901), escaping `~` and `/`. */
export function pointer(...tokens: ReadonlyArray<string | number>): string {
  let out = "";
  for (const token of tokens) {
    const text = String(token);
    out += "/" + (/[~/]/.test(text) ? text.replace(/~/g, "~0").replace(/\//g, "~1") : text);
  }
  return out;
}
