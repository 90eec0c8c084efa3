// Times uPlot, Chart.js and ECharts on a 100k-point line in headless Chromium (playwright-core):
// first draw, then live appends drawn one frame at a time. Also each library's share of a
// minified bundle. Usage: node bench/run.mjs [--chromium /usr/bin/chromium] [--repeat 5]
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : d; };
const exe = arg("--chromium", process.env.CHROMIUM || "/usr/bin/chromium");
const repeat = Number(arg("--repeat", "5"));
const points = Number(arg("--points", "100000"));

async function size(contents) {
  const r = await esbuild.build({ stdin: { contents, resolveDir: here, loader: "js" }, bundle: true, minify: true,
    write: false, loader: { ".css": "empty" }, format: "esm", logLevel: "silent" });
  return r.outputFiles[0].contents.length;
}

const out = mkdtempSync(join(tmpdir(), "chart_bench_"));
try {
  await esbuild.build({ entryPoints: [join(here, "chart_bench.js")], bundle: true, minify: true, outdir: out,
    format: "iife", logLevel: "warning" });
  writeFileSync(join(out, "index.html"),
    '<!doctype html><html><head><link rel="stylesheet" href="chart_bench.css"></head><body><script src="chart_bench.js"></script></body></html>');
  const sizes = {
    uplot: await size('import u from "uplot"; window.x = u;'),
    chartjs: await size('import {Chart, LineController, LineElement, PointElement, LinearScale, Decimation} from "chart.js"; Chart.register(LineController, LineElement, PointElement, LinearScale, Decimation); window.x = Chart;'),
    echarts: await size('import * as e from "echarts"; window.x = e;'),
  };
  const browser = await chromium.launch({ executablePath: exe, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1000, height: 400 } });
  await page.goto("file://" + join(out, "index.html"));
  const rows = [];
  for (const lib of ["uplot", "chartjs", "echarts"]) {
    const runs = [];
    for (let r = 0; r < repeat; r++) runs.push(await page.evaluate(([l, n]) => window.runBench(l, n), [lib, points]));
    const med = (k) => runs.map((x) => x[k]).sort((a, b) => a - b)[runs.length >> 1];
    rows.push({ lib, first_ms: med("first_ms"), append_median_ms: med("append_median_ms"), append_max_ms: med("append_max_ms"),
      bundle_kb: sizes[lib] / 1024 });
  }
  await browser.close();
  console.log(`Charting libraries, ${points} points, headless ${exe} (median of ${repeat} runs)`);
  console.log("library   first draw   append (median)   append (worst)   minified");
  for (const r of rows)
    console.log(`${r.lib.padEnd(9)} ${r.first_ms.toFixed(1).padStart(8)} ms ${r.append_median_ms.toFixed(1).padStart(12)} ms ${r.append_max_ms.toFixed(1).padStart(13)} ms ${r.bundle_kb.toFixed(0).padStart(8)} KiB`);
  console.log(JSON.stringify(rows));
} finally {
  rmSync(out, { recursive: true, force: true });
}
