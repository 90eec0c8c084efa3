// How long the dashboard takes to open a session, in headless Chromium against a real alignd
// and alignd-dashboard on loopback: a session with 1M metric events beside one with 1k
// (the reference: opening should not depend on the log's length; the target is < 2 s).
// Timed from navigation to the loss chart drawn with the downsampled history; also the
// history request alone. Usage: node tests/bench/dashboard_open.mjs --build build
import { resolve } from "node:path";
import { chromium, sleep, startStack } from "../../tools/dashboard/stack.mjs";

const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : d; };
const build = resolve(arg("--build", "build"));
const events = Number(arg("--events", "1000000"));
const { url, ctl, stop } = await startStack(build);
let browser;
try {
  const ds = ctl("-o", "name", "datasets", "generate", "--kind", "linear", "--examples", "1000");
  const make = (id, n) => ctl("-o", "name", "sessions", "create", "--dataset", ds, "--sizes", "30,20,10", "--rule", "fa",
    "--batch", "1", "--max-steps", String(n), "--metrics-every", "1", "--eval-every", String(Math.max(1, n / 100)), "--id", id);
  const t0 = Date.now();
  make("small", 1000);
  make("large", events);
  for (;;) {
    const s = JSON.parse(ctl("-o", "json", "sessions", "get", "large"));
    if (s.state === "SESSION_STATE_SUCCEEDED") { process.stdout.write(`trained: ${s.last_seq} events in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`); break; }
    await sleep(500);
  }
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  const rows = [];
  for (const id of ["small", "large", "small", "large", "small", "large"]) {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const h0 = Date.now();
    const r = await fetch(`${url}/api/sessions/${id}/metrics?max_points=2000`);
    const body = await r.json();
    const history = Date.now() - h0;
    const t = Date.now();
    await page.goto(`${url}/#s=${id}`);
    await page.waitForFunction(() => (window.aligndDashboard?.chartPoints().loss ?? 0) > 0, null, { timeout: 60000, polling: 10 });
    rows.push({ id, open: Date.now() - t, history, points: body.events.length });
    await page.close();
  }
  const med = (id, k) => rows.filter((r) => r.id === id).map((r) => r[k]).sort((a, b) => a - b)[1];
  console.log(`Opening a session in the dashboard (headless Chromium, median of 3)`);
  console.log(`session                         history request   page open to chart drawn   points sent`);
  for (const [id, label] of [["small", "1,000 events (reference)"], ["large", `${events.toLocaleString("en")} events`]])
    console.log(`${label.padEnd(31)} ${String(med(id, "history")).padStart(10)} ms ${String(med(id, "open")).padStart(20)} ms ${String(rows.find((r) => r.id === id).points).padStart(13)}`);
} finally {
  await browser?.close();
  await stop();
}
