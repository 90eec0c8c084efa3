"""alignd migrate: an embedded data directory (SQLite and files) copied into a real PostgreSQL 15
and a blob folder, checked by digests, then served by a replica as if it had always lived there:
a finished session whole (log, snapshots, weights), a paused one resumed and a RUNNING one
(its alignd killed -9) claimed and resumed, both ending bit-identical to runs never moved. A
second migration copies nothing; a session trained further in the destination is named and left
alone; bad arguments exit 2.
Run by ctest with ALIGND_BINARY set, PYTHONPATH=build/python:tests/e2e."""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import numpy as np

from alignd_client import Client
from test_postgres import TempPostgres
from test_replicas import wait_for

DONE = ("SESSION_STATE_SUCCEEDED", "SESSION_STATE_FAILED", "SESSION_STATE_CANCELLED")
# A tenth of the steps under a sanitizer (about ten times slower there): as long in seconds.
SCALE = 10 if os.environ.get("ALIGND_SANITIZER") else 1
LONG = dict(batch_size=10, max_steps=1000000 // SCALE, metrics_every=1000, checkpoint_every=5000)


class MigrateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = TempPostgres()

    @classmethod
    def tearDownClass(cls):
        cls.pg.close()

    def tmp(self, prefix):
        d = tempfile.mkdtemp(prefix=prefix)
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def alignd(self, *flags):
        p = subprocess.Popen([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--metrics_listen", "",
                              "--max_running", "2", "--max_threads", "2", *flags],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = p.stdout.readline().strip()
        self.assertTrue(line, "alignd did not start")
        self.addCleanup(lambda: (p.kill(), p.wait(), p.stdout.close()))
        return p, line.rsplit(" ", 1)[-1]

    def migrate(self, data_dir, blobs):
        return subprocess.run([os.environ["ALIGND_BINARY"], "migrate", "--from", data_dir, "--storage", self.pg.uri,
                               "--blobs", blobs], capture_output=True, text=True, timeout=300)

    def test_a_data_directory_moves_to_replicas_whole_and_resumes_bit_for_bit(self):
        data_dir, blobs = self.tmp("alignd_embedded_"), self.tmp("alignd_blobs_")
        x = np.linspace(-1, 1, 300, dtype=np.float32).reshape(10, 30)
        p, address = self.alignd("--data_dir", data_dir)
        with Client(address, timeout=120) as c:
            ds = c.generate_dataset("linear", examples=300)
            done = c.create_session(ds["name"], [30, 16, 10], rule="fa", batch_size=10, max_steps=300,
                                    metrics_every=10, snapshot_every=100, seed=3)
            wait_for("the short session", lambda: c.get_session(done["name"])["state"] in DONE)
            paused = c.create_session(ds["name"], [30, 16, 10], rule="fa", seed=4, **LONG)
            running = c.create_session(ds["name"], [30, 16, 10], rule="bp", seed=5, **LONG)
            wait_for("a checkpoint of the paused one", lambda: int(c.get_session(paused["name"])["step"]) >= 5000)
            c.pause_session(paused["name"])
            wait_for("a checkpoint of the running one", lambda: int(c.get_session(running["name"])["step"]) >= 5000)
            before = {n: c.get_session(n) for n in (done["name"], paused["name"])}
            metrics = c.list_metrics(done["name"])
            snaps = c.list_snapshots(done["name"])
            y = c.predict(done["name"], x)
        self.assertEqual(before[done["name"]]["state"], "SESSION_STATE_SUCCEEDED")
        self.assertEqual(before[paused["name"]]["state"], "SESSION_STATE_PAUSED")
        p.kill()  # kill -9: the running session stays RUNNING in the data directory
        p.wait()
        # The paused one's checkpoint as a data directory from before the step was in its
        # file name keeps it (checkpoint.bin): migrate finds the step in its bytes.
        sdir = os.path.join(data_dir, "sessions", paused["name"].split("/", 1)[1])
        ckpts = [f for f in os.listdir(sdir) if f.startswith("checkpoint-")]
        self.assertEqual(len(ckpts), 1, ckpts)
        os.rename(os.path.join(sdir, ckpts[0]), os.path.join(sdir, "checkpoint.bin"))

        r = self.migrate(data_dir, blobs)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("migrated: 1 data sets and 3 sessions copied", r.stdout)
        for n, state in ((done["name"], "SUCCEEDED"), (paused["name"], "PAUSED"), (running["name"], "QUEUED")):
            self.assertRegex(r.stdout, n + r": copied \(SESSION_STATE_" + state + r"\), .*sha256 [0-9a-f]{64}")
        again = self.migrate(data_dir, blobs)
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        self.assertIn("0 data sets and 0 sessions copied", again.stdout)
        self.assertIn("1 data sets and 3 sessions there already", again.stdout)

        _, replica = self.alignd("--data_dir", self.tmp("alignd_local_"), "--storage", self.pg.uri,
                                 "--blobs", blobs, "--lease_ms", "2000")
        with Client(replica, timeout=120) as c:
            moved = c.get_session(done["name"])
            self.assertEqual(moved["state"], "SESSION_STATE_SUCCEEDED")
            self.assertEqual(moved["step"], before[done["name"]]["step"])
            key = lambda m: (m["seq"], m.get("step", {}).get("loss"), m.get("eval", {}).get("loss"))  # noqa: E731
            self.assertEqual([key(m) for m in c.list_metrics(done["name"])], [key(m) for m in metrics])
            self.assertEqual([s["name"] for s in c.list_snapshots(done["name"])], [s["name"] for s in snaps])
            np.testing.assert_array_equal(c.predict(done["name"], x), y)
            self.assertEqual([d["name"] for d in c.list_datasets()], [ds["name"]])
            self.assertEqual(c.get_session(paused["name"])["state"], "SESSION_STATE_PAUSED")
            c.resume_session(paused["name"])
            for n in (paused["name"], running["name"]):
                wait_for(n, lambda n=n: c.get_session(n)["state"] in DONE, timeout=600, every=0.2)
                self.assertEqual(c.get_session(n)["state"], "SESSION_STATE_SUCCEEDED")
            moved_y = {n: c.predict(n, x) for n in (paused["name"], running["name"])}
            moved_log = {n: [m["seq"] for m in c.list_metrics(n)] for n in (paused["name"], running["name"])}
            for n, seqs in moved_log.items():
                self.assertEqual(seqs, list(range(1, c.get_session(n)["last_seq"] + 1)), n)
            # Trained further here, the paused session now differs from the directory: a third
            # migration names it and leaves it alone.
        third = self.migrate(data_dir, blobs)
        self.assertEqual(third.returncode, 1, third.stdout + third.stderr)
        self.assertIn("left alone: " + paused["name"], third.stdout)

        # The same configs run without a move: bit for bit.
        _, solo = self.alignd("--data_dir", self.tmp("alignd_solo_"))
        with Client(solo, timeout=120) as c:
            ds2 = c.generate_dataset("linear", examples=300)
            self.assertEqual(ds2["name"], ds["name"])
            runs = {paused["name"]: c.create_session(ds2["name"], [30, 16, 10], rule="fa", seed=4, **LONG),
                    running["name"]: c.create_session(ds2["name"], [30, 16, 10], rule="bp", seed=5, **LONG)}
            for n, s in runs.items():
                wait_for("the solo run", lambda s=s: c.get_session(s["name"])["state"] in DONE, timeout=600, every=0.2)
                np.testing.assert_array_equal(c.predict(s["name"], x), moved_y[n], err_msg=n)
                # The log too: as long as the run never moved (a checkpoint copied with a wrong
                # step would have made the claim cut it).
                self.assertEqual([m["seq"] for m in c.list_metrics(s["name"])], moved_log[n], n)

    def test_bad_arguments_exit_2_saying_why(self):
        blobs = self.tmp("alignd_blobs_")
        for args, words in ((["--from", self.tmp("alignd_empty_"), "--storage", self.pg.uri, "--blobs", blobs],
                             "no alignd data directory"),
                            (["--from", self.tmp("alignd_empty_"), "--storage", "mysql://x", "--blobs", blobs],
                             "postgresql://"),
                            (["--storage", self.pg.uri, "--blobs", blobs], "--from")):
            r = subprocess.run([os.environ["ALIGND_BINARY"], "migrate", *args], capture_output=True, text=True,
                               timeout=60)
            self.assertNotEqual(r.returncode, 0, (args, r.stdout, r.stderr))
            self.assertIn(words, r.stdout + r.stderr, args)


if __name__ == "__main__":
    unittest.main()
