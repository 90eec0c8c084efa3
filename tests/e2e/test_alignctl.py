"""End to end through the real binaries: alignctl processes against a real alignd on
127.0.0.1 with an ephemeral port and a temporary data directory."""
import gzip
import json
import re
import os
import shutil
import struct
import subprocess
import time
import tempfile
import unittest

import numpy as np


class AlignctlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="alignctl_e2e_")
        cls.log_path = os.path.join(cls.dir, "alignd.log")
        cls.log = open(cls.log_path, "w")
        cls.proc = subprocess.Popen([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--metrics_listen", "127.0.0.1:0",
                                     "--data_dir", os.path.join(cls.dir, "data"), "--heartbeat_ms", "200"],
                                    stdout=subprocess.PIPE, stderr=cls.log, text=True)
        cls.address = cls.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        cls.metrics_url = "http://" + cls.proc.stdout.readline().strip().rsplit(" ", 1)[-1]

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=30)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def ctl(self, *args, ok=True):
        p = subprocess.run([os.environ["ALIGNCTL_BINARY"], "--server", self.address, *args],
                           capture_output=True, text=True, timeout=120)
        if ok:
            self.assertEqual(p.returncode, 0, f"alignctl {' '.join(args)}: {p.stderr}")
        return p

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def test_health(self):
        self.assertIn("SERVING", self.ctl("health").stdout)

    def test_prometheus_metrics(self):
        import urllib.request
        ds = self.ctl("datasets", "generate", "--kind", "linear", "--examples", "300").stdout.strip()
        p = self.ctl("train", "--dataset", ds, "--sizes", "30,20,10", "--rule", "fa", "--batch", "1",
                     "--epochs", "1", "--metrics-every", "10", "--watch")
        name = p.stdout.splitlines()[0].strip()
        text = urllib.request.urlopen(self.metrics_url, timeout=10).read().decode()
        samples = []  # (name, {label: value}, number) in the text exposition format
        for line in text.splitlines():
            m = re.match(r'^(\w+)(?:\{(.*)\})? (\S+)$', line)
            if m:
                samples.append((m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")), float(m.group(3))))

        def value(metric, **labels):
            hits = [v for n, l, v in samples if n == metric and all(l.get(k) == x for k, x in labels.items())]
            self.assertTrue(hits, f"no {metric} {labels} in /metrics")
            return hits[0]
        self.assertGreaterEqual(value("alignd_sessions", state="SUCCEEDED"), 1)
        self.assertEqual(value("alignd_session_steps_total", session=name, rule="fa"), 300)
        angle = value("alignd_session_update_angle_degrees", session=name, rule="fa", layer="1")
        self.assertTrue(0 <= angle <= 180)
        rpc = dict(grpc_service="alignd.v1.TrainingService", grpc_method="CreateSession", grpc_type="unary")
        self.assertGreaterEqual(value("grpc_server_handled_total", grpc_code="OK", **rpc), 1)
        self.assertGreaterEqual(value("grpc_server_handling_seconds_count", **rpc), 1)

    def test_every_rpc_is_logged_as_a_json_line(self):
        self.ctl("health")
        self.ctl("sessions", "get", "sessions/000000000000", ok=False)
        self.log.flush()
        # alignd writes its log from a queue, a moment after the reply: wait for the line.
        deadline = time.time() + 10
        while "sessions/000000000000 not found" not in open(self.log_path).read() and time.time() < deadline:
            time.sleep(0.02)
        lines = [json.loads(l) for l in open(self.log_path) if l.strip()]
        rpcs = [l for l in lines if l.get("msg") == "rpc"]
        health = [l for l in rpcs if l["method"] == "/grpc.health.v1.Health/Check"]
        self.assertTrue(health and health[-1]["code"] == 0 and health[-1]["duration_ms"] >= 0)
        missing = [l for l in rpcs if l["method"].endswith("/GetSession") and l["code"] == 5]
        self.assertTrue(missing and "not found" in missing[-1]["error"])
        self.assertTrue(all("time" in l and "level" in l for l in lines))

    def test_generate_train_watch_and_snapshot(self):
        ds = self.ctl("datasets", "generate", "--kind", "linear", "--examples", "1000").stdout.strip()
        self.assertTrue(ds.startswith("datasets/"))
        self.assertIn(ds, self.ctl("datasets", "list").stdout)
        p = self.ctl("sessions", "create", "--dataset", ds, "--sizes", "30,20,10", "--hidden-activation", "linear",
                     "--rule", "fa", "--batch", "1", "--epochs", "2", "--lr", "0.002", "--metrics-every", "50", "--watch")
        self.assertIn("SUCCEEDED", p.stdout)
        self.assertIn("deg", p.stdout)  # the alignment angle column
        self.assertIn("STEPS/S", p.stdout)
        self.assertRegex(p.stdout, r"ETA")
        name = p.stdout.splitlines()[0].strip()
        # The watch table shows the whole name (a name copied from it is right).
        self.assertIn(name, p.stdout.splitlines()[-1])
        ev = self.ctl_json("sessions", "evaluate", name, "--dataset", ds)
        self.assertEqual(ev["examples"], "1000")
        self.assertLess(ev["nse"], 0.01)  # the linear task, learned
        self.assertIn("NSE", self.ctl("sessions", "evaluate", name, "--dataset", ds).stdout)
        got = self.ctl_json("sessions", "get", name)
        self.assertEqual(got["state"], "SESSION_STATE_SUCCEEDED")
        self.assertEqual(got["step"], "2000")  # int64 as a JSON string
        # A bare id names the session too.
        self.assertEqual(self.ctl_json("sessions", "get", name.split("/")[1])["name"], name)
        out = os.path.join(self.dir, "w")
        self.ctl("snapshots", "download", name, "--out", out)
        self.assertEqual(np.load(os.path.join(out, "W0.npy")).shape, (20, 30))
        self.assertEqual(np.load(os.path.join(out, "B1.npy")).shape, (20, 10))
        snaps = self.ctl("-o", "name", "snapshots", "list", name).stdout.split()
        self.assertEqual(snaps[-1], name + "/snapshots/2000")
        meta = self.ctl_json("snapshots", "get", snaps[-1])
        self.assertEqual([s["label"] for s in meta["shapes"]][:3], ["W0", "b0", "B0"])
        listed = self.ctl_json("sessions", "list", "--state", "succeeded")
        self.assertIn(name, [s["name"] for s in listed["sessions"]])
        self.assertIn(name, self.ctl("-o", "name", "sessions", "list").stdout.split())
        lines = self.ctl("-o", "jsonl", "sessions", "list").stdout.splitlines()
        self.assertIn(name, [json.loads(line)["name"] for line in lines])
        self.assertIn("TRAIN", self.ctl("-o", "wide", "sessions", "list").stdout)

    def test_export_writes_each_format_whole(self):
        ds = self.ctl("datasets", "generate", "--kind", "linear", "--examples", "200").stdout.strip()
        names = []
        for seed in ("1", "2"):
            p = self.ctl("-o", "name", "train", "--dataset", ds, "--sizes", "30,20,10", "--rule", "fa",
                         "--seed", seed, "--epochs", "1", "--batch", "10", "--metrics-every", "4", "--watch")
            names.append(p.stdout.splitlines()[0].strip())
        out = os.path.join(self.dir, "exports")
        sid = names[0].split("/")[1]
        written = self.ctl("-o", "name", "sessions", "export", sid, "-f", "csv", "--dir", out).stdout.split()
        self.assertEqual(written, [os.path.join(out, sid + ".csv"), os.path.join(out, sid + ".json")])
        with open(written[0]) as f:
            rows = f.read().splitlines()
        self.assertTrue(rows[0].startswith("seq,wall_time,kind,step,epoch"))
        self.assertEqual(len(rows) - 1, 5)  # 20 steps, a metric event every 4
        with open(written[1]) as f:
            self.assertEqual(json.load(f)["name"], names[0])  # the config's side file
        # tfevents: a folder per session under --dir, as tensorboard --logdir wants.
        runs = os.path.join(self.dir, "runs")
        self.ctl("sessions", "export", *names, "-f", "tfevents", "--dir", runs)
        for n in names:
            files = os.listdir(os.path.join(runs, n.split("/")[1]))
            self.assertEqual(len(files), 1)
            self.assertIn(".tfevents.", files[0])
        # By filter: every session it matches, none other.
        label = "exp-" + sid
        tagged = [self.ctl("-o", "name", "train", "--dataset", ds, "--sizes", "30,20,10", "--max-steps", "3",
                           "--label", f"batch={label}", "--watch").stdout.splitlines()[0].strip() for _ in range(2)]
        byfilter = os.path.join(self.dir, "byfilter")
        self.ctl("sessions", "export", "--filter", f"labels.batch = {label}", "-f", "tfevents", "--dir", byfilter)
        self.assertEqual(sorted(os.listdir(byfilter)), sorted(n.split("/")[1] for n in tagged))
        p = self.ctl("sessions", "export", "--filter", "labels.batch = nothing-has-this", "-f", "csv", ok=False)
        self.assertEqual(p.returncode, 3)
        self.assertIn("no session matches", p.stderr)
        # Standard output, and a file named with --file.
        onnx = subprocess.run([os.environ["ALIGNCTL_BINARY"], "--server", self.address, "sessions", "export",
                               sid, "-f", "onnx", "--file", "-"], capture_output=True, timeout=60, check=True)
        self.assertEqual(onnx.stdout[:1], b"\x08")  # ModelProto's ir_version, field 1
        self.assertGreater(len(onnx.stdout), 100)
        target = os.path.join(self.dir, "w.safetensors")
        self.ctl("sessions", "export", sid, "-f", "safetensors", "--snapshot", "20", "--file", target)
        with open(target, "rb") as f:
            head_len = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(head_len))
        self.assertEqual(header["W0"]["shape"], [20, 30])
        self.assertEqual(header["__metadata__"]["step"], "20")
        self.assertFalse([f for f in os.listdir(self.dir) if f.endswith(".part")])
        # "latest" names the newest stored weights, as elsewhere.
        latest = os.path.join(self.dir, "latest.safetensors")
        self.ctl("sessions", "export", sid, "-f", "safetensors", "--snapshot", "latest", "--file", latest)
        with open(latest, "rb") as f, open(target, "rb") as g:
            self.assertEqual(f.read(), g.read())  # step 20 is the last
        # A folder that cannot be made is a message and an exit code, not an abort.
        p = self.ctl("sessions", "export", sid, "-f", "csv", "--dir", os.path.join(target, "sub"), ok=False)
        self.assertNotIn(p.returncode, (0, -6, 134))
        self.assertIn("cannot make the folder", p.stderr)
        # An empty file is no weights: refused, not trained from the seed.
        empty = os.path.join(self.dir, "empty.safetensors")
        open(empty, "wb").close()
        p = self.ctl("train", "--dataset", ds, "--sizes", "30,20,10", "--initial-weights", empty, ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("is empty", p.stderr)
        # The export starts another session.
        p = self.ctl("train", "--dataset", ds, "--sizes", "30,20,10", "--rule", "fa", "--max-steps", "5",
                     "--initial-weights", target, "--watch")
        self.assertIn("SUCCEEDED", p.stdout)
        p = self.ctl("train", "--dataset", ds, "--sizes", "30,20,10", "--initial-weights", written[0], ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("initial_weights: not a safetensors file", p.stderr)
        # Errors: the code's exit status, and no file.
        p = self.ctl("sessions", "export", sid, "-f", "onnx", "--snapshot", "7", "--file",
                     os.path.join(self.dir, "none.onnx"), ok=False)
        self.assertEqual(p.returncode, 3)  # NOT_FOUND
        self.assertIn("snapshots/7 not found", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "none.onnx")))
        p = self.ctl("sessions", "export", sid, "-f", "csv", "--snapshot", "20", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--snapshot is for safetensors and onnx", p.stderr)
        self.assertNotEqual(self.ctl("sessions", "export", sid, "-f", "xlsx", ok=False).returncode, 0)

    def test_labels_and_filter(self):
        ds = self.ctl("datasets", "generate", "--kind", "linear", "--examples", "100").stdout.strip()
        made = {}
        for rule, study in (("fa", "depth"), ("bp", "depth"), ("fa", "width")):
            name = self.ctl("-o", "name", "sessions", "create", "--dataset", ds, "--sizes", "30,20,10",
                            "--rule", rule, "--max-steps", "5", "--label", f"study={study}",
                            "--label", "suite=e2e-filter").stdout.strip()
            made[name] = (rule, study)
        got = self.ctl("-o", "name", "sessions", "list", "--filter",
                       "labels.suite = e2e-filter AND labels.study = depth AND rule = fa").stdout.split()
        self.assertEqual(got, [n for n, v in made.items() if v == ("fa", "depth")])
        got = self.ctl("-o", "name", "sessions", "list", "--filter",
                       'labels.suite = "e2e-filter" AND NOT rule = fa').stdout.split()
        self.assertEqual(got, [n for n, v in made.items() if v[0] != "fa"])
        wide = self.ctl("-o", "wide", "sessions", "list", "--filter", "labels.suite = e2e-filter").stdout
        self.assertIn("study=depth,suite=e2e-filter", wide)
        p = self.ctl("sessions", "list", "--filter", "labels.suite = (", ok=False)
        self.assertEqual(p.returncode, 2)  # INVALID_ARGUMENT
        self.assertIn("filter: a value expected", p.stderr)
        p = self.ctl("sessions", "create", "--dataset", ds, "--sizes", "30,20,10", "--label", "novalue", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--label 'novalue': give key=value", p.stderr)

    def test_upload_idx_csv_npy(self):
        n = 40
        rng = np.random.default_rng(1)
        images = rng.integers(0, 256, size=(n, 4, 4), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        ip, lp = os.path.join(self.dir, "img.gz"), os.path.join(self.dir, "lbl")
        with gzip.open(ip, "wb") as f:
            f.write(struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", n, 4, 4) + images.tobytes())
        with open(lp, "wb") as f:
            f.write(struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", n) + labels.tobytes())
        d = self.ctl_json("datasets", "upload", "--idx", ip, lp, "--name", "tiny-idx")
        self.assertEqual(d["num_examples"], "40")
        self.assertEqual(d["feature_shape"], ["4", "4"])
        csv = os.path.join(self.dir, "d.csv")
        with open(csv, "w") as f:
            f.write("a,b,y\n" + "".join(f"{i},{i * 0.5},{i % 2}\n" for i in range(30)))
        d = self.ctl_json("upload", "--csv", csv, "--header")
        self.assertEqual(d["num_classes"], 2)
        self.assertEqual(d["feature_shape"], ["2"])
        # Images in a CSV: their shape is declared, and checked against the columns.
        img = os.path.join(self.dir, "img.csv")
        with open(img, "w") as f:
            f.write("".join(",".join(str((i * 7 + k) % 5) for k in range(12)) + f",{i % 3}\n" for i in range(30)))
        d = self.ctl_json("upload", "--csv", img, "--feature-shape", "3x2x2")
        self.assertEqual(d["feature_shape"], ["3", "2", "2"])
        p = self.ctl("upload", "--csv", img, "--feature-shape", "5x5", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--feature-shape 5x5 has 25 values; the examples have 12 features", p.stderr)
        # The other readers keep their own shape; the first reader given wins, as before.
        p = self.ctl("upload", "--idx", ip, lp, "--feature-shape", "16", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--feature-shape is for --csv", p.stderr)
        xp, yp = os.path.join(self.dir, "x.npy"), os.path.join(self.dir, "y.npy")
        np.save(xp, rng.normal(size=(25, 3)).astype(np.float64))
        np.save(yp, rng.normal(size=(25, 2)).astype(np.float32))
        d = self.ctl_json("upload", "--npy", xp, yp, "--regression")
        p = self.ctl("upload", "--npy", xp, yp, "--regression", "--feature-shape", "1x3", ok=False)
        self.assertIn("--feature-shape is for --csv", p.stderr)
        self.assertEqual(d["target_dim"], 2)
        # Not in use: it can go, and then it is gone.
        self.assertIn("deleted", self.ctl("datasets", "delete", d["name"]).stdout)
        p = self.ctl("datasets", "get", d["name"], ok=False)
        self.assertIn("NOT_FOUND", p.stderr)
        # A NaN in a CSV is refused before anything is sent, naming the place.
        bad = os.path.join(self.dir, "bad.csv")
        with open(bad, "w") as f:
            f.write("1,2,0\n3,nan,1\n")
        p = self.ctl("upload", "--csv", bad, ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("line 2, column 2", p.stderr)

    def test_sweep_and_predict(self):
        train = self.ctl("datasets", "generate", "--kind", "linear", "--examples", "500", "--noise", "0.5").stdout.strip()
        test = self.ctl("datasets", "generate", "--kind", "linear", "--split", "test", "--examples", "200",
                        "--noise", "0.5").stdout.strip()
        sweep = os.path.join(self.dir, "sweep.json")
        with open(sweep, "w") as f:
            json.dump({"dataset": train, "eval_dataset": test,
                       "config": {"network": {"sizes": [30, 20, 10], "hidden_activation": "ACTIVATION_LINEAR"},
                                  "batch_size": 1, "epochs": 8, "metrics_every": 50},
                       "rules": ["bp", "fa", "shallow"], "seeds": [1, 2],
                       "grid": {"optimizer.learning_rate": [0.002, 0.004]}}, f)
        table = json.loads(self.ctl("-o", "json", "sessions", "sweep", sweep).stdout)
        self.assertEqual(len(table), 6)  # 3 rules x 2 learning rates, 2 seeds each
        self.assertTrue(all(r["seeds"] == 2 for r in table))
        by = {r["run"]: r["eval_mean"] for r in table}
        # FA learns the task about as well as BP; shallow does not.
        fa, bp, shallow = (by[f"{k} optimizer.learning_rate=0.002"] for k in ("fa", "bp", "shallow"))
        self.assertLess(fa, 1.5 * bp)
        self.assertGreater(shallow, 3 * fa)
        sessions = self.ctl_json("sessions", "list", "--state", "succeeded")["sessions"]
        name = next(s["name"] for s in sessions if s.get("display_name", "").startswith("sweep fa"))
        x = np.random.default_rng(0).normal(size=(5, 30)).astype(np.float32)
        xp, yp = os.path.join(self.dir, "px.npy"), os.path.join(self.dir, "py.npy")
        np.save(xp, x)
        self.ctl("sessions", "predict", name, "--npy", xp, "--out", yp)
        y = np.load(yp)
        self.assertEqual(y.shape, (5, 10))
        out = os.path.join(self.dir, "pw")
        self.ctl("snapshots", "download", name, "--out", out)
        w0, b0 = np.load(os.path.join(out, "W0.npy")), np.load(os.path.join(out, "b0.npy"))
        w1, b1 = np.load(os.path.join(out, "W1.npy")), np.load(os.path.join(out, "b1.npy"))
        np.testing.assert_allclose(y, (x @ w0.T + b0.T) @ w1.T + b1.T, rtol=1e-4, atol=1e-4)

    def test_a_conv_net_from_layers_trains_with_bp_and_fa_and_gives_4d_kernels(self):
        # 8x8 one-channel images of three classes (a horizontal bar, a vertical bar, a square),
        # uploaded as .npy (n, 8, 8): the data set keeps its image shape.
        rng = np.random.default_rng(3)
        n = 600
        y = rng.integers(0, 3, n)
        x = 0.3 * rng.normal(size=(n, 8, 8)).astype(np.float32)
        for i in range(n):
            a, b = rng.integers(1, 5, 2)
            if y[i] == 0:
                x[i, a, 1:7] += 2.0
            elif y[i] == 1:
                x[i, 1:7, b] += 2.0
            else:
                x[i, a:a + 3, b:b + 3] += 2.0
        xp, yp = os.path.join(self.dir, "img.npy"), os.path.join(self.dir, "lab.npy")
        np.save(xp, x)
        np.save(yp, y.astype(np.int32))
        ds = self.ctl_json("datasets", "upload", "--npy", xp, yp, "--name", "bars")
        self.assertEqual(ds["feature_shape"], ["8", "8"])
        layers = "conv:4x3x3:p1,pool:2,conv:6x3x3,flatten,dense:3"
        accuracy = {}
        for rule in ("bp", "fa"):
            p = self.ctl("train", "--dataset", ds["name"], "--layers", layers, "--rule", rule,
                         "--hidden-activation", "relu", "--output-activation", "softmax", "--loss", "cross-entropy",
                         "--lr", "0.05", "--batch", "20", "--epochs", "4", "--metrics-every", "10",
                         "--snapshot-every", "60", "--name", f"conv {rule}", "--watch")
            self.assertIn("SUCCEEDED", p.stdout)
            name = p.stdout.splitlines()[0].strip()
            got = self.ctl_json("sessions", "get", name)
            net = got["config"]["network"]
            self.assertEqual(net["input_shape"], {"channels": 1, "height": 8, "width": 8})
            self.assertEqual(net["sizes"], [64, 256, 64, 24, 24, 3])
            self.assertEqual([l.get("kind") for l in net["layers"]],
                             ["LAYER_KIND_CONV", "LAYER_KIND_MAX_POOL", "LAYER_KIND_CONV", "LAYER_KIND_FLATTEN",
                              "LAYER_KIND_DENSE"])
            # The table shows the layers in the grammar they were given in.
            self.assertIn(f"{name} layers: {layers} on input 1x8x8", self.ctl("sessions", "get", name).stdout)
            table = self.ctl("snapshots", "get", name).stdout
            self.assertRegex(table, r"W0\s+conv\s+4\s+9\s+4x1x3x3")
            self.assertRegex(table, r"W1\s+max_pool\s+0\s+0")
            out = os.path.join(self.dir, f"conv-{rule}")
            self.ctl("snapshots", "download", name, "--out", out)
            self.assertEqual(np.load(os.path.join(out, "W0.npy")).shape, (4, 1, 3, 3))
            self.assertEqual(np.load(os.path.join(out, "W2.npy")).shape, (6, 4, 3, 3))
            self.assertEqual(np.load(os.path.join(out, "W4.npy")).shape, (3, 24))
            self.assertFalse(os.path.exists(os.path.join(out, "W1.npy")))  # pooling: no weights
            if rule == "fa":
                self.assertEqual(np.load(os.path.join(out, "B2.npy")).shape, (6, 4, 3, 3))
            # Predict from images (n, 8, 8).
            px, py = os.path.join(self.dir, "pimg.npy"), os.path.join(self.dir, f"pout-{rule}.npy")
            np.save(px, x[:200])
            self.ctl("sessions", "predict", name, "--npy", px, "--out", py)
            out = np.load(py)
            self.assertEqual(out.shape, (200, 3))
            accuracy[rule] = float(np.mean(out.argmax(1) == y[:200]))
        self.assertGreater(accuracy["bp"], 0.8, accuracy)
        self.assertGreater(accuracy["fa"], 0.5, accuracy)
        # Layers through --config JSON (protobuf's JSON mapping), and --sign-mode brsf.
        cfg = os.path.join(self.dir, "conv.json")
        with open(cfg, "w") as f:
            json.dump({"network": {"layers": [{"kind": "LAYER_KIND_CONV", "units": 4, "kernel_h": 3},
                                              {"kind": "LAYER_KIND_AVG_POOL", "kernel_h": 2},
                                              {"kind": "LAYER_KIND_DENSE", "units": 3}],
                                   "input_shape": {"channels": 1, "height": 8, "width": 8}},
                       "max_steps": 5}, f)
        got = self.ctl_json("sessions", "create", "--dataset", ds["name"], "--config", cfg, "--rule", "sign",
                            "--sign-mode", "brsf")
        self.assertEqual(got["config"]["network"]["sizes"], [64, 144, 36, 3])
        self.assertEqual(got["config"]["feedback"]["sign_mode"], "SIGN_SYMMETRY_MODE_BATCH_RANDOM")
        # Errors: a bad item is named before anything is sent; the server names the field.
        p = self.ctl("train", "--dataset", ds["name"], "--layers", "conv:4x3x3,pool:2,conv:6x5", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--layers item 3 'conv:6x5': expected conv:CxKHxKW", p.stderr)
        p = self.ctl("train", "--dataset", ds["name"], "--layers", "conv:4x3x3,pool:2,conv:6x5x5,dense:3", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("INVALID_ARGUMENT", p.stderr)
        self.assertIn("session.config.network.layers[2] (conv): a 5x5 kernel is larger than its 4x3x3 input",
                      p.stderr)
        p = self.ctl("train", "--dataset", ds["name"], "--layers", "conv:4x3x3,dense:3", "--rule", "pbp", ok=False)
        self.assertIn("session.config.feedback.rule pbp does not train convolution layers", p.stderr)
        flat = self.ctl("datasets", "generate", "--kind", "linear", "--examples", "100").stdout.strip()
        p = self.ctl("train", "--dataset", flat, "--layers", "conv:4x3x3,dense:10", ok=False)
        self.assertIn("set config.network.input_shape, or upload images", p.stderr)
        # The rules, from the server.
        rules = self.ctl_json("rules")["rules"]
        self.assertEqual([r["name"] for r in rules], ["bp", "fa", "dfa", "sign", "kp", "pbp", "shallow"])
        self.assertIn("Kolen-Pollack", self.ctl("rules").stdout)
        self.assertIn("conv:6x5x5,pool:2,conv:16x5x5,pool:2,dense:120,dense:84,dense:10",
                      self.ctl("train", "--help").stdout)

    def test_an_experiment_from_a_spec_file_to_its_export(self):
        """A researcher's path: a spec file (2 rules x 3 learning rates x 2 seeds, validation
        share, ASHA), create with a request id (a retry is the same experiment), watch to the
        end, get (groups, stopped sessions with why), list by filter, compare (the Python
        client's numbers), export its sessions by filter, cancel a running one, delete."""
        import math
        from alignd_client import Client
        train = self.ctl("datasets", "generate", "--kind", "linear", "--examples", "400", "--noise", "0.3").stdout.strip()
        test = self.ctl("datasets", "generate", "--kind", "linear", "--split", "test", "--examples", "200",
                        "--noise", "0.3").stdout.strip()
        study = "lr-" + train.split("/")[1]
        spec = {"dataset": train, "eval_dataset": test, "name": "lr study", "labels": {"study": study},
                "config": {"network": {"sizes": [30, 20, 10]}, "batch_size": 4, "max_steps": 400,
                           "metrics_every": 20, "eval_every": 25, "validation_fraction": 0.25},
                "rules": ["bp", "fa"], "seeds": [1, 2],
                "grid": {"optimizer.learning_rate": [0.0003, 0.003, 0.03]},
                "early_stopping": {"asha": {"min_steps": 50, "reduction_factor": 3}}}
        path = os.path.join(self.dir, "lr-study.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        rid = "e2e-" + study
        e = self.ctl_json("experiments", "create", path, "--request-id", rid)
        name, eid = e["name"], e["name"].split("/")[1]
        self.assertEqual(e["sessions_total"], 12)
        self.assertEqual([g["id"] for g in e["groups"]], [f"g{i}" for i in range(6)])
        self.assertEqual(e["early_stopping"], {"asha": {"min_steps": "50", "reduction_factor": 3}})
        # A retry with the request id is the same experiment, with the same sessions.
        again = self.ctl_json("experiments", "create", path, "--request-id", rid)
        self.assertEqual(again["name"], name)
        self.assertEqual(again["groups"], e["groups"])
        # Watched until every session has ended; then shown as `experiments get`.
        p = self.ctl("experiments", "watch", eid)
        self.assertIn("SUCCEEDED", p.stdout)
        self.assertIn(f"{name}  lr study  SUCCEEDED  12/12 sessions ended", p.stdout)
        sessions = {s["name"]: s for s in self.ctl_json("sessions", "list", "--filter",
                                                         f'experiment = "{name}"')["sessions"]}
        self.assertEqual(len(sessions), 12)
        states = [s["state"] for s in sessions.values()]
        self.assertTrue(set(states) <= {"SESSION_STATE_SUCCEEDED", "SESSION_STATE_STOPPED"}, states)
        stopped = {n: s for n, s in sessions.items() if s["state"] == "SESSION_STATE_STOPPED"}
        # ASHA keeps a third at each rung of the sessions that reached it: with 12 sessions
        # whose learning rates differ 100-fold some are stopped (the first to arrive is kept).
        self.assertGreater(len(stopped), 0)
        self.assertLess(len(stopped), 12)
        for n, s in stopped.items():
            self.assertTrue(s["stop_reason"].startswith("ASHA: at rung"), s["stop_reason"])
            self.assertLess(int(s["step"]), 400)
        # get: the groups with their sessions' states, and each stopped one with why.
        out = self.ctl("experiments", "get", eid).stdout
        self.assertIn(f"12/12 sessions ended ({12 - len(stopped)} succeeded, {len(stopped)} stopped)", out)
        self.assertIn("early stopping: ASHA, min_steps 50, reduction_factor 3, rungs as many as fit", out)
        for g in e["groups"]:
            self.assertRegex(out, rf"\n{g['id']}\s+{'bp' if g['id'] in ('g0', 'g1', 'g2') else 'fa'}\s+"
                                  rf"optimizer.learning_rate=\S+\s+2\s")
        for n, s in stopped.items():
            group = next(g["id"] for g in e["groups"] if n in g["sessions"])
            self.assertIn(f"{n} ({group}) stopped: {s['stop_reason']}", out)
        self.assertEqual(self.ctl_json("experiments", "get", name)["state"], "EXPERIMENT_STATE_SUCCEEDED")
        # sessions get / list show STOPPED and why, where failure_reason shows.
        if stopped:
            n, s = next(iter(stopped.items()))
            got = self.ctl("sessions", "get", n).stdout
            self.assertIn("STOPPED", got)
            self.assertIn(f"{n} stopped: {s['stop_reason']}", got)
            wide = self.ctl("-o", "wide", "sessions", "list", "--filter", f'experiment = "{name}"').stdout
            self.assertIn("WHY ENDED", wide)
            self.assertIn(s["stop_reason"], wide)
            listed = self.ctl("-o", "name", "sessions", "list", "--state", "stopped", "--filter",
                              f'experiment = "{name}"').stdout.split()
            self.assertEqual(sorted(listed), sorted(stopped))
        # list by filter: the labels find it; a filter matching nothing is no error; a filter
        # alignd cannot read is exit 2 with its words.
        got = self.ctl("-o", "name", "experiments", "list", "--filter", f"labels.study = {study}").stdout.split()
        self.assertEqual(got, [name])
        got = self.ctl("-o", "name", "experiments", "list", "--filter",
                       f"labels.study = {study} AND state = succeeded AND rule = fa").stdout.split()
        self.assertEqual(got, [name])
        self.assertEqual(self.ctl("-o", "name", "experiments", "list", "--filter",
                                  f"labels.study = {study} AND rule = dfa").stdout.split(), [])
        self.assertEqual(self.ctl_json("experiments", "list", "--filter", "labels.study = no-such-study"),
                         {})
        table = self.ctl("experiments", "list", "--filter", f"labels.study = {study}").stdout
        self.assertRegex(table, rf"{name}\s+SUCCEEDED\s+12/12\s+lr study")
        self.assertIn(f"study={study}", self.ctl("-o", "wide", "experiments", "list", "--filter",
                                                 f"labels.study = {study}").stdout)
        p = self.ctl("experiments", "list", "--filter", "labels.study = (", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("experiments list: INVALID_ARGUMENT", p.stderr)
        self.assertIn("filter: a value expected", p.stderr)
        p = self.ctl("experiments", "list", "--filter", "experiment_group = g0", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown field 'experiment_group'", p.stderr)
        # compare: the same numbers as the Python client's compare_groups.
        with Client(self.address) as c:
            want = c.compare_groups(name, "g0", "g1")
            want_loss = c.compare_groups(name, "g0", "g1", figure="train.loss")
        for figure, w in (("", want), ("train.loss", want_loss)):
            args = ["experiments", "compare", eid, "g0", "g1"] + (["--figure", figure] if figure else [])
            got = self.ctl_json(*args)
            self.assertEqual(got.get("n", 0), w["n"])
            for k in ("diff", "ci_low", "ci_high", "t", "p_t", "p_w"):
                v = float(got.get(k, 0.0))
                self.assertTrue(v == w[k] or (math.isnan(v) and math.isnan(w[k])), (figure, k, v, w[k]))
        self.assertEqual(want["n"], 2)
        line = self.ctl("experiments", "compare", eid, "g0", "g1").stdout
        self.assertIn(f"g0 - g1 over 2 seeds: {want['diff']:.6g} [{want['ci_low']:.6g}, {want['ci_high']:.6g}]",
                      line)
        p = self.ctl("experiments", "compare", eid, "g0", "g9", ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("g9", p.stderr)
        # Its sessions' logs exported by filter: a CSV and its session's JSON per session.
        d = os.path.join(self.dir, "experiment-csv")
        self.ctl("sessions", "export", "--filter", f'experiment = "{name}"', "-f", "csv", "--dir", d)
        ids = [n.split("/")[1] for n in sessions]
        self.assertEqual(sorted(os.listdir(d)), sorted([i + ".csv" for i in ids] + [i + ".json" for i in ids]))
        for n, s in sessions.items():
            with open(os.path.join(d, n.split("/")[1] + ".json")) as f:
                side = json.load(f)
            self.assertEqual(side["experiment"], name)
            self.assertEqual(side["state"], s["state"])
            with open(os.path.join(d, n.split("/")[1] + ".csv")) as f:
                rows = f.read().splitlines()
            self.assertTrue(rows[0].startswith("seq,wall_time,kind,step,"))
            steps = {kind: [int(r.split(",")[3]) for r in rows[1:] if r.split(",")[2] == kind]
                     for kind in ("train", "validation")}
            # A step event every 20 steps from the first; a stopped session's log ends at the
            # validation that stopped it.
            self.assertEqual(max(steps["train"]), (int(s["step"]) - 1) // 20 * 20 + 1)
            self.assertEqual(max(steps["validation"]), int(s["step"]))
        # cancel: a running experiment ends CANCELLED with its sessions; delete refuses while
        # any runs, then takes it and its sessions.
        long_spec = dict(spec, name="long", labels={"study": study + "-long"},
                         config=dict(spec["config"], max_steps=500000), early_stopping={"median": {"grace_steps": 10 ** 9}})
        long_path = os.path.join(self.dir, "long.json")
        with open(long_path, "w") as f:
            json.dump(long_spec, f)
        long = self.ctl_json("experiments", "create", long_path)
        self.assertEqual(long["early_stopping"], {"median": {"grace_steps": str(10 ** 9)}})
        self.assertIn(f"early stopping: median, grace_steps {10 ** 9}, min_sessions 3",
                      self.ctl("experiments", "get", long["name"]).stdout)
        p = self.ctl("experiments", "delete", long["name"], ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("cancel it first", p.stderr)
        out = self.ctl("experiments", "cancel", long["name"]).stdout
        self.assertIn(f"{long['name']}  long  CANCELLED", out)
        after = self.ctl_json("sessions", "list", "--filter", f'experiment = "{long["name"]}"')["sessions"]
        self.assertEqual(len(after), 12)
        self.assertTrue(all(s["state"] == "SESSION_STATE_CANCELLED" for s in after),
                        [s["state"] for s in after])
        self.assertEqual(self.ctl("-o", "name", "experiments", "list", "--filter",
                                  f"labels.study = {study}-long AND state = cancelled").stdout.split(),
                         [long["name"]])
        for x in (long["name"], eid):
            self.assertEqual(self.ctl("experiments", "delete", x).stdout.strip(),
                             "deleted " + (x if x.startswith("experiments/") else "experiments/" + x))
            p = self.ctl("experiments", "get", x, ok=False)
            self.assertEqual(p.returncode, 3)
        p = self.ctl("sessions", "get", next(iter(sessions)), ok=False)
        self.assertEqual(p.returncode, 3)
        self.assertEqual(self.ctl("-o", "name", "experiments", "list", "--filter",
                                  f"labels.study = {study}").stdout.split(), [])

    def test_experiment_spec_errors_name_the_file_and_field(self):
        ds = self.ctl("datasets", "generate", "--kind", "linear", "--examples", "100").stdout.strip()
        base = {"dataset": ds, "config": {"network": {"sizes": [30, 10]}, "max_steps": 10, "eval_every": 5,
                                          "validation_fraction": 0.2}}
        cases = [
            (dict(base, early_stopping={"asha": {"min_step": 50}}),
             ['"early_stopping" is not an EarlyStopping', "min_step"]),
            (dict(base, early_stopping={"hyperband": {}}), ['"early_stopping" is not an EarlyStopping', "hyperband"]),
            (dict(base, early_stopping={}), ['"early_stopping" names no policy']),
            (dict(base, early_stoping={"asha": {"min_steps": 50}}), ['unknown field "early_stoping"']),
            (dict(base, seeds="1,2"), ['"seeds"']),
            (dict(base, grid={"optimizer.learning_rate": []}), ['grid "optimizer.learning_rate" must be a non-empty']),
            (dict(base, config={"network": {"size": [30, 10]}}), ['"config" is not a TrainingConfig', "size"]),
            (dict(base, variants=[{"set": {"optimizer.learning_rate": 0.1}}]), ['each of "variants" needs a "rule"']),
            (dict(base, variants=[{"rule": "xx"}]), ['variants: unknown rule "xx"']),
        ]
        for i, (spec, wants) in enumerate(cases):
            path = os.path.join(self.dir, f"bad-spec-{i}.json")
            with open(path, "w") as f:
                json.dump(spec, f)
            p = self.ctl("experiments", "create", path, ok=False)
            self.assertEqual(p.returncode, 2, (spec, p.stderr))
            self.assertIn(path + ": ", p.stderr)
            for w in wants:
                self.assertIn(w, p.stderr)
        # The server's checks of the policy: named by field.
        path = os.path.join(self.dir, "no-validation.json")
        with open(path, "w") as f:
            json.dump(dict(base, config={"network": {"sizes": [30, 10]}, "max_steps": 10},
                           early_stopping={"median": {"grace_steps": 5}}), f)
        p = self.ctl("experiments", "create", path, ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("experiment.early_stopping ranks sessions by their validation figure", p.stderr)
        # Rules and variants both: the server names it. Variants alone: a group each, named.
        path = os.path.join(self.dir, "variants.json")
        variants = [{"rule": "bp", "name": "BP 0.2", "set": {"optimizer.learning_rate": 0.2}},
                    {"rule": "fa", "set": {"optimizer.learning_rate": 0.05, "optimizer.momentum": 0.5}}]
        with open(path, "w") as f:
            json.dump(dict(base, rules=["bp"], variants=variants), f)
        p = self.ctl("experiments", "create", path, ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("give rules or variants, not both", p.stderr)
        with open(path, "w") as f:
            json.dump(dict(base, variants=variants, seeds=[1, 2]), f)
        e = self.ctl_json("experiments", "create", path)
        self.assertEqual([(g["rule"], g.get("variant", "")) for g in e["groups"]],
                         [("RULE_BACKPROP", "BP 0.2"), ("RULE_FEEDBACK_ALIGNMENT", "")])
        self.assertEqual(e["groups"][1]["point"], {"optimizer.learning_rate": 0.05, "optimizer.momentum": 0.5})
        fa = self.ctl_json("sessions", "get", e["groups"][1]["sessions"][1])
        self.assertEqual((fa["config"]["optimizer"]["momentum"], fa["config"]["seed"]), (0.5, "2"))
        for args in (("experiments", "create", "--help"), ("sessions", "sweep", "--help")):
            self.assertIn("early_stopping", self.ctl(*args).stdout)
        self.assertIn("experiment_group", self.ctl("sessions", "list", "--help").stdout)
        self.assertIn("--filter", self.ctl("experiments", "list", "--help").stdout)

    def test_control_commands_and_errors(self):
        ds = self.ctl("datasets", "generate", "--kind", "toy", "--examples", "100").stdout.strip()
        name = self.ctl("train", "--dataset", ds, "--sizes", "1,256,256,1", "--max-steps", "200000",
                        "--batch", "32").stdout.strip()
        p = self.ctl("sessions", "pause", name)
        self.assertIn("PAUSED", p.stdout)
        p = self.ctl("sessions", "pause", name, ok=False)
        self.assertEqual(p.returncode, 2)  # a request that does not fit the session's state
        self.assertIn("FAILED_PRECONDITION", p.stderr)
        self.assertIn("QUEUED", self.ctl("sessions", "resume", name).stdout)
        self.assertIn("CANCELLED", self.ctl("sessions", "cancel", name).stdout)
        self.ctl("sessions", "delete", name)
        p = self.ctl("sessions", "get", name, ok=False)
        self.assertIn("NOT_FOUND", p.stderr)
        self.assertEqual(p.returncode, 3)
        p = self.ctl("train", "--dataset", ds, "--sizes", "3,1", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("network.sizes[0] is 3 but the training set has 1 features", p.stderr)
        p = self.ctl("train", "--dataset", ds, "--sizes", "1,1", "--rule", "hebbian", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("hebbian", p.stderr)
        p = self.ctl("train", "--dataset", ds, "--sizes", "30,abc", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("'abc' is not a positive whole number", p.stderr)
        # Flags override a --config file, --rule included.
        cfg = os.path.join(self.dir, "cfg.json")
        with open(cfg, "w") as f:
            json.dump({"network": {"sizes": [1, 4, 1]}, "feedback": {"rule": "RULE_BACKPROP"}, "max_steps": 5}, f)
        made = self.ctl_json("train", "--dataset", ds, "--config", cfg, "--rule", "kp")
        self.assertEqual(made["config"]["feedback"]["rule"], "RULE_KOLEN_POLLACK")
        self.assertEqual(made["config"]["network"]["sizes"], [1, 4, 1])
        p = subprocess.run([os.environ["ALIGNCTL_BINARY"], "--server", "127.0.0.1:1", "--timeout", "2", "health"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 4)
        self.assertRegex(p.stderr, "UNAVAILABLE|DEADLINE_EXCEEDED")


if __name__ == "__main__":
    unittest.main()
