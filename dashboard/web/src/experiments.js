// The dashboard's experiment views (alignd's ExperimentService through /api/experiments):
// the list of experiments, and one experiment's page: its groups (rule, grid point, sessions
// and their states), each figure's curve per group as the mean over its seeds with the 95 %
// confidence interval as a band, the best validation summary per group, a paired comparison
// of two groups, and the configurations of chosen sessions side by side where they differ.
// Every number is alignd's (GetExperimentStatistics, CompareGroups); nothing is computed here
// but the layout. The URL's hash holds the view and its choices, so a link shows what its
// sender saw: #view=experiments[&filter=...], #x=ID[&a=g0&b=g1&cmp=best.eval&d=s1,s2&log=...
// &every=N&all=1].
import { call, ApiError } from "./api.js";
import { Chart, palette } from "./charts.js";
import { num, short, shortExperiment, stateClass, fmt, escapeHtml } from "./util.js";

const $ = (sel) => document.querySelector(sel);
const POLL_MS = 2000;
const STATS_POLLS = 3;  // while it runs, the statistics every third poll (they read every log)
const ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const GROUP = /^[A-Za-z0-9_-]{1,64}$/;
const FIGURE = /^[A-Za-z0-9._-]{1,64}$/;

let hooks = { setConn: () => {}, askToken: () => {}, ruleName: (r) => String(r || "").replace("RULE_", "").toLowerCase() };

const xs = {
  view: null,         // "experiments" | "experiment" | null (the sessions view is shown)
  gen: 0,             // bumped on every change of view or experiment: older answers are dropped
  timer: null,
  // The list.
  query: "", queryError: null, list: [],
  // One experiment, and the page's choices (in the URL).
  id: "", a: "", b: "", cmp: "best.eval", diff: [], logs: new Set(), every: 0, all: false,
  experiment: null, error: "", sessions: new Map(), stats: null, statsKey: "", comparison: null, compareKey: "",
  compareError: "", polls: 0, lastState: "",
  charts: new Map(), chartKeys: "", diffRows: [],
};

