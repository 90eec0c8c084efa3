// alignd's web dashboard: the session list (live), each selected session's curves (history
// downsampled through ListMetrics' max_points, then live points appended from the event
// stream), overlays, seed groups as mean ± SD bands, actions, a create form, snapshots as
// .npy, exports (the metric log, the session, its weights) as downloads. The list is
// alignd's ListSessions under the filter typed in #query (its expression, applied with Enter,
// sent with every refresh), narrowed in the page by the quick search (#filter). The URL's
// hash holds the selection and the filter, so a link shows what its sender saw.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { call, followAll, download, token, ApiError } from "./api.js";
import { Chart, palette } from "./charts.js";
import { num, short, stateClass, fmt, escapeHtml } from "./util.js";
import { initExperiments, showExperiments } from "./experiments.js";

const HISTORY_POINTS = 2000;   // step events fetched per session on opening (evaluations all)
const MAX_LIVE_POINTS = 20000; // beyond this a session's arrays are thinned by half
const POLL_MS = 1500;

const $ = (sel) => document.querySelector(sel);
// The rules come from alignd (ListRules, /api/rules): {rule: "RULE_FEEDBACK_ALIGNMENT", name: "fa",
// title, trains_conv, ...}. Until they have arrived a rule is shown by its enum name.
const rules = new Map();  // enum name -> RuleInfo
const ruleName = (cfg) => {
  const r = cfg?.feedback?.rule || "RULE_FEEDBACK_ALIGNMENT";
  return rules.get(r)?.name || r.replace("RULE_", "").toLowerCase();
};
// A network in alignctl's --layers grammar ("conv:6x5x5,pool:2,dense:10"), or its sizes.
const layerText = (l) => {
  const kind = l.kind || "LAYER_KIND_DENSE";
  const n = (v) => Number(v || 0);
  if (kind === "LAYER_KIND_CONV") {
    return `conv:${n(l.units)}x${n(l.kernel_h)}x${n(l.kernel_w) || n(l.kernel_h)}${n(l.stride) > 1 ? `:s${n(l.stride)}` : ""}${n(l.padding) ? `:p${n(l.padding)}` : ""}`;
  }
  if (kind === "LAYER_KIND_MAX_POOL" || kind === "LAYER_KIND_AVG_POOL") {
    const s = n(l.stride) && n(l.stride) !== n(l.kernel_h) ? `:s${n(l.stride)}` : "";
    return `${kind === "LAYER_KIND_MAX_POOL" ? "pool" : "avgpool"}:${n(l.kernel_h)}${s}`;
  }
  if (kind === "LAYER_KIND_FLATTEN") return "flatten";
  return `dense:${n(l.units)}`;
};
const netText = (cfg) => (cfg?.network?.layers?.length ? cfg.network.layers.map(layerText).join(",") : (cfg?.network?.sizes || []).join("-"));
const idOf = (s) => s.name.split("/")[1];
const live = (state) => state === "RUNNING" || state === "QUEUED";
// A session's labels as [key, value] pairs, by key.
const labelPairs = (s) => Object.entries(s?.labels || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
const labelsHtml = (pairs) => pairs.map(([k, v]) => `<span class="label">${escapeHtml(k)}=${escapeHtml(v)}</span>`).join("");
const SHA_SHOWN = 12;  // hex digits of a data set's SHA-256 shown (the whole in its title)

// ---- One session's metric log as columns.
class Track {
  constructor(id) {
    this.id = id;
    this.session = null;
    this.seqs = [];
    this.x = []; this.loss = []; this.acc = []; this.nse = [];
    this.layers = [];  // [{mean, sd, pos, wb}], aligned with x
    this.ex = []; this.eerr = []; this.ense = [];
    this.next = 1;
    this.historyEnd = 0;  // the last seq of the history loaded on opening (sampled); live after it
    this.loaded = false;
  }

  add(e) {
    const seq = Number(e.seq);
    if (seq < this.next) return false;  // never a point twice
    this.next = seq + 1;
    this.seqs.push(seq);
    if (e.step) {
      const s = e.step;
      this.x.push(num(s.step));
      this.loss.push(num(s.loss));
      this.acc.push(num(s.accuracy));
      this.nse.push(num(s.nse));
      const al = s.alignment || [];
      for (let l = 0; l < al.length; l++) {
        if (!this.layers[l]) {
          const pad = () => new Array(this.x.length - 1).fill(null);
          this.layers[l] = { mean: pad(), sd: pad(), pos: pad(), wb: pad() };
        }
        const a = al[l], L = this.layers[l];
        L.mean.push(num(a.update_angle_mean)); L.sd.push(num(a.update_angle_sd));
        L.pos.push(num(a.positive_fraction)); L.wb.push(num(a.weight_angle));
      }
      for (let l = al.length; l < this.layers.length; l++) {
        const L = this.layers[l];
        L.mean.push(null); L.sd.push(null); L.pos.push(null); L.wb.push(null);
      }
    } else if (e.eval) {
      const v = e.eval;
      this.ex.push(num(v.step));
      this.eerr.push(num(v.error_rate));
      this.ense.push(num(v.nse));
    }
    return true;
  }

  // Keeps every other step point once the arrays grow past MAX_LIVE_POINTS (the first and
  // the newest stay), so a long live session stays smooth.
  thin() {
    if (this.x.length <= MAX_LIVE_POINTS) return;
    const keep = (a) => a.filter((_, i) => i % 2 === 0 || i === a.length - 1);
    for (const k of ["x", "loss", "acc", "nse"]) this[k] = keep(this[k]);
    for (const L of this.layers) for (const k of ["mean", "sd", "pos", "wb"]) L[k] = keep(L[k]);
  }

  classification() {
    return this.acc.some((v) => v != null) || this.eerr.some((v) => v != null && v !== 0);
  }
}

// ---- State: the sessions known, the tracks of the selected ones, the URL.
const app = {
  sessions: new Map(),   // id -> session JSON (with its newest figures: latest_step, latest_eval)
  rates: new Map(),      // id -> {step, t, rate}
  tracks: new Map(),     // id -> Track (selected sessions only)
  selected: [],          // ids, in the order chosen (colours follow it)
  group: false,
  logs: new Set(),
  filter: "",            // the quick search, in the page (lower case)
  query: "",             // alignd's filter (ListSessions' filter), as applied; in the URL
  queryError: null,      // {query, message}: alignd refused this filter (not asked again)
  matched: null,         // ids the last listing under a filter returned (null: no filter)
  charts: new Map(),
  dirty: false,
};
window.aligndDashboard = {  // for tests and the curious: what the page holds
  points: (id) => app.tracks.get(id)?.x.length ?? 0,
  seqs: (id) => app.tracks.get(id)?.seqs.slice() ?? [],
  historyEnd: (id) => app.tracks.get(id)?.historyEnd ?? 0,
  selected: () => app.selected.slice(),
  chartPoints: () => Object.fromEntries([...app.charts].map(([k, c]) => [k, c.points()])),
  series: (key) => app.charts.get(key)?.series.map(({ label, x, y, lo, hi }) => ({ label, x, y, lo, hi })) ?? [],
  column: (id, name) => app.tracks.get(id)?.[name]?.slice() ?? [],
  stateName: short,  // a session state's name as the page shows it
};

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  app.selected = (p.get("s") || "").split(",").filter((x) => /^[a-z0-9][a-z0-9-]{0,62}$/.test(x));
  app.group = p.get("group") === "1";
  app.logs = new Set((p.get("log") || "").split(",").filter(Boolean));
  app.query = (p.get("filter") || "").trim();
  $("#group").checked = app.group;
  const q = $("#query");
  if (q.value.trim() !== app.query) q.value = app.query;
  q.classList.remove("pending");
}

