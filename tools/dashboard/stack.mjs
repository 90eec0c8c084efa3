// A throwaway alignd and alignd-dashboard on 127.0.0.1 (free ports, a temporary data
// directory) for the dashboard's benchmark and screenshot; `stop()` ends both and removes
// the data. `chromium` is playwright-core's, from the front end's own node_modules.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(new URL("../..", import.meta.url).pathname);
export const { chromium } = createRequire(join(root, "dashboard/web/node_modules/noop.js"))("playwright-core");
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function start(cmd, args) {
  const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "ignore"] });
  const address = new Promise((res, rej) => {
    let o = "";
    p.stdout.on("data", (d) => { o += d; if (o.includes("\n")) res(o.split("\n")[0].trim().split(" ").pop()); });
    p.on("exit", (code) => rej(new Error(`${cmd} exited (${code})`)));
  });
  return { p, address };
}

export async function startStack(build, alignFlags = []) {
  const tmp = mkdtempSync(join(tmpdir(), "alignd_dash_"));
  const alignd = start(join(build, "server/alignd"),
    ["--listen", "127.0.0.1:0", "--metrics_listen", "", "--data_dir", join(tmp, "data"), ...alignFlags]);
  const server = await alignd.address;
  const dash = start(join(build, "dashboard/alignd-dashboard"), ["--alignd", server, "--listen", "127.0.0.1:0"]);
  const url = (await dash.address).replace(/\/$/, "");
  const ctl = (...a) => execFileSync(join(build, "client/alignctl"), ["--server", server, ...a], { encoding: "utf8" }).trim();
  const stop = async () => {
    for (const c of [dash, alignd]) {
      if (c.p.exitCode === null) await new Promise((r) => { c.p.once("exit", r); c.p.kill("SIGTERM"); });
    }
    rmSync(tmp, { recursive: true, force: true });
  };
  return { server, url, ctl, stop };
}
