// The web dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core,
// against a real alignd and alignd-dashboard on 127.0.0.1. Run by ctest (dashboard_browser):
//   node --test tests/browser/dashboard.test.mjs
// with ALIGND_BINARY, ALIGND_DASHBOARD_BINARY, ALIGNCTL_BINARY, ALIGND_WEB_MODULES (the
// front end's node_modules, for playwright-core) and ALIGND_SCREENSHOT_DIR set.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set (ctest sets it)`);
  return process.env[k];
};
const require = createRequire(join(env("ALIGND_WEB_MODULES"), "noop.js"));
const { chromium } = require("playwright-core");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = env("ALIGND_SCREENSHOT_DIR");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, timeoutMs = 30000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// A child whose first stdout line ends with its address.
function start(cmd, args) {
  const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  p.stderr.on("data", (d) => { err += d; });
  const address = new Promise((resolve, reject) => {
    let out = "";
    p.stdout.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve(out.slice(0, nl).trim().split(" ").pop());
    });
    p.on("exit", (code) => reject(new Error(`${cmd} exited (${code}): ${err}`)));
  });
  return { p, address, stderr: () => err };
}

const stop = (child) => new Promise((resolve) => {
  if (child.p.exitCode !== null) return resolve();
  child.p.once("exit", resolve);
  child.p.kill("SIGTERM");
});

let tmp, port, alignd, dash, url, browser, page, dataset;
const consoleErrors = [];

function startAlignd() {
  alignd = start(env("ALIGND_BINARY"), ["--listen", `127.0.0.1:${port}`, "--metrics_listen", "",
    "--data_dir", join(tmp, "data"), "--heartbeat_ms", "100", "--checkpoint_every", "500"]);
  return alignd.address;
}

const ctl = (...args) => execFileSync(env("ALIGNCTL_BINARY"), ["--server", `127.0.0.1:${port}`, ...args], { encoding: "utf8" });
const inAlignd = (id) => JSON.parse(ctl("-o", "json", "sessions", "get", id));
const api = async (method, path, body) => {
  const r = await fetch(url + path, { method, body: body && JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
  return j;
};
const createViaApi = async (name, rule, steps, seed = 1) => (await api("POST", "/api/sessions", { session: {
  display_name: name, train_dataset: dataset,
  config: { network: { sizes: [30, 64, 64, 10] }, feedback: { rule }, batch_size: 1, max_steps: steps, metrics_every: 1000, seed } } })).name.split("/")[1];
const shot = (name) => page.screenshot({ path: join(SHOTS, `dashboard-${name}.png`), fullPage: true });
const points = (id) => page.evaluate((i) => window.aligndDashboard.points(i), id);

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "alignd_browser_"));
  mkdirSync(SHOTS, { recursive: true });
  port = await freePort();
  await startAlignd();
  dash = start(env("ALIGND_DASHBOARD_BINARY"), ["--alignd", `127.0.0.1:${port}`, "--listen", "127.0.0.1:0"]);
  url = (await dash.address).replace(/\/$/, "");
  dataset = ctl("-o", "name", "datasets", "generate", "--kind", "linear", "--examples", "2000", "--name", "linear 30→10").trim();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
});

