#!/usr/bin/python3
"""make bench: alignd's engine and PyTorch side by side, in one run, on this machine.

Runs build/tests/bench/alignd_bench and tests/bench/torch_bench.py (one thread each;
PyTorch with OpenBLAS's own CPU detection, i.e. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
unset for that command alone, and one BLAS thread), prints the comparison with the
targets of the engine issue, and writes build/bench/engine.json.
"""
import argparse
import json
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
    args = p.parse_args()
    build = os.path.abspath(args.build)
    out_dir = os.path.join(build, "bench")
    os.makedirs(out_dir, exist_ok=True)
    mnist = args.mnist_dir or subprocess.run(
        [os.path.join(ROOT, "tools/repro/fetch_mnist.sh")], check=True,
        capture_output=True, text=True).stdout.strip()

    engine_json = os.path.join(out_dir, "alignd_rows.json")
    subprocess.run([os.path.join(build, "tests/bench/alignd_bench"), "--mnist_dir", mnist,
                    "--seconds", str(args.seconds), "--out", engine_json], check=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    torch_out = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "torch_bench.py"),
                                "--mnist_dir", mnist, "--seconds", str(args.seconds)],
                               check=True, capture_output=True, text=True, env=env)
    with open(engine_json) as f:
        ours = json.load(f)
    theirs = json.loads(torch_out.stdout)
    rows = [r for r in ours if r.get("net") in ("mnist", "tiny") and "metrics_every" not in r]
    rows += theirs

    def sps(net, impl, rule, batch):
        for r in rows:
            if (r["net"], r["impl"], r["rule"], r["batch"]) == (net, impl, rule, batch):
                return r["samples_per_s"]
        return float("nan")

    print("\nsamples per second, one thread (higher is better)")
    print(f"{'net':6} {'rule':4} {'batch':>5} {'alignd':>10} {'torch_autograd':>15} "
          f"{'torch_manual':>13} {'vs autograd':>12} {'target':>7}")
    targets = {("mnist", 1): 2.0, ("mnist", 32): 1.3, ("mnist", 128): 1.15, ("tiny", 1): 20.0}
    ok = True
    for net, batches in (("mnist", (1, 32, 128)), ("tiny", (1,))):
        for batch in batches:
            for rule in ("bp", "fa"):
                a = sps(net, "alignd", rule, batch)
                ta = sps(net, "torch_autograd", rule, batch)
                tm = sps(net, "torch_manual", rule, batch)
                t = targets[(net, batch)]
                ok &= a / ta >= t
                print(f"{net:6} {rule:4} {batch:5d} {a:10.0f} {ta:15.0f} {tm:13.0f} "
                      f"{a / ta:11.2f}x {t:6.2f}x {'ok' if a / ta >= t else 'MISSED'}")
    summary = next(r for r in ours if r.get("net") == "summary")
    fractions = [r["fraction_of_shape_bound"] for r in rows if r["impl"] == "alignd"]
    print(f"\nshape bound: alignd steps run at {min(fractions):.0%}-{max(fractions):.0%} of the "
          f"speed of their products alone (target >= 80%)")
    print(f"FA step time / BP step time: {summary['fa_over_bp_step_time']:.3f} (target <= 1.05)")
    print(f"alignment metrics every 100 steps: {summary['metrics_cost']:+.1%} (target < 5%)")
    gemm = next(r for r in ours if r.get("net") == "gemm")
    print(f"Eigen single-thread GEMM 1024^3: {gemm['gflops']:.1f} GFLOP/s; products by "
          f"{summary['gemm_backend']}")
    with open(os.path.join(out_dir, "engine.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(f"\nwrote {os.path.join(out_dir, 'engine.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
