#!/usr/bin/python3
"""make bench: alignd's engine and PyTorch side by side, in one run, on this machine.

Runs build/tests/bench/gemm_bench (the products and the machine's FMA peak),
build/tests/bench/conv_bench (LeNet's convolutions: core/conv.h against oneDNN alone),
build/tests/bench/alignd_bench and tests/bench/torch_bench.py (one thread each, then two
threads on one session; PyTorch with OpenBLAS's own CPU detection, i.e. OPENBLAS_CORETYPE
and OPENBLAS_L2_SIZE unset for that command alone, and as many BLAS threads as torch
intra-op threads), prints the comparison with the performance issue's targets, and writes
build/bench/engine.json.
"""
import argparse
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build", default="build")
    p.add_argument("--mnist_dir", default="")
    p.add_argument("--seconds", type=float, default=1.5, help="per measurement")
    p.add_argument("--lenet_rounds", type=int, default=3,
                   help="LeNet: alignd and PyTorch alternately, this many times (median ratio)")
    args = p.parse_args()
    build = os.path.abspath(args.build)
    out_dir = os.path.join(build, "bench")
    os.makedirs(out_dir, exist_ok=True)
    mnist = args.mnist_dir or subprocess.run(
        [os.path.join(ROOT, "tools/repro/fetch_mnist.sh")], check=True,
        capture_output=True, text=True).stdout.strip()

    engine_json = os.path.join(out_dir, "alignd_rows.json")
    gemm_json = os.path.join(out_dir, "gemm.json")
    subprocess.run([os.path.join(build, "tests/bench/gemm_bench"), "--out", gemm_json],
                   check=True)
    conv = json.loads(subprocess.run(
        [os.path.join(build, "tests/bench/conv_bench"), "--benchmark_format=json",
         f"--benchmark_min_time={args.seconds / 5}"],
        check=True, capture_output=True, text=True).stdout)["benchmarks"]
    with open(os.path.join(out_dir, "conv.json"), "w") as f:
        json.dump(conv, f, indent=1)
    subprocess.run([os.path.join(build, "tests/bench/alignd_bench"), "--mnist_dir", mnist,
                    "--seconds", str(args.seconds), "--out", engine_json], check=True)

    def torch(threads, *extra, blas=None):
        blas = blas or threads
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), OMP_NUM_THREADS=str(blas),
                   MKL_NUM_THREADS=str(blas))
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
        out = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "torch_bench.py"),
                              "--mnist_dir", mnist, "--seconds", str(args.seconds),
                              "--threads", str(threads), *extra],
                             check=True, capture_output=True, text=True, env=env)
        return json.loads(out.stdout)

    # PyTorch on two threads, configured three ways (torch intra-op x OpenBLAS threads); the
    # comparison takes the fastest of them, row by row. Measured here: OpenBLAS 2 with
    # intra-op 1 is the fastest; both at 2 oversubscribe the two cores.
    theirs = torch(1, "--scaling") + torch(1, "--lenet")
    # LeNet's rows swing with whatever else the machine runs: alignd and PyTorch take turns,
    # `lenet_rounds` times (the first round is the runs above), and the table reports each
    # round's ratio and their median.
    with open(engine_json) as f:
        lenet_rounds = [([r for r in json.load(f) if r.get("net") == "lenet"],
                         [r for r in theirs if r["net"] == "lenet"])]
    for _ in range(max(1, args.lenet_rounds) - 1):
        round_json = os.path.join(out_dir, "alignd_lenet_round.json")
        subprocess.run([os.path.join(build, "tests/bench/alignd_bench"), "--mnist_dir", mnist,
                        "--seconds", str(args.seconds), "--lenet_only", "--out", round_json],
                       check=True, capture_output=True)
        with open(round_json) as f:
            lenet_rounds.append((json.load(f), torch(1, "--lenet")))
    for intra_op, blas in ((1, 2), (2, 1), (2, 2)):
        theirs += torch(2, "--intra_op", str(intra_op), blas=blas)
    with open(engine_json) as f:
        ours = json.load(f)
    with open(gemm_json) as f:
        gemm = json.load(f)
    rows = [r for r in ours if "samples_per_s" in r and "metrics_every" not in r] + theirs

    def sps(net, impl, rule, batch, threads=1):
        """The fastest row that matches (PyTorch's two-thread configurations)."""
        found = [r["samples_per_s"] for r in rows
                 if (r["net"], r["impl"], r["rule"], r["batch"], r.get("threads", 1)) ==
                 (net, impl, rule, batch, threads)]
        return max(found) if found else float("nan")

    def best_config(impl, rule, batch):
        found = [r for r in rows if (r["net"], r["impl"], r["rule"], r["batch"],
                                     r.get("threads", 1)) == ("mnist", impl, rule, batch, 2)]
        return max(found, key=lambda r: r["samples_per_s"])["config"] if found else "?"

    ok = True

    def verdict(value, target):
        nonlocal ok
        ok &= value >= target
        return "ok" if value >= target else "MISSED"

    print("\nsamples per second, one thread (higher is better)")
    print(f"{'net':6} {'rule':4} {'batch':>5} {'alignd':>10} {'torch_autograd':>15} "
          f"{'torch_manual':>13} {'vs autograd':>12} {'target':>7} {'vs manual':>10} {'target':>7}")
    # (vs autograd, vs torch_manual)
    targets = {("mnist", 1): (3.0, 1.5), ("mnist", 32): (1.3, 1.15),
               ("mnist", 128): (1.3, 1.15), ("tiny", 1): (50.0, None)}
    for net, batches in (("mnist", (1, 32, 128)), ("tiny", (1,))):
        for batch in batches:
            for rule in ("bp", "fa"):
                a = sps(net, "alignd", rule, batch)
                ta = sps(net, "torch_autograd", rule, batch)
                tm = sps(net, "torch_manual", rule, batch)
                t_auto, t_man = targets[(net, batch)]
                line = (f"{net:6} {rule:4} {batch:5d} {a:10.0f} {ta:15.0f} {tm:13.0f} "
                        f"{a / ta:11.2f}x {t_auto:6.2f}x {verdict(a / ta, t_auto):6} "
                        f"{a / tm:8.2f}x")
                if t_man:
                    line += f" {t_man:6.2f}x {verdict(a / tm, t_man)}"
                print(line)

    print("\nLeNet-5 on 1x28x28, one thread: samples/s (ReLU, softmax cross-entropy, plain SGD; "
          f"target >= 1.20x torch manual at batch 64), {len(lenet_rounds)} rounds of alignd then "
          "PyTorch: the median of each, and each round's ratio")
    print(f"{'rule':4} {'batch':>5} {'alignd':>10} {'torch manual':>13} {'torch autograd':>15} "
          f"{'alignd/manual':>14} {'alignd/autograd':>16}  alignd/manual by round")

    def median(v):
        if not v or any(math.isnan(x) for x in v):
            return float("nan")  # a missing row stays missing
        v = sorted(v)
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

    def lenet(rs, impl, rule, batch):
        found = [r["samples_per_s"] for r in rs if (r["impl"], r["rule"], r["batch"]) == (impl, rule, batch)]
        return found[0] if found else float("nan")

    for batch in (1, 64, 256):
        for rule in ("bp", "fa"):
            a = [lenet(ours_r, "alignd", rule, batch) for ours_r, _ in lenet_rounds]
            tm = [lenet(th, "torch_manual", rule, batch) for _, th in lenet_rounds]
            ta = [lenet(th, "torch_autograd", rule, batch) for _, th in lenet_rounds]
            by_round = [x / y for x, y in zip(a, tm)]
            ratio = median(by_round)
            line = (f"{rule:4} {batch:5d} {median(a):10.0f} {median(tm):13.0f} {median(ta):15.0f} "
                    f"{ratio:13.2f}x {median([x / y for x, y in zip(a, ta)]):15.2f}x  "
                    + " / ".join(f"{x:.2f}x" for x in by_round))
            if batch == 64:
                line += f"  target 1.20x {verdict(ratio, 1.2)}"
            print(line)

    # conv_bench: core/conv.h's door against the primitive alone (CPU time: one thread, so
    # time the process waited for a core on this shared machine does not count).
    times = {b["name"]: b for b in conv}
    print("\nLeNet-5's convolutions, one thread: core/conv.h (our layouts, the primitive + its "
          "reorders) against oneDNN's primitive alone (its own layouts, no reorders), us per call")
    print(f"{'conv':5} {'op':16} {'batch':>5} {'core':>9} {'oneDNN':>9} {'core/oneDNN':>12}  "
          f"oneDNN implementation")
    for name in ("conv1", "conv2"):
        for op in ("forward", "backward_data", "backward_weights"):
            for batch in (1, 64, 256):
                tail = f"{name}/{op}/{batch}"
                c, o = times.get("core/" + tail), times.get("onednn/" + tail)
                if not c or not o:
                    continue
                note = "  (not in a LeNet step)" if tail.startswith("conv1/backward_data") else ""
                print(f"{name:5} {op:16} {batch:5d} {c['cpu_time']:9.1f} {o['cpu_time']:9.1f} "
                      f"{c['cpu_time'] / o['cpu_time']:11.2f}x  {o.get('label', '')}{note}")
    pools = [f"{n.split('/')[1]} {n.split('/')[2]} {b['cpu_time']:.0f}" for n, b in times.items()
             if n.startswith("core/pool") and n.endswith("/64")]
    print("max pooling (core's loops), batch 64, us per call: " + ", ".join(pools))

    print("\ntwo threads on one session (TrainingConfig.threads = 2) against one (measured in "
          "alternating rounds in one section), against its products on two threads (the shape "
          "bound), and against PyTorch on two threads (the fastest of intra-op x OpenBLAS "
          "threads 1x2, 2x1, 2x2)")
    print(f"{'rule':4} {'batch':>5} {'alignd 2':>10} {'alignd 1':>10} {'2 vs 1':>7} {'target':>7} "
          f"{'of bound':>9} {'target':>7} {'torch_autograd 2':>17} {'torch_manual 2':>15} "
          f"{'vs best torch':>14} {'target':>7}")

    def two_thread_row(rule, batch):
        found = [r for r in ours if (r.get("net"), r.get("rule"), r.get("batch"),
                                     r.get("threads", 1)) == ("mnist", rule, batch, 2)]
        return found[0] if found else {}

    for batch in (32, 128):
        for rule in ("bp", "fa"):
            row = two_thread_row(rule, batch)
            a2 = row.get("samples_per_s", float("nan"))
            a1 = row.get("one_thread_samples_per_s", sps("mnist", "alignd", rule, batch))
            bound = row.get("fraction_of_shape_bound", float("nan"))
            ta2 = sps("mnist", "torch_autograd", rule, batch, 2)
            tm2 = sps("mnist", "torch_manual", rule, batch, 2)
            best = max(ta2, tm2)
            line = f"{rule:4} {batch:5d} {a2:10.0f} {a1:10.0f} {a2 / a1:6.2f}x "
            if batch == 128:
                line += (f"{'1.80x':>7} {verdict(a2 / a1, 1.8):6} {100 * bound:7.0f}% "
                         f"{'90%':>5} {verdict(bound, 0.9):6} ")
            else:
                line += f"{'':>14} {100 * bound:7.0f}% {'':>12} "
            line += f"{ta2:17.0f} {tm2:15.0f} {a2 / best:13.2f}x "
            line += f"1.15x {verdict(a2 / best, 1.15)}" if batch == 128 else ""
            print(line + f"  [torch best: {best_config('torch_manual', rule, batch)}]")

    print("\nscaling: BP, batch 128, one thread, samples/s (784 inputs, 10 classes)")
    print(f"{'net':22} {'alignd':>10} {'GFLOP/s':>8} {'torch_autograd':>15} {'torch_manual':>13} "
          f"{'vs autograd':>12} {'vs manual':>10}")
    scaling = [r for r in ours if r.get("net", "").startswith("784-") and r["batch"] == 128]
    for r in scaling:
        ta = sps(r["net"], "torch_autograd", "bp", 128)
        tm = sps(r["net"], "torch_manual", "bp", 128)
        print(f"{r['net']:22} {r['samples_per_s']:10.0f} {r['gflops']:8.1f} {ta:15.0f} "
              f"{tm:13.0f} {r['samples_per_s'] / ta:11.2f}x {r['samples_per_s'] / tm:9.2f}x")

    per_example = [r for r in ours if r.get("net") == "per_example"]
    if per_example:
        bw = per_example[0]["rmw_bandwidth"]
        print(f"\nper-example SGD (batch 1, 784-1000-10) against its memory bound: the bytes a step "
              f"must move (each weight it updates read and written once) at this machine's "
              f"read-modify-write bandwidth at that working set, {bw / 1e9:.1f} GB/s")
        for r in per_example:
            dense = "skipped" not in r["case"]
            line = (f"  {r['case']:38} {r['rule']:3} {r['samples_per_s']:8.0f} samples/s "
                    f"{r['bytes_per_step'] / 1e6:5.2f} MB/step "
                    f"{r['fraction_of_memory_bound']:5.0%} of the bound")
            if dense:
                line += f"  (target >= 80%) {verdict(r['fraction_of_memory_bound'], 0.8)}"
            print(line)

    peak = next(r for r in gemm if r["what"] == "fma_peak")
    summary = next(r for r in ours if r.get("net") == "summary")
    fractions = [r["fraction_of_shape_bound"] for r in rows
                 if r["impl"] == "alignd" and "fraction_of_shape_bound" in r]
    mnist_fr = [r["fraction_of_shape_bound"] for r in rows if r["impl"] == "alignd" and
                r["net"] == "mnist" and "fraction_of_shape_bound" in r]
    print(f"\nshape bound ({summary['gemm_backend']} products): the MNIST steps run at "
          f"{min(mnist_fr):.0%}-{max(mnist_fr):.0%} of the speed of their products alone "
          f"(target >= 85%) {verdict(min(mnist_fr), 0.85)}; all nets "
          f"{min(fractions):.0%}-{max(fractions):.0%}")
    b128 = [r for r in gemm if "128" in r["what"] and r["what"] != "fma_peak"]
    big = [r for r in b128 if not r["what"].startswith("backward")]
    print(f"products at batch 128 ({peak['isa']} FMA peak {peak['gflops']:.1f} GFLOP/s): " +
          ", ".join(f"{r['what'].split()[0]} {r['gflops']:.1f} ({r['fraction_of_peak']:.0%})"
                    for r in b128) +
          f"; the two that carry the step (forward, update) "
          f"{min(r['fraction_of_peak'] for r in big):.0%}+ (target >= 80%) "
          f"{verdict(min(r['fraction_of_peak'] for r in big), 0.8)}")
    print(f"FA step time / BP step time: {summary['fa_over_bp_step_time']:.3f} (target <= 1.05)")
    print(f"alignment metrics every 100 steps: {summary['metrics_cost']:+.1%} (target < 5%)")
    with open(os.path.join(out_dir, "engine.json"), "w") as f:
        json.dump(rows + gemm, f, indent=1)
    print(f"\nwrote {os.path.join(out_dir, 'engine.json')}"
          f"{'' if ok else '; some targets were MISSED in this run'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
