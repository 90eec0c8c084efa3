#!/usr/bin/python3
"""make bench, shutdown: how long SIGTERM takes to end alignd (exit code 0) with what clients
hold open. Cases: nothing (the reference); 44 idle gRPC channels that made one call each, a raw
TCP connection and one that sent half the HTTP/2 preface; the same connections with two fast
sessions (30-20-10 at batch 1) checkpointing every 100 steps for --seconds and a client
following one of them. Each at --grace_s 10, which Kubernetes' grace period must cover.
Before shutdown closed idle connections once no call was in flight, they held alignd for the
whole --grace_s (20 s at most: gRPC gives up on an unacknowledged GOAWAY); before the
recorder kept one checkpoint waiting per session, shutdown first stored every one queued.
--alignd runs another binary (an older build) for comparison.

Writes build/bench/shutdown.json.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

GRACE_S = 10


def run(binary, connections, sessions, seconds):
    from alignd_client._pb.alignd.v1 import config_pb2, datasets_pb2, datasets_pb2_grpc, sessions_pb2, sessions_pb2_grpc
    import grpc
    d = tempfile.mkdtemp(prefix="alignd_shutdown_bench_")
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--metrics_listen", "", "--data_dir", d,
                          "--grace_s", str(GRACE_S), "--max_running", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    channels, sockets, follow = [], [], None
    try:
        address = p.stdout.readline().strip().rsplit(" ", 1)[-1]
        host, port = address.rsplit(":", 1)
        main = grpc.insecure_channel(address)
        grpc.channel_ready_future(main).result(timeout=30)
        channels.append(main)
        tr = sessions_pb2_grpc.TrainingServiceStub(main)
        names = []
        if sessions:
            spec = datasets_pb2.GeneratorSpec(kind=datasets_pb2.GeneratorSpec.KIND_LINEAR, num_examples=500,
                                              input_dim=30, output_dim=10, seed=1)
            ds = datasets_pb2_grpc.DatasetServiceStub(main).CreateGeneratedDataset(
                datasets_pb2.CreateGeneratedDatasetRequest(spec=spec), timeout=60)
            for i in range(sessions):
                c = config_pb2.TrainingConfig(batch_size=1, max_steps=10 ** 12, metrics_every=1000, seed=1 + i)
                c.network.sizes.extend([30, 20, 10])
                c.feedback.rule = config_pb2.RULE_FEEDBACK_ALIGNMENT
                names.append(tr.CreateSession(sessions_pb2.CreateSessionRequest(session=sessions_pb2.Session(
                    train_dataset=ds.name, config=c, checkpoint_every=100)), timeout=60).name)
        for _ in range(connections):
            ch = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            sessions_pb2_grpc.TrainingServiceStub(ch).ListSessions(sessions_pb2.ListSessionsRequest(), timeout=30)
            channels.append(ch)
        if connections:
            for preface in (b"", b"PRI * HTTP/2.0\r\n"):
                sock = socket.create_connection((host, int(port)))
                sock.sendall(preface)
                sockets.append(sock)
        if names:
            follow = tr.StreamMetrics(sessions_pb2.StreamMetricsRequest(parent=names[0]))
            next(follow)
            time.sleep(seconds)
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=300)
        return {"connections": connections, "sessions": sessions, "sigterm_s": time.monotonic() - t,
                "exit": p.returncode}
    finally:
        if follow is not None:
            follow.cancel()
        for ch in channels:
            ch.close()
        for sock in sockets:
            sock.close()
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--alignd", help="the alignd binary (default: BUILD/server/alignd)")
    ap.add_argument("--seconds", type=float, default=6, help="how long the sessions train before SIGTERM")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.build, "python"))
    binary = a.alignd or os.path.join(a.build, "server/alignd")
    rows = [run(binary, 0, 0, a.seconds), run(binary, 44, 0, a.seconds), run(binary, 0, 2, a.seconds),
            run(binary, 44, 2, a.seconds)]
    print(f"shutdown ({binary}, --grace_s {GRACE_S}; sessions: 30-20-10 at batch 1, checkpoint every 100 steps, "
          f"{a.seconds:.0f} s)")
    print(f"{'open connections':>16} {'sessions':>9} {'SIGTERM s':>10} {'exit':>5}")
    for r in rows:
        print(f"{r['connections'] and str(r['connections']) + ' + 2 raw' or 0:>16} {r['sessions']:>9}"
              f" {r['sigterm_s']:>10.3f} {r['exit']:>5}")
    out = os.path.join(a.build, "bench")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "shutdown.json"), "w") as f:
        json.dump({"alignd": binary, "grace_s": GRACE_S, "seconds": a.seconds, "runs": rows}, f, indent=1)


if __name__ == "__main__":
    main()
