#!/usr/bin/python3
"""make bench, checkpoint backlog: a fast session (30-64-64-10, batch 1: hundreds of thousands
of steps/s on a small machine) with --checkpoint_every 500 trains for --seconds, then is
cancelled. Reported: steps/s, alignd's peak resident memory (VmHWM) and how long Cancel took
to return and the session to be CANCELLED, then how long SIGTERM took to end the process; side
by side with the same run and checkpoints off (--checkpoint_every 0), the reference. Before
the recorder kept at most one checkpoint waiting per session, the writer fell behind (each
checkpoint two fsyncs), the queue grew to 256 MiB per session and Cancel wrote every
obsolete checkpoint first. --alignd runs another binary (an older build) for comparison.

Writes build/bench/checkpoint.json.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(binary, every, seconds):
    from alignd_client._pb.alignd.v1 import config_pb2, datasets_pb2, datasets_pb2_grpc, sessions_pb2, sessions_pb2_grpc
    import grpc
    d = tempfile.mkdtemp(prefix="alignd_ckpt_bench_")
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--metrics_listen", "", "--data_dir", d,
                          "--checkpoint_every", str(every), "--grace_s", "10"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = p.stdout.readline().strip().rsplit(" ", 1)[-1]
        ch = grpc.insecure_channel(address)
        grpc.channel_ready_future(ch).result(timeout=30)
        ds_stub = datasets_pb2_grpc.DatasetServiceStub(ch)
        tr = sessions_pb2_grpc.TrainingServiceStub(ch)
        spec = datasets_pb2.GeneratorSpec(kind=datasets_pb2.GeneratorSpec.KIND_LINEAR, num_examples=2000,
                                          input_dim=30, output_dim=10, seed=1)
        ds = ds_stub.CreateGeneratedDataset(datasets_pb2.CreateGeneratedDatasetRequest(spec=spec), timeout=60)
        c = config_pb2.TrainingConfig(batch_size=1, max_steps=10 ** 12, metrics_every=1000, seed=1)
        c.network.sizes.extend([30, 64, 64, 10])
        c.feedback.rule = config_pb2.RULE_FEEDBACK_ALIGNMENT
        s = tr.CreateSession(sessions_pb2.CreateSessionRequest(
            session=sessions_pb2.Session(train_dataset=ds.name, config=c)), timeout=60)
        peak = 0.0
        t0 = time.monotonic()
        first = None
        while time.monotonic() - t0 < seconds:
            time.sleep(0.25)
            peak = max(peak, vm_hwm_mib(p.pid))
            g = tr.GetSession(sessions_pb2.GetSessionRequest(name=s.name), timeout=60)
            if first is None and g.step > 0:
                first = (time.monotonic(), g.step)
        g = tr.GetSession(sessions_pb2.GetSessionRequest(name=s.name), timeout=60)
        rate = (g.step - first[1]) / (time.monotonic() - first[0]) if first else float("nan")
        t = time.monotonic()
        tr.CancelSession(sessions_pb2.CancelSessionRequest(name=s.name), timeout=120)
        cancel_rpc = time.monotonic() - t
        while tr.GetSession(sessions_pb2.GetSessionRequest(name=s.name), timeout=120).state != \
                sessions_pb2.SESSION_STATE_CANCELLED:
            time.sleep(0.01)
        cancelled = time.monotonic() - t
        peak = max(peak, vm_hwm_mib(p.pid))
        ch.close()
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
        return {"checkpoint_every": every, "steps_per_s": rate, "peak_rss_mib": peak,
                "cancel_rpc_s": cancel_rpc, "cancelled_s": cancelled, "sigterm_s": time.monotonic() - t}
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--alignd", help="the alignd binary (default: BUILD/server/alignd)")
    ap.add_argument("--seconds", type=float, default=30)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.build, "python"))
    binary = a.alignd or os.path.join(a.build, "server/alignd")
    rows = [run(binary, 500, a.seconds), run(binary, 0, a.seconds)]
    print(f"checkpoint backlog ({binary}, {a.seconds:.0f} s of 30-64-64-10 at batch 1, then cancel)")
    print(f"{'checkpoint_every':>16} {'steps/s':>10} {'peak RSS MiB':>13} {'Cancel s':>9} {'CANCELLED s':>12} {'SIGTERM s':>10}")
    for r in rows:
        print(f"{r['checkpoint_every']:>16} {r['steps_per_s']:>10.0f} {r['peak_rss_mib']:>13.1f} {r['cancel_rpc_s']:>9.3f}"
              f" {r['cancelled_s']:>12.3f} {r['sigterm_s']:>10.3f}")
    print(f"peak RSS with checkpoints / without: {rows[0]['peak_rss_mib'] / rows[1]['peak_rss_mib']:.2f}x")
    out = os.path.join(a.build, "bench")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "checkpoint.json"), "w") as f:
        json.dump({"alignd": binary, "seconds": a.seconds, "runs": rows}, f, indent=1)


if __name__ == "__main__":
    main()