function writeHash() {
  if (view !== "sessions") return;  // the experiment views keep their own
  const p = new URLSearchParams();
  if (app.selected.length) p.set("s", app.selected.join(","));
  if (app.group) p.set("group", "1");
  if (app.logs.size) p.set("log", [...app.logs].join(","));
  if (app.query) p.set("filter", app.query);
  const h = p.toString().replace(/%2C/g, ",");
  if (location.hash.slice(1) !== h) history.replaceState(null, "", h ? `#${h}` : location.pathname + location.search);
  $("#nav-sessions").href = `#${h}`;  // back to this view from the experiments
}

// ---- Views: the sessions (list and detail), the experiments (list), one experiment's page;
// which one the URL's hash says (#x=ID: an experiment; #view=experiments: their list).
let view = "sessions";
function viewOf() {
  const p = new URLSearchParams(location.hash.slice(1));
  return p.has("x") ? "experiment" : p.get("view") === "experiments" ? "experiments" : "sessions";
}

// Shows the view the hash names; returns the one shown before.
function route() {
  const was = view;
  view = viewOf();
  $("#list").hidden = $("#detail").hidden = view !== "sessions";
  $("#nav-sessions").classList.toggle("active", view === "sessions");
  $("#nav-experiments").classList.toggle("active", view !== "sessions");
  showExperiments(view === "sessions" ? null : view);
  return was;
}

function setConn(ok, text) {
  const el = $("#conn");
  el.className = `conn ${ok ? "ok" : "bad"}`;
  el.textContent = text;
}

function askToken(why) {
  const d = $("#token-dialog");
  if (d.open) return;
  $("#token-why").textContent = why ? `alignd says: ${why}` : "";
  $("#token-input").value = token.get();
  d.showModal();
}

// ---- The session list.
// The listing under the filter applied now (alignd's ListSessions, every page, the filter
// with each); a refused filter is shown in #list-error and not asked again until another is
// applied (or the same one with Enter).
async function poll() {
  if (view !== "sessions") return;  // the experiment views poll what they show
  const query = app.query;
  if (app.queryError?.query === query) {
    renderList();
    renderActions();
    return;
  }
  try {
    const { sessions } = await call("GET", query ? `/api/sessions?${new URLSearchParams({ filter: query })}` : "/api/sessions");
    if (query !== app.query) return;  // another filter was applied meanwhile: its listing follows
    const now = performance.now();
    const seen = new Set();
    for (const s of sessions || []) {
      const id = idOf(s);
      seen.add(id);
      const step = num(s.step);
      // Steps/s from successive polls while it runs (smoothed); from scratch when it starts.
      const r = app.rates.get(id);
      const running = short(s.state) === "RUNNING";
      if (!running || !r || !r.running) app.rates.set(id, { step, t: now, rate: null, running });
      else if (now - r.t > 500 && step !== r.step) {
        const inst = ((step - r.step) * 1000) / (now - r.t);
        app.rates.set(id, { step, t: now, rate: r.rate == null ? inst : 0.5 * r.rate + 0.5 * inst, running });
      }
      app.sessions.set(id, s);
      const t = app.tracks.get(id);
      if (t) t.session = { ...s };
    }
    for (const id of [...app.sessions.keys()]) if (!seen.has(id)) app.sessions.delete(id);
    app.matched = query ? seen : null;
    $("#list-error").textContent = "";
    // A selected session the filter leaves out is not in the listing: asked for alone while
    // no stream follows it, so its state (and whether to follow it) stays current.
    if (query) {
      await Promise.all(app.selected.filter((id) => !seen.has(id)).map(async (id) => {
        const t = app.tracks.get(id);
        if (!t?.loaded || t.error || t.follow) return;
        try {
          const s = await call("GET", `/api/sessions/${id}`);
          if (app.tracks.get(id) === t) t.session = { ...s };
        } catch { /* kept as it was; the next poll asks again */ }
      }));
    }
    refreshLive();
    renderAbout();
    const n = sessions?.length ?? 0;
    setConn(true, query ? `alignd: ${n === 1 ? "1 session matches" : `${n} sessions match`} the filter` : `alignd: ${n} sessions`);
  } catch (e) {
    if (query !== app.query) return;
    if (e instanceof ApiError && e.status === 401) {
      setConn(false, "a token is needed");
      askToken(e.message);
    } else if (e instanceof ApiError && e.status === 400 && query) {
      // alignd (or the dashboard) cannot read it: its words, and an empty list.
      app.queryError = { query, message: e.message };
      app.matched = new Set();
      $("#list-error").textContent = `${e.code ? `${e.code}: ` : ""}${e.message}`;
      setConn(true, "alignd: the filter was refused");
    } else {
      setConn(false, `alignd unreachable (${e.message}); retrying`);
    }
  }
  renderList();
  renderActions();
}

