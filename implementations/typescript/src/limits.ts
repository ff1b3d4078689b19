/**
 * The decoding limits of spec/packet-1.1.md §8. The defaults are the values every reader MUST
 * accept; callers may lower them (a network service) or raise them (a large local packet).
 */
import { M2ktError } from "./errors.js";

/** Limits by their names in the specification. */
export interface Limits {
  /** Size of the encoded packet, either encoding. */
  readonly max_packet_bytes: number;
  /** Length of the body byte string, from its header. */
  readonly max_body_bytes: number;
  /** Length of the signatures item. */
  readonly max_signature_bytes: number;
  /** `length` of one tensor descriptor. */
  readonly max_tensor_bytes: number;
  readonly max_tensors: number;
  readonly max_concepts: number;
  readonly max_edges: number;
  readonly max_traces: number;
  /** Entries of one trace's `steps`. */
  readonly max_trace_steps: number;
  readonly max_anchors: number;
  /** Nesting of arrays and maps in the body, the body map being depth 1. */
  readonly max_depth: number;
  /**
   * Data items of the body (every array, map, key and value once: a map of n entries is 1 + 2n
   * items), counted before they are built; in the JSON form also the bound beside the body.
   */
  readonly max_body_items: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  max_packet_bytes: 2 ** 34,
  max_body_bytes: 2 ** 28,
  max_signature_bytes: 2 ** 20,
  max_tensor_bytes: 2 ** 33,
  max_tensors: 2 ** 20,
  max_concepts: 2 ** 20,
  max_edges: 2 ** 24,
  max_traces: 2 ** 16,
  max_trace_steps: 4096,
  max_anchors: 2 ** 20,
  max_depth: 32,
  max_body_items: 2 ** 22,
});

/**
 * The default limits with `overrides` applied.
 *
 * @param overrides limits by name; values are non-negative integers. Values above 2^53 − 1 are
 *   held as 2^53 − 1: no JavaScript array or buffer reaches that size, so the limit is the same.
 * @throws M2ktError `USAGE` for an unknown name or a value that is not a non-negative integer.
 */
export function resolveLimits(overrides: Readonly<Record<string, unknown>> = {}): Limits {
  const limits: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const [name, value] of Object.entries(overrides)) {
    if (!Object.hasOwn(DEFAULT_LIMITS, name)) {
      throw new M2ktError("USAGE", `unknown limit ${JSON.stringify(name)}`);
    }
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
      throw new M2ktError("USAGE", `limit ${name} must be a non-negative integer`);
    }
    limits[name] = Math.min(value, Number.MAX_SAFE_INTEGER);
  }
  return limits as unknown as Limits;
}
