// The README's picture of the dashboard (docs/img/dashboard.png): the paper's linear task
// trained with shallow, BP and FA, three seeds each, grouped into mean ± SD bands, through a
// real alignd and alignd-dashboard, photographed in headless Chromium.
//   node tools/dashboard/screenshot.mjs --build build --out docs/img/dashboard.png
import { resolve } from "node:path";
import { chromium, sleep, startStack } from "./stack.mjs";

const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : d; };
const build = resolve(arg("--build", "build"));
const out = resolve(arg("--out", "docs/img/dashboard.png"));
const { url, ctl, stop } = await startStack(build, ["--max_running", "9"]);
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
  await stop();
}
