// Bundles the dashboard's front end: src/ -> OUTDIR/{index.html, app.js, app.css}, minified,
// with uPlot inside (nothing is fetched at run time). Usage: node build.mjs OUTDIR
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2] || join(here, "dist");
mkdirSync(outdir, { recursive: true });
await esbuild.build({
  entryPoints: { app: join(here, "src/app.js") },
  bundle: true, minify: true, sourcemap: "linked", target: ["chrome100", "firefox100", "safari15"],
  format: "iife", outdir, logLevel: "warning",
});
copyFileSync(join(here, "src/index.html"), join(outdir, "index.html"));