function rowFor(s) {
  const id = idOf(s);
  const state = short(s.state);
  const step = num(s.step), total = num(s.total_steps);
  const cfg = s.config || {};
  const r = app.rates.get(id);
  const rate = state === "RUNNING" && r?.rate ? r.rate : null;
  const eta = rate ? (total - step) / rate : null;
  const last = s.latest_step;
  const ev = s.latest_eval || {};
  const acc = last ? num(last.accuracy) : null;
  const accNse = !last ? "—" : acc != null ? fmt(acc, 3) : `NSE ${fmt(num(last.nse), 3)}`;
  const evErr = s.latest_eval ? (num(ev.error_rate) != null && num(ev.accuracy) != null ? `${(100 * num(ev.error_rate)).toFixed(2)} %` : `NSE ${fmt(num(ev.nse), 3)}`) : "—";
  const pct = total > 0 ? (100 * step) / total : 0;
  const etaText = eta == null ? "—" : eta < 90 ? `${Math.ceil(eta)} s` : eta < 5400 ? `${Math.round(eta / 60)} min` : `${(eta / 3600).toFixed(1)} h`;
  const labels = labelPairs(s);
  return { id, state, experiment: s.experiment || "", group: s.experiment_group || "", labels: labels.map(([k, v]) => `${k}=${v}`).join(" "), cells: [
    s.display_name ? `${s.display_name}` : id,
    state, ruleName(cfg), netText(cfg),
    { pct, text: `${step}/${total}` },
    rate ? rate.toFixed(rate < 10 ? 1 : 0) : "—", etaText,
    last ? fmt(num(last.loss)) : "—", accNse, evErr, labelsHtml(labels),
  ] };
}

// What each shown row was last rendered from (rows are reused across polls).
const shownCells = new WeakMap();

function renderList() {
  const body = $("#sessions tbody");
  // Under a filter, only what alignd's listing returned (a selected session opened on its
  // own is known to the page, not listed); newest first, as a run log reads; then the quick
  // search, in the page.
  const rows = [...app.sessions.values()]
    .filter((s) => !app.matched || app.matched.has(idOf(s)))
    .sort((a, b) => (b.create_time || "").localeCompare(a.create_time || "") || a.name.localeCompare(b.name))
    .map(rowFor)
    .filter((r) => !app.filter || `${r.cells.slice(0, 4).join(" ")} ${r.labels}`.toLowerCase().includes(app.filter) || r.id.includes(app.filter));
  $("#empty").hidden = app.sessions.size > 0 || app.query !== "";
  $("#no-match").hidden = !(app.query && app.matched && app.matched.size === 0 && !app.queryError);
  // Rows are updated in place, keyed by id: a row that is already shown stays the same element
  // (a click, a focus or a selection in it survives the next poll), only the cells that changed
  // are rewritten, and rows are moved only when the order changes.
  const keep = new Map([...body.children].map((tr) => [tr.dataset.id, tr]));
  rows.forEach((r, i) => {
    const sel = app.selected.indexOf(r.id);
    const color = sel >= 0 && !app.group ? palette[sel % palette.length] : "transparent";
    const [name, state, ru, sizes, prog, rate, eta, loss, acc, ev, labels] = r.cells;
    const cells = `<td><input type="checkbox" aria-label="overlay ${r.id}" ${sel >= 0 ? "checked" : ""}><i style="display:inline-block;width:10px;height:3px;margin-left:4px;background:${color}"></i></td>` +
      `<td title="sessions/${r.id}">${escapeHtml(name)}${experimentLink(r.experiment, r.group)}</td><td><span class="state ${stateClass(state)}">${escapeHtml(state)}</span></td>` +
      `<td>${ru}</td><td>${sizes}</td><td><span class="bar"><i style="width:${prog.pct.toFixed(1)}%"></i></span>${prog.text}</td>` +
      `<td class="num">${rate}</td><td class="num">${eta}</td><td class="num">${loss}</td><td class="num">${acc}</td><td class="num">${ev}</td>` +
      `<td title="${escapeHtml(r.labels)}">${labels}</td>`;
    let tr = keep.get(r.id);
    keep.delete(r.id);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.id = r.id;
    }
    const cls = sel >= 0 ? "selected" : "";
    if (tr.className !== cls) tr.className = cls;
    if (shownCells.get(tr) !== cells) {
      shownCells.set(tr, cells);
      const tmp = document.createElement("tbody");
      tmp.innerHTML = `<tr>${cells}</tr>`;
      const fresh = [...tmp.firstChild.children];
      if (tr.children.length !== fresh.length) tr.replaceChildren(...fresh);
      else fresh.forEach((td, k) => { if (tr.children[k].outerHTML !== td.outerHTML) tr.children[k].replaceWith(td); });
    }
    const box = tr.firstChild?.firstChild;  // a click flips .checked whatever the markup says
    if (box && box.checked !== sel >= 0) box.checked = sel >= 0;
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  for (const tr of keep.values()) tr.remove();
}

// A link to a session's experiment page ("" for a session made alone): its id and group.
function experimentLink(experiment, group) {
  const id = /^experiments\/([a-z0-9][a-z0-9-]{0,62})$/.exec(experiment || "")?.[1];
  if (!id) return "";
  return ` <a class="xlink" href="#x=${id}" title="${escapeHtml(experiment)}${group ? `, group ${escapeHtml(group)}` : ""}">${id}${group ? `/${escapeHtml(group)}` : ""}</a>`;
}

// ---- Selection and tracks.
function select(ids) {
  app.selected = [...new Set(ids)];
  writeHash();
  for (const [id, t] of app.tracks) {
    if (!app.selected.includes(id)) app.tracks.delete(id);
  }
  for (const id of app.selected) if (!app.tracks.has(id)) open(id);
  refreshLive();
  rebuildCharts();
  renderList();
  renderActions();
  renderOne();
}

async function open(id) {
  const t = new Track(id);
  app.tracks.set(id, t);
  try {
    t.session = await call("GET", `/api/sessions/${id}`);
    app.sessions.set(id, t.session);
    const { events } = await call("GET", `/api/sessions/${id}/metrics?max_points=${HISTORY_POINTS}`);
    if (app.tracks.get(id) !== t) return;
    for (const e of events || []) t.add(e);
    t.historyEnd = t.next - 1;
    t.loaded = true;
    rebuildCharts();
    refreshLive();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) askToken(e.message);
    t.error = e.message;
    t.loaded = true;
  }
  renderOne();
  markDirty();
}