after(async () => {
  await browser?.close();
  if (dash) await stop(dash);
  if (alignd) await stop(alignd);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("the page loads with no console error and shows alignd's state", async () => {
  await page.goto(url + "/");
  await until("the connection line", async () => (await page.textContent("#conn")).startsWith("alignd:"));
  assert.match(await page.title(), /alignd/);
  assert.deepEqual(consoleErrors, []);
});

let fa;
test("a session started from the form appears, and its chart gains points while it trains", async () => {
  await page.click("#new-session");
  await page.waitForSelector("#create-dialog[open]");
  await page.selectOption("#create-form select[name=train_dataset]", dataset);
  await page.fill("#create-form input[name=display_name]", "fa from the form");
  await page.fill("#create-form input[name=sizes]", "30,64,64,10");
  await page.selectOption("#create-form select[name=rule]", "RULE_FEEDBACK_ALIGNMENT");
  await page.fill("#create-form input[name=batch_size]", "1");
  await page.fill("#create-form input[name=max_steps]", "100000000");  // runs until cancelled
  await page.fill("#create-form input[name=metrics_every]", "1000");
  await page.click("#create-submit");
  await until("the dialog to close", async () => !(await page.isVisible("#create-dialog")));
  fa = await until("the new session selected", async () => (await page.evaluate(() => window.aligndDashboard.selected()))[0]);
  const row = `#sessions tr[data-id="${fa}"]`;
  await page.waitForSelector(row);
  assert.match(await page.textContent(row), /fa from the form/);
  assert.equal(inAlignd(fa).config.network.sizes.join(","), "30,64,64,10");
  await until("RUNNING in the list", async () => (await page.textContent(`${row} .state`)) === "RUNNING");
  const a = await until("first points", async () => (await points(fa)) || 0);
  const b = await until("more points", async () => { const n = await points(fa); return n > a + 5 ? n : 0; });
  assert.ok(b > a);
  // The charts draw them: the loss chart's point count follows the page's data.
  const drawn = await until("the loss chart drawn", async () => (await page.evaluate(() => window.aligndDashboard.chartPoints().loss)) || 0);
  assert.ok(drawn >= a);
  assert.ok(await page.isVisible('.chart[data-key="angle1"]'), "a per-layer angle chart");
  assert.ok(await page.isVisible('.chart[data-key="wb2"]'), "the second hidden layer's W–B angle chart");
  assert.ok(await page.isVisible(".chart[data-key=angle1] .u-legend"), "uPlot drew it");
  await until("a rate in the list", async () => /^\d/.test((await page.textContent(`${row} td:nth-child(7)`)).trim()));
  await shot("one-session");
});

let bp;
test("two sessions overlay on the same axes, and the URL holds the selection", async () => {
  bp = await createViaApi("bp alongside", "RULE_BACKPROP", 100000000);
  await page.waitForSelector(`#sessions tr[data-id="${bp}"]`);
  await page.check(`#sessions tr[data-id="${bp}"] input[type=checkbox]`);
  await until("both selected", async () => (await page.evaluate(() => window.aligndDashboard.selected())).length === 2);
  await until("bp's points", async () => (await points(bp)) > 3);
  const legend = await until("two series in the loss chart", async () => {
    const labels = await page.$$eval('.chart[data-key="loss"] .u-legend .u-series .u-label', (els) => els.map((e) => e.textContent));
    return labels.includes("fa from the form") && labels.includes("bp alongside") ? labels : null;
  });
  assert.ok(legend);
  assert.ok(new URL(page.url()).hash.includes(`s=${fa},${bp}`), page.url());
  await shot("overlay");
  // A shared link opens the same overlay in a new page.
  const other = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await other.goto(page.url());
  await until("the shared view", async () => (await other.evaluate(() => window.aligndDashboard.selected())).join() === `${fa},${bp}`);
  await other.close();
});

test("pause from the UI pauses the session in alignd, resume runs it on", async () => {
  await page.click(`#sessions tr[data-id="${bp}"] td:nth-child(2)`);  // bp alone
  await until("bp alone", async () => (await page.evaluate(() => window.aligndDashboard.selected())).join() === bp);
  await page.click('#one button[data-act="pause"]');
  await until("PAUSED in alignd", async () => inAlignd(bp).state === "SESSION_STATE_PAUSED", 30000, 200);
  await until("PAUSED in the list", async () => (await page.textContent(`#sessions tr[data-id="${bp}"] .state`)) === "PAUSED");
  assert.ok(await page.isEnabled('#one button[data-act="resume"]'));
  await page.click('#one button[data-act="resume"]');
  await until("running again in alignd", async () => ["SESSION_STATE_RUNNING", "SESSION_STATE_QUEUED"].includes(inAlignd(bp).state), 30000, 200);
  await page.click('#one button[data-act="cancel"]');
  await until("CANCELLED in alignd", async () => inAlignd(bp).state === "SESSION_STATE_CANCELLED", 30000, 200);
});

test("the dashboard survives an alignd restart and resumes the stream without duplicating points", async () => {
  await page.click(`#sessions tr[data-id="${fa}"] td:nth-child(2)`);
  await until("fa alone", async () => (await page.evaluate(() => window.aligndDashboard.selected())).join() === fa);
  const before = await until("fa's points", async () => (await points(fa)) || 0);
  await stop(alignd);
  await until("the page to notice", async () => (await page.textContent("#conn")).includes("unreachable"), 15000);
  await startAlignd();
  await until("the page to reconnect", async () => (await page.textContent("#conn")).startsWith("alignd:"), 30000);
  const after = await until("points after the restart", async () => { const n = await points(fa); return n > before + 5 ? n : 0; }, 60000);
  assert.ok(after > before);
  ctl("sessions", "cancel", fa);
  await until("CANCELLED in the list", async () => (await page.textContent(`#sessions tr[data-id="${fa}"] .state`)) === "CANCELLED");
  await sleep(500);  // the stream's last events
  const seqs = await page.evaluate((i) => window.aligndDashboard.seqs(i), fa);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq ${seqs[i]} after ${seqs[i - 1]}`);
  // Everything alignd holds, once: the page loaded the whole log (under max_points) and streamed the rest.
  const { events } = await api("GET", `/api/sessions/${fa}/metrics`);
  assert.deepEqual(seqs, events.map((e) => Number(e.seq)));
  assert.deepEqual(consoleErrors.filter((e) => !/Failed to load resource|ERR_/.test(e)), []);
  await shot("after-restart");
});
