/**
 * A layered layout of the abstraction graph: each concept on the row of its `level` when it has
 * one, else of its is_a depth (0 for a concept that is a kind of nothing, 1 + the deepest of its
 * is_a targets otherwise), so that the abstract concepts sit on top.
 */
import type { Concept, Edge } from "../../src/index.js";

export interface Layout {
  /** Row and column of each concept, by id. */
  readonly position: ReadonlyMap<string, { readonly row: number; readonly column: number }>;
  /** Concepts per row, top row first. */
  readonly rows: readonly (readonly string[])[];
}

export function layeredLayout(concepts: readonly Concept[], edges: readonly Edge[]): Layout {
  const depth = isaDepths(concepts, edges);
  const rowOf = (c: Concept): number => c.level ?? depth.get(c.id) ?? 0;
  const byRow = new Map<number, string[]>();
  for (const c of concepts) {
    const row = byRow.get(rowOf(c));
    if (row === undefined) byRow.set(rowOf(c), [c.id]);
    else row.push(c.id);
  }
  const dense = [...byRow].sort(([a], [b]) => a - b).map(([, ids]) => ids.sort());
  const position = new Map<string, { row: number; column: number }>();
  dense.forEach((ids, row) => ids.forEach((id, column) => position.set(id, { row, column })));
  return { position, rows: dense };
}

/** is_a depth by concept id, in topological order (the is_a edges form a DAG, format §3.5). */
function isaDepths(concepts: readonly Concept[], edges: readonly Edge[]): Map<string, number> {
  const depth = new Map(concepts.map((c) => [c.id, 0]));
  const pending = new Map(concepts.map((c) => [c.id, 0]));
  const sourcesOf = new Map<string, string[]>();
  for (const e of edges) {
    if (e.relation !== "is_a") continue;
    pending.set(e.source, (pending.get(e.source) ?? 0) + 1);
    const sources = sourcesOf.get(e.target);
    if (sources === undefined) sourcesOf.set(e.target, [e.source]);
    else sources.push(e.source);
  }
  const ready = [...pending].filter(([, n]) => n === 0).map(([id]) => id);
  for (let id = ready.pop(); id !== undefined; id = ready.pop()) {
    for (const source of sourcesOf.get(id) ?? []) {
      depth.set(source, Math.max(depth.get(source) ?? 0, (depth.get(id) ?? 0) + 1));
      const left = (pending.get(source) ?? 1) - 1;
      pending.set(source, left);
      if (left === 0) ready.push(source);
    }
  }
  return depth;
}