// ---- Live: every selected session that is queued or running, followed on one connection
// (/api/events). Reopened, each session from its next seq, when the set changes.
const liveSet = { ids: "", ctrl: null };

function refreshLive() {
  // A session is followed from when it is seen queued or running until its stream says it
  // ended (the list may say so first: its last events are still on their way).
  for (const t of app.tracks.values()) if (t.loaded && !t.error && live(short(t.session?.state))) t.follow = true;
  const want = [...app.tracks.values()].filter((t) => t.follow && !t.error).map((t) => t.id).sort();
  const key = want.join(",");
  if (key === liveSet.ids && liveSet.ctrl) return;
  liveSet.ctrl?.abort();
  liveSet.ids = key;
  liveSet.ctrl = null;
  if (!want.length) return;
  const ctrl = new AbortController();
  liveSet.ctrl = ctrl;
  const next = new Map(want.map((id) => [id, app.tracks.get(id).next]));
  followAll(next, {
    signal: ctrl.signal,
    onEvent: (id, e) => {
      const t = app.tracks.get(id);
      if (t && t.add(e)) { t.thin(); markDirty(); }
    },
    onEnd: (id, s) => {
      const t = app.tracks.get(id);
      if (t) t.follow = false;
      if (t && s) t.session = { ...t.session, ...s };
      if (s) app.sessions.set(id, { ...app.sessions.get(id), ...s });
      renderAbout();
      renderActions();
    },
    onGone: (id, e) => { const t = app.tracks.get(id); if (t) { t.error = e.message; t.follow = false; } },
  }).finally(() => {
    if (liveSet.ctrl === ctrl) { liveSet.ctrl = null; liveSet.ids = ""; }
  });
}

// ---- Charts.
function seriesKey(s) {  // the configuration without its seeds: runs that differ only by seed
  const c = JSON.parse(JSON.stringify(s?.config || {}));
  delete c.seed;
  if (c.feedback) delete c.feedback.seed;
  return JSON.stringify([c, s?.train_dataset, s?.eval_dataset]);
}

function groups() {
  const out = new Map();
  for (const id of app.selected) {
    const t = app.tracks.get(id);
    if (!t) continue;
    const k = app.group ? seriesKey(t.session) : id;
    if (!out.has(k)) out.set(k, []);
    out.get(k).push(t);
  }
  return [...out.values()];
}

function labelOf(tracks) {
  const t = tracks[0];
  const s = t.session || {};
  if (!app.group) return s.display_name || t.id;
  // A group is named by its runs' name without the seed (alignctl's sweeps: "sweep fa lr=0.1
  // seed=3"), or by its rule and sizes.
  const named = (s.display_name || "").replace(/\s*seed=\d+\s*$/, "").replace(/^sweep /, "");
  const base = named || `${ruleName(s.config)} ${netText(s.config)}`;
  return `${base} (${tracks.length === 1 ? "1 run" : `${tracks.length} seeds`})`;
}

// Value of (xs, ys) at x: the last point at or before x (null past the end or before the start).
function at(xs, ys, x, hint) {
  let i = hint.i;
  while (i + 1 < xs.length && xs[i + 1] <= x) i++;
  hint.i = i;
  if (i < 0 || xs[i] > x || i === xs.length - 1 && xs[i] !== x && x > xs[xs.length - 1]) return null;
  return ys[i];
}

