// The web dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core,
// against a real alignd and alignd-dashboard on 127.0.0.1. Run by ctest (dashboard_browser):
//   node --test tests/browser/dashboard.test.mjs
// with ALIGND_BINARY, ALIGND_DASHBOARD_BINARY, ALIGNCTL_BINARY, ALIGND_WEB_MODULES (the
// front end's node_modules, for playwright-core) and ALIGND_SCREENSHOT_DIR set.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
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
    "--data_dir", join(tmp, "data"), "--heartbeat_ms", "100", "--checkpoint_every", "500",
    "--max_running", "10", "--max_threads", "10"]);
  return alignd.address;
}

// Child processes asynchronously: a synchronous one would stop Node's event loop, so nobody
// reads alignd's stderr meanwhile and cpp-httplib closes the idle keep-alive sockets of
// fetch() under it (the next request then meets "other side closed").
const run = async (cmd, args) => (await promisify(execFile)(cmd, args, { encoding: "utf8" })).stdout;
const ctl = (...args) => run(env("ALIGNCTL_BINARY"), ["--server", `127.0.0.1:${port}`, ...args]);
const inAlignd = async (id) => JSON.parse(await ctl("-o", "json", "sessions", "get", id));
const api = async (method, path, body) => {
  const r = await fetch(url + path, { method, body: body && JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
  return j;
};
const createViaApi = async (name, rule, steps, seed = 1, every = 1000, labels = undefined) => (await api("POST", "/api/sessions", { session: {
  display_name: name, train_dataset: dataset, snapshot_every: steps / 2, labels,
  config: { network: { sizes: [30, 64, 64, 10] }, feedback: { rule }, batch_size: 1, max_steps: steps, metrics_every: every, seed } } })).name.split("/")[1];
const shot = (name) => page.screenshot({ path: join(SHOTS, `dashboard-${name}.png`), fullPage: true });
const points = (id) => page.evaluate((i) => window.aligndDashboard.points(i), id);

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "alignd_browser_"));
  mkdirSync(SHOTS, { recursive: true });
  port = await freePort();
  await startAlignd();
  dash = start(env("ALIGND_DASHBOARD_BINARY"), ["--alignd", `127.0.0.1:${port}`, "--listen", "127.0.0.1:0"]);
  url = (await dash.address).replace(/\/$/, "");
  dataset = (await ctl("-o", "name", "datasets", "generate", "--kind", "linear", "--examples", "2000", "--name", "linear 30→10")).trim();
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
  assert.equal((await inAlignd(fa)).config.network.sizes.join(","), "30,64,64,10");
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
  await until("PAUSED in alignd", async () => (await inAlignd(bp)).state === "SESSION_STATE_PAUSED", 30000, 200);
  await until("PAUSED in the list", async () => (await page.textContent(`#sessions tr[data-id="${bp}"] .state`)) === "PAUSED");
  assert.ok(await page.isEnabled('#one button[data-act="resume"]'));
  await page.click('#one button[data-act="resume"]');
  await until("running again in alignd", async () => ["SESSION_STATE_RUNNING", "SESSION_STATE_QUEUED"].includes((await inAlignd(bp)).state), 30000, 200);
  await page.click('#one button[data-act="cancel"]');
  await until("CANCELLED in alignd", async () => (await inAlignd(bp)).state === "SESSION_STATE_CANCELLED", 30000, 200);
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
  await ctl("sessions", "cancel", fa);
  await until("CANCELLED in the list", async () => (await page.textContent(`#sessions tr[data-id="${fa}"] .state`)) === "CANCELLED");
  // The stream's last events follow the list's CANCELLED (a loaded machine: seconds).
  const last = Number((await inAlignd(fa)).last_seq);
  await until("the page to have the log's last event", async () => {
    const s = await page.evaluate((i) => window.aligndDashboard.seqs(i), fa);
    return s[s.length - 1] === last;
  }, 30000);
  // What the page promises: the history it loaded (sampled past HISTORY_POINTS step events,
  // so how much of it depends on how fast the machine trains), then every event after it
  // exactly once, across the restart, up to the log's last_seq.
  const seqs = await page.evaluate((i) => window.aligndDashboard.seqs(i), fa);
  const historyEnd = await page.evaluate((i) => window.aligndDashboard.historyEnd(i), fa);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq ${seqs[i]} after ${seqs[i - 1]}`);
  const streamed = seqs.filter((q) => q > historyEnd);
  assert.ok(streamed.length > 0, "events streamed after the history");
  assert.deepEqual(streamed, Array.from({ length: last - historyEnd }, (_, i) => historyEnd + 1 + i));
  assert.deepEqual(consoleErrors.filter((e) => !/Failed to load resource|ERR_/.test(e)), []);
  await shot("after-restart");
});

test("ten live sessions followed at once (more than a browser's six connections per host)", async () => {
  const ids = [];
  try {
  for (let i = 0; i < 10; i++) ids.push(await createViaApi(`many ${i}`, "RULE_FEEDBACK_ALIGNMENT", 100000000, i + 1));
  await page.click("#select-none");
  await page.fill("#filter", "many");
  await until("the ten rows", async () => (await page.$$("#sessions tbody tr")).length === 10);
  await page.click("#select-shown");
  const start = await until("all ten with points", async () => {
    const n = await Promise.all(ids.map(points));
    return n.every((x) => x > 0) ? n : null;
  }, 60000);
  // A row stays the same element while its session trains (updated in place, not redrawn):
  // what a user clicks or hovers is still there at the next poll.
  await page.$eval(`#sessions tr[data-id="${ids[0]}"]`, (el) => { el.dataset.mark = "kept"; });
  const figures = await page.$eval(`#sessions tr[data-id="${ids[0]}"]`, (el) => el.textContent);
  await until("all ten gaining points live", async () => {
    const n = await Promise.all(ids.map(points));
    return n.every((x, i) => x > start[i] + 3);
  }, 60000);
  await until("the row's figures updated", async () =>
    (await page.$eval(`#sessions tr[data-id="${ids[0]}"]`, (el) => el.textContent)) !== figures, 30000);
  assert.equal(await page.$eval(`#sessions tr[data-id="${ids[0]}"]`, (el) => el.dataset.mark), "kept");
  // The page still talks to the dashboard: a new session shows up in the list.
  const late = await createViaApi("many late", "RULE_BACKPROP", 1000, 1, 100);
  // Ten sessions training on a 2-core machine starve the browser: seconds, not one poll.
  await page.waitForSelector(`#sessions tr[data-id="${late}"]`, { timeout: 60000 });
  } finally {
    // Whatever failed above, the next tests start from a clean list and an idle alignd.
    for (const id of ids) await ctl("sessions", "cancel", id).catch(() => {});
    await page.fill("#filter", "");
  }
});

