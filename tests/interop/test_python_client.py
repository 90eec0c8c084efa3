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
from alignd_client import AligndError, Client, decode_payload, encode_payload, parse_layers, rule_names


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

    def test_labels_filter_and_provenance(self):
        ds = self.c.generate_dataset("linear", examples=100)
        made = {}
        for rule, seed, study in (("fa", 1, "depth"), ("fa", 2, "depth"), ("bp", 1, "depth"), ("fa", 1, "width")):
            s = self.c.create_session(ds, sizes=[30, 20, 10], rule=rule, seed=seed, max_steps=20,
                                      labels={"study": study, "seed": str(seed), "suite": "lfp"})
            self.assertEqual(s["labels"]["study"], study)
            made[s["name"]] = (rule, seed, study)
        for name in made:
            list(self.c.stream_metrics(name))

        def names(f):
            return {s["name"] for s in self.c.list_sessions(filter=f)}
        want = lambda pred: {n for n, v in made.items() if pred(*v)}  # noqa: E731
        self.assertEqual(names("labels.suite = lfp"), set(made))
        self.assertEqual(names('labels.suite = lfp AND labels.study = "depth" AND rule = fa'),
                         want(lambda r, s, st: st == "depth" and r == "fa"))
        self.assertEqual(names("labels.suite = lfp AND (rule = bp OR labels.study = width)"),
                         want(lambda r, s, st: r == "bp" or st == "width"))
        self.assertEqual(names("labels.suite = lfp AND NOT labels.seed = 1"), want(lambda r, s, st: s != 1))
        self.assertEqual(names("labels.suite = lfp AND state = succeeded"), set(made))
        # Pages keep the filter: one session per page, all of them, none other.
        pages = self.c.list_sessions(filter="labels.suite = lfp AND rule = fa", page_size=1)
        self.assertEqual({s["name"] for s in pages}, want(lambda r, s, st: r == "fa"))
        with self.assertRaises(AligndError) as e:
            self.c.list_sessions(filter="labels.suite = lfp AND colour = red")
        self.assertEqual(e.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("unknown field 'colour'", str(e.exception))
        with self.assertRaises(AligndError) as e:
            self.c.create_session(ds, sizes=[30, 20, 10], max_steps=5, labels={"Bad Key": "x"})
        self.assertEqual(e.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("session.labels", str(e.exception))
        # What produced it: this alignd, the data set's digest.
        import alignd_client
        p = self.c.get_session(next(iter(made)))["provenance"]
        self.assertEqual(p["alignd_version"], alignd_client.__version__)
        self.assertTrue(p["revision"])
        self.assertTrue(p["compute_library"].startswith(("oneDNN", "Eigen")))
        self.assertTrue(p["isa"])
        self.assertEqual(p["threads"], 1)
        self.assertEqual(p["dataset_sha256"], {ds["name"]: ds["sha256"]})

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

    def test_predict_requests_are_what_protobuf_encodes(self):
        # The request is built from the array's own bytes (one copy); it must be the message
        # protobuf would encode, whatever the array's dtype and order.
        from alignd_client._convert import request_with_tensor
        from alignd_client._pb.alignd.v1 import sessions_pb2
        rng = np.random.default_rng(3)
        for x in (rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(4, 3)),
                  np.asfortranarray(rng.normal(size=(6, 2)).astype(np.float32)),
                  np.zeros((0, 784), np.float32), rng.normal(size=(1000, 784)).astype(np.float32)):
            prefix = sessions_pb2.PredictRequest(name="sessions/s").SerializeToString()
            got = sessions_pb2.PredictRequest.FromString(request_with_tensor(prefix, 2, x))
            want = sessions_pb2.PredictRequest(
                name="sessions/s", inputs=sessions_pb2.Tensor(
                    rows=x.shape[1], cols=x.shape[0], values=x.astype(np.float32).ravel().tolist()))
            self.assertEqual(got, want)
            if x.size:  # (of no examples, cols = 0 and no values are written out, not left out)
                self.assertEqual(request_with_tensor(prefix, 2, x), want.SerializeToString())

    def test_upload_requests_are_what_protobuf_encodes(self):
        # Chunk requests are written from the arrays' views; they must be the messages protobuf
        # would encode, chunks cut across the features and the targets, the digest the payload's.
        import hashlib
        from alignd_client.client import upload_requests
        from alignd_client.payload import payload_parts
        from alignd_client._pb.alignd.v1 import datasets_pb2
        x, y = self.blobs(n=37, d=5)
        fields, parts = payload_parts(x, y, digest=False)
        header = datasets_pb2.DatasetHeader(display_name="d", **fields)
        _, payload = encode_payload(x, y)
        for size in (7, 64, 1 << 20):
            want = [datasets_pb2.UploadDatasetRequest(header=header)]
            want += [datasets_pb2.UploadDatasetRequest(chunk=payload[i:i + size])
                     for i in range(0, len(payload), size)]
            want.append(datasets_pb2.UploadDatasetRequest(sha256=hashlib.sha256(payload).hexdigest()))
            self.assertEqual(list(upload_requests(header, parts, size)),
                             [m.SerializeToString() for m in want])

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

    def images(self, n=600, size=8, seed=0):
        """n one-channel size x size images of three classes: a bright horizontal bar, a
        vertical bar, or a bright square, at random places, on noise."""
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, n)
        x = 0.3 * rng.normal(size=(n, size, size)).astype(np.float32)
        for i in range(n):
            a, b = rng.integers(1, size - 3, 2)
            if y[i] == 0:
                x[i, a, 1:size - 1] += 2.0
            elif y[i] == 1:
                x[i, 1:size - 1, b] += 2.0
            else:
                x[i, a:a + 3, b:b + 3] += 2.0
        return x, y

    def test_a_conv_net_with_layers_as_dicts_trains_snapshots_4d_kernels_and_predicts(self):
        x, y = self.images()
        ds = self.c.upload_dataset(x, y, name="bars-8x8")
        self.assertEqual(ds["feature_shape"], [8, 8])
        layers = [{"kind": "conv", "channels": 4, "kernel": 3, "padding": 1},
                  {"kind": "pool", "window": 2},
                  {"kind": "conv", "channels": 6, "kernel": (3, 3)},
                  {"kind": "flatten"},
                  {"kind": "dense", "units": 3}]
        results = {}
        for rule in ("bp", "fa"):
            s = self.c.create_session(ds, layers=layers, rule=rule, hidden="relu", output="softmax",
                                      loss="cross_entropy", learning_rate=0.05, batch_size=20, epochs=4,
                                      metrics_every=10, snapshot_every=30, name=f"conv {rule}")
            net = s["config"]["network"]
            self.assertEqual(net["input_shape"], {"channels": 1, "height": 8, "width": 8})
            self.assertEqual(net["sizes"], [64, 256, 64, 24, 24, 3])  # 4x8x8, 4x4x4, 6x2x2
            events = list(self.c.stream_metrics(s))
            end = events[-1]["end"]
            self.assertEqual(end["state"], "SESSION_STATE_SUCCEEDED", end.get("failure_reason"))
            self.assertEqual(end["step"], 120)
            # One alignment entry per hidden activation; a pooling layer's W-B angle is NaN.
            al = [e["step"]["alignment"] for e in events if "step" in e][-1]
            self.assertEqual(len(al), 4)
            self.assertTrue(math.isnan(al[0]["weight_angle"]))  # into the pool: no weights
            if rule == "fa":
                self.assertFalse(math.isnan(al[1]["weight_angle"]))  # into conv 2: B is its kernel's
                self.assertTrue(0 <= al[1]["update_angle_mean"] <= 180)
            w = self.c.read_snapshot(s)
            self.assertEqual(w["layer_kinds"], ["LAYER_KIND_CONV", "LAYER_KIND_MAX_POOL", "LAYER_KIND_CONV",
                                                "LAYER_KIND_FLATTEN", "LAYER_KIND_DENSE"])
            self.assertEqual(w["W0"].shape, (4, 1, 3, 3))
            self.assertEqual(w["W2"].shape, (6, 4, 3, 3))
            self.assertEqual(w["W4"].shape, (3, 24))
            self.assertNotIn("W1", w)  # pooling: no weights
            if rule == "fa":
                self.assertEqual(w["B2"].shape, (6, 4, 3, 3))  # B shaped like the kernel
                self.assertEqual(w["B4"].shape, (24, 3))       # dense: W^T's shape
            # Images as (n, 8, 8) or flat (n, 64) predict the same; the net learned.
            xt, yt = self.images(n=300, seed=1)
            p3 = self.c.predict(s, xt)
            p2 = self.c.predict(s, xt.reshape(len(xt), -1))
            np.testing.assert_array_equal(p3, p2)
            self.assertEqual(p3.shape, (300, 3))
            results[rule] = float(np.mean(p3.argmax(1) == yt))
        self.assertGreater(results["bp"], 0.8, results)
        self.assertGreater(results["fa"], 0.5, results)
        # The same through the compact string.
        self.assertEqual(parse_layers("conv:4x3x3:p1,pool:2,conv:6x3x3,flatten,dense:3"),
                         [{"kind": "conv", "channels": 4, "kernel": (3, 3), "padding": 1},
                          {"kind": "maxpool", "window": 2}, {"kind": "conv", "channels": 6, "kernel": (3, 3)},
                          {"kind": "flatten"}, {"kind": "dense", "units": 3}])
        s = self.c.create_session(ds, layers="conv:4x3x3,pool:2,dense:3", rule="sign", sign_mode="brsf",
                                  max_steps=5, input_shape=(1, 8, 8))
        self.assertEqual(s["config"]["feedback"]["sign_mode"], "SIGN_SYMMETRY_MODE_BATCH_RANDOM")
        self.assertEqual(s["config"]["network"]["sizes"], [64, 144, 36, 3])
        list(self.c.stream_metrics(s))
        # Layers in the config dict (proto field names), with sizes=[] as tools/repro passes it.
        s = self.c.create_session(ds, [], rule="bp", max_steps=2, config={"network": {
            "layers": [{"kind": "LAYER_KIND_CONV", "units": 2, "kernel_h": 3}, {"kind": "LAYER_KIND_DENSE", "units": 3}],
            "input_shape": {"channels": 1, "height": 8, "width": 8}}})
        self.assertEqual(s["config"]["network"]["sizes"], [64, 72, 3])
        list(self.c.stream_metrics(s))
        # Errors name the field.
        with self.assertRaises(AligndError) as e:
            self.c.create_session(ds, layers="conv:4x9x9,dense:3", max_steps=5)
        self.assertEqual(e.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("session.config.network.layers[0] (conv): a 9x9 kernel is larger than its 1x8x8 input",
                      str(e.exception))
        with self.assertRaises(AligndError) as e:
            self.c.create_session(ds, layers=layers, rule="pbp", max_steps=5)
        self.assertIn("session.config.feedback.rule pbp does not train convolution layers", str(e.exception))
        with self.assertRaises(ValueError) as v:
            self.c.create_session(ds, layers="conv:4x3,dense:3")
        self.assertIn("layers item 1 'conv:4x3': expected conv:CxKHxKW", str(v.exception))
        with self.assertRaises(ValueError) as v:
            self.c.create_session(ds, layers=[{"kind": "conv", "channels": 4, "kernal": 3}])
        self.assertIn("layers[0] (conv): unknown keys ['kernal']", str(v.exception))

    def test_a_snapshots_4d_kernel_is_the_convolution_alignd_computes(self):
        # A net that is one conv layer (2 channels in, 3 out, 3x2 kernel, stride 1, padding 1):
        # its outputs, predicted by alignd, against the convolution of the snapshot's
        # (out, in, kh, kw) kernel computed here (cross-correlation, as PyTorch's Conv2d).
        rng = np.random.default_rng(5)
        x = rng.normal(size=(40, 2, 5, 6)).astype(np.float32)
        y = rng.normal(size=(40, 3 * 5 * 7)).astype(np.float32)  # out: 3 x (5+2-3+1) x (6+2-2+1)
        ds = self.c.upload_dataset(x, y, name="conv-regression")
        self.assertEqual(ds["feature_shape"], [2, 5, 6])
        s = self.c.create_session(ds, layers=[{"kind": "conv", "channels": 3, "kernel": (3, 2), "padding": 1}],
                                  rule="bp", batch_size=8, max_steps=3, learning_rate=0.01)
        self.assertEqual(s["config"]["network"]["sizes"], [60, 105])
        end = list(self.c.stream_metrics(s))[-1]["end"]
        self.assertEqual(end["state"], "SESSION_STATE_SUCCEEDED", end.get("failure_reason"))
        w = self.c.read_snapshot(s)
        k, b = w["W0"], w["b0"][:, 0]
        self.assertEqual(k.shape, (3, 2, 3, 2))
        xp = np.pad(x[:4].astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        want = np.zeros((4, 3, 5, 7))
        for o in range(3):
            for r in range(5):
                for c in range(7):
                    want[:, o, r, c] = b[o] + np.einsum("nikl,ikl->n", xp[:, :, r:r + 3, c:c + 2], k[o])
        got = self.c.predict(s, x[:4]).reshape(4, 3, 5, 7)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    def test_list_rules_is_the_servers_table(self):
        rules = self.c.list_rules()
        by = {r["name"]: r for r in rules}
        self.assertEqual(set(by), set(rule_names()))
        self.assertEqual(rules[0]["name"], "bp")
        self.assertEqual(by["fa"]["rule"], "RULE_FEEDBACK_ALIGNMENT")
        self.assertEqual(by["fa"]["title"], "Feedback alignment")
        self.assertTrue(by["fa"]["trains_conv"])
        self.assertFalse(by["pbp"]["trains_conv"])
        self.assertEqual(by["dfa"]["feedback_shape"], "FEEDBACK_SHAPE_OUTPUT_TO_UNITS")

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
