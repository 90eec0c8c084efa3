// The README's picture of the dashboard (docs/img/dashboard.png): the paper's linear task
// trained with shallow, BP and FA, three seeds each, grouped into mean ± SD bands, through a
// real alignd and alignd-dashboard, photographed in headless Chromium.
//   node tools/dashboard/screenshot.mjs --build build --out docs/img/dashboard.png
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : d; };
const build = resolve(arg("--build", "build"));
const out = resolve(arg("--out", "docs/img/dashboard.png"));
const root = resolve(new URL("../..", import.meta.url).pathname);
const { chromium } = createRequire(join(root, "dashboard/web/node_modules/noop.js"))("playwright-core");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const start = (cmd, args) => {
  const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "ignore"] });
  return { p, address: new Promise((res) => { let o = ""; p.stdout.on("data", (d) => { o += d; if (o.includes("\n")) res(o.split("\n")[0].trim().split(" ").pop()); }); }) };
};

const tmp = mkdtempSync(join(tmpdir(), "alignd_shot_"));
const alignd = start(join(build, "server/alignd"), ["--listen", "127.0.0.1:0", "--metrics_listen", "", "--data_dir", join(tmp, "data"), "--max_running", "9"]);
const server = await alignd.address;
const dash = start(join(build, "dashboard/alignd-dashboard"), ["--alignd", server, "--listen", "127.0.0.1:0"]);
const url = (await dash.address).replace(/\/$/, "");
const ctl = (...a) => execFileSync(join(build, "client/alignctl"), ["--server", server, ...a], { encoding: "utf8" }).trim();
let browser;
try {
  const train = ctl("-o", "name", "datasets", "generate", "--kind", "linear", "--examples", "2000", "--name", "linear-train");
  const test = ctl("-o", "name", "datasets", "generate", "--kind", "linear", "--split", "test", "--examples", "1000", "--name", "linear-test");
  const ids = [];
  for (const rule of ["shallow", "bp", "fa"]) for (const seed of [1, 2, 3]) {
    ids.push(ctl("-o", "name", "sessions", "create", "--dataset", train, "--eval-dataset", test, "--name", `linear ${rule} seed=${seed}`,
      "--sizes", "30,20,10", "--hidden-activation", "linear", "--output-activation", "linear", "--no-bias", "--init", "uniform",
      "--init-scale", "0.01", "--rule", rule, "--feedback-scale", "0.5", "--lr", "0.002", "--batch", "1", "--epochs", "4",
      "--seed", String(seed), "--metrics-every", "20", "--eval-every", "200").replace("sessions/", ""));
  }
  // One more, still running when the picture is taken: the list shows live progress.
  ctl("sessions", "create", "--dataset", train, "--eval-dataset", test, "--name", "linear fa long", "--sizes", "30,20,10",
    "--hidden-activation", "linear", "--output-activation", "linear", "--no-bias", "--init", "uniform", "--init-scale", "0.01",
    "--rule", "fa", "--feedback-scale", "0.5", "--lr", "0.002", "--batch", "1", "--epochs", "100000", "--metrics-every", "1000");
  for (;;) {
    const done = ids.every((id) => JSON.parse(ctl("-o", "json", "sessions", "get", id)).state === "SESSION_STATE_SUCCEEDED");
    if (done) break;
    await sleep(300);
  }
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1280 }, deviceScaleFactor: 1 });
  await page.goto(`${url}/#s=${ids.join(",")}&group=1&log=loss,eval`);
  await page.waitForFunction(() => (window.aligndDashboard?.chartPoints().angle1 ?? 0) > 0);
  await sleep(3500);  // two polls: steps/s and ETA for the running one
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser?.close();
  for (const c of [dash, alignd]) {
    if (c.p.exitCode === null) await new Promise((r) => { c.p.once("exit", r); c.p.kill("SIGTERM"); });
  }
  rmSync(tmp, { recursive: true, force: true });
}
