"""tools/backup.py while sessions train, and a restore from its copy (docs/DEPLOY.md).

A real alignd trains three sessions from one data set: one finished, one running long, one
queued. The backup is taken while the long one trains; the server then goes on (and is
killed). A new alignd on the restored copy has every data set and session; the running one
resumes from its copied checkpoint and finishes with weights bit-identical to a reference
trained without interruption, and its metric log has every step once, in order."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

from alignd_client import Client

HERE = os.path.dirname(os.path.abspath(__file__))
BACKUP = os.path.join(HERE, "..", "..", "tools", "backup.py")
# The long session's steps. Under TSan a per-example step of 20-256-256-4 is ~100x slower
# than in a release build (every access of the kernels' loops instrumented): two runs of
# 60,000 took 297 s alone on a 2-core Xeon, at ctest's 300 s limit. 20,000 still leaves the
# backup (taken past step 5,000) in the middle of the run.
LONG_STEPS = 20000 if os.environ.get("ALIGND_SANITIZER") == "tsan" else 60000


class Server:
    def __init__(self, data_dir):
        self.proc = subprocess.Popen(
            [os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--metrics_listen", "", "--data_dir", data_dir,
             "--max_running", "1", "--checkpoint_every", "2000"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.address = self.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        self.client = Client(self.address)

    def stop(self, sig):
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.proc.stdout.close()


class BackupTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="alignd_backup_")

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def test_a_backup_made_while_sessions_train_restores_and_resumes_bit_identically(self):
        live = os.path.join(self.root, "live")
        s = Server(live)
        c = s.client
        x = np.random.default_rng(0).normal(size=(600, 20)).astype(np.float32)
        y = (x[:, :5] @ np.ones((5, 4), np.float32)).astype(np.float32)
        ds = c.upload_dataset(x, y, name="backup-test")
        cfg = dict(sizes=[20, 256, 256, 4], rule="fa", batch_size=1, seed=5, metrics_every=100)
        done = c.create_session(ds, **dict(cfg, max_steps=50))
        list(c.stream_metrics(done))
        long = c.create_session(ds, **dict(cfg, max_steps=LONG_STEPS))
        queued = c.create_session(ds, **dict(cfg, max_steps=100))
        while int(c.get_session(long).get("step", 0)) < 5000:
            time.sleep(0.05)
        copy = os.path.join(self.root, "copy")
        r = subprocess.run([sys.executable, BACKUP, live, copy], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("backup:", r.stdout)
        at_backup = int(c.get_session(long).get("step", 0))
        time.sleep(0.5)  # training goes on after the backup ...
        s.stop(signal.SIGKILL)  # ... and the live server dies

        restored = os.path.join(self.root, "restored")
        shutil.copytree(copy, restored)
        s2 = Server(restored)
        self.addCleanup(s2.stop, signal.SIGTERM)
        c2 = s2.client
        self.assertEqual([d["name"] for d in c2.list_datasets()], [ds["name"]])
        names = sorted(x["name"] for x in c2.list_sessions())
        self.assertEqual(names, sorted([done["name"], long["name"], queued["name"]]))
        self.assertEqual(c2.get_session(done)["state"], "SESSION_STATE_SUCCEEDED")
        resumed = c2.get_session(long)
        self.assertIn(resumed["state"], ("SESSION_STATE_QUEUED", "SESSION_STATE_RUNNING"))
        self.assertLessEqual(int(resumed.get("step", 0)), at_backup + 1)
        events = list(c2.stream_metrics(long))
        self.assertEqual(events[-1]["end"]["state"], "SESSION_STATE_SUCCEEDED")
        steps = [e for e in events if "step" in e and "end" not in e]
        seqs = [int(e["seq"]) for e in steps]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))  # every event once, in order
        self.assertEqual(len(steps), LONG_STEPS // 100)
        self.assertEqual(list(c2.stream_metrics(queued))[-1]["end"]["state"], "SESSION_STATE_SUCCEEDED")
        # The same run without interruption, on the restored server: identical weights.
        ref = c2.create_session(ds, **dict(cfg, max_steps=LONG_STEPS))
        list(c2.stream_metrics(ref))
        probe = x[:50]
        np.testing.assert_array_equal(c2.predict(long, probe), c2.predict(ref, probe))


if __name__ == "__main__":
    unittest.main()