test("runs that differ only by seed group into one mean ± SD band; log scales and the grouping live in the URL", async () => {
  const ids = [await createViaApi("grp fa seed=1", "RULE_FEEDBACK_ALIGNMENT", 20000, 1, 200),
    await createViaApi("grp fa seed=2", "RULE_FEEDBACK_ALIGNMENT", 20000, 2, 200),
    await createViaApi("grp bp seed=1", "RULE_BACKPROP", 20000, 1, 200)];
  try {
  await until("all three finished", async () => (await Promise.all(ids.map(inAlignd))).every((s) => s.state === "SESSION_STATE_SUCCEEDED"), 60000, 200);
  await page.click("#select-none");
  await page.fill("#filter", "grp");
  await until("the three rows shown", async () => (await page.$$("#sessions tbody tr")).length === 3);
  await page.click("#select-shown");
  await until("three selected", async () => (await page.evaluate(() => window.aligndDashboard.selected())).length === 3);
  await until("their points", async () => (await Promise.all(ids.map(points))).every((n) => n === 100));
  await page.check("#group");
  const labels = await until("two groups in the legend", async () => {
    const l = await page.$$eval('.chart[data-key="loss"] .u-legend .u-series', (els) =>
      els.filter((e) => e.style.display !== "none").map((e) => e.textContent));
    return l.some((x) => x.includes("grp fa (2 seeds)")) && l.some((x) => x.includes("grp bp (1 run)")) ? l : null;
  });
  assert.equal(labels.length, 3, labels.join(" | "));  // x, and the two groups (band edges hidden)
  // The fa group's line is the mean of its two runs at every step, its band ± their SD.
  const fa = (await page.evaluate(() => window.aligndDashboard.series("loss"))).find((x) => x.label.startsWith("grp fa"));
  const [a, b] = await Promise.all(ids.slice(0, 2).map((id) => page.evaluate((i) => window.aligndDashboard.column(i, "loss"), id)));
  assert.equal(fa.x.length, 100);
  for (let i = 0; i < fa.x.length; i++) {
    const mean = (a[i] + b[i]) / 2, sd = Math.abs(a[i] - b[i]) / Math.SQRT2;
    assert.ok(Math.abs(fa.y[i] - mean) <= 1e-9 * Math.max(1, mean), `mean at ${fa.x[i]}`);
    assert.ok(Math.abs(fa.hi[i] - fa.lo[i] - 2 * sd) <= 1e-9 * Math.max(1, sd), `band at ${fa.x[i]}`);
  }
  assert.ok(fa.hi.some((v, i) => v - fa.lo[i] > 0), "the seeds differ somewhere");
  await page.check('.chart[data-key="loss"] input[data-log="loss"]');
  await until("the URL to hold it", async () => new URL(page.url()).hash.includes("log=loss") && new URL(page.url()).hash.includes("group=1"));
  await shot("seed-groups");
  const other = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await other.goto(page.url());
  await until("the same view from the link", async () => (await other.evaluate(() => window.aligndDashboard.selected())).length === 3);
  await other.waitForSelector('.chart[data-key="loss"] input[data-log="loss"]');
  assert.ok(await other.isChecked('.chart[data-key="loss"] input[data-log="loss"]'));
  assert.ok(await other.isChecked("#group"));
  await other.close();
  } finally {
    await page.fill("#filter", "");
  }
});

test("a snapshot's tensor downloads as a .npy file", async () => {
  const id = await createViaApi("snap", "RULE_FEEDBACK_ALIGNMENT", 2000, 3, 100);
  await until("finished", async () => (await inAlignd(id)).state === "SESSION_STATE_SUCCEEDED", 30000, 200);
  await page.click(`#sessions tr[data-id="${id}"] td:nth-child(2)`);
  await until("it alone", async () => (await page.evaluate(() => window.aligndDashboard.selected())).join() === id);
  await page.click("#snapshots-box summary");
  await page.click('#snapshots button[data-shapes="1000"]');
  await page.waitForSelector('#snapshots button[data-npy="W0"]');
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('#snapshots button[data-npy="W0"]')]);
  assert.equal(download.suggestedFilename(), `${id}-1000-W0.npy`);
  const path = join(tmp, "w0.npy");
  await download.saveAs(path);
  const bytes = readFileSync(path);
  assert.equal(bytes.subarray(0, 6).toString("latin1"), "\x93NUMPY");
  const headerLen = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLen).toString("latin1");
  assert.match(header, /'descr': '<f4', 'fortran_order': False, 'shape': \(64, 30\)/);
  assert.equal(bytes.length, 10 + headerLen + 64 * 30 * 4);
  assert.equal((10 + headerLen) % 64, 0);
});

