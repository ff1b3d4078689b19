// The viewer's computations that need no browser: the PCA projection and the graph layout.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Concept, Edge } from "../src/types.js";
import { layeredLayout } from "../viewer/src/layout.js";
import { principalProjection } from "../viewer/src/projection.js";

test("the projection finds the principal axes: variance along them, in order", () => {
  // Points spread 10 along (1, 1, 0)/√2, 2 along (0, 0, 1), nothing along (1, −1, 0)/√2.
  const points: number[][] = [];
  for (const a of [-10, -5, 0, 5, 10]) for (const b of [-2, 2]) points.push([a / Math.SQRT2 + 3, a / Math.SQRT2 + 3, b - 1]);
  const { points: projected, explained, project } = principalProjection(points);
  projected.forEach(([x, y], i) => {
    const [px, , pz] = points[i] as number[];
    assert.ok(Math.abs(Math.abs(x) - Math.abs(((px as number) - 3) * Math.SQRT2)) < 1e-9, `x of point ${i}`);
    assert.ok(Math.abs(Math.abs(y) - Math.abs((pz as number) + 1)) < 1e-9, `y of point ${i}`);
  });
  assert.ok(Math.abs(explained[0] + explained[1] - 1) < 1e-12, "two axes hold all the variance");
  assert.ok(explained[0] > explained[1]);
  assert.deepEqual(
    project([3, 3, -1]).map((v) => Math.round(v * 1e9) / 1e9 + 0),
    [0, 0],
    "the mean projects to the origin",
  );
});

test("the projection of degenerate inputs: no points, one point, one dimension", () => {
  assert.deepEqual(principalProjection([]).points, []);
  assert.deepEqual(principalProjection([[1, 2, 3]]).points, [[0, 0]]);
  assert.deepEqual(
    principalProjection([[1], [3]]).points.map(([x, y]) => [Math.abs(x), y]),
    [
      [1, 0],
      [1, 0],
    ],
  );
});

const concept = (id: string, level?: number): Concept => ({
  id,
  label: id,
  kind: "symbol",
  embedding: `e/${id}`,
  ...(level === undefined ? {} : { level }),
});
const isA = (source: string, target: string): Edge => ({ source, target, relation: "is_a", weight: 1 });

test("the layout puts concepts on rows of abstraction: level, else is_a depth", () => {
  const layout = layeredLayout(
    [concept("thing"), concept("number"), concept("even"), concept("two"), concept("loose")],
    [
      isA("number", "thing"),
      isA("even", "number"),
      isA("two", "even"),
      isA("two", "number"),
      { source: "two", target: "loose", relation: "similar_to", weight: 0.5 },
    ],
  );
  assert.deepEqual(layout.rows, [["loose", "thing"], ["number"], ["even"], ["two"]]);
  const levelled = layeredLayout([concept("a", 5), concept("b", 0), concept("c", 5)], []);
  assert.deepEqual(levelled.rows, [["b"], ["a", "c"]]);
  assert.deepEqual(levelled.position.get("c"), { row: 1, column: 1 });
});
