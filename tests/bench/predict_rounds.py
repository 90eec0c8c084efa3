#!/usr/bin/env python3
"""Predict of 1,000 MNIST images served by alignd against the in-process forward pass, in rounds.

service_bench.py measures its two sides a minute apart, once; on a host whose speed drifts
20-40 % between runs that spread is larger than the gap it measures. This script alternates
instead: each round runs micro_bench's BM_NetworkPredict/1000 (in-process), then each alignd
binary given (--alignd, repeatable: an A/B of two builds), each freshly started, through the
Python client: a short session, then --calls timed Predicts of 1,000 test images (p50, mean,
p90). With --busy, each alignd first receives MNIST's 60,000 training images and trains a
3,000-step session, as service_bench's server has before its Predicts.

    python3 tests/bench/predict_rounds.py --build build --rounds 3
    python3 tests/bench/predict_rounds.py --build build --alignd old/alignd --alignd build/server/alignd
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def mnist(mnist_dir, split):
    with open(os.path.join(mnist_dir, f"{split}-images-idx3-ubyte"), "rb") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255
    with open(os.path.join(mnist_dir, f"{split}-labels-idx1-ubyte"), "rb") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int32)
    return x, y


def served(Client, binary, train, test, calls, busy):
    x, y = train if busy else (train[0][:2000], train[1][:2000])
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--metrics_listen", "127.0.0.1:0",
                              "--data_dir", tmp], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        try:
            addr = p.stdout.readline().strip().rsplit(" ", 1)[-1]
            c = Client(addr, timeout=120)
            c.wait_ready()
            ds = c.upload_dataset(x, y)
            s = c.create_session(ds, sizes=[784, 1000, 10], output="softmax", loss="cross_entropy",
                                 batch_size=32, max_steps=3000 if busy else 100, metrics_every=50)
            for e in c.stream_metrics(s):
                if "end" in e:
                    break
            c.predict(s, test[:1000])  # the first loads the network
            ts = []
            for _ in range(calls):
                t0 = time.perf_counter()
                c.predict(s, test[:1000])
                ts.append((time.perf_counter() - t0) * 1e3)
            return np.array(ts)
        finally:
            p.terminate()
            p.wait()


def in_process(build):
    out = subprocess.run([os.path.join(build, "tests/bench/micro_bench"),
                          "--benchmark_filter=BM_NetworkPredict/1000$", "--benchmark_format=json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["benchmarks"][0]["real_time"] / 1e3  # microseconds -> ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--mnist_dir", default=os.path.expanduser("~/.cache/alignd/mnist"))
    ap.add_argument("--alignd", action="append", help="an alignd binary (default: the build's)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--busy", action="store_true", help="upload MNIST's training set and train first")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    sys.path.insert(0, os.path.join(build, "python"))
    from alignd_client import Client
    binaries = args.alignd or [os.path.join(build, "server/alignd")]
    train, test = mnist(args.mnist_dir, "train"), mnist(args.mnist_dir, "t10k")[0]
    every = {b: [] for b in binaries}
    for r in range(args.rounds):
        forward = in_process(build)
        for b in binaries:
            ts = served(Client, b, train, test, args.calls, args.busy)
            every[b].append(ts)
            p50 = float(np.median(ts))
            print(f"round {r + 1}  {b}: p50 {p50:6.2f} ms  mean {ts.mean():6.2f}  "
                  f"p90 {np.percentile(ts, 90):6.2f}   in-process {forward:6.2f} ms: "
                  f"{p50 / forward:.2f}x (target <= 1.5x)", flush=True)
    for b, runs in every.items():
        ts = np.concatenate(runs)
        print(f"all rounds  {b}: p50 {np.median(ts):6.2f} ms  mean {ts.mean():6.2f}  "
              f"p90 {np.percentile(ts, 90):6.2f}  over {len(ts)} calls")


if __name__ == "__main__":
    main()