test("a session's exports download from its detail view: the metric log as CSV, the latest weights as ONNX, a snapshot's as safetensors", async () => {
  const id = await createViaApi("export", "RULE_FEEDBACK_ALIGNMENT", 2000, 4, 100);
  await until("finished", async () => (await inAlignd(id)).state === "SESSION_STATE_SUCCEEDED", 30000, 200);
  const { events = [] } = await api("GET", `/api/sessions/${id}/metrics`);
  const logged = events.filter((e) => e.step || e.eval).map((e) => Number(e.seq));
  assert.ok(logged.length >= 20, `${logged.length} metric events`);
  await page.click(`#sessions tr[data-id="${id}"] td:nth-child(2)`);
  await until("it alone", async () => (await page.evaluate(() => window.aligndDashboard.selected())).join() === id);
  const errorsBefore = consoleErrors.length;
  const save = async (selector, name) => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click(selector)]);
    const path = join(tmp, name);
    await download.saveAs(path);
    return { name: download.suggestedFilename(), bytes: readFileSync(path) };
  };

  // CSV: the header, then a row per metric event, in seq order.
  const csv = await save('#exports button[data-export="csv"]', "export.csv");
  assert.equal(csv.name, `${id}.csv`);
  const lines = csv.bytes.toString("utf8").trimEnd().split("\n");
  assert.ok(lines[0].startsWith("seq,wall_time,kind,step"), lines[0]);
  assert.deepEqual(lines.slice(1).map((l) => Number(l.split(",")[0])), logged);
  assert.ok(lines.slice(1).every((l) => l.split(",")[2] === "train"));
  // The bridge's answer itself: alignd's media type and file name, the same bytes however
  // they travel (gzip'ed for a client that takes it, once).
  const r = await fetch(`${url}/api/sessions/${id}/export?format=csv`, { headers: { "Accept-Encoding": "gzip, br" } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/csv");
  assert.equal(r.headers.get("content-disposition"), `attachment; filename="${id}.csv"`);
  assert.equal(r.headers.get("content-encoding"), "gzip");
  assert.equal(await r.text(), csv.bytes.toString("utf8"));

  // ONNX of the latest weights (the final step's): a ModelProto, whose field 1 (ir_version,
  // a varint) comes first.
  const onnx = await save('#exports button[data-export="onnx"]', "export.onnx");
  assert.equal(onnx.name, `${id}-step2000.onnx`);
  assert.ok(onnx.bytes.length > 30 * 64 * 4, `${onnx.bytes.length} bytes`);
  assert.equal(onnx.bytes[0], 0x08);

  // The other buttons: each file as alignd names it.
  const jsonl = await save('#exports button[data-export="jsonl"]', "export.jsonl");
  assert.equal(jsonl.name, `${id}.jsonl`);
  assert.equal(jsonl.bytes.toString("utf8").trimEnd().split("\n").length, 1 + logged.length);
  const json = await save('#exports button[data-export="json"]', "export.json");
  assert.equal(json.name, `${id}.json`);
  assert.equal(JSON.parse(json.bytes.toString("utf8")).name, `sessions/${id}`);
  const tf = await save('#exports button[data-export="tfevents"]', "export.tfevents");
  assert.match(tf.name, new RegExp(`^events\\.out\\.tfevents\\.\\d+\\..*${id}$`));
  assert.ok(tf.bytes.length > 0);
  const latest = await save('#exports button[data-export="safetensors"]', "latest.safetensors");
  assert.equal(latest.name, `${id}-step2000.safetensors`);

  // A snapshot's weights from the snapshots list: safetensors of step 1000.
  await page.evaluate(() => { document.querySelector("#snapshots-box").open = false; });  // an earlier test opened it
  await page.click("#snapshots-box summary");
  const st = await save('#snapshots button[data-export="safetensors"][data-step="1000"]', "export.safetensors");
  assert.equal(st.name, `${id}-step1000.safetensors`);
  const n = Number(st.bytes.readBigUInt64LE(0));
  const header = JSON.parse(st.bytes.subarray(8, 8 + n).toString("utf8"));
  assert.equal(header.__metadata__.step, "1000");
  assert.deepEqual(header.W0.shape, [64, 30]);
  assert.equal(st.bytes.length, 8 + n + Math.max(...Object.values(header).filter((t) => t.data_offsets).map((t) => t.data_offsets[1])));
  assert.equal(await page.textContent("#action-error"), "");
  assert.deepEqual(consoleErrors.slice(errorsBefore), []);

  // Refusals: a JSON error with the status of each, before or from alignd.
  const refused = async (query, path = `/api/sessions/${id}/export`) => {
    const res = await fetch(`${url}${path}${query}`);
    const body = await res.json();
    assert.equal(res.headers.get("content-disposition"), null);
    return [res.status, body.code, body.message];
  };
  const bad = await refused("?format=csv", "/api/sessions/Not_An_Id/export");
  assert.deepEqual(bad.slice(0, 2), [400, "INVALID_ARGUMENT"]);
  assert.match(bad[2], /session id "Not_An_Id" is not/);
  const xlsx = await refused("?format=xlsx");
  assert.deepEqual(xlsx.slice(0, 2), [400, "INVALID_ARGUMENT"]);
  assert.match(xlsx[2], /format: "xlsx" is not one of csv, jsonl, tfevents, json, safetensors, onnx/);
  assert.match((await refused(""))[2], /format: required/);
  assert.match((await refused("?format=csv&format=onnx"))[2], /format: given more than once/);
  const nan = await refused("?format=onnx&snapshot=latest");
  assert.deepEqual(nan.slice(0, 2), [400, "INVALID_ARGUMENT"]);
  assert.match(nan[2], /snapshot: "latest" is not an integer/);
  assert.match((await refused("?format=onnx&snapshot=-5"))[2], /snapshot: -5 is not in/);
  assert.match((await refused("?format=csv&snapshot=1000"))[2], /snapshot: only safetensors and onnx/);
  assert.deepEqual((await refused("?format=onnx&snapshot=7")).slice(0, 2), [404, "NOT_FOUND"]);
  assert.deepEqual((await refused("?format=csv", "/api/sessions/no-such-session/export")).slice(0, 2), [404, "NOT_FOUND"]);
});

