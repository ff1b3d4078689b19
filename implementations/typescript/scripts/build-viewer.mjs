// Bundles the packet viewer (viewer/src/main.ts and the package it uses) into viewer/dist/.
import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
await build({
  entryPoints: [join(root, "viewer", "src", "main.ts")],
  outfile: join(root, "viewer", "dist", "viewer.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  sourcemap: true,
  minify: true,
  logLevel: "warning",
});
