/** The concepts as points of the teacher's latent space, projected to 2-D (PCA). */
import type { Packet } from "../../src/index.js";
import { coloursFor, h, mount, s } from "./dom.js";
import { principalProjection, type Projection } from "./projection.js";

const WIDTH = 640;
const HEIGHT = 440;
const MARGIN = 36;

/** Maps projected coordinates into the SVG box. */
export type Frame = (point: readonly [number, number]) => [number, number];

export interface ConceptView {
  readonly projection: Projection;
  readonly frame: Frame;
}

/** Most concepts drawn; a larger packet shows its first ones (the projection uses them all). */
const MAX_DRAWN = 2000;

export function renderConcepts(packet: Packet): ConceptView {
  const all = packet.body.concepts;
  const projection = principalProjection(all.map((c) => packet.tensor(c.embedding).toFloat32()));
  const concepts = all.slice(0, MAX_DRAWN);
  // The frame holds the concepts and every trace's states, so that trace paths stay in view.
  const d = packet.body.teacher.latent_dim;
  const states = packet.body.traces.flatMap((t) => {
    if (t.states === undefined) return [];
    const values = packet.tensor(t.states).toFloat32();
    return t.steps.map((_, i) => projection.project(values.subarray(i * d, (i + 1) * d)));
  });
  const framed = [...projection.points.slice(0, MAX_DRAWN), ...states];
  const xs = framed.map((p) => p[0]);
  const ys = framed.map((p) => p[1]);
  const span = (values: number[]): [number, number] => {
    const lo = values.reduce((a, b) => Math.min(a, b), 0);
    const hi = values.reduce((a, b) => Math.max(a, b), 0);
    return hi - lo > 1e-12 ? [lo, hi] : [lo - 1, hi + 1];
  };
  const [x0, x1] = span(xs);
  const [y0, y1] = span(ys);
  const frame: Frame = ([x, y]) => [
    MARGIN + ((x - x0) / (x1 - x0)) * (WIDTH - 2 * MARGIN),
    HEIGHT - MARGIN - ((y - y0) / (y1 - y0)) * (HEIGHT - 2 * MARGIN),
  ];
  const colour = coloursFor(concepts.map((c) => c.kind));
  const [e1, e2] = projection.explained.map((e) => `${(100 * e).toFixed(1)}%`);
  mount(
    "concepts-plot",
    s(
      "svg",
      { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, "data-testid": "projection" },
      s("text", { x: WIDTH / 2, y: HEIGHT - 6, class: "axis" }, `principal component 1 (${e1} of the variance)`),
      s("text", { x: 12, y: HEIGHT / 2, class: "axis", transform: `rotate(-90 12 ${HEIGHT / 2})` }, `component 2 (${e2})`),
      s("g", { id: "trace-path" }),
      ...concepts.map((c, i) => {
        const [x, y] = frame(projection.points[i] as [number, number]);
        return s(
          "g",
          { class: "concept", "data-concept": c.id },
          s(
            "title",
            {},
            `${c.id} (${c.kind})${c.manifold ? `, manifold of ${c.manifold.support} samples, spread ${c.manifold.spread.toPrecision(3)}` : ""}`,
          ),
          s("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 6, fill: colour.get(c.kind) }),
          s("text", { x: (x + 8).toFixed(1), y: (y + 4).toFixed(1) }, c.label),
        );
      }),
    ),
    h(
      "p",
      { class: "legend" },
      ...[...colour].map(([kind, c]) => h("span", {}, h("i", { style: `background:${c}` }), ` ${kind} `)),
      ` — ${all.length} concepts${all.length > MAX_DRAWN ? ` (the first ${MAX_DRAWN} drawn)` : ""}, d = ${packet.body.teacher.latent_dim}`,
    ),
  );
  return { projection, frame };
}
