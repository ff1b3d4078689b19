/** The content summary of a valid packet (spec/conformance.md §3.2). */
import type { Packet } from "./packet.js";

export interface Summary {
  readonly format: string;
  readonly version: string;
  readonly teacher: string;
  readonly latent_dim: number;
  readonly counts: { concepts: number; edges: number; traces: number; anchors: number; tensors: number };
  /** Extension names, sorted by code point. */
  readonly extensions: string[];
  readonly signed: boolean;
  readonly tensors: { name: string; dtype: string; shape: number[] }[];
  /** Only when asked for: each tensor's elements widened to binary32, row-major. */
  readonly tensor_values?: Record<string, number[]>;
}

const byCodePoint = (a: string, b: string): number => {
  const [x, y] = [Array.from(a, (c) => c.codePointAt(0) as number), Array.from(b, (c) => c.codePointAt(0) as number)];
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  return x.length - y.length;
};

/** The summary the conformance protocol reports for `packet`, with tensor values when `values`. */
export function summarize(packet: Packet, values = false): Summary {
  const b = packet.body;
  const summary: Summary = {
    format: b.header.format,
    version: b.header.version,
    teacher: b.teacher.name,
    latent_dim: b.teacher.latent_dim,
    counts: {
      concepts: b.concepts.length,
      edges: b.graph.edges.length,
      traces: b.traces.length,
      anchors: b.anchors.length,
      tensors: b.tensors.length,
    },
    extensions: Object.keys(b.extensions ?? {}).sort(byCodePoint),
    signed: packet.signatures !== undefined,
    tensors: b.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] })),
  };
  if (!values) return summary;
  return { ...summary, tensor_values: Object.fromEntries(packet.tensors.map((t) => [t.name, Array.from(t.toFloat32())])) };
}
