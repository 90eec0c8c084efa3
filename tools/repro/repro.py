#!/usr/bin/python3
"""make repro / make repro-quick: the experiments of Lillicrap et al. (2016) on alignd's
engine, through build/tools/alignd_train, two runs at a time (one per core).

  linear  30-20-10 linear net on y* = T x: error curves of shallow, BP, FA, DFA, KP and the
          FA-BP update angle (per-example SGD, the paper's init scales)
  mnist   784-1000-10, logistic hidden and output units, squared error: BP, FA, shallow
  sparse  the same with 50% of W and B removed for good: FA (and BP for reference)
  deep    nonlinear teacher 30-20-10-10 tanh: 3-layer vs 4-layer students, BP and FA

Writes build/repro/results.json (one object per run: experiment, rule, seed, epochs, wall_s
and test_error or nse), build/repro/results.md (the tables) and PNG plots (matplotlib).
"""
import argparse
import concurrent.futures as cf
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LINEAR = ("--task linear --sizes 30,20,10 --hidden linear --output linear --no_bias "
          "--init uniform --init_scale 0.01 --feedback_scale 0.5 --lr 0.002 --batch 1 "
          "--train_size 2000 --test_size 1000 --metrics_every 25 --eval_every 100")
MNIST = ("--task mnist --sizes 784,1000,10 --hidden logistic --output logistic --loss mse "
         "--init uniform --init_scale 0.05 --feedback_scale 0.5 --optimizer adam --lr 0.001 "
         "--weight_decay 1e-6 --batch 32 --metrics_every 500")
DEEP = ("--task nonlinear --hidden tanh --output linear --feedback_scale 0.5 --lr 0.005 "
        "--batch 1 --train_size 5000 --test_size 5000 --metrics_every 5000")


def plan(quick, mnist_dir):
    seeds = [1, 2, 3]
    runs = []
    lin_epochs = 2 if quick else 4
    for rule in ("shallow", "bp", "fa", "dfa", "kp"):
        for s in seeds:
            runs.append(dict(experiment="linear", rule=rule, seed=s,
                             args=f"{LINEAR} --rule {rule} --epochs {lin_epochs} --seed {s}"))
    m_epochs = 1 if quick else 30
    subset = "--train_size 10000 --test_size 2000" if quick else ""
    eval_every = 312 if quick else 1875
    for exp, rules, extra in (("mnist", ("bp", "fa", "shallow"), ""),
                              ("sparse", ("fa", "bp"), "--connection_sparsity 0.5")):
        for rule in rules:
            for s in seeds:
                runs.append(dict(experiment=exp, rule=rule, seed=s,
                                 args=f"{MNIST} --mnist_dir {mnist_dir} {subset} {extra} --rule {rule} "
                                      f"--epochs {m_epochs} --eval_every {eval_every} --seed {s}"))
    d_epochs = 20 if quick else 200
    for sizes, label in (("30,20,10", "3-layer"), ("30,20,10,10", "4-layer")):
        for rule in ("bp", "fa"):
            for s in seeds:
                runs.append(dict(experiment="deep", rule=rule, seed=s, net=label,
                                 args=f"{DEEP} --sizes {sizes} --rule {rule} --epochs {d_epochs} --seed {s}"))
    return runs


def run_one(binary, out_dir, run):
    name = f"{run['experiment']}_{run.get('net', '')}_{run['rule']}_{run['seed']}".replace("__", "_")
    log = os.path.join(out_dir, name + ".jsonl")
    cmd = [binary, "-q", "--out", log] + run["args"].split()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{name}: {p.stderr.strip()}")
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    events = [json.loads(l) for l in open(log)]
    return dict(run, name=name, summary=summary, events=events, command=" ".join(cmd))


