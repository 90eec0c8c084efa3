"""Interop: the Python client (client/python, Debian's grpcio) against a real alignd.

Run by ctest with PYTHONPATH=build/python and ALIGND_BINARY set."""
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

from alignd_client import AligndError, Client

import grpc


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="alignd_interop_")
        cls.proc = subprocess.Popen([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--metrics_listen", "127.0.0.1:0", "--data_dir", cls.dir,
                                     "--max_running", "2", "--heartbeat_ms", "200"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = cls.proc.stdout.readline()
        cls.address = line.strip().rsplit(" ", 1)[-1]
        cls.c = Client(cls.address)
        grpc.channel_ready_future(cls.c.channel).result(timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.proc.terminate()
        cls.proc.wait(timeout=30)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def blobs(self, n=3000, d=100, seed=0):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, n)
        x = rng.normal(size=(n, d)).astype(np.float32)
        x[np.arange(n), y] += 3.0
        return x, y

    def test_health(self):
        self.assertEqual(self.c.health(), "SERVING")

    def test_chunked_upload_train_snapshot_predict(self):
        x, y = self.blobs()  # 1.2 MB of features: more than one 1 MiB chunk
        ds = self.c.upload_array(x, y, name="blobs")
        self.assertTrue(ds.startswith("datasets/"))
        self.assertEqual(self.c.upload_array(x, y, name="again"), ds)  # same content, stored once
        s = self.c.create_session(ds, sizes=[100, 32, 3], rule="fa", output="softmax", loss="cross_entropy",
                                  batch_size=32, epochs=3, metrics_every=10, learning_rate=0.05, eval_dataset=ds)
        events = list(self.c.metrics(s))
        self.assertEqual(events[-1]["end"]["state"], "SUCCEEDED")
        evals = [e for e in events if "eval" in e]
        self.assertGreater(evals[-1]["eval"]["accuracy"], 0.9)
        w = self.c.snapshot(s)
        self.assertEqual(w["W0"].shape, (32, 100))
        self.assertEqual(w["W1"].shape, (3, 32))
        self.assertEqual(w["B1"].shape, (32, 3))
        # Evaluate agrees with the last evaluation the session streamed, and with a snapshot's.
        ev = self.c.evaluate(s)
        self.assertAlmostEqual(ev["accuracy"], evals[-1]["eval"]["accuracy"], places=6)
        steps = self.c.list_snapshots(s)
        self.assertEqual(steps[-1], int(events[-1]["end"]["step"]))
        snap = self.c.evaluate(f"{s.name}/snapshots/{steps[-1]}", dataset=ds)
        self.assertAlmostEqual(snap["loss"], ev["loss"], places=5)
        with self.assertRaises(AligndError) as err:
            self.c.evaluate(f"{s.name}/snapshots/999999")
        self.assertEqual(err.exception.code, grpc.StatusCode.NOT_FOUND)
        out = self.c.predict(s, x[:50])
        self.assertEqual(out.shape, (50, 3))
        # The prediction is the network on the snapshot's weights, computed here with NumPy.
        h = np.tanh(x[:50] @ w["W0"].T + w["b0"].T)
        z = h @ w["W1"].T + w["b1"].T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        np.testing.assert_allclose(out, p, atol=1e-4)

    def test_control_and_a_resumed_stream(self):
        ds = self.c.generate("linear", examples=500)
        s = self.c.create_session(ds, sizes=[30, 256, 256, 10], rule="kp", batch_size=4, max_steps=20000,
                                  metrics_every=10)
        first = []
        for e in self.c.metrics(s):
            first.append(e)
            if len(first) == 25:
                break
        paused = self.c.pause(s)
        self.assertIn(paused.state, (3, 4))  # PAUSED, or SUCCEEDED on a very fast machine
        if paused.state == 3:
            with self.assertRaises(AligndError) as err:
                self.c.pause(s)
            self.assertEqual(err.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
            self.c.resume(s)
        rest = list(self.c.metrics(s, start_seq=first[-1]["seq"] + 1))
        seqs = [e["seq"] for e in first + rest if "step" in e or "eval" in e]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertEqual(rest[-1]["end"]["state"], "SUCCEEDED")
        self.assertEqual(len(self.c.history(s)), len(seqs))
        self.assertLessEqual(len([e for e in self.c.history(s, max_points=50) if "step" in e]), 50)

    def test_paginated_list_and_errors(self):
        ds = self.c.generate("toy", examples=100)
        made = {self.c.create_session(ds, sizes=[1, 1, 1], max_steps=10).name for _ in range(5)}
        listed = {s.name for s in self.c.list_sessions(page_size=2)}
        self.assertTrue(made <= listed)
        with self.assertRaises(AligndError) as err:
            self.c.create_session(ds, sizes=[2, 1, 1], max_steps=10)
        self.assertEqual(err.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("network.sizes[0] is 2", str(err.exception))
        with self.assertRaises(AligndError) as err:
            self.c.get("sessions/000000000000")
        self.assertEqual(err.exception.code, grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(AligndError) as err:
            self.c.upload_array(np.array([[np.nan, 1.0]]), np.array([0]))
        self.assertEqual(err.exception.code, grpc.StatusCode.INVALID_ARGUMENT)


if __name__ == "__main__":
    unittest.main()
