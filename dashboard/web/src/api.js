// The dashboard's side of alignd-dashboard's HTTP API (dashboard/bridge.h): JSON calls and
// the Server-Sent Events stream of the followed sessions, both carrying the bearer token in a
// header. EventSource cannot send headers, so the stream is read with fetch() and parsed
// here; it resumes each session after the last seq it delivered after any break (alignd
// restarting, the network, a proxy), so a chart never gets a point twice.

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

// Downloads path (with the token) as a file called `filename`, or as the response's
// Content-Disposition names it.
export async function download(path, filename) {
  let res;
  try {
    res = await fetch(path, { headers: headers() });
  } catch (e) {
    throw new ApiError(0, "UNAVAILABLE", "the dashboard server does not answer");
  }
  if (!res.ok) {
    let j = {};
    try { j = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, j.code, j.message);
  }
  const named = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "")?.[1];
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename || named || "download";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
});

// Reads an SSE response: onFrame({event, data, id}) per frame with data. Returns when the
// response ends; throws when it breaks.
async function readFrames(res, onFrame) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
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
      if (f.data) onFrame(f);
    }
  }
}

// Follows several sessions' metric logs on one connection (/api/events: a browser has six
// per host, and a sweep can have fifteen live runs). `next` maps id -> the first seq wanted;
// it is advanced as events arrive, so a reconnect resumes each session after its last
// event. onEvent(id, event) per step or eval event in seq order; onEnd(id, session) once a
// session ended or paused (it is then no longer followed); onGone(id, error) for a session
// that cannot be followed (deleted, not ours). Breaks are retried with backoff. Returns
// when no session is left to follow or `signal` aborted.
export async function followAll(next, { onEvent, onEnd, onGone, signal }) {
  let backoff = 250;
  while (!signal.aborted && next.size > 0) {
    const s = [...next].map(([id, seq]) => `${id}:${Math.max(1, seq)}`).join(",");
    let res;
    try {
      res = await fetch(`/api/events?s=${s}`, { headers: headers({ Accept: "text/event-stream" }), signal });
    } catch (e) {
      if (signal.aborted) return;
      res = null;
    }
    if (res && res.status === 401) {
      for (const id of [...next.keys()]) { next.delete(id); onGone?.(id, new ApiError(401, "UNAUTHENTICATED")); }
      return;
    }
    if (res && res.ok) {
      try {
        await readFrames(res, (f) => {
          const d = JSON.parse(f.data);
          if (!next.has(d.session)) return;
          if (f.event === "metric") {
            const seq = Number(d.event.seq);
            if (seq >= next.get(d.session)) {
              next.set(d.session, seq + 1);
              backoff = 250;
              onEvent(d.session, d.event);
            }
          } else if (f.event === "end") {
            next.delete(d.session);
            onEnd?.(d.session, d.end);
          } else if (f.event === "error" && ["NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED"].includes(d.code)) {
            next.delete(d.session);
            onGone?.(d.session, new ApiError(0, d.code, d.message));
          }
          // Other errors (alignd restarting): the response ends; reconnect below.
        });
      } catch (e) {
        if (signal.aborted) return;
      }
    }
    if (signal.aborted || next.size === 0) return;
    await sleep(backoff, signal);
    backoff = Math.min(backoff * 2, 4000);
  }
}