def mean_sd(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan")
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build", default="build")
    p.add_argument("--quick", action="store_true", help="a smaller version of each, a few minutes")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--only", default="", help="comma-separated experiments to run")
    p.add_argument("--binary", default="", help="alignd_train to run (default: BUILD/tools/alignd_train)")
    p.add_argument("--replot", action="store_true", help="only redraw the plots from BUILD/repro")
    args = p.parse_args()
    build = os.path.abspath(args.build)
    out_dir = os.path.join(build, "repro")
    if args.replot:
        results = []
        for row in json.load(open(os.path.join(out_dir, "results.json"))):
            name = f"{row['experiment']}_{row.get('net', '')}_{row['rule']}_{row['seed']}".replace("__", "_")
            events = [json.loads(l) for l in open(os.path.join(out_dir, name + ".jsonl"))]
            summary = {"epochs": row["epochs"]}
            results.append(dict(row, name=name, events=events, summary=summary))
        plot(results, out_dir)
        return 0
    os.makedirs(out_dir, exist_ok=True)
    mnist_dir = subprocess.run([os.path.join(ROOT, "tools/repro/fetch_mnist.sh")], check=True,
                               capture_output=True, text=True).stdout.strip()
    runs = plan(args.quick, mnist_dir)
    if args.only:
        keep = set(args.only.split(","))
        runs = [r for r in runs if r["experiment"] in keep]
    binary = args.binary or os.path.join(build, "tools/alignd_train")
    start = time.time()
    results = []
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, binary, out_dir, r) for r in runs]
        for k, f in enumerate(cf.as_completed(futures), 1):
            r = f.result()
            s = r["summary"]
            fig = f"test error {s['test_error']:.4f}" if s.get("test_error") is not None else f"nse {s['nse']:.3e}"
            print(f"[{k:2d}/{len(runs)}] {r['name']:28s} {fig}  {s['epochs']:.0f} epochs  "
                  f"{s['wall_s']:.1f} s  (total {time.time() - start:.0f} s)", flush=True)
            results.append(r)
    results.sort(key=lambda r: (r["experiment"], r.get("net", ""), r["rule"], r["seed"]))

    rows = []
    for r in results:
        s = r["summary"]
        row = dict(experiment=r["experiment"], rule=r["rule"], seed=r["seed"],
                   epochs=round(s["epochs"], 3), wall_s=round(s["wall_s"], 2))
        if r.get("net"):
            row["net"] = r["net"]
        if s.get("test_error") is not None:
            row["test_error"] = s["test_error"]
        else:
            row["nse"] = s["nse"]
        rows.append(row)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)

    md = [f"Produced by `{'make repro-quick' if args.quick else 'make repro'}` "
          f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {time.time() - start:.0f} s in all). "
          "Mean ± SD over seeds 1, 2, 3.", ""]

    def table(title, key, fmt, group):
        md.extend([f"### {title}", "", "| experiment | rule | " + ("net | " if group else "") +
                   f"{key} | epochs | wall s (per run) |",
                   "|---|---|" + ("---|" if group else "") + "---|---|---|"])
        seen = []
        for r in rows:
            k = (r["experiment"], r.get("net", ""), r["rule"])
            if k in seen or key not in r or (r["experiment"] == "deep") != group:
                continue
            seen.append(k)
            same = [x for x in rows if (x["experiment"], x.get("net", ""), x["rule"]) == k]
            m, sd = mean_sd([x[key] for x in same])
            w, _ = mean_sd([x["wall_s"] for x in same])
            md.append(f"| {k[0]} | {k[2]} | " + (f"{k[1]} | " if group else "") +
                      f"{fmt(m)} ± {fmt(sd)} | {same[0]['epochs']:g} | {w:.1f} |")
        md.append("")

    table("Classification (test error)", "test_error", lambda v: f"{100 * v:.2f} %", False)
    table("Regression (test NSE = Σ‖e‖² / Σ‖y*‖²)", "nse", lambda v: f"{v:.3g}", False)
    table("Deep nonlinear task (test NSE)", "nse", lambda v: f"{v:.3g}", True)

    # Linear task: steps to reach NSE thresholds, and the FA angle.
    lin = [r for r in results if r["experiment"] == "linear"]
    if lin:
        md.extend(["### Linear task: steps to reach a test NSE", "",
                   "| rule | NSE ≤ 1e-1 | NSE ≤ 1e-2 | NSE ≤ 1e-4 | FA–BP angle, first 100 steps → last 500 |",
                   "|---|---|---|---|---|"])
        for rule in ("shallow", "bp", "fa", "dfa", "kp"):
            cells = []
            for thr in (1e-1, 1e-2, 1e-4):
                hits = []
                for r in lin:
                    if r["rule"] != rule:
                        continue
                    evals = [e for e in r["events"] if e["type"] == "eval"]
                    hit = next((e["step"] for e in evals if e["nse"] <= thr), None)
                    hits.append(hit)
                cells.append("never" if any(h is None for h in hits) else f"{statistics.mean(hits):.0f}")
            angle = "–"
            if rule in ("fa", "dfa", "kp"):
                firsts, lasts = [], []
                for r in lin:
                    if r["rule"] != rule:
                        continue
                    steps = [e for e in r["events"] if e["type"] == "step"]
                    a = [e["alignment"][0]["update_angle_mean"] for e in steps]
                    a = [x for x in a if x is not None]
                    firsts.append(statistics.mean(a[:4]))
                    lasts.append(statistics.mean(a[-20:]))
                angle = f"{statistics.mean(firsts):.0f}° → {statistics.mean(lasts):.0f}°"
            md.append(f"| {rule} | " + " | ".join(cells) + f" | {angle} |")
        md.append("")

    md.extend(["### Commands", "", "Each run is `build/tools/alignd_train` with these flags "
               "(plus `--seed`, and `--out` for its metrics):", ""])
    seen = set()
    for r in results:
        key = (r["experiment"], r.get("net", ""), r["rule"])
        if key in seen:
            continue
        seen.add(key)
        args_text = r["args"].replace(mnist_dir, "$MNIST")
        md.append(f"- {r['experiment']} {r.get('net', '')} {r['rule']}: `{args_text}`")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    plot(results, out_dir)
    print(f"\nwrote {out_dir}/results.json, results.md and plots")
    return 0


