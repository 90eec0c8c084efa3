// One chart of the dashboard: a uPlot line chart of several series on one step axis, each
// optionally with a shaded band (mean ± SD, or a confidence interval: bandNames), and a
// log-scale toggle. Series come with their own x values; they are joined on a common axis here
// (gaps where a series has no point).
import uPlot from "uplot";

export const palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f",
  "#6b7280", "#b45309"];

function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

// Log scales plot log10(y) on a linear axis (uPlot's own log axis labels tiny values badly):
// a tick per decade, every k-th when there are many, labelled 1e-6, 0.01, 10.
function decades(u, axis, min, max) {
  const lo = Math.ceil(min), hi = Math.floor(max);
  const step = Math.max(1, Math.ceil((hi - lo) / 5));
  const out = [];
  for (let e = lo; e <= hi; e += step) out.push(e);
  return out;
}
const power = (e) => {
  const v = 10 ** e;
  return v >= 0.01 && v < 1e4 ? String(+v.toPrecision(3)) : v.toExponential(Number.isInteger(e) ? 0 : 2);
};
const decadeLabels = (u, splits) => splits.map(power);

export class Chart {
  // key: a stable name (the URL's log list); title: shown above; opts.log: start in log scale.
  constructor(parent, key, title, { log = false, onLog } = {}) {
    this.key = key;
    this.log = log;
    this.el = document.createElement("div");
    this.el.className = "chart";
    this.el.dataset.key = key;
    const h = document.createElement("h3");
    h.textContent = title;
    const lab = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = log;
    box.dataset.log = key;
    box.addEventListener("change", () => { this.log = box.checked; this.plot?.destroy(); this.plot = null; this.render(); onLog?.(key, box.checked); });
    lab.append(box, " log");
    h.appendChild(lab);
    this.plotEl = document.createElement("div");
    this.el.append(h, this.plotEl);
    parent.appendChild(this.el);
    this.series = [];
    this.plot = null;
    this.signature = "";
  }

  // series: [{label, color, x: number[], y: (number|null)[], lo?: [], hi?: [], bandNames?: [top, bottom]}]
  set(series) {
    this.series = series;
  }

  points() {
    return this.series.reduce((n, s) => n + s.x.length, 0);
  }

  render() {
    const series = this.series.filter((s) => s.x.length > 0);
    this.el.dataset.points = String(this.points());
    const tables = [];
    const ss = [{ label: "step" }];
    const hidden = [];  // band edges: drawn, not listed in the legend
    const bands = [];
    for (const s of series) {
      const cols = [s.x, s.y];
      const base = ss.length;
      ss.push({ label: s.label, stroke: s.color, width: 1.5, points: { show: false }, spanGaps: true,
        value: this.log ? (u, v) => (v == null ? "--" : power(v)) : undefined });
      if (s.lo && s.hi) {
        cols.push(s.hi, s.lo);
        const [top, bottom] = s.bandNames || ["+SD", "−SD"];
        ss.push({ label: `${s.label} ${top}`, stroke: alpha(s.color, 0.25), width: 0.5, points: { show: false }, spanGaps: true },
          { label: `${s.label} ${bottom}`, stroke: alpha(s.color, 0.25), width: 0.5, points: { show: false }, spanGaps: true });
        bands.push({ series: [base + 1, base + 2], fill: alpha(s.color, 0.15) });
        hidden.push(base + 1, base + 2);
      }
      tables.push(cols);
    }
    if (tables.length === 0) {
      this.plot?.destroy();
      this.plot = null;
      this.signature = "";
      return;
    }
    let data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    if (this.log) {  // log10 of the positive values
      data = data.map((col, i) => (i === 0 ? col : col.map((v) => (v != null && v > 0 ? Math.log10(v) : null))));
    }
    const signature = JSON.stringify([ss.map((s) => s.label + s.stroke), this.log]);
    const width = Math.max(300, this.el.clientWidth - 14);
    if (this.plot && signature === this.signature) {
      if (this.plot.width !== width) this.plot.setSize({ width, height: 220 });
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    this.signature = signature;
    this.plot = new uPlot({
      width, height: 220, series: ss, bands,
      scales: { x: { time: false } },
      axes: [{ label: "step", size: 36 }, this.log ? { size: 56, splits: decades, values: decadeLabels } : { size: 56 }],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    }, data, this.plotEl);
    const rows = this.plot.root.querySelectorAll(".u-legend .u-series");
    for (const i of hidden) if (rows[i]) rows[i].style.display = "none";
  }
}