const experimentId = (e) => e.name.split("/")[1];
const sessionId = (name) => String(name).split("/")[1];
const ruleOf = (r) => hooks.ruleName(r || "RULE_FEEDBACK_ALIGNMENT");
const valueText = (v) => (typeof v === "string" ? v : JSON.stringify(v));
const pointText = (point) => Object.entries(point || {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${valueText(v)}`).join(" ");
const groupIndex = (id) => (xs.experiment?.groups || []).findIndex((g) => g.id === id);
const groupLabel = (g) => `${g.id} ${g.variant || ruleOf(g.rule)}${pointText(g.point) ? ` ${pointText(g.point)}` : ""}`;
// A number's cell: shown as fmt shows it, alignd's value in data-v (tests compare them).
const cell = (k, v, text) => `<td class="num" data-k="${k}" data-v="${v == null ? "" : v}">${text ?? fmt(v)}</td>`;
const meanSd = (f) => (num(f?.n) ? `${fmt(num(f.mean))} ± ${fmt(num(f.sd))}` : "—");
const interval = (lo, hi) => (lo == null || hi == null ? "—" : `[${fmt(lo)}, ${fmt(hi)}]`);

// ---- The URL.
function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const id = p.get("x") || "";
  xs.id = ID.test(id) ? id : "";
  xs.query = xs.view === "experiments" ? (p.get("filter") || "").trim() : xs.query;
  xs.a = GROUP.test(p.get("a") || "") ? p.get("a") : "";
  xs.b = GROUP.test(p.get("b") || "") ? p.get("b") : "";
  xs.cmp = FIGURE.test(p.get("cmp") || "") ? p.get("cmp") : "best.eval";
  xs.diff = (p.get("d") || "").split(",").filter((x) => ID.test(x));
  xs.logs = new Set((p.get("log") || "").split(",").filter(Boolean));
  xs.every = Math.max(0, Math.floor(Number(p.get("every")) || 0));
  xs.all = p.get("all") === "1";
}

function writeHash() {
  const p = new URLSearchParams();
  if (xs.view === "experiments") {
    p.set("view", "experiments");
    if (xs.query) p.set("filter", xs.query);
  } else {
    p.set("x", xs.id);
    if (xs.a) p.set("a", xs.a);
    if (xs.b) p.set("b", xs.b);
    if (xs.cmp !== "best.eval") p.set("cmp", xs.cmp);
    if (xs.diff.length) p.set("d", xs.diff.join(","));
    if (xs.logs.size) p.set("log", [...xs.logs].join(","));
    if (xs.every) p.set("every", String(xs.every));
    if (xs.all) p.set("all", "1");
  }
  const h = p.toString().replace(/%2C/g, ",");
  if (location.hash.slice(1) !== h) history.replaceState(null, "", `#${h}`);
}

// ---- Showing and polling.
// Shows `view` ("experiments", "experiment") from the URL's hash, or hides both (null).
export function showExperiments(view) {
  const before = xs.id;
  xs.view = view;
  $("#experiments").hidden = view !== "experiments";
  $("#experiment").hidden = view !== "experiment";
  clearTimeout(xs.timer);
  xs.gen++;
  if (!view) return;
  readHash();
  if (view === "experiment" && xs.id !== before) resetExperiment();
  $("#xquery").value = xs.query;
  $("#x-all").checked = xs.all;
  $("#x-every").value = xs.every ? String(xs.every) : "";
  xs.statsKey = "";  // the choices may have changed: ask again
  xs.compareKey = "";
  tick(xs.gen);
}

function resetExperiment() {
  xs.experiment = null;
  xs.error = "";
  xs.sessions = new Map();
  xs.stats = null;
  xs.comparison = null;
  xs.compareError = "";
  xs.polls = 0;
  xs.lastState = "";
  for (const c of xs.charts.values()) c.plot?.destroy();
  xs.charts.clear();
  xs.chartKeys = "";
  $("#x-charts").innerHTML = "";
  for (const sel of ["#x-groups tbody", "#x-best tbody", "#x-compare tbody", "#x-diff thead", "#x-diff tbody"]) $(sel).innerHTML = "";
  $("#x-groups tbody").dataset.html = "";
  $("#x-title").textContent = xs.id;
  $("#x-about").innerHTML = "";
}

async function tick(gen) {
  try {
    if (xs.view === "experiments") await loadList(gen);
    else if (xs.view === "experiment") await loadExperiment(gen);
  } catch (e) {
    if (gen !== xs.gen) return;
    if (e instanceof ApiError && e.status === 401) {
      hooks.setConn(false, "a token is needed");
      hooks.askToken(e.message);
    } else if (e instanceof ApiError && e.status > 0) {
      hooks.setConn(true, "alignd: answered with an error");
    } else {
      hooks.setConn(false, `alignd unreachable (${e.message}); retrying`);
    }
  }
  if (gen !== xs.gen) return;
  xs.timer = setTimeout(() => tick(gen), POLL_MS);
}

// ---- The list.
async function loadList(gen) {
  const query = xs.query;
  if (xs.queryError?.query === query) return;
  try {
    const { experiments = [] } = await call("GET", query ? `/api/experiments?${new URLSearchParams({ filter: query })}` : "/api/experiments");
    if (gen !== xs.gen) return;
    xs.list = experiments;
    $("#xlist-error").textContent = "";
    hooks.setConn(true, `alignd: ${experiments.length === 1 ? "1 experiment" : `${experiments.length} experiments`}${query ? " match the filter" : ""}`);
  } catch (e) {
    if (gen !== xs.gen) return;
    if (!(e instanceof ApiError) || e.status === 0 || e.status === 401 || !query) throw e;
    // A filter alignd (or the dashboard) refused: its words, and an empty list; not asked again.
    xs.queryError = { query };
    xs.list = [];
    $("#xlist-error").textContent = `${e.code ? `${e.code}: ` : ""}${e.message}`;
  }
  renderList();
}

function renderList() {
  const rows = [...xs.list].sort((a, b) => (b.create_time || "").localeCompare(a.create_time || "") || a.name.localeCompare(b.name));
  $("#xempty").hidden = rows.length > 0 || xs.query !== "";
  $("#experiments-table tbody").innerHTML = rows.map((e) => {
    const id = experimentId(e);
    const state = shortExperiment(e.state);
    const total = num(e.sessions_total), ended = num(e.sessions_ended);
    const pct = total > 0 ? (100 * ended) / total : 0;
    const rules = e.variants?.length
      ? e.variants.map((v) => v.name || ruleOf(v.rule)).join(", ")
      : (e.rules?.length ? e.rules : [e.config?.feedback?.rule]).map(ruleOf).join(", ");
    const seeds = e.seeds?.length ? e.seeds.join(", ") : "config's";
    const grid = (e.grid || []).map((a) => `${a.field} × ${(a.values || []).length}`).join(", ") || "—";
    const labels = Object.entries(e.labels || {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `<span class="label">${escapeHtml(k)}=${escapeHtml(v)}</span>`).join("");
    return `<tr data-x="${id}"><td><a href="#x=${id}">${escapeHtml(e.display_name || id)}</a> <span class="hint">${id}</span></td>` +
      `<td><span class="state ${stateClass(state)}">${escapeHtml(state)}</span></td>` +
      `<td><span class="bar"><i style="width:${pct.toFixed(1)}%"></i></span>${ended}/${total}</td>` +
      `<td class="num">${(e.groups || []).length}</td><td>${escapeHtml(rules)}</td><td>${escapeHtml(seeds)}</td><td>${escapeHtml(grid)}</td>` +
      `<td>${escapeHtml((e.create_time || "").replace("T", " ").replace(/\.\d+Z$|Z$/, ""))}</td><td>${labels}</td></tr>`;
  }).join("");
}

// ---- One experiment.
async function loadExperiment(gen) {
  const id = xs.id;
  if (!id) {
    xs.error = "no experiment id in the URL (#x=ID)";
    renderExperiment();
    return;
  }
  let e;
  try {
    e = await call("GET", `/api/experiments/${id}`);
  } catch (err) {
    if (gen !== xs.gen) return;
    if (err instanceof ApiError && (err.status === 404 || err.status === 400 || err.status === 403)) {
      xs.error = `${err.code ? `${err.code}: ` : ""}${err.message}`;
      xs.experiment = null;
      renderExperiment();
      hooks.setConn(true, "alignd: no such experiment");
      return;
    }
    throw err;
  }
  if (gen !== xs.gen) return;
  xs.experiment = e;
  xs.error = "";
  // Its sessions, for their states and configurations: the list's filter on the experiment.
  const filter = `experiment = "${e.name}"`;
  const { sessions = [] } = await call("GET", `/api/sessions?${new URLSearchParams({ filter })}`);
  if (gen !== xs.gen) return;
  xs.sessions = new Map(sessions.map((s) => [sessionId(s.name), s]));
  const groups = (e.groups || []).map((g) => g.id);
  if (!groups.includes(xs.a)) xs.a = groups[0] || "";
  if (!groups.includes(xs.b)) xs.b = groups.find((g) => g !== xs.a) || "";
  writeHash();
  // The statistics: on opening, when a choice changed, every few polls while it runs, and
  // once more when it has ended.
  const state = shortExperiment(e.state);
  const key = JSON.stringify([xs.every]);
  const ended = state !== "RUNNING";
  const refresh = key !== xs.statsKey || (!ended && xs.polls % STATS_POLLS === 0) || (ended && xs.lastState === "RUNNING");
  xs.polls++;
  xs.lastState = state;
  if (refresh) {
    const q = xs.every ? `?${new URLSearchParams({ every_steps: String(xs.every) })}` : "";
    const stats = await call("GET", `/api/experiments/${id}/statistics${q}`);
    if (gen !== xs.gen) return;
    xs.stats = stats;
    xs.statsKey = key;
    xs.compareKey = "";  // the logs moved on: the comparison too
  }
  await loadComparison(gen);
  if (gen !== xs.gen) return;
  renderExperiment();
  hooks.setConn(true, `alignd: ${e.name}, ${num(e.sessions_ended)}/${num(e.sessions_total)} sessions ended`);
}

async function loadComparison(gen) {
  const id = xs.id;
  if (!xs.a || !xs.b || xs.a === xs.b) {
    xs.comparison = null;
    xs.compareError = xs.a && xs.a === xs.b ? "pick two different groups" : "";
    xs.compareKey = "";
    return;
  }
  const key = JSON.stringify([id, xs.a, xs.b, xs.cmp]);
  if (key === xs.compareKey) return;
  try {
    const c = await call("GET", `/api/experiments/${id}/compare?${new URLSearchParams({ a: xs.a, b: xs.b, figure: xs.cmp })}`);
    if (gen !== xs.gen) return;
    xs.comparison = { a: xs.a, b: xs.b, figure: xs.cmp, ...c };
    xs.compareError = "";
  } catch (e) {
    if (gen !== xs.gen) return;
    if (!(e instanceof ApiError) || e.status === 0 || e.status === 401) throw e;
    xs.comparison = null;
    xs.compareError = `${e.code ? `${e.code}: ` : ""}${e.message}`;
  }
  xs.compareKey = key;
}

function renderExperiment() {
  $("#x-error").textContent = xs.error;
  const e = xs.experiment;
  if (!e) {
    $("#x-cancel").disabled = true;
    return;
  }
  const id = experimentId(e);
  const state = shortExperiment(e.state);
  $("#x-title").textContent = e.display_name ? `${e.display_name} (${id})` : id;
  const st = $("#x-state");
  st.className = `state ${stateClass(state)}`;
  st.textContent = state;
  $("#x-progress").textContent = `${num(e.sessions_ended)}/${num(e.sessions_total)} sessions ended`;
  $("#x-cancel").disabled = state !== "RUNNING";
  $("#x-sessions-link").href = `#${new URLSearchParams({ filter: `experiment = "${e.name}"` })}`;
  renderAbout(e);
  renderGroups(e);
  renderBest();
  renderComparison(e);
  renderDiff();
  renderCharts();
}

function renderAbout(e) {
  const row = (k, title, html) => `<dt>${title}</dt><dd data-k="${k}">${html}</dd>`;
  const t = (v) => (v ? escapeHtml(v) : "—");
  let h = row("data", "Data", `${t(e.train_dataset)}${e.eval_dataset ? ` <span class="hint">evaluated on</span> ${t(e.eval_dataset)}` : ""}`);
  h += row("rules", "Rules", t((e.rules?.length ? e.rules : [e.config?.feedback?.rule]).map(ruleOf).join(", ")));
  h += row("seeds", "Seeds", t(e.seeds?.length ? e.seeds.join(", ") : `${e.config?.seed ?? "default"} (the config's)`));
  h += row("grid", "Grid", (e.grid || []).length ? e.grid.map((a) => `${escapeHtml(a.field)}: ${escapeHtml((a.values || []).map(valueText).join(", "))}`).join("<br>") : "—");
  if (e.early_stopping && Object.keys(e.early_stopping).length) h += row("stopping", "Early stopping", `<code>${escapeHtml(JSON.stringify(e.early_stopping))}</code>`);
  const labels = Object.entries(e.labels || {}).sort(([a], [b]) => (a < b ? -1 : 1));
  if (labels.length) h += row("labels", "Labels", labels.map(([k, v]) => `<span class="label">${escapeHtml(k)}=${escapeHtml(v)}</span>`).join(""));
  h += row("created", "Created", `${t(e.create_time)}${e.end_time ? ` <span class="hint">ended</span> ${t(e.end_time)}` : ""}${e.owner ? ` <span class="hint">by</span> ${t(e.owner)}` : ""}`);
  if ($("#x-about").innerHTML !== h) $("#x-about").innerHTML = h;
}

function renderGroups(e) {
  const rows = (e.groups || []).map((g, i) => {
    const chips = (g.sessions || []).map((name) => {
      const sid = sessionId(name);
      const s = xs.sessions.get(sid);
      const state = s ? short(s.state) : "—";
      const why = s?.stop_reason || s?.failure_reason || "";
      return `<span class="xsession"><input type="checkbox" data-diff="${sid}" aria-label="compare ${sid}'s configuration" ${xs.diff.includes(sid) ? "checked" : ""}>` +
        `<a href="#s=${sid}" title="${escapeHtml(name)}">${sid}</a> <span class="state ${stateClass(state)}" title="${escapeHtml(why)}">${escapeHtml(state)}</span></span>`;
    }).join("");
    return `<tr data-group="${escapeHtml(g.id)}"><td><i class="swatch" style="background:${palette[i % palette.length]}"></i>${escapeHtml(g.id)}</td>` +
      `<td>${escapeHtml(ruleOf(g.rule) + (g.variant ? ` (${g.variant})` : ""))}</td><td>${escapeHtml(pointText(g.point) || "—")}</td><td class="num">${(g.sessions || []).length}</td><td>${chips}</td></tr>`;
  }).join("");
  const body = $("#x-groups tbody");
  if (body.dataset.html !== rows) {  // the boxes keep their focus unless something changed
    body.dataset.html = rows;
    body.innerHTML = rows;
  }
}

function renderBest() {
  const groups = xs.stats?.groups || [];
  $("#x-best tbody").innerHTML = groups.map((g) => {
    const b = g.best || {};
    const v = b.validation || {}, at = b.eval_at_best || {};
    const steps = (b.best_steps || []).map(Number).map((x) => (x < 0 ? "—" : String(x))).join(", ");
    return `<tr data-group="${escapeHtml(g.id)}"><td>${escapeHtml(g.id)}</td>${cell("n", num(v.n), String(num(v.n)))}` +
      `${cell("validation", num(v.mean), meanSd(v))}<td class="num" data-k="validation_ci">${interval(num(v.ci_low), num(v.ci_high))}</td>` +
      `<td data-k="steps">${steps || "—"}</td>` +
      `${cell("eval_at_best", num(at.mean), meanSd(at))}<td class="num" data-k="eval_ci">${interval(num(at.ci_low), num(at.ci_high))}</td></tr>`;
  }).join("");
}

// The figures the statistics hold, in alignd's order.
function figures() {
  const out = [];
  for (const g of xs.stats?.groups || []) for (const s of g.series || []) if (!out.includes(s.figure)) out.push(s.figure);
  return out;
}

function renderComparison(e) {
  const groups = e.groups || [];
  const opts = (sel) => groups.map((g) => `<option value="${escapeHtml(g.id)}" ${g.id === sel ? "selected" : ""}>${escapeHtml(groupLabel(g))}</option>`).join("");
  const setOptions = (el, html, value) => { if (el.dataset.html !== html) { el.dataset.html = html; el.innerHTML = html; } el.value = value; };
  setOptions($("#x-a"), opts(xs.a), xs.a);
  setOptions($("#x-b"), opts(xs.b), xs.b);
  const figs = ["best.eval", "best.validation", ...figures().filter((f) => !f.startsWith("alignment."))];
  if (!figs.includes(xs.cmp)) figs.push(xs.cmp);
  const title = (f) => (f === "best.eval" ? "evaluation at best validation" : f === "best.validation" ? "best validation" : `${f} at the last step`);
  setOptions($("#x-figure"), figs.map((f) => `<option value="${escapeHtml(f)}">${escapeHtml(title(f))}</option>`).join(""), xs.cmp);
  $("#x-compare-error").textContent = groups.length < 2 ? "one group: nothing to compare" : xs.compareError;
  const c = xs.comparison;
  $("#x-compare tbody").innerHTML = !c ? "" : `<tr><td>${escapeHtml(c.a)}</td><td>${escapeHtml(c.b)}</td><td>${escapeHtml(c.figure)}</td>` +
    `${cell("n", num(c.n), String(num(c.n)))}${cell("diff", num(c.diff))}<td class="num" data-k="ci">${interval(num(c.ci_low), num(c.ci_high))}</td>` +
    `${cell("t", num(c.t))}${cell("p_t", num(c.p_t))}${cell("p_w", num(c.p_w))}</tr>`;
}

// A session's fields as path -> JSON text: its data sets, name, labels and configuration.
function flatten(v, path, out) {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const keys = Object.keys(v);
    if (!keys.length && path) out[path] = "{}";
    for (const k of keys) flatten(v[k], path ? `${path}.${k}` : k, out);
  } else if (path) {
    out[path] = JSON.stringify(v);
  }
  return out;
}

function renderDiff() {
  const ids = xs.diff.filter((id) => xs.sessions.has(id));
  const hint = $("#x-diff-hint");
  if (ids.length < 2) {
    hint.textContent = "(tick two or more sessions in the groups above)";
    $("#x-diff thead").innerHTML = "";
    $("#x-diff tbody").innerHTML = "";
    xs.diffRows = [];
    return;
  }
  const flat = ids.map((id) => {
    const s = xs.sessions.get(id);
    return flatten({ display_name: s.display_name, train_dataset: s.train_dataset, eval_dataset: s.eval_dataset, labels: s.labels, config: s.config }, "", {});
  });
  const paths = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  const differ = paths.filter((p) => new Set(flat.map((f) => f[p])).size > 1);
  xs.diffRows = differ.map((p) => ({ field: p, values: flat.map((f) => (f[p] === undefined ? null : JSON.parse(f[p]))) }));
  hint.textContent = `(${differ.length} of ${paths.length} fields differ between ${ids.length} sessions; unset: the default)`;
  $("#x-diff thead").innerHTML = `<tr><th>Field</th>${ids.map((id) => `<th data-session="${id}"><a href="#s=${id}">${id}</a> <span class="hint">${escapeHtml(xs.sessions.get(id).experiment_group || "")}</span></th>`).join("")}</tr>`;
  $("#x-diff tbody").innerHTML = differ.map((p) => `<tr data-field="${escapeHtml(p)}"><td>${escapeHtml(p)}</td>${flat.map((f) =>
    (f[p] === undefined ? '<td class="unset">unset</td>' : `<td>${escapeHtml(f[p])}</td>`)).join("")}</tr>`).join("");
}

// Charted: the training, validation and evaluation figures, and of the alignment figures the
// update angle and the W–B angle (all of them with "every figure").
const charted = (f) => xs.all || !f.startsWith("alignment.") || /\.(update_angle_mean|weight_angle)$/.test(f);

function figureTitle(f) {
  const [set, ...rest] = f.split(".");
  const what = rest.join(".");
  if (set === "alignment") return `Hidden layer ${rest[0].slice(1)}: ${rest.slice(1).join(".").replace(/_/g, " ")}`;
  return `${{ train: "Training batch", validation: "Validation", eval: "Evaluation" }[set] || set}: ${what.replace(/_/g, " ")}`;
}

function renderCharts() {
  const groups = xs.stats?.groups || [];
  const egroups = xs.experiment?.groups || [];
  const series = new Map();  // figure -> chart series
  for (const f of figures().filter(charted)) {
    const list = [];
    groups.forEach((g) => {
      const s = (g.series || []).find((x) => x.figure === f);
      const i = groupIndex(g.id);
      if (!s || !(s.steps || []).length) return;
      const vals = s.values || [];
      const y = vals.map((v) => num(v.mean));
      if (!y.some((v) => v != null)) return;
      const eg = egroups[i];
      list.push({ label: eg ? groupLabel(eg) : g.id, color: palette[(i < 0 ? 0 : i) % palette.length], x: (s.steps || []).map(Number), y,
        lo: vals.map((v) => num(v.ci_low)), hi: vals.map((v) => num(v.ci_high)), bandNames: ["95 % CI high", "95 % CI low"] });
    });
    if (list.length) series.set(f, list);
  }
  const keys = [...series.keys()].join(",");
  const box = $("#x-charts");
  if (keys !== xs.chartKeys) {
    for (const c of xs.charts.values()) c.plot?.destroy();
    xs.charts.clear();
    box.innerHTML = "";
    for (const f of series.keys()) {
      xs.charts.set(f, new Chart(box, f, figureTitle(f), { log: xs.logs.has(f),
        onLog: (k, on) => { if (on) xs.logs.add(k); else xs.logs.delete(k); writeHash(); } }));
    }
    xs.chartKeys = keys;
  }
  for (const [f, list] of series) {
    const c = xs.charts.get(f);
    c.set(list);
    c.render();
  }
}

// ---- Wiring.
export function initExperiments(h) {
  hooks = { ...hooks, ...h };
  window.aligndDashboard.experiment = () => ({
    id: xs.id, experiment: xs.experiment, error: xs.error, stats: xs.stats, comparison: xs.comparison,
    diff: xs.diffRows.map((r) => ({ ...r })), charts: [...xs.charts.keys()],
  });
  window.aligndDashboard.experimentSeries = (figure) => xs.charts.get(figure)?.series.map(({ label, x, y, lo, hi }) => ({ label, x, y, lo, hi })) ?? [];

  const xq = $("#xquery");
  xq.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    xs.query = xq.value.trim();
    xs.queryError = null;
    $("#xlist-error").textContent = "";
    writeHash();
    clearTimeout(xs.timer);
    tick(++xs.gen);
  });
  $("#experiments-table tbody").addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr[data-x]");
    if (tr && !ev.target.closest("a")) location.hash = `x=${tr.dataset.x}`;
  });
  // A change of choice: into the URL, then the page again at once.
  const again = () => { writeHash(); clearTimeout(xs.timer); const gen = ++xs.gen; loadComparison(gen).then(() => { if (gen === xs.gen) renderExperiment(); }, () => {}).finally(() => { if (gen === xs.gen) xs.timer = setTimeout(() => tick(gen), POLL_MS); }); };
  $("#x-a").addEventListener("change", (ev) => { xs.a = ev.target.value; again(); });
  $("#x-b").addEventListener("change", (ev) => { xs.b = ev.target.value; again(); });
  $("#x-figure").addEventListener("change", (ev) => { xs.cmp = ev.target.value; again(); });
  $("#x-groups tbody").addEventListener("change", (ev) => {
    const id = ev.target.dataset?.diff;
    if (!id) return;
    xs.diff = ev.target.checked ? [...new Set([...xs.diff, id])] : xs.diff.filter((x) => x !== id);
    writeHash();
    renderDiff();
  });
  $("#x-all").addEventListener("change", (ev) => { xs.all = ev.target.checked; writeHash(); renderCharts(); });
  $("#x-every").addEventListener("change", (ev) => {
    xs.every = Math.max(0, Math.floor(Number(ev.target.value) || 0));
    writeHash();
    clearTimeout(xs.timer);
    tick(++xs.gen);
  });
  $("#x-cancel").addEventListener("click", async () => {
    const e = xs.experiment;
    if (!e) return;
    $("#x-error").textContent = "";
    try {
      xs.experiment = await call("POST", `/api/experiments/${experimentId(e)}:cancel`);
      renderExperiment();
    } catch (err) {
      $("#x-error").textContent = `${err.code ? `${err.code}: ` : ""}${err.message}`;
    }
    clearTimeout(xs.timer);
    tick(++xs.gen);
  });
}
