/**
 * The generic CBOR data item (RFC 8949 §3) the decoder produces and the encoder writes.
 * Integers are bigints so that every value of major types 0 and 1 is held exactly; byte strings
 * are views into the decoded input (no copy).
 */
export type CborItem =
  | { readonly kind: "int"; readonly value: bigint }
  | { readonly kind: "float"; readonly value: number }
  | { readonly kind: "bytes"; readonly value: Uint8Array }
  | { readonly kind: "text"; readonly value: string }
  | { readonly kind: "array"; readonly items: readonly CborItem[] }
  | { readonly kind: "map"; readonly entries: readonly (readonly [CborItem, CborItem])[] }
  | { readonly kind: "tag"; readonly tag: bigint; readonly item: CborItem }
  | { readonly kind: "simple"; readonly value: number };

export type CborMap = Extract<CborItem, { kind: "map" }>;

/** Simple values with a meaning in the JSON data model (RFC 8949 §3.3). */
export const SIMPLE_FALSE = 20;
export const SIMPLE_TRUE = 21;
export const SIMPLE_NULL = 22;

export const text = (value: string): CborItem => ({ kind: "text", value });
export const bytes = (value: Uint8Array): CborItem => ({ kind: "bytes", value });

/** The value of the text-keyed entry `key` of a map item, if the item is a map that has it. */
export function mapGet(item: CborItem | undefined, key: string): CborItem | undefined {
  if (item?.kind !== "map") return undefined;
  for (const [k, v] of item.entries) if (k.kind === "text" && k.value === key) return v;
  return undefined;
}

/** The value of the integer-keyed entry `label` of a map item (COSE headers use these). */
export function mapGetLabel(item: CborItem, label: number): CborItem | undefined {
  if (item.kind !== "map") return undefined;
  for (const [k, v] of item.entries) if (k.kind === "int" && k.value === BigInt(label)) return v;
  return undefined;
}
