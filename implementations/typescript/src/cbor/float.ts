/**
 * Floating-point widths of CBOR major type 7: binary16 conversion and the shortest width that
 * holds a value exactly (RFC 8949 §4.2.1 preferred serialization; NaN is always f9 7e 00).
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The value of binary16 bits `h`. */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

/** The binary16 bits of `value` when binary16 holds it exactly (NaN excluded), else `undefined`. */
export function numberToHalfExact(value: number): number | undefined {
  if (Number.isNaN(value)) return undefined;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  if (magnitude === Infinity) return sign | 0x7c00;
  if (magnitude === 0) return sign;
  if (magnitude < 2 ** -14) {
    const fraction = magnitude / 2 ** -24; // subnormal: a multiple of 2^-24 below 2^-14
    return Number.isInteger(fraction) ? sign | fraction : undefined;
  }
  const exponent = Math.floor(Math.log2(magnitude));
  // log2 may be off by one near powers of two; settle it exactly.
  const e = magnitude >= 2 ** (exponent + 1) ? exponent + 1 : magnitude < 2 ** exponent ? exponent - 1 : exponent;
  if (e > 15) return undefined;
  const mantissa = magnitude / 2 ** (e - 10); // in [1024, 2048) when exact
  if (!Number.isInteger(mantissa)) return undefined;
  return sign | ((e + 15) << 10) | (mantissa - 1024);
}

/** Whether binary32 holds `value` exactly (NaN excluded). */
function isExactFloat32(value: number): boolean {
  return !Number.isNaN(value) && Object.is(Math.fround(value), value);
}

/** binary32 bits of a value that binary32 holds exactly. */
export function float32Bits(value: number): number {
  f32[0] = value;
  return u32[0] as number;
}

/** The CBOR float width preferred serialization uses for `value`: 16, 32 or 64. */
export function shortestFloatWidth(value: number): 16 | 32 | 64 {
  if (Number.isNaN(value) || numberToHalfExact(value) !== undefined) return 16;
  return isExactFloat32(value) ? 32 : 64;
}