// One chart series per group: a single run as is (band from its own SD when given), or
// the mean over the group's runs with ± SD across them.
function seriesFor(tracks, color, pick, ownSd) {
  const label = labelOf(tracks);
  if (tracks.length === 1) {
    const p = pick(tracks[0]);
    if (!p) return null;
    const s = { label, color, x: p.x, y: p.y };
    if (ownSd && p.sd) {
      s.hi = p.y.map((v, i) => (v == null || p.sd[i] == null ? null : v + p.sd[i]));
      s.lo = p.y.map((v, i) => (v == null || p.sd[i] == null ? null : v - p.sd[i]));
    }
    return s;
  }
  const picks = tracks.map(pick).filter(Boolean);
  if (!picks.length) return null;
  const xs = picks.reduce((a, b) => (a.x.length >= b.x.length ? a : b)).x;
  const hints = picks.map(() => ({ i: -1 }));
  const y = [], lo = [], hi = [];
  for (const x of xs) {
    const vals = [];
    picks.forEach((p, k) => { const v = at(p.x, p.y, x, hints[k]); if (v != null) vals.push(v); });
    if (!vals.length) { y.push(null); lo.push(null); hi.push(null); continue; }
    const m = vals.reduce((a, b) => a + b, 0) / vals.length;
    const sd = vals.length > 1 ? Math.sqrt(vals.reduce((a, b) => a + (b - m) ** 2, 0) / (vals.length - 1)) : 0;
    y.push(m); lo.push(m - sd); hi.push(m + sd);
  }
  return { label, color, x: xs, y, lo, hi };
}

function chartSpecs() {
  const tracks = [...app.tracks.values()];
  const cls = tracks.some((t) => t.classification());
  const reg = tracks.some((t) => !t.classification() && t.x.length);
  const layers = Math.max(0, ...tracks.map((t) => t.layers.length));
  const specs = [
    { key: "loss", title: "Loss (training batch)", pick: (t) => ({ x: t.x, y: t.loss }) },
  ];
  if (cls) specs.push({ key: "accuracy", title: "Accuracy (training batch)", pick: (t) => (t.classification() ? { x: t.x, y: t.acc } : null) });
  if (reg) specs.push({ key: "nse", title: "NSE (training batch)", pick: (t) => (t.classification() ? null : { x: t.x, y: t.nse }) });
  if (tracks.some((t) => t.ex.length)) {
    specs.push({ key: "eval", title: cls && !reg ? "Evaluation error" : reg && !cls ? "Evaluation NSE" : "Evaluation error / NSE",
      pick: (t) => (t.ex.length ? { x: t.ex, y: t.classification() ? t.eerr : t.ense } : null) });
  }
  // Hidden layer l + 1 is the input of network layer l + 1 (0-based): with layers, its
  // title says which. A figure that is NaN throughout (a pooling layer has no W-B angle;
  // no signal reaches a layer nothing below learns from) gives no series, not a broken one.
  const some = (ys) => ys.some((v) => v != null);
  const cfg = tracks.find((t) => t.session?.config?.network?.layers?.length)?.session.config;
  const into = (l) => (cfg?.network?.layers?.[l + 1] ? ` (into ${layerText(cfg.network.layers[l + 1])})` : "");
  for (let l = 0; l < layers; l++) {
    const L = (t) => t.layers[l];
    specs.push({ key: `angle${l + 1}`, title: `Layer ${l + 1}${into(l)}: update angle to BP (°, mean ± SD)`, sd: true,
      pick: (t) => (L(t) && some(L(t).mean) ? { x: t.x, y: L(t).mean, sd: L(t).sd } : null) });
    specs.push({ key: `positive${l + 1}`, title: `Layer ${l + 1}${into(l)}: positive fraction (eᵀWBe > 0)`,
      pick: (t) => (L(t) && some(L(t).pos) ? { x: t.x, y: L(t).pos } : null) });
    specs.push({ key: `wb${l + 1}`, title: `Layer ${l + 1}${into(l)}: W–B angle (°)`,
      pick: (t) => (L(t) && L(t).wb.some((v) => v != null) ? { x: t.x, y: L(t).wb } : null) });
  }
  return specs;
}

function rebuildCharts() {
  const specs = chartSpecs();
  const keys = specs.map((s) => s.key).join(",");
  const box = $("#charts");
  $("#pick").hidden = app.selected.length > 0;
  if (keys !== app.chartKeys) {
    for (const c of app.charts.values()) c.plot?.destroy();
    app.charts.clear();
    box.innerHTML = "";
    for (const s of specs) {
      app.charts.set(s.key, new Chart(box, s.key, s.title, { log: app.logs.has(s.key),
        onLog: (k, on) => { if (on) app.logs.add(k); else app.logs.delete(k); writeHash(); } }));
    }
    app.chartKeys = keys;
  }
  app.specs = specs;
  renderChips();
  markDirty();
}

function renderCharts() {
  const gs = groups();
  for (const spec of app.specs || []) {
    const c = app.charts.get(spec.key);
    if (!c) continue;
    c.set(gs.map((g, i) => seriesFor(g, palette[i % palette.length], spec.pick, spec.sd)).filter(Boolean));
    c.render();
  }
}

function renderChips() {
  $("#chips").innerHTML = groups().map((g, i) => `<span class="chip"><i style="background:${palette[i % palette.length]}"></i>${escapeHtml(labelOf(g))}</span>`).join("");
}

