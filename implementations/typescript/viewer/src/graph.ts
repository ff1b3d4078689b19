/** The abstraction graph, in rows of abstraction (see layout.ts), edges coloured by relation. */
import type { Body } from "../../src/index.js";
import { coloursFor, h, mount, s } from "./dom.js";
import { layeredLayout } from "./layout.js";

const COLUMN = 96;
const ROW = 90;

/** Most concepts drawn; the edges among them are drawn. */
const MAX_NODES = 400;

export function renderGraph(body: Body): void {
  const concepts = body.concepts.slice(0, MAX_NODES);
  const shown = new Set(concepts.map((c) => c.id));
  const edges = body.graph.edges.filter((e) => shown.has(e.source) && shown.has(e.target));
  const { position, rows } = layeredLayout(concepts, edges);
  const width = rows.reduce((n, r) => Math.max(n, r.length), 1) * COLUMN + 40;
  const height = rows.length * ROW + 30;
  const centre = (id: string): [number, number] => {
    const p = position.get(id) as { row: number; column: number };
    const offset = (width - (rows[p.row] as readonly string[]).length * COLUMN) / 2;
    return [offset + (p.column + 0.5) * COLUMN, 30 + p.row * ROW];
  };
  const colour = coloursFor(edges.map((e) => e.relation));
  const relations = [...colour.keys()];
  const labels = new Map(concepts.map((c) => [c.id, c.label]));
  mount(
    "graph-plot",
    s(
      "svg",
      { viewBox: `0 0 ${width} ${height}`, width, height, "data-testid": "graph" },
      s(
        "defs",
        {},
        ...relations.map((r) =>
          s(
            "marker",
            { id: `arrow-${r}`, viewBox: "0 0 10 10", refX: 16, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
            s("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: colour.get(r) as string }),
          ),
        ),
      ),
      ...edges.map((e) => {
        const [[x1, y1], [x2, y2]] = [centre(e.source), centre(e.target)];
        const bend = e.source === e.target ? 0 : 18 * Math.sign(x2 - x1 || 1);
        return s(
          "path",
          {
            class: "edge",
            "data-relation": e.relation,
            d: `M ${x1} ${y1} Q ${(x1 + x2) / 2 + bend} ${(y1 + y2) / 2 - bend} ${x2} ${y2}`,
            stroke: colour.get(e.relation),
            "stroke-opacity": (0.25 + 0.75 * e.weight).toFixed(2),
            "marker-end": `url(#arrow-${e.relation})`,
          },
          s("title", {}, `${e.source} ${e.relation} ${e.target} (weight ${e.weight})`),
        );
      }),
      ...concepts.map((c) => {
        const [x, y] = centre(c.id);
        return s(
          "g",
          { class: "node", "data-concept": c.id },
          s("circle", { cx: x, cy: y, r: 9 }),
          s("text", { x, y: y + 24 }, labels.get(c.id) ?? c.id),
        );
      }),
    ),
    h(
      "p",
      { class: "legend" },
      ...relations.map((r) =>
        h(
          "span",
          {},
          h("i", { style: `background:${colour.get(r) as string}` }),
          ` ${r} (${edges.filter((e) => e.relation === r).length}) `,
        ),
      ),
      body.concepts.length > MAX_NODES && ` — the first ${MAX_NODES} of ${body.concepts.length} concepts drawn`,
    ),
  );
}