test("the form's rules come from alignd, and a conv net from its layers field trains with per-layer charts", async () => {
  // 8x8 images (IDX): three classes, a bright row, a bright column, or nothing.
  const n = 300, img = Buffer.alloc(16 + n * 64), lab = Buffer.alloc(8 + n);
  img.writeUInt32BE(0x803, 0); img.writeUInt32BE(n, 4); img.writeUInt32BE(8, 8); img.writeUInt32BE(8, 12);
  lab.writeUInt32BE(0x801, 0); lab.writeUInt32BE(n, 4);
  for (let i = 0; i < n; i++) {
    const y = i % 3, k = (i * 7) % 6 + 1;
    lab[8 + i] = y;
    for (let p = 0; p < 64; p++) img[16 + i * 64 + p] = ((p * 31 + i * 17) % 40) + (y === 0 && (p >> 3) === k ? 200 : 0) + (y === 1 && (p & 7) === k ? 200 : 0);
  }
  writeFileSync(join(tmp, "img.idx"), img);
  writeFileSync(join(tmp, "lab.idx"), lab);
  const errorsBefore = consoleErrors.length;
  const images = (await ctl("-o", "name", "datasets", "upload", "--idx", join(tmp, "img.idx"), join(tmp, "lab.idx"), "--name", "rows and columns")).trim();
  await page.click("#new-session");
  await page.waitForSelector("#create-dialog[open]");
  // The rule list is alignd's (ListRules): every rule, pbp marked as dense only.
  const rules = await page.$$eval("#create-form select[name=rule] option", (os) => os.map((o) => [o.value, o.textContent]));
  assert.deepEqual(rules.map((r) => r[0]), ["RULE_BACKPROP", "RULE_FEEDBACK_ALIGNMENT", "RULE_DIRECT_FEEDBACK_ALIGNMENT",
    "RULE_SIGN_SYMMETRY", "RULE_KOLEN_POLLACK", "RULE_PSEUDO_BACKPROP", "RULE_SHALLOW"]);
  assert.match(rules[5][1], /^pbp: Pseudo-backprop \(dense layers only\)$/);
  await page.selectOption("#create-form select[name=train_dataset]", images);
  await page.fill("#create-form input[name=display_name]", "conv from the form");
  await page.selectOption("#create-form select[name=rule]", "RULE_FEEDBACK_ALIGNMENT");
  await page.selectOption("#create-form select[name=loss]", "LOSS_CROSS_ENTROPY");
  await page.fill("#create-form input[name=batch_size]", "10");
  await page.fill("#create-form input[name=max_steps]", "300");
  await page.fill("#create-form input[name=metrics_every]", "10");
  // A bad item is named in the page, before any request.
  await page.fill("#create-form input[name=layers]", "conv:4x3x3,pool:2,conv:6x5");
  await page.click("#create-submit");
  await until("the item named", async () => /layers item 3 'conv:6x5': expected conv:CxKHxKW/.test(await page.textContent("#create-error")));
  // alignd's refusal is shown with its field.
  await page.fill("#create-form input[name=layers]", "conv:4x9x9,dense:3");
  await page.click("#create-submit");
  await until("alignd's refusal", async () => /INVALID_ARGUMENT: session\.config\.network\.layers\[0\] \(conv\): a 9x9 kernel/.test(await page.textContent("#create-error")));
  await page.fill("#create-form input[name=layers]", "conv:4x3x3:p1,pool:2,dense:3");
  await page.fill("#create-form input[name=input_shape]", "1x8x8");
  await page.click("#create-submit");
  await until("the dialog to close", async () => !(await page.isVisible("#create-dialog")));
  const id = await until("the conv session selected", async () => {
    const sel = (await page.evaluate(() => window.aligndDashboard.selected()))[0];
    return sel && sel !== fa && sel !== bp ? sel : null;
  });
  const s = await inAlignd(id);
  assert.equal(s.config.network.layers.length, 3);
  assert.deepEqual(s.config.network.input_shape, { channels: 1, height: 8, width: 8 });
  assert.deepEqual(s.config.network.sizes, [64, 256, 64, 3]);
  await until("finished", async () => (await inAlignd(id)).state === "SESSION_STATE_SUCCEEDED", 60000, 200);
  const row = `#sessions tr[data-id="${id}"]`;
  await until("the layers in the list", async () => (await page.textContent(row)).includes("conv:4x3x3:p1,pool:2,dense:3"));
  // Hidden layer 1 feeds the pool: an update angle, but its W–B angle is NaN throughout, and
  // that chart has no series (nothing broken); hidden layer 2 feeds the dense layer: both.
  const drawn = await until("the layer charts", async () => {
    const c = await page.evaluate(() => window.aligndDashboard.chartPoints());
    return c.angle1 > 0 && c.angle2 > 0 && c.wb2 > 0 ? c : null;
  });
  assert.equal(drawn.wb1, 0);
  assert.match(await page.textContent('.chart[data-key="angle1"] h3'), /Layer 1 \(into pool:2\)/);
  assert.match(await page.textContent('.chart[data-key="wb2"] h3'), /Layer 2 \(into dense:3\)/);
  await page.evaluate(() => { document.querySelector("#snapshots-box").open = false; });  // an earlier test opened it
  await page.click("#snapshots-box summary");
  await page.click('#snapshots button[data-shapes="latest"]');
  await page.waitForSelector('#snapshots button[data-npy="W0"]');
  assert.match(await page.textContent('#snapshots button[data-npy="W0"]'), /W0 \(4×1×3×3\)/);
  // No page error (the browser logs the refused create's 400 itself).
  assert.deepEqual(consoleErrors.slice(errorsBefore).filter((e) => !/status of 400/.test(e)), []);
  await shot("conv-session");
});

