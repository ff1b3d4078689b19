/**
 * Drives the packet viewer in a real headless Chromium (the system's, never a downloaded one) and
 * prints, as JSON, what the page shows for each scenario: the verification result, and what the
 * content panels drew. tests/test_typescript.py compares it with `m2kt verify --json`.
 *
 *   node build/test-browser/viewer-probe.js SPEC.json
 *
 * SPEC: {"packet": PATH, "scenarios": [{"name", "trust": PATH, "min_signers"?}], "screenshot"?: PATH}
 * Environment: CHROMIUM (default /usr/bin/chromium).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Page } from "playwright-core";

interface Scenario {
  readonly name: string;
  readonly trust: string;
  readonly min_signers?: number;
}

interface Spec {
  readonly packet: string;
  readonly scenarios: readonly Scenario[];
  readonly screenshot?: string;
}

const VIEWER = fileURLToPath(new URL("../../viewer/", import.meta.url));
const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html",
  ".css": "text/css",
  ".js": "text/javascript",
  ".map": "application/json",
};
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A static file server for viewer/ on the loopback interface. */
async function serveViewer(): Promise<Server> {
  const server = createServer((request, response) => {
    const path = normalize(decodeURIComponent(new URL(request.url ?? "/", "http://x").pathname)).replace(/^\/+/, "") || "index.html";
    try {
      if (path.startsWith("..")) throw new Error("outside the viewer");
      const body = readFileSync(join(VIEWER, path));
      response.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

/** What the page shows once a packet is loaded and verified. */
async function observe(page: Page): Promise<Record<string, unknown>> {
  return page.evaluate(() => {
    const all = (selector: string): Element[] => Array.from(document.querySelectorAll(selector));
    const verdict = document.getElementById("verdict") as HTMLElement;
    return {
      valid: verdict.dataset["valid"] === "true",
      verdict: document.querySelector("[data-testid=verdict-text]")?.firstChild?.textContent ?? "",
      packet_id: document.querySelector("[data-testid=packet-id]")?.textContent ?? null,
      counted: document.querySelector("[data-testid=counted]")?.textContent ?? null,
      errors: all("[data-testid=errors] li").map((li) => (li as HTMLElement).dataset["code"]),
      signers: all("table.signers tbody tr").map((tr) => {
        const d = (tr as HTMLElement).dataset;
        return { kid: d["kid"], trusted: d["trusted"] === "true", counted: d["counted"] === "true" };
      }),
      concepts_drawn: all("[data-testid=projection] g.concept").length,
      nodes_drawn: all("[data-testid=graph] g.node").length,
      edges_drawn: all("[data-testid=graph] path.edge").length,
      provenance: document.querySelector("[data-testid=provenance]")?.textContent ?? "",
    };
  });
}

/** Steps through the first trace; at each step the highlighted concept must be the step's. */
async function walkTrace(page: Page): Promise<string[]> {
  const counters: string[] = [];
  for (;;) {
    const state = await page.evaluate(() => {
      const current = document.querySelector("[data-testid=steps] li.current") as HTMLElement | null;
      const highlighted = Array.from(document.querySelectorAll("g.highlight")).map((g) => (g as SVGElement).dataset["concept"]);
      return {
        counter: document.querySelector("[data-testid=step-counter]")?.textContent ?? "",
        concept: current?.dataset["concept"],
        highlighted,
        pathPoints: document.querySelectorAll("#trace-path circle.state").length,
        last: (document.querySelector("[data-testid=step-next]") as HTMLButtonElement | null)?.disabled ?? true,
      };
    });
    if (state.highlighted.length === 0 || state.highlighted.some((c) => c !== state.concept)) {
      throw new Error(`step ${state.counter}: highlighted ${JSON.stringify(state.highlighted)}, the step's concept is ${state.concept}`);
    }
    if (state.pathPoints !== counters.length + 1) throw new Error(`step ${state.counter}: ${state.pathPoints} path points`);
    counters.push(state.counter);
    if (state.last) return counters;
    await page.click("[data-testid=step-next]");
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(readFileSync(process.argv[2] as string, "utf8")) as Spec;
  const server = await serveViewer();
  const profile = mkdtempSync(join(tmpdir(), "m2kt-viewer-profile-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env["CHROMIUM"] ?? "/usr/bin/chromium",
    headless: true,
    chromiumSandbox: false,
    args: FLAGS,
    viewport: { width: 1180, height: 900 },
  });
  const problems: string[] = [];
  const results: Record<string, unknown>[] = [];
  try {
    const page = await context.newPage();
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => message.type() === "error" && problems.push(`console: ${message.text()}`));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    for (const [i, scenario] of spec.scenarios.entries()) {
      await page.goto(url);
      await page.waitForSelector("body[data-state=ready]");
      await page.fill("#trust", readFileSync(scenario.trust, "utf8"));
      await page.fill("#min-signers", String(scenario.min_signers ?? 1));
      await page.setInputFiles("#packet-file", spec.packet);
      await page.waitForSelector("body[data-state=done]");
      const shown = await observe(page);
      const trace = shown["packet_id"] === null ? [] : await walkTrace(page);
      results.push({ name: scenario.name, ...shown, trace_steps: trace });
      if (i === 0 && spec.screenshot !== undefined) {
        await page.evaluate(() => window.scrollTo(0, 0));
        await page.screenshot({ path: spec.screenshot, fullPage: true });
      }
    }
  } finally {
    await context.close();
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify({ results, problems }, null, 1) + "\n");
}

await main();
