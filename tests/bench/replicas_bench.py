#!/usr/bin/python3
"""make bench, replicas: alignd on PostgreSQL 15 (started here, as in tests/e2e) and a shared
blob folder, against the embedded default, all on this machine.

  sweep       a 12-session sweep (30-64-10, batch 1, 400k steps, an event every 100 steps, a
              checkpoint every 5,000) on one embedded alignd and on one replica on PostgreSQL,
              both --max_running 2: wall time, and the ratio (the cost of the database).
  failover    kill -9 of the replica that trains a session; the time until the other replica
              trains it (its claim: the holder changes in the database), per --lease_ms.
  streams     a step event's latency (its wall_time to the client's receipt) for a follower on
              the training replica and one on another replica (LISTEN/NOTIFY, then a read).
  stop        pause asked of the training replica itself and through another replica (NOTIFY,
              the holder's next step, its checkpoint and PAUSED written), then a cancel.
  capacity    metric events PostgreSQL accepts per second from 2 replicas x 2 sessions with an
              event every step (the heaviest cadence), with its transactions per second
              (pg_capacity_bench, run after this, finds the database's own limit).

The machine has 2 cores: PostgreSQL, the replicas and the trainers share them, so these are
the figures of one small box; the capacity row is what one PostgreSQL took while sharing
them, a lower bound for a database on its own machine.
Writes build/bench/replicas.json.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

SWEEP = dict(sizes=[30, 64, 10], rule="fa", batch_size=1, max_steps=400000, metrics_every=100,
             checkpoint_every=5000)
LONG = dict(sizes=[30, 64, 64, 10], rule="fa", batch_size=1, max_steps=50_000_000, metrics_every=1000,
            checkpoint_every=20000, seed=1)
DONE = ("SESSION_STATE_SUCCEEDED", "SESSION_STATE_FAILED", "SESSION_STATE_CANCELLED")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def sweep(client, n=12):
    ds = client.generate_dataset("linear", examples=300)
    t0 = time.perf_counter()
    names = [client.create_session(ds["name"], **dict(SWEEP, seed=i + 1))["name"] for i in range(n)]
    while not all(client.get_session(s)["state"] in DONE for s in names):
        time.sleep(0.02)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--kills", type=int, default=8, help="kill -9 per lease setting")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.build, "python"))
    os.environ["ALIGND_BINARY"] = os.path.abspath(os.path.join(a.build, "server", "alignd"))
    from alignd_client import Client
    from test_postgres import TempPostgres
    from test_replicas import Replica
    import test_replicas

    pg = TempPostgres()
    out = {}
    procs = []

    def database(name):
        subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-h", pg.dir, "-U", "alignd", "-d",
                        "postgres", "-qc", f"CREATE DATABASE {name}"] if os.geteuid() == 0 else
                       ["psql", "-h", pg.dir, "-U", "alignd", "-d", "postgres", "-qc", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True)
        return pg.uri.rsplit("/", 1)[0] + "/" + name

    def rows(uri_db, q):
        cmd = ["psql", "-h", pg.dir, "-U", "alignd", "-d", uri_db, "-At", "-c", q]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        return [r.split("|") for r in subprocess.run(cmd, capture_output=True, text=True).stdout.split()]

    try:
        # ---- sweep: embedded vs one replica on PostgreSQL.
        d = tempfile.mkdtemp(prefix="alignd_bench_embedded_")
        emb = subprocess.Popen([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--metrics_listen", "",
                                "--data_dir", d, "--max_running", "2", "--max_threads", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(emb)
        with Client(emb.stdout.readline().strip().rsplit(" ", 1)[-1], timeout=120) as c:
            t_emb = sweep(c)
        emb.kill()
        test_replicas.LEASE_MS = 10000
        r = Replica(database("sweep"), tempfile.mkdtemp(prefix="alignd_bench_blobs_"), "s1", workers=2)
        procs.append(r.p)
        with Client(r.address, timeout=120) as c:
            t_pg = sweep(c)
        r.kill()
        out["sweep"] = {"sessions": 12, "embedded_s": t_emb, "postgresql_s": t_pg, "ratio": t_emb / t_pg}
        print(f"replicas: sweep of 12 sessions (30-64-10, batch 1, 400k steps, an event every 100), --max_running 2")
        print(f"  embedded (SQLite) {t_emb:7.2f} s   one replica on PostgreSQL {t_pg:7.2f} s   "
              f"throughput ratio {t_emb / t_pg:.2f}x")

        # ---- failover: kill -9 the holder, time to the other replica's claim.
        out["failover"] = []
        print(f"  failover: kill -9 of the training replica -> the other replica trains it (n = {a.kills} each)")
        for lease in (1000, 3000):
            test_replicas.LEASE_MS = lease
            uri = database(f"failover{lease}")
            blobs = tempfile.mkdtemp(prefix="alignd_bench_blobs_")
            reps = {n: Replica(uri, blobs, n) for n in ("fa", "fb")}
            procs.extend(x.p for x in reps.values())
            times = []
            with Client(reps["fa"].address, timeout=60) as c:
                ds = c.generate_dataset("linear", examples=300)
                s = c.create_session(ds["name"], **LONG)["name"]
                for _ in range(a.kills):
                    while True:
                        h = rows(uri.rsplit("/", 1)[-1], f"SELECT holder FROM sessions WHERE id = '{s}' AND state = 2")
                        if h and h[0] and h[0][0] in reps:
                            break
                        time.sleep(0.01)
                    holder = h[0][0]
                    time.sleep(random.uniform(0.2, 0.6))
                    t0 = time.perf_counter()
                    reps[holder].kill()
                    while True:
                        h = rows(uri.rsplit("/", 1)[-1], f"SELECT holder FROM sessions WHERE id = '{s}' AND state = 2")
                        if h and h[0] and h[0][0] not in ("", holder):
                            break
                        time.sleep(0.005)
                    times.append(time.perf_counter() - t0)
                    reps[holder].start()
                    procs.append(reps[holder].p)
            for x in reps.values():
                x.stop()
            row = {"lease_ms": lease, "n": len(times), "p50_s": statistics.median(times), "p99_s": pct(times, 0.99),
                   "min_s": min(times), "max_s": max(times)}
            out["failover"].append(row)
            print(f"    --lease_ms {lease:5d}: p50 {row['p50_s']:.2f} s  p99 {row['p99_s']:.2f} s  "
                  f"(min {row['min_s']:.2f}, max {row['max_s']:.2f}; p99 of {len(times)} is the max)")

        # ---- streams: latency on the trainer vs on another replica.
        test_replicas.LEASE_MS = 10000
        uri = database("streams")
        blobs = tempfile.mkdtemp(prefix="alignd_bench_blobs_")
        sa = Replica(uri, blobs, "sa")
        procs.append(sa.p)
        with Client(sa.address, timeout=60) as c:
            ds = c.generate_dataset("linear", examples=300)
            s = c.create_session(ds["name"], **dict(LONG, metrics_every=20000))["name"]
            while c.get_session(s)["state"] != "SESSION_STATE_RUNNING":
                time.sleep(0.01)
        sb = Replica(uri, blobs, "sb")  # after the claim: sa trains it
        procs.append(sb.p)
        lat = {"same": [], "other": []}

        def follow(address, key, seconds=6.0):
            with Client(address, timeout=60) as c:
                end = time.time() + seconds
                for e in c.stream_metrics(s, start_seq=c.get_session(s)["last_seq"] + 1):
                    now = time.time()
                    if "step" in e and e.get("wall_time") is not None:
                        lat[key].append(now - e["wall_time"].timestamp())
                    if now > end:
                        return
        ts = [threading.Thread(target=follow, args=(sa.address, "same")),
              threading.Thread(target=follow, args=(sb.address, "other"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        # ---- pause and cancel asked of the trainer: on its own replica, and through another.
        stops = {"same": [], "other": []}
        with Client(sa.address, timeout=60) as ca, Client(sb.address, timeout=60) as cb:
            for i in range(16):
                key, c = ("same", ca) if i % 2 == 0 else ("other", cb)
                while ca.get_session(s)["state"] != "SESSION_STATE_RUNNING":
                    time.sleep(0.01)
                time.sleep(0.2)
                t0 = time.perf_counter()
                c.pause_session(s)
                stops[key].append(time.perf_counter() - t0)
                c.resume_session(s)
            while ca.get_session(s)["state"] != "SESSION_STATE_RUNNING":
                time.sleep(0.01)
            t0 = time.perf_counter()
            cb.cancel_session(s)
            cancel_other = time.perf_counter() - t0
        out["stop"] = {k: {"n": len(v), "p50_ms": 1e3 * statistics.median(v), "max_ms": 1e3 * max(v)}
                       for k, v in stops.items()}
        out["stop"]["cancel_other_ms"] = 1e3 * cancel_other
        for k, v in stops.items():
            print(f"  pause asked {'of the trainer itself' if k == 'same' else 'through another replica':28}: "
                  f"p50 {1e3 * statistics.median(v):6.1f} ms  max {1e3 * max(v):6.1f} ms  (n = {len(v)}; "
                  f"the call answers once the trainer has checkpointed and written PAUSED)")
        print(f"  cancel through another replica: {1e3 * cancel_other:.1f} ms")
        out["streams"] = {k: {"n": len(v), "p50_ms": 1e3 * statistics.median(v), "p99_ms": 1e3 * pct(v, 0.99)}
                          for k, v in lat.items() if v}
        for k, v in out["streams"].items():
            print(f"  stream latency, follower on {'the trainer' if k == 'same' else 'another replica':16}: "
                  f"p50 {v['p50_ms']:6.2f} ms  p99 {v['p99_ms']:6.2f} ms  (n = {v['n']})")

        # ---- capacity: events/s into PostgreSQL from 2 replicas x 2 sessions, an event a step.
        cap = dict(LONG, metrics_every=1, checkpoint_every=1_000_000, max_steps=5_000_000)
        db = "capacity"
        uri = database(db)
        blobs = tempfile.mkdtemp(prefix="alignd_bench_blobs_")
        ca_ = Replica(uri, blobs, "ca")
        cb_ = Replica(uri, blobs, "cb")
        procs += [ca_.p, cb_.p]
        with Client(ca_.address, timeout=60) as c:
            ds = c.generate_dataset("linear", examples=300)
            ids = [c.create_session(ds["name"], **dict(cap, seed=i + 1))["name"] for i in range(2)]
        time.sleep(2.0)

        def totals():
            ev = rows(db, "SELECT COALESCE(SUM(logged_seq), 0) FROM sessions")[0][0]
            tx = rows(db, f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'")[0][0]
            return int(ev), int(tx)
        e0, x0 = totals()
        t0 = time.perf_counter()
        time.sleep(8.0)
        e1, x1 = totals()
        dt = time.perf_counter() - t0
        with Client(ca_.address, timeout=60) as c:
            for i in ids:
                c.cancel_session(i)
        eps, tps = (e1 - e0) / dt, (x1 - x0) / dt
        out["capacity"] = {"events_per_s": eps, "transactions_per_s": tps, "sessions": 2, "replicas": 2}
        print(f"  capacity: {eps:,.0f} metric events/s stored ({tps:,.0f} transactions/s) from 2 sessions, one "
              f"on each of 2 replicas (an event every step, batched by each session's writer)")
        per = 100.0  # a paper-protocol session: ~100k steps/s at batch 1, an event every 1,000 steps
        print(f"    at {per:.0f} events/s per session (batch 1, an event every 1,000 steps) that is room for "
              f"~{eps / per:,.0f} sessions' events (extrapolated; the database shared 2 cores with them)")
    finally:
        for p in procs:
            try:
                p.kill()
            except Exception:
                pass
        pg.close()
    os.makedirs(os.path.join(a.build, "bench"), exist_ok=True)
    with open(os.path.join(a.build, "bench", "replicas.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
