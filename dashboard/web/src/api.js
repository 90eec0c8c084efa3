// The dashboard's side of alignd-dashboard's HTTP API (dashboard/bridge.h): JSON calls and
// the Server-Sent Events stream, both carrying the bearer token in a header. EventSource
// cannot send headers, so the stream is read with fetch() and parsed here; it resumes from
// the last seq it delivered after any break (alignd restarting, the network, a proxy), so a
// chart never gets a point twice.

const TOKEN_KEY = "alignd.token";

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) || "",
  set: (t) => (t ? localStorage.setItem(TOKEN_KEY, t) : localStorage.removeItem(TOKEN_KEY)),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  const h = { ...extra };
  const t = token.get();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

export async function call(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body !== undefined ? { "Content-Type": "application/json" } : {}),
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    throw new ApiError(0, "UNAVAILABLE", "the dashboard server does not answer");
  }
  const text = await res.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch { json = { message: text }; }
  if (!res.ok) throw new ApiError(res.status, json.code, json.message);
  return json;
}

// Downloads path (with the token) as a file called `filename`.
export async function download(path, filename) {
  const res = await fetch(path, { headers: headers() });
  if (!res.ok) {
    let j = {};
    try { j = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, j.code, j.message);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
});

// Follows a session's metric log from seq `from`: onEvent(event) for each step or eval
// event in seq order, onEnd(session) once the session ended or paused (the stream then
// stops). Breaks are retried with backoff, resuming after the last seq delivered. Returns
// when the stream ended, `signal` aborted, or the session is gone (onGone(error)).
export async function follow(id, from, { onEvent, onEnd, onGone, onBreak, signal }) {
  let next = Math.max(1, from);
  let backoff = 250;
  while (!signal.aborted) {
    let res;
    try {
      res = await fetch(`/api/sessions/${id}/events?start_seq=${next}`,
        { headers: headers({ Accept: "text/event-stream" }), signal });
    } catch (e) {
      if (signal.aborted) return;
      onBreak?.(e);
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 4000);
      continue;
    }
    if (res.status === 404 || res.status === 401 || res.status === 403) {
      let j = {};
      try { j = await res.json(); } catch { /* not JSON */ }
      onGone?.(new ApiError(res.status, j.code, j.message));
      return;
    }
    if (!res.ok) {
      onBreak?.(new ApiError(res.status));
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 4000);
      continue;
    }
    let ended = false;
    try {
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const f = { event: "message", data: "" };
          for (const line of frame.split("\n")) {
            if (line.startsWith(":")) continue;  // heartbeat
            const i = line.indexOf(":");
            const k = i < 0 ? line : line.slice(0, i);
            const v = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
            if (k === "data") f.data += v;
            else f[k] = v;
          }
          if (!f.data) continue;
          if (f.event === "end") {
            ended = true;
            onEnd?.(JSON.parse(f.data).end);
          } else if (f.event === "message") {
            const e = JSON.parse(f.data);
            const seq = Number(e.seq);
            if (seq >= next) {
              next = seq + 1;
              backoff = 250;
              onEvent(e);
            }
          }
          // event: error: alignd's stream broke; fall through to the retry below.
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    if (ended) return;
    onBreak?.();
    await sleep(backoff, signal);
    backoff = Math.min(backoff * 2, 4000);
  }
}