test("with TLS and tokens the page asks for a token once, keeps it out of the URL, and sends it", async () => {
  const dir = join(tmp, "tls");
  mkdirSync(dir);
  await run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", "/CN=alignd",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]);
  const made = (await run(env("ALIGNCTL_BINARY"), ["token", "new", "alice", "user"])).split("\n");
  const secret = made[1].trim();
  writeFileSync(join(dir, "tokens"), `${made[3].trim()}\n`);
  const secure = start(env("ALIGND_BINARY"), ["--listen", "127.0.0.1:0", "--metrics_listen", "", "--data_dir", join(dir, "data"),
    "--tls_cert", join(dir, "cert.pem"), "--tls_key", join(dir, "key.pem"), "--token_file", join(dir, "tokens")]);
  const address = await secure.address;
  const sdash = start(env("ALIGND_DASHBOARD_BINARY"), ["--alignd", address, "--ca", join(dir, "cert.pem"), "--listen", "127.0.0.1:0"]);
  const surl = (await sdash.address).replace(/\/$/, "");
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  const sent = [];
  p.on("request", (r) => { if (r.url().includes("/api/")) sent.push(r.headers().authorization || ""); });
  try {
    await p.goto(surl + "/");
    await p.waitForSelector("#token-dialog[open]");
    assert.match(await p.textContent("#conn"), /token/);
    assert.match(await p.textContent("#token-why"), /^alignd says: .+/);  // why it is asked for
    await p.fill("#token-input", secret);
    await p.click("#token-save");
    await until("the list through alignd", async () => (await p.textContent("#conn")).startsWith("alignd:"));
    assert.ok(!p.url().includes(secret));
    assert.ok(sent.some((h) => h === `Bearer ${secret}`));
    await p.reload();
    await until("the list again, without asking", async () => (await p.textContent("#conn")).startsWith("alignd:"));
    assert.equal(await p.isVisible("#token-dialog"), false);
    // An export is called as the token's owner too: without it alignd refuses, with it the
    // call reaches the (absent) session.
    const exported = (headers) => fetch(`${surl}/api/sessions/nosuch/export?format=csv`, { headers }).then((r) => r.status);
    assert.equal(await exported({}), 401);
    assert.equal(await exported({ Authorization: `Bearer ${secret}` }), 404);
  } finally {
    await ctx.close();
    await stop(sdash);
    await stop(secure);
  }
});

test("alignd's filter picks the listed sessions, stays in the URL across a reload, and a refused one shows alignd's words; the detail view shows labels and provenance", async () => {
  const errorsBefore = consoleErrors.length;
  const a = await createViaApi("flt a", "RULE_FEEDBACK_ALIGNMENT", 200, 1, 100, { study: "depth", arm: "a" });
  const b = await createViaApi("flt b", "RULE_BACKPROP", 200, 1, 100, { study: "depth", arm: "b" });
  const c = await createViaApi("flt c", "RULE_FEEDBACK_ALIGNMENT", 200, 1, 100, { study: "width" });
  const d = await createViaApi("flt d", "RULE_FEEDBACK_ALIGNMENT", 200, 1, 100);  // no labels
  await until("the four finished", async () => (await Promise.all([a, b, c, d].map(inAlignd))).every((s) => s.state === "SESSION_STATE_SUCCEEDED"), 60000, 200);
  const listed = () => page.$$eval("#sessions tbody tr", (trs) => trs.map((tr) => tr.dataset.id).sort());
  const shows = (ids) => until(`exactly ${ids}`, async () => { const l = await listed(); return l.join() === [...ids].sort().join() ? l : null; });
  const apply = async (text) => { await page.fill("#query", text); await page.press("#query", "Enter"); };
  const hashFilter = (p = page) => new URLSearchParams(new URL(p.url()).hash.slice(1)).get("filter");
  const asked = [];
  const onRequest = (r) => { if (new URL(r.url()).pathname === "/api/sessions" && r.method() === "GET") asked.push(new URL(r.url()).searchParams.get("filter")); };
  page.on("request", onRequest);
  try {
    await page.click("#select-none");
    await apply("labels.study = depth AND rule = fa");
    await shows([a]);
    assert.equal(hashFilter(), "labels.study = depth AND rule = fa");
    // The labels as a compact k=v list in the row.
    assert.equal(await page.textContent(`#sessions tr[data-id="${a}"] td:last-child`), "arm=astudy=depth");
    assert.deepEqual(await page.$$eval(`#sessions tr[data-id="${a}"] td:last-child .label`, (els) => els.map((e) => e.textContent)), ["arm=a", "study=depth"]);
    // Every refresh of the list carries it (not just the first request).
    asked.length = 0;
    await until("two refreshes", async () => asked.length >= 2, 15000);
    assert.ok(asked.every((f) => f === "labels.study = depth AND rule = fa"), JSON.stringify(asked));

    // OR, NOT, presence and quoting; the quick search narrows within it.
    await apply('labels.study:* AND NOT labels.arm = "b"');
    await shows([a, c]);
    await page.fill("#filter", "width");
    await shows([c]);
    await page.fill("#filter", "");
    await apply("display_name = \"flt *\" AND (rule = bp OR labels.study = width)");
    await shows([b, c]);
    // A session made later shows up on a refresh when it matches; one that does not, never.
    const e = await createViaApi("flt e", "RULE_BACKPROP", 200, 1, 100, { study: "depth" });
    const f = await createViaApi("flt f", "RULE_FEEDBACK_ALIGNMENT", 200, 1, 100, { study: "depth" });
    await shows([b, c, e]);
    assert.ok(!(await listed()).includes(f));

    // The URL keeps it: a reload (and a shared link) shows the same list and the same text.
    await page.reload();
    await shows([b, c, e]);
    assert.equal(await page.inputValue("#query"), "display_name = \"flt *\" AND (rule = bp OR labels.study = width)");
    assert.equal(hashFilter(), "display_name = \"flt *\" AND (rule = bp OR labels.study = width)");
    const other = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await other.goto(page.url());
    await until("the shared list", async () => (await other.$$eval("#sessions tbody tr", (trs) => trs.map((tr) => tr.dataset.id).sort())).join() === [b, c, e].sort().join());
    await other.close();

    // A filter alignd refuses: its message, word for word, and no list.
    await apply("labels.study = depth AND colour = red");
    const said = await until("alignd's words", async () => { const t = await page.textContent("#list-error"); return t || null; });
    const direct = await fetch(`${url}/api/sessions?filter=${encodeURIComponent("labels.study = depth AND colour = red")}`);
    const body = await direct.json();
    assert.deepEqual([direct.status, body.code], [400, "INVALID_ARGUMENT"]);
    assert.match(body.message, /^filter: unknown field 'colour' .* at position (\d+)$/);
    assert.equal(Number(/position (\d+)$/.exec(body.message)[1]), "labels.study = depth AND colour = red".indexOf("colour") + 1);
    assert.equal(said, `INVALID_ARGUMENT: ${body.message}`);
    assert.deepEqual(await listed(), []);
    assert.equal(hashFilter(), "labels.study = depth AND colour = red");
    assert.ok((await page.textContent("#conn")).startsWith("alignd:"));
    await shot("filter-refused");
    await apply("state = finished");
    await until("another refusal", async () => /unknown state 'finished'/.test(await page.textContent("#list-error")));
    // What the dashboard refuses before alignd: too long for alignd, given twice.
    const refused = async (q) => { const r = await fetch(`${url}/api/sessions?${q}`); return [r.status, (await r.json()).message]; };
    assert.deepEqual(await refused(`filter=${"x".repeat(4097)}`), [400, "filter: 4097 bytes, longer than the 4096 alignd reads"]);
    assert.deepEqual(await refused("filter=rule%3Dfa&filter=rule%3Dbp"), [400, "filter: given more than once"]);
    assert.deepEqual(await refused("filter=%FF"), [400, "filter: not UTF-8 text"]);

    // The detail view: labels, and the provenance alignd recorded as it ran.
    await apply("labels.study = depth AND labels.arm:* AND rule = fa");  // not f, which has no arm
    await shows([a]);
    assert.equal(await page.textContent("#list-error"), "");
    await page.click(`#sessions tr[data-id="${a}"] td:nth-child(2)`);
    await until("it alone", async () => (await page.evaluate(() => window.aligndDashboard.selected())).join() === a);
    const prov = (await inAlignd(a)).provenance;
    assert.ok(prov?.alignd_version, JSON.stringify(prov));
    await page.waitForSelector('#about dd[data-k="alignd"]');
    assert.deepEqual(await page.$$eval('#about dd[data-k="labels"] .label', (els) => els.map((e) => e.textContent)), ["arm=a", "study=depth"]);
    assert.ok((await page.textContent('#about dd[data-k="alignd"]')).startsWith(prov.alignd_version));
    if (prov.revision) assert.ok((await page.textContent('#about dd[data-k="alignd"]')).includes(prov.revision));
    assert.ok((await page.textContent('#about dd[data-k="compute"]')).includes(prov.compute_library));
    assert.equal(await page.textContent('#about dd[data-k="host"]'), prov.host);
    assert.equal(await page.textContent('#about dd[data-k="threads"]'), prov.threads === undefined ? "—" : String(prov.threads));
    const digest = prov.dataset_sha256[dataset];
    assert.match(digest, /^[0-9a-f]{64}$/);
    assert.deepEqual(await page.$$eval('#about dd[data-k="data"] code', (els) => els.map((e) => [e.textContent, e.title])), [[digest.slice(0, 12), digest]]);
    await shot("filter-detail");
    assert.deepEqual(consoleErrors.slice(errorsBefore).filter((m) => !/status of 400/.test(m)), []);
  } finally {
    page.off("request", onRequest);
    await apply("").catch(() => {});
    await page.fill("#filter", "").catch(() => {});
  }
});

