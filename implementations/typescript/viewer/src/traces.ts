/**
 * Reasoning traces step by step: the problem, the teacher's answer, and at each step the concept
 * nearest to the teacher's state, highlighted in the projection and the graph; the states (when
 * the trace carries them) drawn as a path through the same projection.
 */
import type { Packet, Trace } from "../../src/index.js";
import type { ConceptView } from "./concepts.js";
import { h, mount, s } from "./dom.js";

export function renderTraces(packet: Packet, view: ConceptView): void {
  const traces = packet.body.traces;
  if (traces.length === 0) {
    mount("traces-panel", h("p", {}, "This packet carries no reasoning traces."));
    return;
  }
  const select = h(
    "select",
    { "data-testid": "trace-select" },
    ...traces.map((t, i) => h("option", { value: i }, `${t.id}: [${t.input.join(", ")}] → ${t.answer_label ?? t.answer}`)),
  );
  const previous = h("button", { type: "button", "data-testid": "step-previous" }, "◀ previous step");
  const next = h("button", { type: "button", "data-testid": "step-next" }, "next step ▶");
  const counter = h("span", { "data-testid": "step-counter" });
  const steps = h("ol", { class: "steps", "data-testid": "steps" });
  let trace = traces[0] as Trace;
  let step = 0;

  const show = (): void => {
    counter.textContent = `step ${step + 1} of ${trace.steps.length}`;
    previous.disabled = step === 0;
    next.disabled = step === trace.steps.length - 1;
    steps.replaceChildren(
      ...trace.steps.map((st, i) =>
        h(
          "li",
          { class: i === step ? "current" : undefined, "data-concept": st.concept },
          h("code", {}, st.concept),
          st.similarity !== undefined && ` similarity ${st.similarity.toFixed(3)}`,
          st.position !== undefined && ` at input position ${st.position}`,
        ),
      ),
    );
    const current = trace.steps[step]?.concept;
    for (const node of document.querySelectorAll<SVGElement>("[data-concept]")) {
      node.classList.toggle("highlight", node.dataset["concept"] === current && node.tagName.toLowerCase() === "g");
    }
    drawPath(packet, trace, step, view);
  };
  select.addEventListener("change", () => {
    trace = traces[Number(select.value)] as Trace;
    step = 0;
    show();
  });
  previous.addEventListener("click", () => {
    step = Math.max(0, step - 1);
    show();
  });
  next.addEventListener("click", () => {
    step = Math.min(trace.steps.length - 1, step + 1);
    show();
  });
  mount(
    "traces-panel",
    h("p", {}, select, " ", previous, " ", counter, " ", next),
    steps,
    h(
      "p",
      { class: "note" },
      "The path in the concept plot joins the teacher's states (or, without states, the step concepts) up to the current step.",
    ),
  );
  show();
}

/** The trace's path up to `step` in the concept projection. */
function drawPath(packet: Packet, trace: Trace, step: number, view: ConceptView): void {
  const states = trace.states === undefined ? undefined : packet.tensor(trace.states).toFloat32();
  const d = packet.body.teacher.latent_dim;
  const embeddingOf = new Map(packet.body.concepts.map((c) => [c.id, c.embedding]));
  const points = trace.steps.slice(0, step + 1).map((st, i) => {
    const vector =
      states !== undefined ? states.subarray(i * d, (i + 1) * d) : packet.tensor(embeddingOf.get(st.concept) as string).toFloat32();
    return view.frame(view.projection.project(vector));
  });
  const group = document.getElementById("trace-path");
  if (group === null) return;
  const last = points[points.length - 1] as [number, number];
  group.replaceChildren(
    s("polyline", { points: points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), class: "path" }),
    ...points.map(([x, y], i) => s("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: i === points.length - 1 ? 5 : 3, class: "state" })),
    s("text", { x: (last[0] + 8).toFixed(1), y: (last[1] - 8).toFixed(1), class: "state-label" }, `step ${step + 1}`),
  );
}