let lastDraw = 0;
function markDirty() {
  if (app.dirty) return;
  app.dirty = true;
  const wait = Math.max(0, 100 - (performance.now() - lastDraw));  // at most ~10 redraws a second
  setTimeout(() => requestAnimationFrame(() => {
    app.dirty = false;
    lastDraw = performance.now();
    const layers = Math.max(0, ...[...app.tracks.values()].map((t) => t.layers.length));
    if (layers !== app.layerCount || !app.specs) { app.layerCount = layers; rebuildCharts(); app.dirty = false; }
    renderCharts();
  }), wait);
}

// ---- One selected session: actions, configuration, snapshots.
function renderActions() {
  const one = app.selected.length === 1 ? app.sessions.get(app.selected[0]) || app.tracks.get(app.selected[0])?.session : null;
  $("#one").hidden = !one;
  if (!one) return;
  const state = short(one.state);
  const can = { pause: live(state), resume: state === "PAUSED", cancel: live(state) || state === "PAUSED", delete: true };
  for (const b of document.querySelectorAll("#one [data-act]")) b.disabled = !can[b.dataset.act];
}

async function renderOne() {
  if (app.selected.length !== 1) return;
  const id = app.selected[0];
  const t = app.tracks.get(id);
  const s = t?.session;
  $("#config").textContent = s ? JSON.stringify({ name: s.name, display_name: s.display_name, train_dataset: s.train_dataset,
    eval_dataset: s.eval_dataset, owner: s.owner, snapshot_every: s.snapshot_every, config: s.config }, null, 2) : t?.error || "";
  renderAbout();
  renderActions();
}

