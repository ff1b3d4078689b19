/**
 * The packet viewer: read a packet dropped on the page, verify it against a pasted trust store,
 * and show what it carries. Everything runs in the page; nothing is sent anywhere.
 */
import { M2ktError, TrustStore, verifyPacket, type TrustSource, type Verification } from "../../src/index.js";
import { renderConcepts } from "./concepts.js";
import { h, mount } from "./dom.js";
import { renderGraph } from "./graph.js";
import { renderProvenance } from "./provenance.js";
import { renderTraces } from "./traces.js";
import { renderVerdict } from "./verdict.js";

const byId = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

let packetBytes: Uint8Array | undefined;
let packetName = "";

async function fileBytes(file: File): Promise<Uint8Array> {
  return new Uint8Array(await file.arrayBuffer());
}

async function trustSources(): Promise<TrustSource[]> {
  const pasted = byId<HTMLTextAreaElement>("trust").value;
  const sources: TrustSource[] = pasted.trim() === "" ? [] : [{ name: "pasted trust store", bytes: new TextEncoder().encode(pasted) }];
  for (const file of byId<HTMLInputElement>("trust-files").files ?? []) {
    sources.push({ name: file.name.replace(/\.[^.]*$/, ""), bytes: await fileBytes(file) });
  }
  return sources;
}

function showProblem(title: string, error: M2ktError): void {
  const target = mount(
    "verdict",
    h("p", { class: "banner", "data-testid": "verdict-text" }, title),
    h(
      "ol",
      { class: "errors", "data-testid": "errors" },
      h("li", { "data-code": error.code }, h("code", {}, error.code), ": ", error.message),
    ),
  );
  target.hidden = false;
  target.dataset["valid"] = "false";
  target.className = "invalid";
}

async function verifyAndShow(): Promise<void> {
  if (packetBytes === undefined) return;
  document.body.dataset["state"] = "working";
  let trust: TrustStore;
  try {
    trust = TrustStore.fromSources(await trustSources());
  } catch (error) {
    if (!(error instanceof M2ktError)) throw error;
    showProblem("TRUST STORE REFUSED", error);
    document.body.dataset["state"] = "done";
    return;
  }
  const minSigners = Math.max(1, Number(byId<HTMLInputElement>("min-signers").value) || 1);
  const result: Verification = verifyPacket(packetBytes, { trust, minSigners });
  byId("packet-name").textContent = packetName;
  renderVerdict(result);
  const content = byId("content");
  content.hidden = result.packet === undefined;
  if (result.packet !== undefined) {
    const view = renderConcepts(result.packet);
    renderGraph(result.packet.body);
    renderTraces(result.packet, view);
    renderProvenance(result.packet);
  }
  document.body.dataset["state"] = "done";
}

async function load(file: File): Promise<void> {
  packetBytes = await fileBytes(file);
  packetName = file.name;
  await verifyAndShow();
}

byId<HTMLInputElement>("packet-file").addEventListener("change", (event) => {
  const file = (event.target as HTMLInputElement).files?.[0];
  if (file !== undefined) void load(file);
});
const drop = byId("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer?.files[0];
  if (file !== undefined) void load(file);
});
byId("verify").addEventListener("click", () => void verifyAndShow());
document.body.dataset["state"] = "ready";
