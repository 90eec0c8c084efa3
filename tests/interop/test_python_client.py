"""Interop: the Python client (client/python, Debian's grpcio) against a real alignd.

Run by ctest with PYTHONPATH=build/python and ALIGND_BINARY set."""
import datetime
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import grpc
from alignd_client import AligndError, Client, decode_payload, encode_payload, rule_names


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
        cls.c.wait_ready()

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

    def test_health_and_context_manager(self):
        with Client(self.address) as c:
            self.assertEqual(c.health(), "SERVING")

    def test_results_are_python_values(self):
        ds = self.c.generate_dataset("linear", examples=200)
        self.assertIsInstance(ds["num_examples"], int)
        self.assertEqual(ds["num_examples"], 200)
        self.assertIsInstance(ds["create_time"], datetime.datetime)
        s = self.c.create_session(ds, sizes=[30, 20, 10], batch_size=4, max_steps=40, metrics_every=10)
        self.assertEqual(s["state"], "SESSION_STATE_QUEUED")
        self.assertIsInstance(s["total_steps"], int)
        events = list(self.c.stream_metrics(s))
        step = events[0]["step"]
        self.assertIsInstance(step["step"], int)
        self.assertTrue(math.isnan(step["accuracy"]))  # regression: NaN as a float, not "NaN"
        self.assertIsInstance(step["alignment"][0]["update_angle_mean"], float)
        self.assertEqual(events[-1]["end"]["state"], "SESSION_STATE_SUCCEEDED")
        self.assertEqual(events[-1]["end"]["step"], 40)

    def test_rule_names_are_the_servers(self):
        self.assertEqual(rule_names()["fa"], "RULE_FEEDBACK_ALIGNMENT")
        self.assertEqual(set(rule_names()), {"bp", "fa", "dfa", "sign", "kp", "pbp", "shallow"})

    def test_payload_codec_matches_the_golden_bytes_formats_writes(self):
        # tests/formats/testdata: the same golden payloads formats/ (C++) is tested against.
        import json
        data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "formats", "testdata")
        with open(os.path.join(data, "payloads.json")) as f:
            golden = json.load(f)
        x = np.array([[0.0, 1.5], [-2.0, 3.25], [4.0, 0.125]], dtype=np.float32)
        for name, y in (("labels", np.array([0, 2, 1])), ("targets", np.array([[1.0], [2.0], [-0.5]]))):
            header, payload = encode_payload(x, y)
            with open(os.path.join(data, f"payload_{name}.bin"), "rb") as f:
                self.assertEqual(payload, f.read(), name)
            for k, v in golden[name].items():
                self.assertEqual(header[k], v, (name, k))

    def test_payload_codec_round_trips(self):
        x, y = self.blobs(n=7, d=5)
        header, payload = encode_payload(x, y)
        self.assertEqual(len(payload), 7 * (5 + 1) * 4)
        x2, y2 = decode_payload(header, payload)
        np.testing.assert_array_equal(x2, x)
        np.testing.assert_array_equal(y2, y)
        t = np.arange(14, dtype=np.float32).reshape(7, 2)
        header, payload = encode_payload(x, t)
        self.assertEqual(header["target_dim"], 2)
        np.testing.assert_array_equal(decode_payload(header, payload)[1], t)

    def test_chunks_cut_the_joined_parts_without_joining_them(self):
        from alignd_client.payload import chunks
        data = bytes(range(256)) * 4
        for sizes in ((1024,), (1000, 24), (3, 1021), (512, 0, 512), (7, 9, 1008)):
            parts, at = [], 0
            for n in sizes:
                parts.append(memoryview(data)[at:at + n])
                at += n
            for size in (1, 5, 64, 1000, 1024, 4096):
                got = list(chunks(parts, size))
                self.assertEqual(b"".join(got), data, (sizes, size))
                self.assertTrue(all(len(c) == size for c in got[:-1]), (sizes, size))
                self.assertTrue(all(isinstance(c, bytes) for c in got))
                self.assertEqual(len(got), -(-len(data) // size))

    def test_chunked_upload_train_snapshot_predict(self):
        x, y = self.blobs()  # 1.2 MB of features: more than one 1 MiB chunk
        ds = self.c.upload_dataset(x, y, name="blobs")
        self.assertTrue(ds["name"].startswith("datasets/"))
        self.assertEqual(self.c.upload_dataset(x, y, name="again")["name"], ds["name"])  # stored once
        s = self.c.create_session(ds, sizes=[100, 32, 3], rule="fa", output="softmax", loss="cross_entropy",
                                  batch_size=32, epochs=3, metrics_every=10, learning_rate=0.05, eval_dataset=ds)
        events = list(self.c.stream_metrics(s))
        self.assertEqual(events[-1]["end"]["state"], "SESSION_STATE_SUCCEEDED")
        evals = [e for e in events if "eval" in e]
        self.assertGreater(evals[-1]["eval"]["accuracy"], 0.9)
        w = self.c.read_snapshot(s)
        self.assertEqual(w["W0"].shape, (32, 100))
        self.assertEqual(w["W1"].shape, (3, 32))
        self.assertEqual(w["B1"].shape, (32, 3))
        # Evaluate agrees with the last evaluation the session streamed, and with a snapshot's.
        ev = self.c.evaluate(s)
        self.assertAlmostEqual(ev["accuracy"], evals[-1]["eval"]["accuracy"], places=6)
        snaps = self.c.list_snapshots(s)
        self.assertEqual(snaps[-1]["step"], events[-1]["end"]["step"])
        self.assertIsInstance(snaps[-1]["create_time"], datetime.datetime)
        meta = self.c.get_snapshot(s, step=snaps[-1]["step"])
        self.assertEqual(meta["total_values"], sum(sh["rows"] * sh["cols"] for sh in meta["shapes"]))
        snap = self.c.evaluate(s, dataset=ds, step=snaps[-1]["step"])
        self.assertAlmostEqual(snap["loss"], ev["loss"], places=5)
        with self.assertRaises(AligndError) as err:
            self.c.evaluate(s, step=999999)
        self.assertEqual(err.exception.code, grpc.StatusCode.NOT_FOUND)
        out = self.c.predict(s, x[:50])
        self.assertEqual(out.shape, (50, 3))
        self.assertEqual(out.dtype, np.float32)
        # The prediction is the network on the snapshot's weights, computed here with NumPy.
        h = np.tanh(x[:50] @ w["W0"].T + w["b0"].T)
        z = h @ w["W1"].T + w["b1"].T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        np.testing.assert_allclose(out, p, atol=1e-4)

    def test_control_and_a_resumed_stream(self):
        ds = self.c.generate_dataset("linear", examples=500)
        s = self.c.create_session(ds, sizes=[30, 256, 256, 10], rule="kp", batch_size=4, max_steps=20000,
                                  metrics_every=10)
        first = []
        for e in self.c.stream_metrics(s):
            first.append(e)
            if len(first) == 25:
                break
        paused = self.c.pause_session(s)
        self.assertIn(paused["state"], ("SESSION_STATE_PAUSED", "SESSION_STATE_SUCCEEDED"))
        if paused["state"] == "SESSION_STATE_PAUSED":
            with self.assertRaises(AligndError) as err:
                self.c.pause_session(s)
            self.assertEqual(err.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
            self.c.resume_session(s)
        rest = list(self.c.stream_metrics(s, start_seq=first[-1]["seq"] + 1))
        seqs = [e["seq"] for e in first + rest if "step" in e or "eval" in e]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertEqual(rest[-1]["end"]["state"], "SESSION_STATE_SUCCEEDED")
        self.assertEqual(len(self.c.list_metrics(s)), len(seqs))
        self.assertLessEqual(len([e for e in self.c.list_metrics(s, max_points=50) if "step" in e]), 50)

    def test_idempotent_create_ids_and_bare_names(self):
        ds = self.c.generate_dataset("toy", examples=100)
        a = self.c.create_session(ds, sizes=[1, 1, 1], max_steps=10, request_id="retry-1")
        b = self.c.create_session(ds, sizes=[1, 1, 1], max_steps=10, request_id="retry-1")
        self.assertEqual(a["name"], b["name"])
        named = self.c.create_session(ds["name"].split("/")[1], sizes=[1, 1, 1], max_steps=10, session_id="my-run")
        self.assertEqual(named["name"], "sessions/my-run")
        self.assertEqual(self.c.get_session("my-run")["name"], "sessions/my-run")
        with self.assertRaises(AligndError) as err:
            self.c.create_session(ds, sizes=[1, 1, 1], max_steps=10, session_id="my-run")
        self.assertEqual(err.exception.code, grpc.StatusCode.ALREADY_EXISTS)

    def test_paginated_list_and_errors(self):
        ds = self.c.generate_dataset("toy", examples=100)
        made = {self.c.create_session(ds, sizes=[1, 1, 1], max_steps=10)["name"] for _ in range(5)}
        listed = {s["name"] for s in self.c.list_sessions(page_size=2)}
        self.assertTrue(made <= listed)
        with self.assertRaises(AligndError) as err:
            self.c.create_session(ds, sizes=[2, 1, 1], max_steps=10)
        self.assertEqual(err.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("network.sizes[0] is 2", str(err.exception))
        with self.assertRaises(AligndError) as err:
            self.c.get_session("sessions/000000000000")
        self.assertEqual(err.exception.code, grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(AligndError) as err:
            self.c.upload_dataset(np.array([[np.nan, 1.0]]), np.array([0]))
        self.assertEqual(err.exception.code, grpc.StatusCode.INVALID_ARGUMENT)


class InstallTest(unittest.TestCase):
    def test_the_package_installs_with_pip_and_imports_without_path_tricks(self):
        src = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["alignd_client"].__file__)))
        target = tempfile.mkdtemp(prefix="alignd_pip_")
        work = tempfile.mkdtemp(prefix="alignd_pip_src_")
        try:
            shutil.copytree(src, os.path.join(work, "pkg"))
            p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation",
                                "--no-deps", "--no-index", "--target", target, os.path.join(work, "pkg")],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            env = {"PYTHONPATH": target, "PATH": os.environ.get("PATH", "")}
            q = subprocess.run([sys.executable, "-c", "import alignd_client, alignd_client.client as m; "
                                "print(sorted(alignd_client.rule_names()))"],
                               capture_output=True, text=True, env=env, cwd=target)
            self.assertEqual(q.returncode, 0, q.stderr)
            self.assertIn("'fa'", q.stdout)
        finally:
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