// One selected session's labels and provenance (what it ran on: set when it starts running,
// so redrawn as the list brings it).
let shownAbout = "";
function renderAbout() {
  if (app.selected.length !== 1) return;
  const id = app.selected[0];
  const s = app.tracks.get(id)?.session || app.sessions.get(id);
  const e = (v) => (v === undefined || v === null || v === "" ? "—" : escapeHtml(v));
  const row = (k, title, html) => `<dt>${title}</dt><dd data-k="${k}">${html}</dd>`;
  let h = "";
  if (s) {
    const labels = labelPairs(s);
    h += row("labels", "Labels", labels.length ? labelsHtml(labels) : '<span class="hint">none</span>');
    if (s.experiment) h += row("experiment", "Experiment", experimentLink(s.experiment, s.experiment_group).trim());
    const why = s.stop_reason || s.failure_reason;
    if (why) h += row("reason", short(s.state) === "FAILED" ? "Failed" : "Ended", e(why));
    const p = s.provenance;
    if (!p) {
      h += row("provenance", "Provenance", '<span class="hint">recorded when it starts running</span>');
    } else {
      h += row("alignd", "alignd", `${e(p.alignd_version)}${p.revision ? ` <span class="hint">revision</span> <code>${e(p.revision)}</code>` : ""}`);
      h += row("compute", "Computed with", `${e(p.compute_library)}${p.isa ? ` <span class="hint">ISA</span> ${e(p.isa)}` : ""}`);
      h += row("cpu", "CPU", e(p.cpu_model));
      h += row("host", "Host", e(p.host));
      h += row("threads", "Threads", e(p.threads));
      const data = Object.entries(p.dataset_sha256 || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      h += row("data", "Data (SHA-256)", data.length
        ? data.map(([n, d]) => `${escapeHtml(n)}: <code title="${escapeHtml(d)}">${escapeHtml(d.slice(0, SHA_SHOWN))}</code>`).join("<br>")
        : "—");
    }
  }
  if (h !== shownAbout) {
    shownAbout = h;
    $("#about").innerHTML = h;
  }
}

async function loadSnapshots(id) {
  const box = $("#snapshots");
  box.textContent = "loading…";
  try {
    const { snapshots = [] } = await call("GET", `/api/sessions/${id}/snapshots`);
    const steps = ["latest", ...snapshots.map((s) => s.step)];
    box.innerHTML = `<table><tbody>${steps.map((st) => `<tr><td>${st === "latest" ? "latest weights" : `step ${st}`}</td>` +
      `<td><button data-export="safetensors" data-step="${st}">safetensors</button> <button data-export="onnx" data-step="${st}">ONNX</button></td>` +
      `<td data-step="${st}"><button data-shapes="${st}">tensors…</button></td></tr>`).join("")}</tbody></table>`;
  } catch (e) {
    box.textContent = e.message;
  }
}

async function showTensors(id, step, cell) {
  try {
    const snap = await call("GET", `/api/sessions/${id}/snapshots/${step}`);
    cell.innerHTML = (snap.shapes || []).filter((t) => Number(t.rows || 0) * Number(t.cols || 0) > 0)
      .map((t) => {
        const dims = (t.dims?.length ? t.dims : [t.rows, t.cols]).join("×");
        return `<button data-npy="${t.label}" data-step="${step}" title="${dims} float32">${t.label} (${dims})</button>`;
      }).join(" ");
  } catch (e) {
    cell.textContent = e.message;
  }
}

// ---- The create form.
async function openCreate() {
  const form = $("#create-form");
  $("#create-error").textContent = "";
  try {
    const { datasets = [] } = await call("GET", "/api/datasets");
    await loadRules();
    const opts = datasets.map((d) => {
      const shape = (d.feature_shape || []).map(Number);
      const f = shape.reduce((a, b) => a * b, 1);
      const out = Number(d.num_classes || d.target_dim || 0);
      const dims = shape.length > 1 ? shape.join("×") : `${f}`;
      return `<option value="${d.name}" data-in="${f}" data-out="${out}">${escapeHtml(d.display_name || d.name)} (${d.num_examples || 0} × ${dims}${out ? ` → ${out}` : ""})</option>`;
    }).join("");
    form.train_dataset.innerHTML = opts;
    form.eval_dataset.innerHTML = `<option value="">none</option>${opts}`;
    suggestSizes();
  } catch (e) {
    $("#create-error").textContent = e.message;
  }
  $("#create-dialog").showModal();
}

// The rule list, from alignd (once; again after a failure).
async function loadRules() {
  if (rules.size) return;
  const { rules: list = [] } = await call("GET", "/api/rules");
  for (const r of list) rules.set(r.rule, r);
  const sel = $("#create-form").rule;
  const keep = sel.value || "RULE_FEEDBACK_ALIGNMENT";
  sel.innerHTML = list.map((r) => `<option value="${r.rule}" title="${escapeHtml(r.reference || "")}">${escapeHtml(r.name)}: ${escapeHtml(r.title)}${r.trains_conv ? "" : " (dense layers only)"}</option>`).join("");
  sel.value = list.some((r) => r.rule === keep) ? keep : list[0]?.rule || "";
}

// --layers' grammar, as alignctl reads it: an Error naming the bad item.
function parseLayers(text) {
  const out = [];
  text.split(",").forEach((raw, k) => {
    const item = raw.trim();
    const p = item.toLowerCase().split(":");
    const bad = (what) => new Error(`layers item ${k + 1} '${item}': expected ${what} (e.g. conv:6x5x5,pool:2,dense:10)`);
    const pos = (s) => (/^[0-9]+$/.test(s) && Number(s) >= 1 ? Number(s) : NaN);
    const dims = (s, n) => { const d = s.split("x").map(pos); return d.length === n && d.every((v) => !Number.isNaN(v)) ? d : null; };
    if (p[0] === "conv") {
      const d = p.length >= 2 && dims(p[1], 3);
      if (!d) throw bad("conv:CxKHxKW");
      const l = { kind: "LAYER_KIND_CONV", units: d[0], kernel_h: d[1], kernel_w: d[2] };
      for (const o of p.slice(2)) {
        if (o[0] === "s" && !Number.isNaN(pos(o.slice(1)))) l.stride = pos(o.slice(1));
        else if (o[0] === "p" && /^[0-9]+$/.test(o.slice(1))) l.padding = Number(o.slice(1));
        else throw bad("conv:CxKHxKW[:sS][:pP]");
      }
      out.push(l);
    } else if (["pool", "maxpool", "avgpool"].includes(p[0])) {
      const d = p.length >= 2 && dims(p[1], 1);
      if (!d) throw bad(`${p[0]}:W[:sS]`);
      const l = { kind: p[0] === "avgpool" ? "LAYER_KIND_AVG_POOL" : "LAYER_KIND_MAX_POOL", kernel_h: d[0] };
      for (const o of p.slice(2)) {
        if (o[0] === "s" && !Number.isNaN(pos(o.slice(1)))) l.stride = pos(o.slice(1));
        else throw bad(`${p[0]}:W[:sS]`);
      }
      out.push(l);
    } else if (p[0] === "dense") {
      const d = p.length === 2 && dims(p[1], 1);
      if (!d) throw bad("dense:N");
      out.push({ kind: "LAYER_KIND_DENSE", units: d[0] });
    } else if (p[0] === "flatten" && p.length === 1) {
      out.push({ kind: "LAYER_KIND_FLATTEN" });
    } else {
      throw bad("conv:, pool:, maxpool:, avgpool:, dense: or flatten");
    }
  });
  return out;
}

function suggestSizes() {
  const form = $("#create-form");
  const o = form.train_dataset.selectedOptions[0];
  if (o && (!form.sizes.value || form.sizes.dataset.auto === "1")) {
    form.sizes.value = `${o.dataset.in},100,${o.dataset.out || 1}`;
    form.sizes.dataset.auto = "1";
  }
}

function createRequest(form) {
  const v = (k) => form[k].value.trim();
  const n = (k) => (v(k) === "" ? undefined : Number(v(k)));
  const layers = v("layers") ? parseLayers(v("layers")) : null;
  const network = { hidden_activation: v("hidden_activation"), loss: v("loss") };
  if (layers) {
    network.layers = layers;  // alignd derives the sizes
  } else {
    if (!v("sizes")) throw new Error("give layer sizes (784,1000,10) or layers (conv:6x5x5,pool:2,dense:10)");
    network.sizes = v("sizes").split(",").map((x) => Number(x.trim()));
  }
  if (v("input_shape")) {
    const d = v("input_shape").toLowerCase().split("x").map((x) => Number(x.trim()));
    if (!(d.length === 2 || d.length === 3) || d.some((x) => !Number.isInteger(x) || x < 1)) throw new Error(`input shape '${v("input_shape")}': expected CxHxW (e.g. 1x32x32) or HxW`);
    const [channels, height, width] = d.length === 3 ? d : [1, ...d];
    network.input_shape = { channels, height, width };
  }
  const cfg = {
    network,
    feedback: { rule: v("rule") },
    optimizer: { kind: v("optimizer"), learning_rate: n("learning_rate") },
    batch_size: n("batch_size"), epochs: n("epochs"), max_steps: n("max_steps"), seed: n("seed"),
    metrics_every: n("metrics_every"), eval_every: n("eval_every"), threads: n("threads"),
  };
  if (cfg.network.loss === "LOSS_CROSS_ENTROPY") cfg.network.output_activation = "ACTIVATION_SOFTMAX";
  const session = { display_name: v("display_name") || undefined, train_dataset: v("train_dataset"),
    eval_dataset: v("eval_dataset") || undefined, config: JSON.parse(JSON.stringify(cfg)) };
  return { session, request_id: crypto.randomUUID?.() ?? `${Date.now()}-${Math.random()}` };
}

// ---- Wiring.
function init() {
  initExperiments({ setConn, askToken, ruleName: (r) => rules.get(r)?.name || String(r).replace("RULE_", "").toLowerCase() });
  route();
  readHash();
  $("#sessions tbody").addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr[data-id]");
    if (!tr || ev.target.closest("a")) return;  // a link (to an experiment) goes where it says
    const id = tr.dataset.id;
    if (ev.target.matches("input[type=checkbox]")) {
      select(ev.target.checked ? [...app.selected, id] : app.selected.filter((x) => x !== id));
    } else if (ev.ctrlKey || ev.metaKey || ev.shiftKey) {
      select(app.selected.includes(id) ? app.selected.filter((x) => x !== id) : [...app.selected, id]);
    } else {
      select([id]);
    }
  });
  $("#filter").addEventListener("input", (ev) => { app.filter = ev.target.value.trim().toLowerCase(); renderList(); });
  // alignd's filter: applied with Enter (again with Enter after a refusal), kept in the URL.
  const query = $("#query");
  query.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    app.query = query.value.trim();
    app.queryError = null;
    $("#list-error").textContent = "";
    query.classList.remove("pending");
    writeHash();
    poll();
  });
  query.addEventListener("input", () => query.classList.toggle("pending", query.value.trim() !== app.query));
  $("#select-shown").addEventListener("click", () => select([...app.selected, ...[...document.querySelectorAll("#sessions tbody tr")].map((r) => r.dataset.id)]));
  $("#select-none").addEventListener("click", () => select([]));
  $("#group").addEventListener("change", (ev) => { app.group = ev.target.checked; writeHash(); renderChips(); renderList(); markDirty(); });
  window.addEventListener("hashchange", () => {
    const was = route();
    if (view !== "sessions") return;
    const before = app.selected.join(), query = app.query;
    readHash();
    if (was !== "sessions") { app.queryError = null; poll(); select(app.selected); return; }
    if (app.query !== query) { app.queryError = null; $("#list-error").textContent = ""; poll(); }
    if (app.selected.join() !== before) select(app.selected); else markDirty();
  });
  window.addEventListener("resize", () => markDirty());

  $("#one").addEventListener("click", async (ev) => {
    const b = ev.target.closest("button");
    if (!b || app.selected.length !== 1) return;
    const id = app.selected[0];
    $("#action-error").textContent = "";
    try {
      if (b.dataset.act === "delete") {
        if (!confirm(`Delete sessions/${id} with its metrics and snapshots?`)) return;
        await call("DELETE", `/api/sessions/${id}`);
        app.sessions.delete(id);
        select([]);
      } else if (b.dataset.act) {
        const s = await call("POST", `/api/sessions/${id}:${b.dataset.act}`);
        app.sessions.set(id, { ...app.sessions.get(id), ...s });
        const t = app.tracks.get(id);
        if (t) t.session = { ...t.session, ...s };
        refreshLive();
      } else if (b.dataset.shapes) {
        await showTensors(id, b.dataset.shapes, b.parentElement);
      } else if (b.dataset.npy) {
        await download(`/api/sessions/${id}/snapshots/${b.dataset.step}/${b.dataset.npy}.npy`, `${id}-${b.dataset.step}-${b.dataset.npy}.npy`);
      } else if (b.dataset.export) {
        // The file as alignd names it; the weights formats: the latest, or a snapshot's step.
        const step = b.dataset.step && b.dataset.step !== "latest" ? `&snapshot=${b.dataset.step}` : "";
        b.disabled = true;
        try {
          await download(`/api/sessions/${id}/export?format=${b.dataset.export}${step}`);
        } finally {
          b.disabled = false;
        }
      }
    } catch (e) {
      $("#action-error").textContent = e.message;
    }
    renderList();
    renderActions();
    poll();
  });
  $("#snapshots-box").addEventListener("toggle", (ev) => { if (ev.target.open && app.selected.length === 1) loadSnapshots(app.selected[0]); });

  $("#token-button").addEventListener("click", () => askToken());
  $("#token-dialog").addEventListener("close", () => {
    const d = $("#token-dialog");
    if (d.returnValue === "save") token.set($("#token-input").value.trim());
    if (d.returnValue === "forget") token.set("");
    poll();
    for (const id of app.selected) if (app.tracks.get(id)?.error) { app.tracks.delete(id); }
    select(app.selected);
  });

  $("#new-session").addEventListener("click", openCreate);
  loadRules().then(() => { renderList(); markDirty(); }, () => {});  // names in the list; retried on opening the form
  const form = $("#create-form");
  form.train_dataset.addEventListener("change", suggestSizes);
  form.sizes.addEventListener("input", () => { form.sizes.dataset.auto = "0"; });
  form.addEventListener("submit", async (ev) => {
    if (ev.submitter?.value !== "create") return;  // Cancel closes the dialog
    ev.preventDefault();
    $("#create-error").textContent = "";
    try {
      const s = await call("POST", "/api/sessions", createRequest(form));
      $("#create-dialog").close();
      app.sessions.set(idOf(s), s);
      select([idOf(s)]);
      poll();
    } catch (e) {
      $("#create-error").textContent = `${e.code ? `${e.code}: ` : ""}${e.message}`;
    }
  });

  select(app.selected);
  // One poll at a time: the next is scheduled when the last has answered, so a slow
  // dashboard (a loaded machine, a far alignd) is not sent a pile of overlapping lists.
  const loop = () => poll().finally(() => setTimeout(loop, POLL_MS));
  loop();
}

init();
