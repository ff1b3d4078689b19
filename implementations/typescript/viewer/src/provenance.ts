/** Header, teacher, provenance (with the lineage of parent packets), safety policy, tensors. */
import type { Packet } from "../../src/index.js";
import { h, mount } from "./dom.js";

const row = (name: string, ...value: (Node | string)[]): HTMLTableRowElement => h("tr", {}, h("th", {}, name), h("td", {}, ...value));
const json = (value: unknown): HTMLElement => h("code", {}, JSON.stringify(value));

export function renderProvenance(packet: Packet): void {
  const { header, teacher, provenance: p, safety, tensors, extensions } = packet.body;
  const bytes = tensors.reduce((n, t) => n + t.length, 0);
  const dtypes = [...new Set(tensors.map((t) => t.dtype))].join(", ");
  mount(
    "provenance-panel",
    h(
      "table",
      { class: "facts", "data-testid": "provenance" },
      row("packet", h("code", {}, packet.id), ` (${packet.encoding} form, format ${header.version}, created ${header.created})`),
      header.title !== undefined && row("title", header.title),
      row(
        "teacher",
        `${teacher.name} (${teacher.architecture}), latent dimension ${teacher.latent_dim}, read at ${teacher.layer}`,
        teacher.n_parameters !== undefined ? `, ${teacher.n_parameters} parameters` : "",
      ),
      row("teacher weights", h("code", {}, teacher.model_digest)),
      row("generator", `${p.generator.name} ${p.generator.version}`),
      row("task", `${p.task.name} `, json(p.task.options)),
      row("data cost", `${p.task_inputs_used} task inputs, ${p.concept_probes_used} concept probes`),
      row(
        "parents",
        p.parents.length === 0
          ? "none: an original packet"
          : h("ol", { class: "lineage" }, ...p.parents.map((id) => h("li", {}, h("code", {}, id)))),
      ),
      row("parameters", json(p.parameters)),
      p.seed !== undefined && row("seed", String(p.seed)),
      row(
        "safety",
        `require_signature ${safety.require_signature}, min_signers ${safety.min_signers}`,
        safety.max_parameter_drift !== undefined ? `, max_parameter_drift ${safety.max_parameter_drift}` : "",
        safety.max_output_divergence !== undefined ? `, max_output_divergence ${safety.max_output_divergence}` : "",
        safety.max_capability_drop !== undefined ? `, max_capability_drop ${safety.max_capability_drop}` : "",
        safety.protected_concepts !== undefined ? `, protected: ${safety.protected_concepts.join(", ")}` : "",
      ),
      row("tensors", `${tensors.length} (${dtypes || "none"}), ${bytes} bytes`),
      row(
        "extensions",
        extensions === undefined
          ? "none"
          : Object.entries(extensions)
              .map(([name, e]) => `${name}${e.critical ? " (critical)" : ""}`)
              .join(", "),
      ),
    ),
  );
}
