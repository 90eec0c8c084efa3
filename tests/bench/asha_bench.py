#!/usr/bin/python3
"""make bench, experiments part (issue 22, "Measured"): ASHA on a sweep of 27 configurations
against the full grid, in one real alignd on loopback.

The sweep: a 784-64-10 tanh + softmax network on MNIST's first 12,000 training examples (the
last 2,000 of them held out for validation), every configuration 2,700 steps, validation
every 100, one seed, on a 3 x 3 x 3 grid of optimizer.learning_rate x batch_size x
optimizer.momentum. Experiments of the same 27 configurations run one after another in the
same alignd (--max_running 2):

  grid     no early stopping: every session runs all its steps
  asha     ASHA, eta 3, rungs at total/27, total/9 and total/3 (steps 100, 300, 900; the
           stopping form: a session goes on past a rung only if among the ceil(n/3) best of
           the n that have reached it so far)
  median   median stopping from total/9 on (min_sessions 3)

Arrival order decides ASHA (the first session at a rung always goes on, so sessions that
arrive in order of improving figures all go on). With early stopping alignd queues an
experiment's sessions in an order drawn from the experiment's name, as random search hands
configurations to ASHA (in the order written, a grid from worst to best took 61 % of the
grid's steps). The bench writes the same grid in several orders, each its own experiment:
as written ("ascending": learning rate, batch size and momentum rising), every axis
reversed ("descending") and --shuffled random orders of axes and values; with two workers,
sessions running side by side may also swap places at a rung from one run to the next.

Same seed, same thread count, same build: every early-stopped session is bit-identical to
the grid's session of its configuration up to where it stopped (checked on the validation
figures), so "ASHA reached the grid's best final validation error" means it ran that
configuration to the end. ASHA's decisions are also replayed from the logs (arrival = the
validation event's wall_time at the rung) and compared with alignd's.

Reported per run: training steps (the sum of the sessions' step) and the ratio to the grid's,
the best final validation error and its configuration, whether it equals the grid's best,
the sessions stopped at each rung, and wall time (wall times depend on the machine's load;
the steps do not). The issue's target: ASHA reaches the grid's best final validation error
with <= 40 % of the grid's steps. No timed assertions: the bench reports, and says so when
an order's ratio is above 40 %.

Writes build/bench/asha.json.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

GRID = {
    "optimizer.learning_rate": [0.003, 0.03, 0.3],
    "batch_size": [8, 32, 128],
    "optimizer.momentum": [0.0, 0.5, 0.9],
}


def start_alignd(build, data_dir, *extra):
    p = subprocess.Popen([os.path.join(build, "server/alignd"), "--listen", "127.0.0.1:0", "--metrics_listen", "",
                          "--data_dir", data_dir, *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    address = p.stdout.readline().strip().rsplit(" ", 1)[-1]
    return p, address


def read_mnist(mnist, n):
    with open(os.path.join(mnist, "train-images-idx3-ubyte"), "rb") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)[:n].astype(np.float32) / 255
    with open(os.path.join(mnist, "train-labels-idx1-ubyte"), "rb") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n].astype(np.int32)
    return x, y


def plain(v):
    """A google.protobuf.Value as the client gives it ({"number_value": 0.03}) -> 0.03."""
    if isinstance(v, dict):
        for k in ("number_value", "string_value", "bool_value"):
            if k in v:
                return v[k]
    return v


def point_label(point):
    short = {"optimizer.learning_rate": "lr", "batch_size": "batch", "optimizer.momentum": "momentum"}
    return " ".join(f"{short.get(k, k)}={point[k]:g}" for k in GRID)


def key(point):
    return tuple(point[k] for k in GRID)


def ordered_grid(order):
    """The grid as written ("ascending"), each axis's values reversed ("descending"), or axes and
    values in a random order drawn from seed k ("shuffled k"): the same 27 configurations,
    created (and so run) in another order."""
    if order == "ascending":
        return dict(GRID)
    if order == "descending":
        return {k: v[::-1] for k, v in GRID.items()}
    rng = np.random.default_rng(int(order.split()[-1]))
    axes = list(GRID)
    rng.shuffle(axes)
    return {k: [GRID[k][i] for i in rng.permutation(len(GRID[k]))] for k in axes}


def run_experiment(c, ds, config, name, grid, early_stopping=None, poll=0.2):
    t0 = time.perf_counter()
    e = c.create_experiment(ds, config, grid=grid, name=name, early_stopping=early_stopping)
    while c.get_experiment(e)["state"] == "EXPERIMENT_STATE_RUNNING":
        time.sleep(poll)
    wall = time.perf_counter() - t0
    e = c.get_experiment(e)
    sessions = []
    for g in e["groups"]:
        (name_,) = g["sessions"]
        s = c.get_session(name_)
        evals = [ev for ev in c.list_metrics(name_) if "eval" in ev and ev["eval"]["validation"]]
        vals = [(ev["eval"]["step"], ev["eval"]["error_rate"]) for ev in evals]
        sessions.append(dict(group=g["id"], point={k: plain(v) for k, v in g["point"].items()}, session=name_,
                             state=s["state"], step=s["step"], total_steps=s["total_steps"],
                             stop_reason=s["stop_reason"], validation=vals,
                             logged={ev["eval"]["step"]: ev["wall_time"].timestamp() for ev in evals},
                             final_validation_error=vals[-1][1] if vals else float("nan")))
    for s in sessions:
        s["key"] = key(s["point"])
    return dict(experiment=e["name"], state=e["state"], wall_s=wall, grid=grid, sessions=sessions)


def best(sessions):
    done = [s for s in sessions if s["state"] == "SESSION_STATE_SUCCEEDED"
            and not math.isnan(s["final_validation_error"])]
    return min(done, key=lambda s: (s["final_validation_error"], s["key"])) if done else None


def rung_stops(sessions, rungs):
    out = [0] * len(rungs)
    for s in sessions:
        m = re.match(r"ASHA: at rung (\d+)", s["stop_reason"])
        if m:
            out[int(m.group(1))] += 1
    return out


def replay_asha(run, rungs, eta=3):
    """ASHA's decisions replayed from the logs: at each rung, the sessions that reached it in the
    order their validation there was logged (its wall_time), each going on only if its figure
    is among the ceil(n/eta) best of the n so far. Returns the sessions whose replayed fate (the
    rung it stops at, or none) differs from alignd's, each with the smallest gap (ms) between its
    log at a rung and another session's: alignd decides after the event is logged (a storage
    read, then a lock), so two sessions logging a rung within a few ms of each other may be
    decided in the other order."""
    fate = {}
    for k, r in enumerate(rungs):
        arrived = sorted((s["logged"][r], s["session"], dict(s["validation"])[r]) for s in run["sessions"]
                         if r in s["logged"] and fate.get(s["session"]) is None)
        there = []
        for _, name, v in arrived:
            there.append(v)
            cut = sorted(there)[math.ceil(len(there) / eta) - 1]
            if v > cut:
                fate[name] = k
    differ = {}
    for s in run["sessions"]:
        m = re.match(r"ASHA: at rung (\d+)", s["stop_reason"])
        if fate.get(s["session"]) != (int(m.group(1)) if m else None):
            # The closest another session came to it at a rung, in ms.
            differ[s["group"]] = round(min(abs(s["logged"][r] - o["logged"][r]) * 1e3 for r in rungs
                                           for o in run["sessions"] if o is not s and r in s["logged"]
                                           and r in o["logged"]), 1)
    return differ


def identical_prefix(run, grid):
    """Sessions of `run` whose validation figures equal (bit for bit) the grid's session of the
    same configuration at the same steps, of those compared."""
    by_point = {s["key"]: s for s in grid["sessions"]}
    same = 0
    for s in run["sessions"]:
        ref = dict(by_point[s["key"]]["validation"])
        if all(step in ref and ref[step] == v for step, v in s["validation"]):
            same += 1
    return same


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--mnist_dir", default="")
    ap.add_argument("--examples", type=int, default=12000, help="MNIST training examples used (1/6 validation)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--rule", default="bp")
    ap.add_argument("--steps", type=int, default=2700, help="each session's steps; rungs at steps/27, /9, /3")
    ap.add_argument("--max_running", type=int, default=2)
    ap.add_argument("--shuffled", type=int, default=4, help="ASHA runs in this many random orders too")
    ap.add_argument("--no_median", action="store_true")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    sys.path.insert(0, os.path.join(build, "python"))
    from alignd_client import Client
    from alignd_client.client import rule_names
    mnist = args.mnist_dir or subprocess.run([os.path.join(ROOT, "tools/repro/fetch_mnist.sh")], check=True,
                                             capture_output=True, text=True).stdout.strip()
    total = args.steps
    min_steps = total // 27
    eval_every = math.gcd(min_steps, total)
    rungs = [min_steps, min_steps * 3, min_steps * 9]
    config = {"network": {"sizes": [784, args.hidden, 10], "hidden_activation": "ACTIVATION_TANH",
                          "output_activation": "ACTIVATION_SOFTMAX", "loss": "LOSS_CROSS_ENTROPY"},
              "feedback": {"rule": rule_names().get(args.rule, args.rule)},
              "max_steps": total, "seed": 1, "metrics_every": eval_every, "eval_every": eval_every,
              "validation_fraction": 1 / 6}
    asha = {"asha": {"min_steps": min_steps, "reduction_factor": 3, "rungs": 3}}
    median = {"median": {"grace_steps": rungs[1], "min_sessions": 3}}

    orders = ["ascending", "descending"] + [f"shuffled {k}" for k in range(1, args.shuffled + 1)]
    tmp = tempfile.mkdtemp(prefix="alignd_asha_bench_")
    proc, address = start_alignd(build, os.path.join(tmp, "data"), "--max_running", str(args.max_running))
    try:
        c = Client(address, timeout=600)
        c.wait_ready()
        x, y = read_mnist(mnist, args.examples)
        ds = c.upload_dataset(x, y, name=f"mnist-train-{args.examples}")
        runs = [("grid", "ascending", run_experiment(c, ds, config, "asha-bench-grid", GRID))]
        for order in orders:
            runs.append(("asha", order, run_experiment(c, ds, config, f"asha-bench-asha-{order.replace(' ', '')}",
                                                       ordered_grid(order), asha)))
        if not args.no_median:
            runs.append(("median", "ascending", run_experiment(c, ds, config, "asha-bench-median", GRID, median)))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    grid = runs[0][2]
    grid_steps = sum(s["step"] for s in grid["sessions"])
    grid_best = best(grid["sessions"])
    rows = []
    for kind, order, run in runs:
        steps = sum(s["step"] for s in run["sessions"])
        b = best(run["sessions"])
        row = dict(bench="asha", run=kind, order=order, grid=run["grid"], sessions=len(run["sessions"]),
                   steps_per_session=total, training_steps=steps, ratio_to_grid=steps / grid_steps,
                   succeeded=sum(s["state"] == "SESSION_STATE_SUCCEEDED" for s in run["sessions"]),
                   stopped=sum(s["state"] == "SESSION_STATE_STOPPED" for s in run["sessions"]),
                   best_final_validation_error=b["final_validation_error"] if b else None,
                   best_point=b["point"] if b else None,
                   reached_grid_best=bool(b) and b["final_validation_error"] <= grid_best["final_validation_error"],
                   ran_grid_best_to_the_end=any(s["key"] == grid_best["key"] and
                                                s["state"] == "SESSION_STATE_SUCCEEDED" for s in run["sessions"]),
                   bit_identical_to_grid=identical_prefix(run, grid), wall_s=run["wall_s"],
                   experiment_state=run["state"])
        if kind == "asha":
            row.update(rungs=rungs, stopped_at_rung=rung_stops(run["sessions"], rungs),
                       replay_differs=replay_asha(run, rungs))
        row["sessions_detail"] = [dict(group=s["group"], point=s["point"], state=s["state"], step=s["step"],
                                       final_validation_error=s["final_validation_error"],
                                       stop_reason=s["stop_reason"],
                                       at_rungs=[dict(step=r, validation_error=dict(s["validation"])[r],
                                                      logged=s["logged"][r]) for r in rungs if r in s["logged"]])
                                  for s in run["sessions"]]
        rows.append(row)
    setup = dict(bench="asha_setup", cores=os.cpu_count(), max_running=args.max_running, examples=args.examples,
                 validation_examples=round(args.examples / 6), network=[784, args.hidden, 10], rule=args.rule,
                 steps_per_session=total, eval_every=eval_every, grid=GRID, asha=asha, median=median,
                 arrival_order="alignd's: drawn from the experiment's name, on --max_running workers")

    print(f"\nASHA on {len(grid['sessions'])} configurations, this machine ({os.cpu_count()} cores), "
          f"alignd --max_running {args.max_running}")
    print(f"  784-{args.hidden}-10 tanh/softmax, rule {args.rule}, MNIST's first {args.examples} training examples "
          f"(the last {round(args.examples / 6)} for validation), {total} steps a session, validation every "
          f"{eval_every}; grid " + " x ".join(f"{k} {v}" for k, v in GRID.items()))
    print(f"  ASHA eta 3, rungs at steps {rungs}; median stopping from step {rungs[1]}, min_sessions 3. alignd "
          f"queues each experiment's sessions in an order drawn from its name ({args.max_running} at a time); the "
          f"grid written as is ('ascending'), every axis reversed ('descending'), axes and values permuted "
          f"('shuffled k', seed k)")
    print(f"  grid's best: {point_label(grid_best['point'])}, final validation error "
          f"{grid_best['final_validation_error']:.4f}")
    print(f"  {'run':<8}{'order':<12}{'steps':>8}{'ratio':>7}{'best final':>11}  {'its configuration':<32}"
          f"{'reached':>8}{'stopped (rungs)':>17}{'wall s':>8}")
    for r in rows:
        err = "-" if r["best_final_validation_error"] is None else f"{r['best_final_validation_error']:.4f}"
        cfg = "-" if r["best_point"] is None else point_label(r["best_point"])
        stopped = f"{r['stopped']} {r['stopped_at_rung']}" if "stopped_at_rung" in r else str(r["stopped"])
        print(f"  {r['run']:<8}{r['order']:<12}{r['training_steps']:>8}{r['ratio_to_grid']:>7.3f}{err:>11}  "
              f"{cfg:<32}{'yes' if r['reached_grid_best'] else 'NO':>8}{stopped:>17}{r['wall_s']:>8.1f}")
    same = [r["bit_identical_to_grid"] for r in rows[1:]]
    print(f"  bit-identical: {sum(same)} of {len(grid['sessions']) * len(same)} early-stopping sessions' validation figures equal the "
          f"grid's session of the same configuration at the same steps")
    a = [r for r in rows if r["run"] == "asha"]
    differ = {r["order"]: r["replay_differs"] for r in a if r["replay_differs"]}
    verdict = "agrees with alignd in every order" if not differ else \
        f"differs (session: the closest other arrival at a rung, ms): {differ}"
    print(f"  ASHA replayed from the logs (arrival = the validation's wall_time at the rung): {verdict}")
    ratios = [r["ratio_to_grid"] for r in a]
    met = [r["order"] for r in a if r["reached_grid_best"] and r["ratio_to_grid"] <= 0.40]
    print(f"  target (ASHA reaches the grid's best final validation error with <= 40 % of its steps): met in "
          f"{len(met)} of {len(a)} orders; ASHA's steps {100 * min(ratios):.1f} % to {100 * max(ratios):.1f} % "
          f"of the grid's (median {100 * float(np.median(ratios)):.1f} %)")
    for r in a:
        if r["ratio_to_grid"] > 0.40:
            print(f"  NOTE: ASHA, order {r['order']}, used {100 * r['ratio_to_grid']:.1f} % of the grid's steps, "
                  f"above the 40 % target")
        if not r["reached_grid_best"]:
            print(f"  NOTE: ASHA, order {r['order']}, did not reach the grid's best final validation error")
    os.makedirs(os.path.join(build, "bench"), exist_ok=True)
    out = os.path.join(build, "bench", "asha.json")
    with open(out, "w") as f:
        json.dump([setup] + rows, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