// ---- Experiments.
// The page's number formatting and the proto JSON mapping's numbers ("NaN" is a gap), as
// the page has them (dashboard/web/src/util.js).
const fmt = (v, d = 4) => (v == null || Number.isNaN(v) ? "—" : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(d));
const num = (v) => (v === undefined ? 0 : v === "NaN" || v === "Infinity" || v === "-Infinity" ? null : Number(v));

test("an experiment's page: groups with their sessions' states, mean curves with 95 % CI bands, the best-value summary, a comparison and a config diff, all alignd's numbers, in a shareable URL", async () => {
  const spec = join(tmp, "experiment.json");
  writeFileSync(spec, JSON.stringify({ dataset, eval_dataset: dataset, name: "browser experiment", labels: { study: "browser" },
    rules: ["bp", "fa"], seeds: [1, 2, 3],
    config: { network: { sizes: [30, 20, 10] }, batch_size: 4, max_steps: 400, metrics_every: 20, eval_every: 100, validation_fraction: 0.2 } }));
  const made = JSON.parse(await ctl("-o", "json", "experiments", "create", spec));
  const xid = made.name.split("/")[1];
  await until("the experiment to finish", async () => JSON.parse(await ctl("-o", "json", "experiments", "get", xid)).state === "EXPERIMENT_STATE_SUCCEEDED", 120000, 300);
  const e = await api("GET", `/api/experiments/${xid}`);
  const stats = await api("GET", `/api/experiments/${xid}/statistics`);
  const errors = [];
  const xp = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  xp.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  xp.on("pageerror", (err) => errors.push(String(err)));
  try {
    // The list of experiments, then its page.
    await xp.goto(`${url}/#view=experiments`);
    await xp.waitForSelector(`#experiments-table tr[data-x="${xid}"]`);
    assert.match(await xp.textContent(`#experiments-table tr[data-x="${xid}"]`), /browser experiment.*SUCCEEDED.*6\/6/);
    assert.equal(await xp.isVisible("#sessions"), false);
    await xp.click(`#experiments-table tr[data-x="${xid}"] a`);
    await until("its page", async () => (await xp.textContent("#x-title")) === `browser experiment (${xid})`);
    assert.equal(await xp.textContent("#x-state"), "SUCCEEDED");
    assert.ok(await xp.isDisabled("#x-cancel"), "nothing left to cancel");

    // Groups: id, rule, grid point, sessions with their states.
    await until("the groups' states", async () => (await xp.$$eval("#x-groups .xsession .state", (els) => els.map((x) => x.textContent))).join() === Array(6).fill("SUCCEEDED").join());
    const groups = await xp.$$eval("#x-groups tbody tr", (trs) => trs.map((tr) => [...tr.children].slice(0, 4).map((td) => td.textContent)));
    assert.deepEqual(groups, [["g0", "bp", "—", "3"], ["g1", "fa", "—", "3"]]);
    const ids = await xp.$$eval("#x-groups tbody tr", (trs) => trs.map((tr) => [...tr.querySelectorAll("input[data-diff]")].map((b) => b.dataset.diff)));
    assert.deepEqual(ids, e.groups.map((g) => g.sessions.map((n) => n.split("/")[1])));

    // The curves: per group the server's mean, the band its 95 % interval.
    await until("the charts", async () => (await xp.evaluate(() => window.aligndDashboard.experiment().charts)).includes("validation.nse"));
    for (const figure of ["train.loss", "validation.nse", "eval.nse"]) {
      const drawn = await xp.evaluate((f) => window.aligndDashboard.experimentSeries(f), figure);
      assert.equal(drawn.length, 2, figure);
      stats.groups.forEach((g, i) => {
        const s = g.series.find((x) => x.figure === figure);
        assert.ok(drawn[i].label.startsWith(`${g.id} `), drawn[i].label);
        assert.deepEqual(drawn[i].x, s.steps.map(Number), figure);
        assert.deepEqual(drawn[i].y, s.values.map((v) => num(v.mean)), figure);
        assert.deepEqual(drawn[i].lo, s.values.map((v) => num(v.ci_low)), figure);
        assert.deepEqual(drawn[i].hi, s.values.map((v) => num(v.ci_high)), figure);
        // A band where there are three seeds: the interval around the mean.
        const k = s.values.findIndex((v) => v.n === 3);
        assert.ok(k >= 0 && drawn[i].lo[k] < drawn[i].y[k] && drawn[i].y[k] < drawn[i].hi[k], figure);
      });
      // uPlot drew it: the mean and the band's two edges per group (the edges out of the legend).
      const legend = await xp.$$eval(`.chart[data-key="${figure}"] .u-legend .u-series`, (rows) => rows.map((r) => [r.textContent, r.style.display]));
      assert.equal(legend.length, 1 + 2 * 3, figure);
      assert.equal(legend.filter(([t, d]) => /95 % CI (high|low)/.test(t) && d === "none").length, 4, JSON.stringify(legend));
    }

    // The best validation per group, and the evaluation at those steps.
    const best = await xp.$$eval("#x-best tbody tr", (trs) => trs.map((tr) => Object.fromEntries([...tr.querySelectorAll("[data-k]")].map((td) => [td.dataset.k, [td.dataset.v, td.textContent]]))));
    assert.equal(best.length, 2);
    stats.groups.forEach((g, i) => {
      const v = g.best.validation, at = g.best.eval_at_best;
      assert.equal(v.n, 3);
      assert.equal(Number(best[i].validation[0]), v.mean);
      assert.equal(best[i].validation[1], `${fmt(num(v.mean))} ± ${fmt(num(v.sd))}`);
      assert.equal(best[i].validation_ci[1], `[${fmt(v.ci_low)}, ${fmt(v.ci_high)}]`);
      assert.equal(best[i].steps[1], g.best.best_steps.join(", "));
      assert.equal(Number(best[i].eval_at_best[0]), at.mean);
      assert.equal(best[i].eval_at_best[1], `${fmt(num(at.mean))} ± ${fmt(num(at.sd))}`);
      assert.equal(best[i].eval_ci[1], `[${fmt(at.ci_low)}, ${fmt(at.ci_high)}]`);
    });

    // The comparison: g0 against g1 by default on the evaluation at best validation, then on
    // another figure; alignd's CompareGroups each time.
    const compared = () => xp.$$eval("#x-compare tbody tr", (trs) => trs.map((tr) => [[...tr.children].slice(0, 3).map((td) => td.textContent),
      Object.fromEntries([...tr.querySelectorAll("[data-k]")].map((td) => [td.dataset.k, [td.dataset.v, td.textContent]]))]));
    const check = async (figure) => {
      const c = await api("GET", `/api/experiments/${xid}/compare?a=g0&b=g1&figure=${figure}`);
      const [[head, row]] = await until(`the ${figure} comparison`, async () => { const r = await compared(); return r.length && r[0][0][2] === figure ? r : null; });
      assert.deepEqual(head, ["g0", "g1", figure]);
      assert.deepEqual(row.n, [String(c.n), String(c.n)]);
      assert.equal(c.n, 3);
      for (const k of ["diff", "t", "p_t", "p_w"]) {
        assert.equal(Number(row[k][0]), c[k], k);
        assert.equal(row[k][1], fmt(c[k]), k);
      }
      assert.equal(row.ci[1], `[${fmt(c.ci_low)}, ${fmt(c.ci_high)}]`);
    };
    await check("best.eval");
    await xp.selectOption("#x-figure", "best.validation");
    await check("best.validation");

    // The config diff: two seeds of g0 and one of g1, side by side where they differ.
    const [[s00, s01], [s10]] = ids;
    for (const id of [s00, s01, s10]) await xp.check(`#x-groups input[data-diff="${id}"]`);
    const diff = await until("the diff", async () => { const d = await xp.evaluate(() => window.aligndDashboard.experiment().diff); return d.length ? d : null; });
    const byField = Object.fromEntries(diff.map((r) => [r.field, r.values]));
    const sessions = await Promise.all([s00, s01, s10].map((id) => api("GET", `/api/sessions/${id}`)));
    assert.deepEqual(byField["config.feedback.rule"], sessions.map((s) => s.config.feedback?.rule ?? null));
    assert.deepEqual(byField["config.seed"], sessions.map((s) => s.config.seed ?? null));
    assert.notDeepEqual(sessions[0].config.seed, sessions[1].config.seed);
    assert.ok(!("config.batch_size" in byField) && !("train_dataset" in byField), Object.keys(byField).join());
    assert.deepEqual(await xp.$$eval("#x-diff thead th[data-session]", (ths) => ths.map((th) => th.dataset.session)), [s00, s01, s10]);
    const ruleRow = await xp.$$eval('#x-diff tr[data-field="config.feedback.rule"] td', (tds) => tds.map((td) => td.textContent));
    assert.deepEqual(ruleRow, ["config.feedback.rule", ...sessions.map((s) => JSON.stringify(s.config.feedback.rule))]);
    await xp.screenshot({ path: join(SHOTS, "dashboard-experiment.png"), fullPage: true });

    // The URL holds it all: a new page shows the same comparison and diff.
    const shared = new URL(xp.url()).hash.slice(1);
    const p = new URLSearchParams(shared);
    assert.deepEqual([p.get("x"), p.get("a"), p.get("b"), p.get("cmp"), p.get("d")], [xid, "g0", "g1", "best.validation", [s00, s01, s10].join(",")]);
    const other = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      await other.goto(xp.url());
      await until("the shared diff", async () => JSON.stringify(await other.evaluate(() => window.aligndDashboard.experiment().diff)) === JSON.stringify(diff));
      await until("the shared comparison", async () => (await other.evaluate(() => window.aligndDashboard.experiment().comparison?.figure)) === "best.validation");
    } finally {
      await other.close();
    }

    // From a session to its experiment: its page's link, and the list's.
    await xp.click(`#x-groups a[href="#s=${s10}"]`);
    await xp.waitForSelector('#about dd[data-k="experiment"] a');
    assert.equal(await xp.textContent('#about dd[data-k="experiment"]'), `${xid}/g1`);
    assert.equal(await xp.getAttribute(`#sessions tr[data-id="${s10}"] a.xlink`, "href"), `#x=${xid}`);
    await xp.click('#about dd[data-k="experiment"] a');
    await until("back on the experiment", async () => (await xp.textContent("#x-title")) === `browser experiment (${xid})` && await xp.isVisible("#experiment"));
    assert.deepEqual(errors, []);
  } finally {
    await xp.close();
  }
});

