"""Exports through a real alignd and the Python client, read back by independent readers
(tests/interop/export_readers.py: TFRecord framing checked with crcmod, the Event wire format
decoded by hand, the safetensors spec, Debian's ONNX checker and a NumPy reference evaluator):
every file says what ListMetrics, ReadSnapshot and Predict say.

Run by ctest with PYTHONPATH=build/python and ALIGND_BINARY set."""
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import grpc
from alignd_client import AligndError, Client
from alignd_client._pb.alignd.v1 import sessions_pb2, sessions_pb2_grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_readers as er  # noqa: E402


def same(a, b):
    """Equal floats, NaN equal to NaN (None: a JSON null for NaN)."""
    if a is None or b is None:
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return a == b or (math.isnan(a) and math.isnan(b))


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="alignd_exports_")
        cls.proc = subprocess.Popen([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0",
                                     "--metrics_listen", "", "--data_dir", cls.dir + "/data",
                                     "--max_running", "2"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        cls.address = cls.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        cls.c = Client(cls.address)
        cls.c.wait_ready()
        rng = np.random.default_rng(3)
        # Blobs: 3 classes in 20 dimensions.
        y = rng.integers(0, 3, 600)
        x = rng.normal(size=(600, 20)).astype(np.float32)
        x[np.arange(600), y] += 2.0
        cls.x = x
        ds = cls.c.upload_dataset(x, y, name="blobs")
        cls.ds = ds
        cls.mlp = cls.c.create_session(ds, sizes=[20, 16, 12, 3], rule="dfa", hidden="relu",
                                       output="softmax", loss="cross_entropy", batch_size=8, epochs=2,
                                       metrics_every=5, eval_every=30, validation_fraction=0.2,
                                       snapshot_every=50, eval_dataset=ds)
        # Images 1 x 8 x 8: every kind of layer ONNX gets.
        imgs = rng.normal(size=(300, 1, 8, 8)).astype(np.float32)
        labels = rng.integers(0, 4, 300)
        imgs[np.arange(300), 0, labels, labels] += 3.0
        cls.imgs = imgs.reshape(300, 64)
        ids = cls.c.upload_dataset(cls.imgs, labels, name="images")
        cls.conv = cls.c.create_session(
            ids, layers="conv:4x3x3:p1,pool:2,conv:6x3x3,avgpool:2,flatten,dense:4", rule="fa",
            input_shape=(1, 8, 8), hidden="tanh", batch_size=10, epochs=2, metrics_every=5)
        for s in (cls.mlp, cls.conv):
            end = list(cls.c.stream_metrics(s))[-1]["end"]
            assert end["state"] == "SESSION_STATE_SUCCEEDED", end

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.proc.terminate()
        cls.proc.wait(timeout=30)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def figures(self, s):
        """The log as ListMetrics gives it: step and eval events."""
        return [e for e in self.c.list_metrics(s) if "step" in e or "eval" in e]

    def test_csv_has_every_event_and_its_figures(self):
        events = self.figures(self.mlp)
        rows = list(csv.DictReader(io.StringIO(self.c.export_session(self.mlp, "csv").decode())))
        self.assertEqual(len(rows), len(events))
        self.assertTrue(any(r["kind"] == "validation" for r in rows))
        self.assertTrue(any(r["kind"] == "eval" for r in rows))
        for r, e in zip(rows, events):
            self.assertEqual(int(r["seq"]), e["seq"])
            if "step" in e:
                m = e["step"]
                self.assertEqual(r["kind"], "train")
                self.assertTrue(same(float(r["loss"]), m["loss"]))
                self.assertTrue(same(float(r["accuracy"]), m["accuracy"]))
                for a in m["alignment"]:
                    for k in ("update_angle_mean", "positive_fraction", "weight_angle"):
                        self.assertTrue(same(float(r[f"h{a['layer']}.{k}"]), a[k]), (r["seq"], k))
            else:
                m = e["eval"]
                self.assertEqual(r["kind"], "validation" if m.get("validation") else "eval")
                self.assertEqual(int(r["examples"]), m["examples"])
                self.assertTrue(same(float(r["error_rate"]), m["error_rate"]))
                self.assertEqual(r["h1.update_angle_mean"], "")

    def test_jsonl_starts_with_the_session(self):
        lines = self.c.export_session(self.mlp, "jsonl").decode().splitlines()
        head = json.loads(lines[0])
        self.assertEqual(head["kind"], "session")
        self.assertEqual(head["session"]["name"], self.mlp["name"])
        self.assertEqual(head["session"]["config"]["feedback"]["rule"], "RULE_DIRECT_FEEDBACK_ALIGNMENT")
        events = self.figures(self.mlp)
        body = [json.loads(l) for l in lines[1:]]
        self.assertEqual([b["seq"] for b in body], [e["seq"] for e in events])
        for b, e in zip(body, events):
            m = e.get("step") or e["eval"]
            self.assertTrue(same(b["loss"], m["loss"]))
            self.assertEqual(b["step"], m["step"])

    def test_tfevents_read_back_with_every_crc(self):
        data = self.c.export_session(self.mlp, "tfevents")
        events = er.parse_events(er.read_tfrecords(data))
        self.assertEqual(events[0]["file_version"], "brain.Event:2")
        log = self.figures(self.mlp)
        self.assertEqual(len(events) - 1, len(log))
        for ev, e in zip(events[1:], log):
            if "step" in e:
                m = e["step"]
                self.assertEqual(ev["step"], m["step"])
                self.assertEqual(ev["scalars"]["train/loss"], np.float32(m["loss"]))
                self.assertEqual(ev["scalars"]["train/accuracy"], np.float32(m["accuracy"]))
                self.assertNotIn("train/nse", ev["scalars"])  # NaN for classification
                last = m["alignment"][-1]
                self.assertEqual(ev["scalars"][f"alignment/h{last['layer']}/weight_angle"],
                                 np.float32(last["weight_angle"]))
            else:
                m = e["eval"]
                prefix = "validation/" if m.get("validation") else "eval/"
                self.assertEqual(ev["scalars"][prefix + "error_rate"], np.float32(m["error_rate"]))
        # The file name TensorBoard looks for, written into a folder.
        path = self.c.export_session(self.mlp, "tfevents", path=self.dir)
        self.assertIn(".tfevents.", os.path.basename(path))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data)

    def test_safetensors_hold_the_snapshots_tensors(self):
        for s in (self.mlp, self.conv):
            tensors, meta = er.read_safetensors(self.c.export_session(s, "safetensors"),
                                                require_aligned=True)
            snap = self.c.read_snapshot(s)
            expect = {k: v for k, v in snap.items() if k not in ("step", "layer_kinds")}
            self.assertEqual(set(tensors), set(expect))
            for k, v in expect.items():
                want = v.reshape(-1) if k.startswith("b") else v
                np.testing.assert_array_equal(tensors[k], want, err_msg=k)
            self.assertEqual(int(meta["step"]), snap["step"])
            self.assertEqual(json.loads(meta["session"])["name"], s["name"])
        self.assertIn("B1", tensors if s is self.mlp else er.read_safetensors(
            self.c.export_session(self.mlp, "safetensors"))[0])  # DFA's B

    def test_onnx_passes_the_checker_and_computes_predict(self):
        for s, x in ((self.mlp, self.x[:50]), (self.conv, self.imgs[:40])):
            model = er.check_onnx(self.c.export_session(s, "onnx"))
            got = er.run_onnx(model, x)
            want = self.c.predict(s, x).astype(np.float64)
            self.assertEqual(got.shape, want.shape)
            err = np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))
            self.assertLess(err, 1e-6, s["name"])

    def test_onnx_of_an_earlier_snapshot(self):
        steps = [sn["step"] for sn in self.c.list_snapshots(self.mlp)]
        self.assertGreater(len(steps), 1)
        first = steps[0]
        model = er.check_onnx(self.c.export_session(self.mlp, "onnx", step=first))
        got = er.run_onnx(model, self.x[:20])
        want = self.c.predict(self.mlp, self.x[:20], step=first).astype(np.float64)
        self.assertLess(np.max(np.abs(got - want)), 1e-6)
        latest = self.c.predict(self.mlp, self.x[:20]).astype(np.float64)
        self.assertGreater(np.max(np.abs(got - latest)), 1e-4)  # another step's weights

    def test_session_json(self):
        j = json.loads(self.c.export_session(self.conv, "json"))
        self.assertEqual(j["name"], self.conv["name"])
        self.assertEqual(j["state"], "SESSION_STATE_SUCCEEDED")
        self.assertEqual(len(j["config"]["network"]["layers"]), 6)

    def test_initial_weights_from_an_export(self):
        data = self.c.export_session(self.mlp, "safetensors")
        ev = self.c.evaluate(self.mlp, self.ds)  # the exported weights' loss on the whole set
        s = self.c.create_session(self.ds, sizes=[20, 16, 12, 3], rule="dfa", hidden="relu",
                                  output="softmax", loss="cross_entropy", batch_size=600, max_steps=2,
                                  metrics_every=1, initial_weights=data, learning_rate=0.05)
        self.assertEqual(s["state"], "SESSION_STATE_QUEUED")
        events = [e for e in self.c.stream_metrics(s) if "step" in e or "end" in e]
        self.assertEqual(events[-1]["end"]["state"], "SESSION_STATE_SUCCEEDED")
        first = events[0]["step"]
        self.assertEqual(first["step"], 1)
        # Step 1's loss is the batch's before the update: the whole set, the imported weights.
        self.assertAlmostEqual(first["loss"], ev["loss"], delta=1e-5 * max(1.0, abs(ev["loss"])))
        self.assertNotEqual(events[1]["step"]["loss"], first["loss"])  # then it trains
        # Arrays as read_snapshot gives them, a subset: W0 only, the rest drawn (one step at a
        # rate too small to move them: the weights after it are those it started from).
        w = self.c.read_snapshot(self.mlp)
        part = self.c.create_session(self.ds, sizes=[20, 16, 12, 3], rule="fa", max_steps=1,
                                     initial_weights={"W0": w["W0"]}, learning_rate=1e-12,
                                     session_id="import-part")
        list(self.c.stream_metrics(part))
        after = self.c.read_snapshot(part)
        np.testing.assert_allclose(after["W0"], w["W0"], atol=1e-7)
        self.assertGreater(np.max(np.abs(after["W1"] - w["W1"])), 1e-2)  # drawn, not imported
        # A retry (request_id) answers with the first attempt's session; a taken id is refused
        # before anything is written over it.
        first = self.c.create_session(self.ds, sizes=[20, 16, 12, 3], rule="dfa", max_steps=2,
                                      initial_weights=data, request_id="import-retry")
        again = self.c.create_session(self.ds, sizes=[20, 16, 12, 3], rule="dfa", max_steps=2,
                                      initial_weights=data, request_id="import-retry")
        self.assertEqual(first["name"], again["name"])
        with self.assertRaises(AligndError) as e:
            self.c.create_session(self.ds, sizes=[20, 16, 12, 3], rule="dfa", max_steps=2,
                                  initial_weights=data, session_id="import-part")
        self.assertEqual(e.exception.code, grpc.StatusCode.ALREADY_EXISTS)
        self.assertEqual(self.c.get_session(part)["state"], "SESSION_STATE_SUCCEEDED")
        with self.assertRaises(ValueError):
            self.c.create_session(self.ds, sizes=[20, 16, 12, 3], max_steps=2, initial_weights=b"")

    def test_initial_weights_are_checked(self):
        good = self.c.export_session(self.mlp, "safetensors")
        tensors, _ = er.read_safetensors(good)

        def create(blob):
            try:
                self.c.create_session(self.ds, sizes=[20, 16, 12, 3], rule="dfa", max_steps=5,
                                      initial_weights=blob)
            except AligndError as e:
                return e.code, str(e)
            return grpc.StatusCode.OK, ""
        def create_with(rule, initial_weights, connection_sparsity=0.0):
            config = {"network": {"sizes": [20, 16, 12, 3], "connection_sparsity": connection_sparsity}}
            try:
                self.c.create_session(self.ds, config=config, rule=rule, max_steps=5,
                                      initial_weights=initial_weights)
            except AligndError as e:
                return e.code, str(e)
            return grpc.StatusCode.OK, ""
        code, msg = create({"W0": np.zeros((16, 21), np.float32)})
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("initial_weights: tensor W0 is [16, 21]; this network's is [16, 20]", msg)
        code, msg = create({"W7": np.zeros((2, 2), np.float32)})
        self.assertIn("tensor W7 is not one of this network's", msg)
        code, msg = create({"b1": np.full(12, np.nan, np.float32)})
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("b1: holds NaN or Inf", msg)
        code, msg = create(good[:-4])  # cut short: the last tensor does not fit
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("do not hold", msg)
        code, msg = create(b"\x10" + b"\0" * 7 + b"not json")
        self.assertIn("not a safetensors file", msg)
        # Another dtype is named, not misread.
        f64 = dict(tensors)
        head = {"W0": {"dtype": "F64", "shape": [16, 20], "data_offsets": [0, 16 * 20 * 8]}}
        text = json.dumps(head).encode()
        text += b" " * (-len(text) % 8)
        blob = len(text).to_bytes(8, "little") + text + np.zeros(16 * 20).tobytes()
        code, msg = create(blob)
        self.assertIn('dtype "F64"', msg)
        # B goes through the rule: pseudo-backprop computes its B from W, so one given is refused
        # (it was silently dropped), and a sparse network's removed connections stay removed.
        code, msg = create_with(rule="pbp", initial_weights={"B1": f64["B1"]})
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("initial_weights: tensor B1", msg)
        code, msg = create_with(rule="fa", connection_sparsity=0.5,
                                initial_weights={"W0": np.ones((16, 20), np.float32)})
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("tensor W0 has weights where the network's connection mask removed them", msg)
        # A BP session has no B to take.
        try:
            self.c.create_session(self.ds, sizes=[20, 16, 12, 3], rule="bp", max_steps=5,
                                  initial_weights={"B1": f64["B1"]})
            self.fail("B for BP was taken")
        except AligndError as e:
            self.assertIn("tensor B1 is not one of this network's", str(e))

    def test_errors_have_the_right_codes(self):
        stub = sessions_pb2_grpc.TrainingServiceStub(grpc.insecure_channel(self.address))

        def code(**kw):
            try:
                list(stub.ExportSession(sessions_pb2.ExportSessionRequest(**kw), timeout=30))
            except grpc.RpcError as e:
                return e.code(), e.details()
            return grpc.StatusCode.OK, ""

        name = self.mlp["name"]
        self.assertEqual(code(name=name)[0], grpc.StatusCode.INVALID_ARGUMENT)  # no format
        self.assertEqual(code(name=name, format=99)[0], grpc.StatusCode.INVALID_ARGUMENT)
        c, msg = code(name=name, format=sessions_pb2.EXPORT_FORMAT_CSV, snapshot=name + "/snapshots/50")
        self.assertEqual(c, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("snapshot", msg)
        c, msg = code(name=name, format=sessions_pb2.EXPORT_FORMAT_ONNX,
                      snapshot=self.conv["name"] + "/snapshots/latest")
        self.assertEqual(c, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(code(name=name, format=sessions_pb2.EXPORT_FORMAT_ONNX,
                              snapshot=name + "/snapshots/3")[0], grpc.StatusCode.NOT_FOUND)
        self.assertEqual(code(name="sessions/nope", format=sessions_pb2.EXPORT_FORMAT_CSV)[0],
                         grpc.StatusCode.NOT_FOUND)
        self.assertEqual(code(name="nope", format=sessions_pb2.EXPORT_FORMAT_CSV)[0],
                         grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(ValueError):
            self.c.export_session(self.mlp, "xlsx")
        with self.assertRaises(AligndError) as e:
            self.c.export_session("sessions/nope", "csv")
        self.assertEqual(e.exception.code, grpc.StatusCode.NOT_FOUND)


if __name__ == "__main__":
    unittest.main()
