// The three charting libraries the dashboard could use, each in its own fast configuration
// for large series, drawing the same 100k-point line and then taking live appends. Bundled
// by bench/run.mjs and timed in Chromium; the numbers are in docs/RESULTS.md.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { Chart, LineController, LineElement, PointElement, LinearScale, Decimation } from "chart.js";
import * as echarts from "echarts";

Chart.register(LineController, LineElement, PointElement, LinearScale, Decimation);

function series(n) {
  const x = new Float64Array(n), y = new Float64Array(n);
  let v = 1;
  for (let i = 0; i < n; i++) {
    x[i] = i;
    v = 0.9999 * v + 0.00005 * Math.sin(i / 50);
    y[i] = v * (1 + 0.2 * Math.sin(i * 12.9898) * Math.sin(i * 78.233));
  }
  return [x, y];
}

const frame = () => new Promise((r) => requestAnimationFrame(() => r()));

function box() {
  document.body.innerHTML = "";
  const el = document.createElement("div");
  el.style.cssText = "width:900px;height:300px";
  document.body.appendChild(el);
  return el;
}

const libs = {
  uplot: {
    create(el, x, y) {
      return new uPlot({ width: 900, height: 300, series: [{}, { stroke: "red", points: { show: false } }], scales: { x: { time: false } } },
        [Array.from(x), Array.from(y)], el);
    },
    append(c, data, x, y) { data[0].push(...x); data[1].push(...y); c.setData(data); },
    data(c) { return c.data; },
  },
  chartjs: {
    create(el, x, y) {
      const canvas = document.createElement("canvas");
      el.appendChild(canvas);
      const pts = Array.from(x, (xi, i) => ({ x: xi, y: y[i] }));
      return new Chart(canvas, {
        type: "line",
        data: { datasets: [{ data: pts, borderColor: "red", borderWidth: 1, pointRadius: 0 }] },
        options: { animation: false, parsing: false, normalized: true, responsive: false, maintainAspectRatio: false,
          spanGaps: true, scales: { x: { type: "linear" }, y: { type: "linear" } },
          plugins: { decimation: { enabled: true, algorithm: "lttb", samples: 1800 } } },
      });
    },
    append(c, _d, x, y) { for (let i = 0; i < x.length; i++) c.data.datasets[0].data.push({ x: x[i], y: y[i] }); c.update("none"); },
    data() { return null; },
  },
  echarts: {
    create(el, x, y) {
      const c = echarts.init(el, null, { renderer: "canvas", width: 900, height: 300 });
      c.setOption({ animation: false, xAxis: { type: "value" }, yAxis: { type: "value", scale: true },
        series: [{ type: "line", showSymbol: false, sampling: "lttb", large: true, data: Array.from(x, (xi, i) => [xi, y[i]]) }] });
      return c;
    },
    append(c, _d, x, y) { c.appendData({ seriesIndex: 0, data: Array.from(x, (xi, i) => [xi, y[i]]) }); c.resize(); c.getZr().flush(); },
    data() { return null; },
  },
};

// First draw of n points (construction to the next frame), then `updates` appends of
// `batch` points each: the main thread's time to take the points and draw them (each
// library made to draw at once: uPlot in its microtask, ECharts by flushing zrender,
// Chart.js in update()), median and worst.
window.runBench = async (name, n = 100000, updates = 50, batch = 20) => {
  const lib = libs[name];
  const [x, y] = series(n + updates * batch);
  const el = box();
  await frame();
  const t0 = performance.now();
  const c = lib.create(el, x.subarray(0, n), y.subarray(0, n));
  await frame();
  const first = performance.now() - t0;
  const data = lib.data(c);
  const times = [];
  for (let u = 0; u < updates; u++) {
    const s = n + u * batch;
    const t = performance.now();
    lib.append(c, data, x.subarray(s, s + batch), y.subarray(s, s + batch));
    await null;
    times.push(performance.now() - t);
    await frame();
  }
  times.sort((a, b) => a - b);
  return { first_ms: first, append_median_ms: times[times.length >> 1], append_max_ms: times[times.length - 1] };
};