def plot(results, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lin = [r for r in results if r["experiment"] == "linear"]
    if lin:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        for rule in ("shallow", "bp", "fa", "dfa", "kp"):
            rs = [r for r in lin if r["rule"] == rule]
            if not rs:
                continue
            evals = [[e for e in r["events"] if e["type"] == "eval"] for r in rs]
            steps = [e["step"] for e in evals[0]]
            nse = [statistics.mean(ev[i]["nse"] for ev in evals) for i in range(len(steps))]
            ax1.semilogy(steps, nse, label=rule, linestyle="--" if rule == "dfa" else "-")
            if rule in ("fa", "kp"):
                st = [e for e in rs[0]["events"] if e["type"] == "step"]
                ax2.plot([e["step"] for e in st],
                         [e["alignment"][0]["update_angle_mean"] for e in st], label=rule, lw=0.8)
        ax1.set(xlabel="step (examples seen)", ylabel="test NSE", title="Linear task 30-20-10")
        ax1.legend()
        ax2.axhline(90, color="gray", lw=0.5)
        ax2.set(xlabel="step", ylabel="degrees", title="Hidden update angle to BP (seed 1)")
        ax2.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "linear.png"), dpi=110)
    mn = [r for r in results if r["experiment"] in ("mnist", "sparse")]
    if mn:
        fig, ax = plt.subplots(figsize=(6, 4))
        for exp in ("mnist", "sparse"):
            for rule in ("bp", "fa", "shallow"):
                rs = [r for r in mn if r["rule"] == rule and r["experiment"] == exp]
                if not rs:
                    continue
                evals = [[e for e in r["events"] if e["type"] == "eval"] for r in rs]
                n = min(len(ev) for ev in evals)
                ep = [evals[0][i]["step"] / max(1, evals[0][-1]["step"]) * rs[0]["summary"]["epochs"] for i in range(n)]
                err = [100 * statistics.mean(ev[i]["error_rate"] for ev in evals) for i in range(n)]
                ax.plot(ep, err, label=f"{exp} {rule}", linestyle=":" if exp == "sparse" else "-")
        ax.set(xlabel="epoch", ylabel="test error (%)", title="MNIST 784-1000-10, logistic, squared error",
               ylim=(0, 12))
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "mnist.png"), dpi=110)


if __name__ == "__main__":
    sys.exit(main())
