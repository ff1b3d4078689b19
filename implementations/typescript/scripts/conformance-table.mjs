// Runs the conformance harness against the implementations of this repository, every profile
// each declares, and writes the result table into docs/typescript.md between its markers.
//
//   . .venv/bin/activate && node implementations/typescript/scripts/conformance-table.mjs
//
// Needs the `m2kt` command on PATH (or $M2KT) and the TypeScript package built.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const m2kt = process.env.M2KT ?? "m2kt";
const IMPLEMENTATIONS = [
  { label: "reference (`m2kt_ref`)", impl: "m2kt conformance adapter" },
  { label: "independent Python", impl: "python conformance/independent/m2kt_indep.py" },
  { label: "TypeScript (this package)", impl: "node implementations/typescript/dist/adapter.js" },
];
const PROFILES = ["reader", "verifier", "producer"];

const manifest = JSON.parse(readFileSync(join(repo, "conformance", "manifest.json"), "utf8"));
const work = mkdtempSync(join(tmpdir(), "m2kt-table-"));
const rows = [];
try {
  for (const { label, impl } of IMPLEMENTATIONS) {
    for (const profile of PROFILES) {
      const out = join(work, "report.json");
      try {
        execFileSync(m2kt, ["conformance", "run", "--impl", impl, "--profile", profile, "--report", "json", "-o", out], {
          cwd: repo,
          stdio: "pipe",
        });
      } catch (error) {
        if (error.status !== 1) throw error; // 1: some vector failed, or the profile is not offered
      }
      let report;
      try {
        report = JSON.parse(readFileSync(out, "utf8"));
      } catch {
        rows.push(`| ${label} | ${profile} | | | | | | | not offered |`);
        continue;
      } finally {
        rmSync(out, { force: true });
      }
      const c = report.counts;
      const vectors = manifest.vectors.filter((v) => v.profiles.includes(profile)).length;
      const verdict = c.pass === vectors ? "**conforms**" : "does not conform";
      const language = report.implementation.language ?? "";
      rows.push(`| ${label} | ${profile} | ${language} | ${vectors} | ${c.pass} | ${c.fail} | ${c.skipped} | ${c.errored} | ${verdict} |`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const table = [
  `Suite ${manifest.suite_version}, protocol ${manifest.protocol}, ${manifest.vectors.length} vectors (\`conformance/manifest.json\`).`,
  "",
  "| Implementation | Profile | Language | Vectors | Pass | Fail | Skipped | Errored | Result |",
  "|---|---|---|---|---|---|---|---|---|",
  ...rows,
].join("\n");
const docs = join(repo, "docs", "typescript.md");
const text = readFileSync(docs, "utf8");
const begin = "<!-- BEGIN GENERATED: conformance -->";
const end = "<!-- END GENERATED: conformance -->";
writeFileSync(docs, text.slice(0, text.indexOf(begin) + begin.length) + "\n" + table + "\n" + text.slice(text.indexOf(end)));
console.log(table);