test("an experiment cancelled from its page is cancelled in alignd; an unknown one and a refused filter say so in alignd's words", async () => {
  const spec = join(tmp, "long-experiment.json");
  writeFileSync(spec, JSON.stringify({ dataset, name: "browser cancel", rules: ["fa"], seeds: [1, 2],
    config: { network: { sizes: [30, 20, 10] }, batch_size: 1, max_steps: 100000000, metrics_every: 1000 } }));
  const xid = JSON.parse(await ctl("-o", "json", "experiments", "create", spec)).name.split("/")[1];
  const errors = [];
  const xp = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  xp.on("pageerror", (err) => errors.push(String(err)));
  try {
    await xp.goto(`${url}/#x=${xid}`);
    await until("its page", async () => (await xp.textContent("#x-title")) === `browser cancel (${xid})`);
    await until("RUNNING", async () => (await xp.textContent("#x-state")) === "RUNNING");
    assert.ok(await xp.isEnabled("#x-cancel"));
    await xp.click("#x-cancel");
    await until("CANCELLED in alignd", async () => JSON.parse(await ctl("-o", "json", "experiments", "get", xid)).state === "EXPERIMENT_STATE_CANCELLED", 30000, 200);
    await until("CANCELLED on the page", async () => (await xp.textContent("#x-state")) === "CANCELLED");
    await until("its sessions CANCELLED", async () => (await xp.$$eval("#x-groups .xsession .state", (els) => els.map((x) => x.textContent))).join() === "CANCELLED,CANCELLED");
    assert.ok(await xp.isDisabled("#x-cancel"));

    await xp.goto(`${url}/#x=nosuch`);
    await until("alignd's 404", async () => (await xp.textContent("#x-error")) === "NOT_FOUND: experiments/nosuch not found");

    // The list's filter: what alignd answers (its refusal in its words, as the sessions' list).
    const query = "labels.study = browser";
    await xp.goto(`${url}/#view=experiments`);
    await xp.fill("#xquery", query);
    await xp.press("#xquery", "Enter");
    const direct = await fetch(`${url}/api/experiments?filter=${encodeURIComponent(query)}`);
    const body = await direct.json();
    if (direct.ok) {
      await until("the filtered list", async () => (await xp.$$eval("#experiments-table tbody tr", (trs) => trs.map((tr) => tr.dataset.x))).join() === body.experiments.map((x) => x.name.split("/")[1]).join());
    } else {
      await until("alignd's words", async () => (await xp.textContent("#xlist-error")) === `${body.code}: ${body.message}`);
      assert.equal(await xp.$$eval("#experiments-table tbody tr", (trs) => trs.length), 0);
    }
    assert.equal(new URLSearchParams(new URL(xp.url()).hash.slice(1)).get("filter"), query);
    assert.deepEqual(errors, []);
  } finally {
    await xp.close();
  }
});

test("a session state the page has no styling for is shown by its name (an alignd newer than the page)", async () => {
  // STOPPED (ended by its experiment's stopping policy) and any state after it: named as alignd
  // names it, or by number when the dashboard's proto does not know it (its JSON has the number).
  const names = await page.evaluate(() => ["SESSION_STATE_STOPPED", "SESSION_STATE_LATER", 7, 9, undefined].map(window.aligndDashboard.stateName));
  assert.deepEqual(names, ["STOPPED", "LATER", "STOPPED", "STATE_9", "UNSPECIFIED"]);
  const bg = await page.evaluate(() => {
    const t = document.createElement("table");
    t.innerHTML = '<tr><td><span class="state STOPPED">STOPPED</span></td></tr>';
    document.body.appendChild(t);
    const c = getComputedStyle(t.querySelector(".state")).backgroundColor;
    t.remove();
    return c;
  });
  assert.equal(bg, "rgb(255, 237, 213)");  // styled as an ending, not as the unknown default
});
