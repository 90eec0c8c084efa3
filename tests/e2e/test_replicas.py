"""Replicas of alignd on one PostgreSQL 15 and one blob folder (--storage, --blobs), all real
processes on 127.0.0.1: any replica answers any RPC about a session another trains; kill -9
of training replicas over a sweep (every session ends, bit-identical to a solo run, every
stream sees every seq once); a replica stopped past its lease (SIGSTOP) writes nothing once it
wakes and gives the session up; PostgreSQL stopped and started mid-training loses nothing;
replicas claiming at once never train one session twice.
Run by ctest with ALIGND_BINARY set, PYTHONPATH=build/python."""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import numpy as np

from alignd_client import Client
from test_postgres import TempPostgres, as_postgres

LEASE_MS = 1500
DONE = ("SESSION_STATE_SUCCEEDED", "SESSION_STATE_FAILED", "SESSION_STATE_CANCELLED")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    """One alignd on a fixed port (a restart comes back where clients look for it)."""

    def __init__(self, uri, blobs, name, *flags, workers=1):
        self.uri, self.blobs, self.name, self.flags, self.workers = uri, blobs, name, flags, workers
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"alignd_{name}_", suffix=".log", delete=False).name
        self.p = None
        self.start()

    def start(self):
        local = tempfile.mkdtemp(prefix="alignd_local_")
        err = open(self.log, "a")
        self.p = subprocess.Popen([os.environ["ALIGND_BINARY"], "--listen", self.address, "--metrics_listen", "",
                                   "--data_dir", local, "--storage", self.uri, "--blobs", self.blobs,
                                   "--replica", self.name, "--lease_ms", str(LEASE_MS), "--max_running", str(self.workers),
                                   "--max_threads", str(self.workers), "--grace_s", "5", *self.flags],
                                  stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"replica {self.name} did not start: " + open(self.log).read()[-2000:])

    def kill(self):
        self.p.kill()
        self.p.wait()
        self.p.stdout.close()

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.kill()

    def logged(self, words):
        with open(self.log) as f:
            return [l for l in f if words in l]


def psql(pg, sql):
    r = subprocess.run(as_postgres(["psql", "-h", pg.dir, "-U", "alignd", "-d", "postgres", "-At", "-c", sql]),
                       capture_output=True, text=True, check=True)
    return [row.split("|") for row in r.stdout.strip().splitlines()]


def wait_for(what, fn, timeout=120, every=0.05):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Follower(threading.Thread):
    """StreamMetrics from seq 1 to the session's end on one replica; keeps every seq it saw."""

    def __init__(self, address, session):
        super().__init__(daemon=True)
        self.address, self.session, self.seqs, self.end, self.error = address, session, [], None, None
        self.start()

    def run(self):
        try:
            with Client(self.address, timeout=300) as c:
                # A stream ends when its session pauses: followed again from the next seq.
                while self.end is None or self.end["state"] not in DONE:
                    if self.end is not None:
                        time.sleep(0.05)
                    start = self.seqs[-1] + 1 if self.seqs else 1
                    for e in c.stream_metrics(self.session, start_seq=start, retries=100):
                        if "end" in e:
                            self.end = e["end"]
                        else:
                            self.seqs.append(e["seq"])
        except Exception as err:  # reported by the test
            self.error = err


class ReplicasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = TempPostgres()
        # The reference: one embedded alignd (SQLite), no replicas, no kills.
        cls.solo_dir = tempfile.mkdtemp(prefix="alignd_solo_")
        cls.solo = subprocess.Popen([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--metrics_listen", "",
                                     "--data_dir", cls.solo_dir, "--max_running", "1", "--max_threads", "1"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        cls.solo_address = cls.solo.stdout.readline().strip().rsplit(" ", 1)[-1]

    @classmethod
    def tearDownClass(cls):
        cls.solo.kill()
        cls.solo.wait()
        cls.solo.stdout.close()
        shutil.rmtree(cls.solo_dir, ignore_errors=True)
        cls.pg.close()

    def setUp(self):
        # A database and a blob folder of this test's own.
        self.db = "t" + str(random.randrange(10**9))
        psql(self.pg, f"CREATE DATABASE {self.db}")
        self.uri = self.pg.uri.rsplit("/", 1)[0] + "/" + self.db
        self.blobs = tempfile.mkdtemp(prefix="alignd_blobs_")
        self.addCleanup(shutil.rmtree, self.blobs, True)
        self.replicas = []
        self.addCleanup(lambda: [r.stop() for r in self.replicas])

    def replica(self, name, *flags):
        r = Replica(self.uri, self.blobs, name, *flags)
        self.replicas.append(r)
        return r

    def db_rows(self, q):
        r = subprocess.run(as_postgres(["psql", "-h", self.pg.dir, "-U", "alignd", "-d", self.db, "-At", "-c", q]),
                           capture_output=True, text=True, check=True)
        return [row.split("|") for row in r.stdout.strip().splitlines()]

    def reference(self, spec):
        """The same session trained by the solo alignd: its predictions on probe inputs."""
        with Client(self.solo_address, timeout=300) as c:
            ds = c.generate_dataset("linear", examples=300)
            s = c.create_session(ds["name"], **spec)
            wait_for("the solo run", lambda: c.get_session(s["name"])["state"] in DONE, timeout=300)
            return c.predict(s["name"], PROBE), [m["seq"] for m in c.list_metrics(s["name"])]

    def test_any_replica_answers_for_a_session_another_trains(self):
        a, b, c_ = self.replica("a"), self.replica("b"), self.replica("c")
        with Client(a.address) as ca, Client(b.address) as cb, Client(c_.address) as cc:
            ds = ca.generate_dataset("linear", examples=300)
            self.assertEqual([d["name"] for d in cc.list_datasets()], [ds["name"]])
            s = cb.create_session(ds["name"], **LONG)
            follow = Follower(c_.address, s["name"])
            wait_for("it runs", lambda: ca.get_session(s["name"])["state"] == "SESSION_STATE_RUNNING")
            holder = self.db_rows(f"SELECT holder FROM sessions WHERE id = '{s['name']}'")[0][0]
            others = [r for r in (a, b, c_) if r.name != holder]
            with Client(others[0].address) as o:
                paused = o.pause_session(s["name"])
                self.assertEqual(paused["state"], "SESSION_STATE_PAUSED")
            self.assertEqual(cc.get_session(s["name"])["state"], "SESSION_STATE_PAUSED")
            with self.assertRaises(Exception) as e:
                ca.pause_session(s["name"])
            self.assertIn("cannot pause", str(e.exception))
            self.assertEqual(cb.resume_session(s["name"])["state"], "SESSION_STATE_QUEUED")
            wait_for("the end", lambda: cc.get_session(s["name"])["state"] in DONE, timeout=300)
            follow.join(60)
            self.assertIsNone(follow.error)
            done = ca.get_session(s["name"])
            self.assertEqual(done["state"], "SESSION_STATE_SUCCEEDED")
            logged = [m["seq"] for m in cb.list_metrics(s["name"])]
            self.assertEqual(logged, list(range(1, done["last_seq"] + 1)))
            self.assertEqual(follow.seqs, logged)  # live, across the pause: each seq once
            self.assertEqual(follow.end["state"], "SESSION_STATE_SUCCEEDED")
            want, want_seqs = self.reference(LONG)
            for cl in (ca, cb, cc):
                np.testing.assert_array_equal(cl.predict(s["name"], PROBE), want)
            self.assertEqual(logged, want_seqs)
            # Evaluate and snapshots on every replica alike; an upload on one is everyone's.
            evals = [repr(sorted(cl.evaluate(s["name"], ds["name"]).items())) for cl in (ca, cb, cc)]  # nan == nan
            self.assertEqual(evals[0], evals[1])
            self.assertEqual(evals[0], evals[2])
            snaps = [[x["name"] for x in cl.list_snapshots(s["name"])] for cl in (ca, cb, cc)]
            self.assertTrue(snaps[0])
            self.assertEqual(snaps[0], snaps[1])
            self.assertEqual(snaps[0], snaps[2])
            rng = np.random.default_rng(1)
            up = cb.upload_dataset(rng.standard_normal((64, 30)).astype(np.float32), rng.integers(0, 10, 64))
            self.assertEqual(cc.get_dataset(up["name"])["sha256"], up["sha256"])
            u = ca.create_session(up["name"], **SHORT)
            wait_for("the uploaded set's session", lambda: cc.get_session(u["name"])["state"] in DONE, timeout=300)
            self.assertEqual(cb.get_session(u["name"])["state"], "SESSION_STATE_SUCCEEDED")
            # Cancel and delete from other replicas than the one that made it.
            t = ca.create_session(ds["name"], **LONG)
            wait_for("it runs", lambda: cb.get_session(t["name"])["state"] == "SESSION_STATE_RUNNING")
            self.assertEqual(cc.cancel_session(t["name"])["state"], "SESSION_STATE_CANCELLED")
            cb.delete_session(t["name"])
            for cl in (ca, cb, cc):
                with self.assertRaises(Exception):
                    cl.get_session(t["name"])
            # Request ids hold across replicas: a retry on another replica is the same session.
            r1 = ca.create_session(ds["name"], **SHORT, request_id="once")
            r2 = cc.create_session(ds["name"], **SHORT, request_id="once")
            self.assertEqual(r1["name"], r2["name"])

    def test_kill_9_of_training_replicas_over_a_sweep(self):
        a, b, c_ = self.replica("a"), self.replica("b"), self.replica("c")
        with Client(c_.address, timeout=300) as cc:
            ds = cc.generate_dataset("linear", examples=300)
            specs = [dict(SWEEP, seed=i + 1) for i in range(20)]
            names = [cc.create_session(ds["name"], **sp)["name"] for sp in specs]
            followers = [Follower(c_.address, n) for n in names]
            kills = 0
            rng = random.Random(7)
            deadline = time.time() + 600
            while kills < 20 and time.time() < deadline:
                held = self.db_rows("SELECT holder FROM sessions WHERE state = 2 AND holder IS NOT NULL")
                victims = [r for r in (a, b) if [r.name] in held]
                if not victims:
                    if all(cc.get_session(n)["state"] in DONE for n in names):
                        break
                    time.sleep(0.05)
                    continue
                v = rng.choice(victims)
                time.sleep(rng.uniform(0.0, 0.3))  # at a random point of its run
                v.kill()
                kills += 1
                v.start()
            wait_for("every session to end", lambda: all(cc.get_session(n)["state"] in DONE for n in names),
                     timeout=600, every=0.2)
            self.assertGreaterEqual(kills, 20, "the sweep ended before 20 kills")
            for f in followers:
                f.join(120)
            for n, sp, f in zip(names, specs, followers):
                done = cc.get_session(n)
                self.assertEqual(done["state"], "SESSION_STATE_SUCCEEDED", done)
                logged = [m["seq"] for m in cc.list_metrics(n)]
                self.assertEqual(logged, list(range(1, done["last_seq"] + 1)))
                self.assertIsNone(f.error, n)
                self.assertEqual(f.seqs, logged, n)  # every seq once, across every failover
            # Bit-identical to a run never interrupted (a few seeds: the solo alignd is slow).
            for n, sp in list(zip(names, specs))[:4]:
                want, _ = self.reference(sp)
                np.testing.assert_array_equal(cc.predict(n, PROBE), want)
        self.assertTrue(a.logged('"claimed"') or b.logged('"claimed"'))

    def test_a_stream_survives_the_failover_of_its_own_replica_and_of_the_trainer(self):
        # c trains (the only replica when the session is created); the follower reaches a and b
        # through one target with both addresses, as a client behind a Service or DNS would.
        c_ = self.replica("c")
        with Client(c_.address, timeout=300) as cc:
            ds = cc.generate_dataset("linear", examples=300)
            s = cc.create_session(ds["name"], **LONG)
            wait_for("c to train it", lambda: self.db_rows(
                f"SELECT holder FROM sessions WHERE id = '{s['name']}' AND state = 2") == [["c"]])
        a, b = self.replica("a"), self.replica("b")
        follow = Follower(f"ipv4:{a.address},{b.address}", s["name"])
        wait_for("events through a", lambda: len(follow.seqs) >= 3, timeout=120)
        a.kill()  # the replica the stream is on (pick_first: the first address)
        seen = len(follow.seqs)
        wait_for("events through b", lambda: len(follow.seqs) > seen + 2 or follow.end, timeout=120)
        self.assertIsNone(follow.end, "the session ended before its trainer could be killed: make LONG longer")
        c_.kill()  # and the trainer: b (or a, back) claims it after the lease
        a.start()
        follow.join(300)
        self.assertFalse(follow.is_alive(), "the stream did not end")
        self.assertIsNone(follow.error)
        with Client(b.address, timeout=300) as cb:
            done = cb.get_session(s["name"])
            logged = [m["seq"] for m in cb.list_metrics(s["name"])]
        self.assertEqual(done["state"], "SESSION_STATE_SUCCEEDED", done)
        self.assertEqual(logged, list(range(1, done["last_seq"] + 1)))
        self.assertEqual(follow.seqs, logged)  # no gap, no duplicate, across both failovers
        self.assertEqual(follow.end["state"], "SESSION_STATE_SUCCEEDED")
        # The stream moved to b (a logs none: a call is logged when it ends, and a was killed).
        self.assertTrue(b.logged("/alignd.v1.TrainingService/StreamMetrics"))

    def test_the_dashboard_works_against_any_replica(self):
        # The dashboard reaches a and b through one target (as through the Service); c trains.
        c_ = self.replica("c")
        with Client(c_.address, timeout=300) as cc:
            ds = cc.generate_dataset("linear", examples=300)
            s = cc.create_session(ds["name"], **dict(LONG, max_steps=LONG["max_steps"] // 4))
            wait_for("c to train it", lambda: self.db_rows(
                f"SELECT holder FROM sessions WHERE id = '{s['name']}' AND state = 2") == [["c"]])
        a, b = self.replica("a"), self.replica("b")
        dash = subprocess.Popen([os.environ["ALIGND_DASHBOARD_BINARY"], "--alignd", f"ipv4:{a.address},{b.address}",
                                 "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: (dash.kill(), dash.wait(), dash.stdout.close()))
        url = dash.stdout.readline().strip().rsplit(" ", 1)[-1].rstrip("/")
        sid = s["name"].split("/", 1)[1]

        def get(path):
            with urllib.request.urlopen(url + path, timeout=60) as r:
                return r.status, json.loads(r.read())
        status, listed = get("/api/sessions")
        self.assertEqual(status, 200)
        self.assertIn(s["name"], [x["name"] for x in listed["sessions"]])
        # Its events, live, to the end, through a replica that does not train it.
        ids, end = [], None
        req = urllib.request.Request(f"{url}/api/sessions/{sid}/events", headers={"Accept": "text/event-stream"})
        with urllib.request.urlopen(req, timeout=300) as r:
            event = None
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("id: "):
                    ids.append(int(line[4:]))
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "end":
                    end = json.loads(line[6:])
                    break
        self.assertIsNotNone(end)
        status, got = get(f"/api/sessions/{sid}")
        self.assertEqual(got["state"], "SESSION_STATE_SUCCEEDED")
        self.assertEqual(ids, list(range(1, int(got["last_seq"]) + 1)))  # every seq once
        # The replica the dashboard talks to dies: its reads go on through the other.
        a.kill()
        self.assertEqual(get(f"/api/sessions/{sid}")[0], 200)
        self.assertEqual(get("/api/sessions")[0], 200)

    def test_a_replica_stopped_past_its_lease_writes_nothing_when_it_wakes(self):
        a = self.replica("a")
        with Client(a.address) as ca:
            ds = ca.generate_dataset("linear", examples=300)
            s = ca.create_session(ds["name"], **STOPPED)
            wait_for("it runs on a", lambda: self.db_rows(
                f"SELECT holder FROM sessions WHERE id = '{s['name']}' AND state = 2") == [["a"]])
        b = self.replica("b")
        a.p.send_signal(signal.SIGSTOP)
        epoch_a = int(self.db_rows(f"SELECT epoch FROM sessions WHERE id = '{s['name']}'")[0][0])
        wait_for("b to take it over", lambda: self.db_rows(
            f"SELECT holder FROM sessions WHERE id = '{s['name']}'") == [["b"]], timeout=60)
        before = self.db_rows(f"SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM metrics WHERE session = '{s['name']}'")
        a.p.send_signal(signal.SIGCONT)
        wait_for("a to notice", lambda: a.logged("lease lost") or a.logged("may not write"), timeout=30)
        with Client(b.address) as cb:
            wait_for("the end", lambda: cb.get_session(s["name"])["state"] in DONE, timeout=300)
            done = cb.get_session(s["name"])
            self.assertEqual(done["state"], "SESSION_STATE_SUCCEEDED")
            self.assertEqual([m["seq"] for m in cb.list_metrics(s["name"])], list(range(1, done["last_seq"] + 1)))
            want, want_seqs = self.reference(STOPPED)
            np.testing.assert_array_equal(cb.predict(s["name"], PROBE), want)
            self.assertEqual(done["last_seq"], len(want_seqs))
        self.assertTrue(before)
        # Nothing of a's after b's claim: b trained it to the end at a higher epoch, a holds nothing.
        row = self.db_rows(f"SELECT epoch, COALESCE(holder, '') FROM sessions WHERE id = '{s['name']}'")[0]
        self.assertGreater(int(row[0]), epoch_a)
        self.assertEqual(row[1], "")
        self.assertFalse([l for l in b.logged("lease lost")])

    def test_postgresql_stopped_and_started_mid_training_loses_nothing(self):
        a = self.replica("a")
        with Client(a.address, timeout=60) as ca:
            ds = ca.generate_dataset("linear", examples=300)
            s = ca.create_session(ds["name"], **LONG)
            wait_for("it runs", lambda: ca.get_session(s["name"])["state"] == "SESSION_STATE_RUNNING")
            time.sleep(0.3)
            self.pg.stop()
            self.addCleanup(lambda: self.pg.running() or self.pg.start())  # for the tests after
            wait_for("health NOT_SERVING", lambda: ca.health() == "NOT_SERVING", timeout=30)
            time.sleep(1.0)
            self.pg.start()
            wait_for("health SERVING", lambda: ca.health() == "SERVING", timeout=30)
            wait_for("the end", lambda: _state(ca, s["name"]) in DONE, timeout=300, every=0.2)
            done = ca.get_session(s["name"])
            self.assertEqual(done["state"], "SESSION_STATE_SUCCEEDED", done)
            self.assertEqual([m["seq"] for m in ca.list_metrics(s["name"])], list(range(1, done["last_seq"] + 1)))
            want, want_seqs = self.reference(LONG)
            np.testing.assert_array_equal(ca.predict(s["name"], PROBE), want)
            self.assertEqual(done["last_seq"], len(want_seqs))

    def test_replicas_claiming_at_once_never_train_one_session_twice(self):
        rs = [self.replica(n) for n in ("a", "b", "c")]
        with Client(rs[0].address) as c:
            ds = c.generate_dataset("linear", examples=300)
            names = [c.create_session(ds["name"], **dict(SHORT, seed=i + 1))["name"] for i in range(40)]
            wait_for("all to end", lambda: all(c.get_session(n)["state"] in DONE for n in names), timeout=300)
            self.assertTrue(all(c.get_session(n)["state"] == "SESSION_STATE_SUCCEEDED" for n in names))
        # Each session claimed once (epoch 1), by one replica; claims spread over the replicas.
        epochs = self.db_rows("SELECT epoch, COUNT(*) FROM sessions GROUP BY epoch")
        self.assertEqual(epochs, [["1", "40"]])
        claims = {}
        for r in rs:
            for l in r.logged('"claimed"'):
                for n in names:
                    if n in l:
                        claims.setdefault(n, []).append(r.name)
        self.assertEqual(sorted(claims), sorted(names))
        self.assertTrue(all(len(v) == 1 for v in claims.values()), claims)


def _state(client, name):
    try:
        return client.get_session(name)["state"]
    except Exception:  # PostgreSQL still coming back
        return None


PROBE = np.linspace(-1, 1, 300, dtype=np.float32).reshape(10, 30)
# Under a sanitizer (make test-sanitize) alignd trains about ten times slower: a tenth of the
# steps keeps every run as long in seconds as here, and each case's moments (a kill mid-run, a
# stop past the lease) as likely; the suite took over 15 minutes with the full counts.
SCALE = 10 if os.environ.get("ALIGND_SANITIZER") else 1
LONG = dict(sizes=[30, 64, 64, 10], rule="fa", batch_size=1, max_steps=600000 // SCALE,
            metrics_every=2000 // SCALE, checkpoint_every=20000 // SCALE, seed=5)
# Long enough to be running when its replica is stopped and another takes it over.
STOPPED = dict(LONG, max_steps=4000000 // SCALE, checkpoint_every=100000 // SCALE)
SWEEP = dict(sizes=[30, 64, 10], rule="fa", batch_size=1, max_steps=300000 // SCALE,
             metrics_every=2000 // SCALE, checkpoint_every=10000 // SCALE)
SHORT = dict(sizes=[30, 16, 10], rule="bp", batch_size=10, max_steps=300, metrics_every=10)

if __name__ == "__main__":
    unittest.main()
