"""alignd on PostgreSQL (--storage postgresql://... --blobs DIR) against a real PostgreSQL 15
that the test starts (initdb + pg_ctl in a temporary directory, a unix socket, as the
postgres user when run as root): a session trains to the end, alignd restarts with no local
state and serves it whole, and so does a second replica beside the first.
Run by ctest with ALIGND_BINARY set, PYTHONPATH=build/python."""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import unittest

import numpy as np

from alignd_client import Client


def as_postgres(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.geteuid() == 0 else cmd


class TempPostgres:
    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise RuntimeError("PostgreSQL's server is not installed (apt install postgresql)")
        self.bin = os.path.dirname(bins[-1])
        self.dir = tempfile.mkdtemp(prefix="alignd_pg_e2e_")
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.run(os.path.join(self.bin, "initdb"), "-D", self.dir + "/data", "-U", "alignd", "-A", "trust",
                 "--no-sync")
        self.start()
        # A URI with the socket folder as host (percent-encoded, as libpq reads it).
        self.uri = "postgresql://alignd@" + self.dir.replace("/", "%2F") + "/postgres"

    def start(self):
        self.run(os.path.join(self.bin, "pg_ctl"), "-D", self.dir + "/data", "-w", "-l", self.dir + "/log",
                 "-o", f"-k {self.dir} -c listen_addresses='' -c fsync=off -c max_connections=200", "start")

    def stop(self):
        self.run(os.path.join(self.bin, "pg_ctl"), "-D", self.dir + "/data", "-m", "fast", "-w", "stop")

    def running(self):
        return subprocess.run(as_postgres([os.path.join(self.bin, "pg_ctl"), "-D", self.dir + "/data", "status"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def run(self, *cmd):
        subprocess.run(as_postgres(list(cmd)), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def close(self):
        subprocess.run(as_postgres([os.path.join(self.bin, "pg_ctl"), "-D", self.dir + "/data", "-m",
                                    "immediate", "-w", "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = TempPostgres()

    @classmethod
    def tearDownClass(cls):
        cls.pg.close()

    def alignd(self, blobs, check=True):
        local = tempfile.mkdtemp(prefix="alignd_local_")  # a fresh, empty --data_dir each time
        self.addCleanup(shutil.rmtree, local, True)
        p = subprocess.Popen([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--metrics_listen", "",
                              "--data_dir", local, "--storage", self.pg.uri, "--blobs", blobs],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline().strip()
        if not check:
            return p, line
        self.assertTrue(line, "alignd did not start: " + p.stderr.read() if p.poll() is not None else "")
        self.addCleanup(lambda: (p.kill(), p.wait(), p.stdout.close(), p.stderr.close()))
        return p, line.rsplit(" ", 1)[-1]

    def test_a_session_trained_on_postgresql_survives_a_restart_with_no_local_state(self):
        blobs = tempfile.mkdtemp(prefix="alignd_blobs_")
        self.addCleanup(shutil.rmtree, blobs, True)
        p, address = self.alignd(blobs)
        with Client(address) as c:
            ds = c.generate_dataset("linear", examples=300)
            s = c.create_session(ds["name"], [30, 16, 10], rule="fa", batch_size=10, max_steps=300,
                                 metrics_every=10, snapshot_every=100, seed=3)
            deadline = time.time() + 120
            while c.get_session(s["name"])["state"] not in ("SESSION_STATE_SUCCEEDED", "SESSION_STATE_FAILED"):
                self.assertLess(time.time(), deadline, "the session did not finish")
                time.sleep(0.1)
            done = c.get_session(s["name"])
            metrics = c.list_metrics(s["name"])
            x = np.linspace(-1, 1, 300, dtype=np.float32).reshape(10, 30)
            y = c.predict(s["name"], x)
            snaps = c.list_snapshots(s["name"])
        self.assertEqual(done["state"], "SESSION_STATE_SUCCEEDED", done)
        self.assertGreaterEqual(len(metrics), 30)
        # A second replica on the same database serves the same session while the first runs.
        _, other = self.alignd(blobs)
        with Client(other) as c:
            self.assertEqual(c.get_session(s["name"])["state"], "SESSION_STATE_SUCCEEDED")
            np.testing.assert_array_equal(c.predict(s["name"], x), y)
        p.terminate()
        p.wait(timeout=60)
        # A new alignd, nothing local: the same session, log, snapshots and weights.
        _, address = self.alignd(blobs)
        with Client(address) as c:
            again = c.get_session(s["name"])
            self.assertEqual(again["state"], "SESSION_STATE_SUCCEEDED")
            self.assertEqual(again["step"], done["step"])
            self.assertEqual([m["seq"] for m in c.list_metrics(s["name"])], [m["seq"] for m in metrics])
            self.assertEqual([x["name"] for x in c.list_snapshots(s["name"])], [x["name"] for x in snaps])
            np.testing.assert_array_equal(c.predict(s["name"], x), y)
            self.assertEqual([d["name"] for d in c.list_datasets()], [ds["name"]])

    def test_bad_storage_flags_are_refused_with_a_message(self):
        for flags, words in ((["--storage", "mysql://x"], "postgresql://"),
                             (["--storage", self.pg.uri], "--blobs"),
                             (["--blobs", "/tmp"], "--storage")):
            r = subprocess.run([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", *flags],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, (flags, r.stderr))
            self.assertIn(words, r.stderr)
        r = subprocess.run([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--storage",
                            "postgresql://alignd@%2Fnonexistent/x?connect_timeout=2", "--blobs",
                            tempfile.gettempdir()], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("postgresql unreachable", r.stderr)


if __name__ == "__main__":
    unittest.main()
