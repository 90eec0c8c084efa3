// Small helpers the dashboard's views share: the proto JSON mapping's numbers and enum names,
// how figures are shown, HTML escaping.

// A JSON number of the proto mapping: int64 as strings, NaN and infinities as "NaN",
// "Infinity", "-Infinity" (shown as gaps: null); an omitted field is its default, 0.
export const num = (v) => (v === undefined ? 0 : v === "NaN" || v === "Infinity" || v === "-Infinity" ? null : Number(v));

// SessionState's values, for a number the JSON mapping prints when the dashboard's proto
// does not know the value alignd sent (an alignd newer than the dashboard).
const SESSION_STATES = ["UNSPECIFIED", "QUEUED", "RUNNING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED", "STOPPED"];

// A session's state without its prefix ("RUNNING"), whatever the value: an enum name this
// page has no styling for is shown as it comes ("STOPPED"), a number by its name or as
// "STATE_8".
export const short = (state) => {
  if (typeof state === "number") return SESSION_STATES[state] || `STATE_${state}`;
  return String(state || "SESSION_STATE_UNSPECIFIED").replace("SESSION_STATE_", "");
};

// An experiment's state without its prefix.
export const shortExperiment = (state) => {
  if (typeof state === "number") return ["UNSPECIFIED", "RUNNING", "SUCCEEDED", "CANCELLED"][state] || `STATE_${state}`;
  return String(state || "EXPERIMENT_STATE_UNSPECIFIED").replace("EXPERIMENT_STATE_", "");
};

// A state name as a CSS class: letters, digits and _ only.
export const stateClass = (name) => String(name).replace(/[^A-Za-z0-9_]/g, "_");

export const fmt = (v, d = 4) => (v == null || Number.isNaN(v) ? "—" : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(d));

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
