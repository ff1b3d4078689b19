/**
 * Tensors (spec/packet-1.1.md §5): element types, the data section's layout, the checks of
 * §10 step 7, and typed-array views of the bytes without copying where alignment allows.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { toHex } from "./bytes.js";
import { halfToNumber } from "./cbor/float.js";
import { M2ktError } from "./errors.js";
import type { Dtype, TensorDescriptor } from "./types.js";

/** Bytes per element of each dtype (§5.1). */
export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = { f32: 4, f16: 2, bf16: 2, i8: 1 };

/** `n` rounded up to a multiple of 64 (§1). */
export const aligned = (n: number): number => Math.ceil(n / 64) * 64;

/** Length of the data section the descriptors lay out (§4.3). */
export function dataSectionLength(descriptors: readonly TensorDescriptor[]): number {
  const last = descriptors[descriptors.length - 1];
  return last === undefined ? 0 : aligned(last.offset + last.length);
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A tensor of a packet: its descriptor and a view of its bytes in the data section. */
export class Tensor {
  constructor(
    readonly descriptor: TensorDescriptor,
    /** The tensor's little-endian bytes, a view into the packet's data section. */
    readonly bytes: Uint8Array,
  ) {}

  get name(): string {
    return this.descriptor.name;
  }
  get dtype(): Dtype {
    return this.descriptor.dtype;
  }
  get shape(): readonly number[] {
    return this.descriptor.shape;
  }
  /** Number of elements: the product of the shape. */
  get size(): number {
    return this.bytes.length / DTYPE_SIZE[this.dtype];
  }

  /**
   * The stored elements as a typed array: `Float32Array` (f32), `Uint16Array` of binary16 or
   * bfloat16 bits (f16, bf16) or `Int8Array` (i8). A view of the packet's bytes, not a copy,
   * when the bytes are aligned for the element type and the host is little-endian.
   */
  elements(): Float32Array | Uint16Array | Int8Array {
    const { buffer, byteOffset } = this.bytes;
    const n = this.size;
    if (this.dtype === "i8") return new Int8Array(buffer, byteOffset, n);
    const width = DTYPE_SIZE[this.dtype];
    const inPlace = LITTLE_ENDIAN_HOST && byteOffset % width === 0;
    const view = new DataView(buffer, byteOffset, this.bytes.length);
    if (this.dtype === "f32") {
      if (inPlace) return new Float32Array(buffer, byteOffset, n);
      return Float32Array.from({ length: n }, (_, i) => view.getFloat32(4 * i, true));
    }
    if (inPlace) return new Uint16Array(buffer, byteOffset, n);
    return Uint16Array.from({ length: n }, (_, i) => view.getUint16(2 * i, true));
  }

  /**
   * The elements widened to binary32 in row-major order (§5.1): f16 and bf16 exactly, i8 as
   * `float32(q) × float32(scale)`. For f32 this is {@link elements}, a view when aligned.
   */
  toFloat32(): Float32Array {
    const raw = this.elements();
    if (raw instanceof Float32Array) return raw;
    if (raw instanceof Int8Array) {
      const scale = Math.fround(this.descriptor.scale as number);
      return Float32Array.from(raw, (q) => q * scale); // the product of two binary32 values is exact in binary64
    }
    if (this.dtype === "bf16") return new Float32Array(Uint32Array.from(raw, (b) => b << 16).buffer);
    return Float32Array.from(raw, halfToNumber);
  }
}

/**
 * §10 step 7: the data section's length and zero padding, each tensor's SHA-256, every element
 * finite and no i8 element −128.
 *
 * @param path JSON Pointer prefix of the descriptors (`/body/tensors`).
 * @throws M2ktError `TENSOR_LAYOUT`, `TENSOR_DIGEST`, `NONFINITE_VALUE` or `TENSOR_DTYPE`.
 */
export function checkTensorData(descriptors: readonly TensorDescriptor[], data: Uint8Array, path: string): Tensor[] {
  const expected = dataSectionLength(descriptors);
  if (data.length !== expected) {
    throw new M2ktError("TENSOR_LAYOUT", `data section of ${data.length} bytes; the descriptors lay out ${expected}`, "/data");
  }
  let end = 0;
  const tensors = descriptors.map((d) => {
    checkZeros(data, end, d.offset);
    end = d.offset + d.length;
    return new Tensor(d, data.subarray(d.offset, end));
  });
  checkZeros(data, end, data.length);
  tensors.forEach((t, i) => {
    if (toHex(sha256(t.bytes)) !== t.descriptor.sha256) {
      throw new M2ktError("TENSOR_DIGEST", `tensor ${JSON.stringify(t.name)}: bytes do not match its sha256`, `${path}/${i}/sha256`);
    }
  });
  tensors.forEach((t, i) => checkElements(t, `${path}/${i}`));
  return tensors;
}

function checkZeros(data: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    if (data[i] !== 0) throw new M2ktError("TENSOR_LAYOUT", `non-zero padding byte at data offset ${i}`, "/data");
  }
}

/** Exponent bits of each floating dtype; all ones is NaN or infinite (§5.1). */
const EXPONENT_MASK: Readonly<Record<"f16" | "bf16", number>> = { f16: 0x7c00, bf16: 0x7f80 };

function checkElements(tensor: Tensor, path: string): void {
  const raw = tensor.elements();
  const bad = (index: number, what: string): never => {
    const code = tensor.dtype === "i8" ? "TENSOR_DTYPE" : "NONFINITE_VALUE";
    throw new M2ktError(code, `tensor ${JSON.stringify(tensor.name)}: element ${index} is ${what}`, path);
  };
  if (raw instanceof Int8Array) {
    const index = raw.indexOf(-128);
    if (index >= 0) bad(index, "-128, the reserved i8 value");
  } else if (raw instanceof Float32Array) {
    raw.forEach((x, i) => Number.isFinite(x) || bad(i, String(x)));
  } else {
    const mask = EXPONENT_MASK[tensor.dtype as "f16" | "bf16"];
    raw.forEach((bits, i) => (bits & mask) !== mask || bad(i, "NaN or infinite"));
  }
}
