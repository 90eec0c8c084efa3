"""Prometheus /metrics as operators expect it, against a real alignd on 127.0.0.1.

go-grpc-prometheus's gRPC server metrics (names, labels, code names, bounded to the methods
alignd serves), alignd_build_info, ratios named _ratio, a steps counter that a restart
resuming from a checkpoint does not turn back, and per-session series only while a session
runs and for --metrics_retain_finished_s after. Run by ctest with PYTHONPATH=build/python
and ALIGND_BINARY set."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

import grpc
import numpy as np

from alignd_client import Client


def scrape(url):
    """[(name, {label: value}, number)] from the text exposition format."""
    out = []
    for line in urllib.request.urlopen(url, timeout=10).read().decode().splitlines():
        m = re.match(r'^(\w+)(?:\{(.*)\})? (\S+)$', line)
        if m:
            out.append((m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")), float(m.group(3))))
    return out


def values(samples, metric, **labels):
    return [v for n, l, v in samples if n == metric and all(l.get(k) == x for k, x in labels.items())]


class Server:
    def __init__(self, data_dir, *flags, stderr=subprocess.DEVNULL):
        self.proc = subprocess.Popen(
            [os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--metrics_listen", "127.0.0.1:0",
             "--data_dir", data_dir, *flags], stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.address = self.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        self.url = "http://" + self.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        self.client = Client(self.address)

    def stop(self, sig=signal.SIGTERM):
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.proc.stdout.close()


class MetricsTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="alignd_metrics_")

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def start(self, *flags):
        s = Server(os.path.join(self.root, "data"), *flags)
        self.addCleanup(s.stop, signal.SIGKILL)
        return s

    def test_grpc_server_metrics_build_info_and_session_series_by_convention(self):
        s = self.start()
        c = s.client
        ds = c.generate_dataset("linear", examples=300)
        sess = c.create_session(ds, sizes=[30, 20, 10], rule="fa", batch_size=1, max_steps=300, metrics_every=10,
                                eval_dataset=ds, eval_every=100)
        list(c.stream_metrics(sess))
        with self.assertRaises(Exception):
            c.get_session("sessions/nosuchsession")
        # A method alignd does not serve: counted, under "unknown", not under its made-up name.
        made_up = c.channel.unary_unary("/alignd.v1.TrainingService/NoSuchMethod" + "x" * 40)
        with self.assertRaises(grpc.RpcError):
            made_up(b"", timeout=10)
        # A call is counted once its status is sent, which the client may see first: wait for
        # the stream's count (the last call that finished) before reading the rest.
        deadline = time.time() + 10
        while True:
            m = scrape(s.url)
            if values(m, "grpc_server_handled_total", grpc_service="alignd.v1.TrainingService",
                      grpc_method="StreamMetrics", grpc_type="server_stream", grpc_code="OK") or time.time() > deadline:
                break
            time.sleep(0.05)
        unary = dict(grpc_service="alignd.v1.TrainingService", grpc_type="unary")
        self.assertEqual(values(m, "grpc_server_handled_total", grpc_method="CreateSession", grpc_code="OK", **unary),
                         [1])
        self.assertEqual(values(m, "grpc_server_started_total", grpc_method="CreateSession", **unary), [1])
        self.assertEqual(values(m, "grpc_server_handled_total", grpc_method="GetSession", grpc_code="NotFound",
                                **unary), [1])
        self.assertEqual(values(m, "grpc_server_handling_seconds_count", grpc_method="CreateSession", **unary), [1])
        self.assertEqual(values(m, "grpc_server_handled_total", grpc_service="alignd.v1.TrainingService",
                                grpc_method="StreamMetrics", grpc_type="server_stream", grpc_code="OK"), [1])
        self.assertEqual(values(m, "grpc_server_handled_total", grpc_service="unknown", grpc_method="unknown",
                                grpc_code="Unimplemented"), [1])
        self.assertFalse([l for n, l, v in m if "NoSuchMethod" in str(l)])
        build = [(l, v) for n, l, v in m if n == "alignd_build_info"]
        self.assertEqual(len(build), 1)
        self.assertRegex(build[0][0]["version"], r"^\d+\.\d+\.\d+$")
        self.assertTrue(build[0][0]["revision"])
        self.assertEqual(build[0][1], 1)
        per = dict(session=sess["name"], rule="fa")
        self.assertEqual(values(m, "alignd_session_steps_total", **per), [300])
        self.assertEqual(values(m, "alignd_session_step", **per), [300])
        self.assertEqual(values(m, "alignd_session_total_steps", **per), [300])
        self.assertEqual(len(values(m, "alignd_session_loss", **per)), 1)
        self.assertEqual(len(values(m, "alignd_session_eval_nse", **per)), 1)
        angle = values(m, "alignd_session_update_angle_degrees", layer="1", **per)
        self.assertTrue(0 <= angle[0] <= 180)
        self.assertEqual(values(m, "alignd_sessions", state="SUCCEEDED"), [1])
        # Conventions: no _total that is not a counter, ratios end in _ratio.
        text = urllib.request.urlopen(s.url, timeout=10).read().decode()
        types = dict(re.findall(r"^# TYPE (\w+) (\w+)$", text, re.M))
        for name, kind in types.items():
            self.assertEqual(name.endswith("_total"), kind == "counter", name)
        self.assertNotIn("alignd_session_accuracy", types)
        self.assertIn("alignd_session_accuracy_ratio", types)
        self.assertIn("alignd_session_eval_error_ratio", types)
        # docs/DEPLOY.md's table describes every family alignd exports, with its type.
        deploy = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "DEPLOY.md")).read()
        deploy = deploy[deploy.index("\n## Metrics"):deploy.index("\n## ", deploy.index("\n## Metrics") + 1)]
        documented = dict(re.findall(r"^\| `(\w+)` \| (\w+)", deploy, re.M))
        for name, kind in types.items():
            if name.startswith(("alignd_", "grpc_server_")):
                self.assertIn(name, documented, f"{name} is exported but not in docs/DEPLOY.md")
                self.assertEqual(documented[name], kind, name)
        self.assertEqual(sorted(n for n in documented if n not in types), [],
                         "documented in docs/DEPLOY.md but not exported")

    def test_an_unread_log_never_blocks_an_rpc_and_what_it_drops_is_counted_and_reported(self):
        # stderr is a pipe nobody reads (a stuck log shipper; a test's blocked parent): it fills
        # after ~64 KB, and then 20000 calls, more than the log's queue holds, must all answer.
        from alignd_client._pb.alignd.v1 import sessions_pb2, sessions_pb2_grpc
        s = Server(os.path.join(self.root, "d"), stderr=subprocess.PIPE)
        try:
            ch = grpc.insecure_channel(s.address)
            stub = sessions_pb2_grpc.TrainingServiceStub(ch)
            calls, batch = 20000, 250
            for _ in range(calls // batch):
                futures = [stub.GetSession.future(sessions_pb2.GetSessionRequest(name="sessions/nope"), timeout=30)
                           for _ in range(batch)]
                for f in futures:
                    self.assertEqual(f.code(), grpc.StatusCode.NOT_FOUND, f.details())
            dropped = values(scrape(s.url), "alignd_log_lines_dropped_total")
            self.assertEqual(len(dropped), 1)
            self.assertGreater(dropped[0], 0)
            self.assertLess(dropped[0], calls)
            # Read again, the log says what it lost, in whole JSON lines.
            import json
            import threading
            lines = []
            reader = threading.Thread(target=lambda: lines.extend(s.proc.stderr), daemon=True)
            reader.start()
            deadline = time.time() + 30
            report = None
            while report is None and time.time() < deadline:
                try:
                    stub.GetSession(sessions_pb2.GetSessionRequest(name="sessions/after"), timeout=10)
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
                report = next((json.loads(x) for x in list(lines) if '"log lines dropped"' in x), None)
            self.assertIsNotNone(report, "no 'log lines dropped' line once stderr was read again")
            self.assertGreater(report["dropped"], 0)
            self.assertEqual(report["level"], "warn")
            for x in list(lines):
                json.loads(x)  # every line whole
            ch.close()
        finally:
            s.stop()

    def test_every_query_of_the_grafana_dashboard_names_a_metric_alignd_exports(self):
        import json
        dashboard = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "grafana",
                                 "alignd.json")
        with open(dashboard) as f:
            d = json.load(f)
        s = self.start()
        c = s.client
        ds = c.generate_dataset("linear", examples=300)
        eval_ds = c.generate_dataset("linear", examples=100, split="test")
        sess = c.create_session(ds, sizes=[30, 20, 10], rule="fa", max_steps=100, eval_dataset=eval_ds, eval_every=50)
        list(c.stream_metrics(sess))
        labels_ds = c.upload_dataset(np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32),
                                     np.arange(60, dtype=np.int32) % 3)
        cls = c.create_session(labels_ds, sizes=[4, 8, 3], rule="fa", output="softmax", loss="cross_entropy",
                               max_steps=30, eval_dataset=labels_ds, eval_every=10)
        list(c.stream_metrics(cls))
        text = urllib.request.urlopen(s.url, timeout=10).read().decode()
        exported = set(re.findall(r"^(\w+)(?:\{| )", text, re.M))
        functions = {"sum", "rate", "irate", "increase", "histogram_quantile", "by", "without", "avg", "max", "min",
                     "count", "le", "on", "ignoring", "group_left", "group_right", "topk", "bottomk", "abs",
                     "clamp_min", "clamp_max", "label_replace", "offset", "and", "or", "unless", "delta", "deriv",
                     "avg_over_time", "max_over_time", "min_over_time", "quantile"}
        queries = 0
        for panel in d["panels"]:
            for t in panel["targets"]:
                queries += 1
                expr = re.sub(r'"[^"]*"', '""', t["expr"])  # label values are not names
                expr = re.sub(r"\{[^}]*\}", "{}", expr)      # nor are label names in selectors
                expr = re.sub(r"\[[^\]]*\]", "[]", expr)    # nor ranges
                expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # nor grouping labels
                names = [n for n in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr) if n not in functions]
                self.assertTrue(names, f"{panel['title']}: no metric in {t['expr']}")
                for n in names:
                    self.assertIn(n, exported, f"{panel['title']}: {n} is not exported ({t['expr']})")
        self.assertGreaterEqual(queries, 10)

    @unittest.skipIf(shutil.which("prometheus") is None, "no prometheus (Debian package prometheus)")
    def test_a_real_prometheus_scrapes_alignd_and_answers_queries_about_a_session(self):
        import json
        import socket
        import urllib.parse
        s = self.start()
        with socket.socket() as sock:  # a free port for Prometheus (it cannot print one it chose)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = os.path.join(self.root, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: alignd\n"
                    f"    static_configs:\n      - targets: ['{s.url.split('//')[1].split('/')[0]}']\n")
        log = open(os.path.join(self.root, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        prom = subprocess.Popen(["prometheus", f"--config.file={config}",
                                 f"--storage.tsdb.path={os.path.join(self.root, 'tsdb')}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
        self.addCleanup(lambda: (prom.terminate(), prom.wait(timeout=30)))
        api = f"http://127.0.0.1:{port}/api/v1/query?query="

        def query(q):
            try:
                with urllib.request.urlopen(api + urllib.parse.quote(q), timeout=5) as r:
                    return json.load(r)["data"]["result"]
            except OSError:
                return []
        c = s.client
        ds = c.generate_dataset("linear", examples=2000)
        sess = c.create_session(ds, sizes=[30, 100, 100, 10], rule="fa", batch_size=1, max_steps=10 ** 7,
                                metrics_every=100)
        name = sess["name"]
        deadline = time.time() + 60
        loss = rate = handled = []
        while time.time() < deadline and not (loss and rate and handled):
            time.sleep(0.5)
            loss = query(f'alignd_session_loss{{session="{name}",rule="fa"}}')
            rate = query(f'rate(alignd_session_steps_total{{session="{name}"}}[5s])')
            handled = query('grpc_server_handled_total{grpc_method="CreateSession",grpc_code="OK"}')
        c.cancel_session(sess)
        self.assertTrue(loss, "Prometheus has no alignd_session_loss for the session")
        self.assertGreater(float(loss[0]["value"][1]), 0)
        self.assertTrue(rate and float(rate[0]["value"][1]) > 0, rate)  # steps/s while it trains
        self.assertEqual(float(handled[0]["value"][1]), 1)
        self.assertEqual(handled[0]["metric"]["job"], "alignd")
        up = query('up{job="alignd"}')
        self.assertEqual(up[0]["value"][1], "1")

    def test_finished_sessions_leave_the_per_session_series_after_the_retention(self):
        s = self.start("--metrics_retain_finished_s", "1")
        c = s.client
        ds = c.generate_dataset("linear", examples=200)
        names = []
        for seed in range(5):
            sess = c.create_session(ds, sizes=[30, 20, 10], rule="fa", max_steps=20, seed=seed + 1)
            list(c.stream_metrics(sess))
            names.append(sess["name"])
        self.assertEqual(len(values(scrape(s.url), "alignd_session_steps_total")), 5)
        time.sleep(2.5)
        m = scrape(s.url)
        self.assertEqual(values(m, "alignd_session_steps_total"), [])
        self.assertEqual(values(m, "alignd_session_loss"), [])
        self.assertEqual(values(m, "alignd_sessions", state="SUCCEEDED"), [5])  # still counted

    def test_a_restart_that_rewinds_to_the_checkpoint_does_not_turn_the_steps_counter_back(self):
        data = os.path.join(self.root, "data")
        s = Server(data, "--checkpoint_every", "500")
        c = s.client
        ds = c.generate_dataset("linear", examples=2000)
        sess = c.create_session(ds, sizes=[30, 200, 200, 10], rule="fa", batch_size=1, max_steps=20000,
                                metrics_every=100)
        def checkpointed():  # the step of the stored checkpoint (GetSnapshot "latest"), 0 if none
            try:
                return int(c.get_snapshot(sess).get("step", 0))
            except Exception:
                return 0
        while checkpointed() < 500:
            time.sleep(0.01)
        s.stop(signal.SIGKILL)  # a crash: the session goes back to its last checkpoint
        restarted = time.time()
        s = Server(data)
        self.addCleanup(s.stop, signal.SIGKILL)
        c = s.client
        events = [e for e in c.stream_metrics(sess) if "step" in e]
        # The checkpoint it resumed from: the restart cut the log back to its step, and the
        # first event logged after the restart is of the step after it.
        resumed_at = min(int(e["step"]["step"]) for e in events if e["wall_time"].timestamp() >= restarted) - 1
        self.assertEqual(resumed_at % 500, 0)
        self.assertTrue(500 <= resumed_at < 20000, resumed_at)
        m = scrape(s.url)
        # Steps this process trained: from the checkpoint to the end. The step gauge went back
        # to the checkpoint; the counter of the new process started at 0 (a reset Prometheus
        # understands), never at the lower step.
        self.assertEqual(values(m, "alignd_session_steps_total", session=sess["name"]), [20000 - resumed_at])
        self.assertEqual(values(m, "alignd_session_step", session=sess["name"]), [20000])


if __name__ == "__main__":
    unittest.main()
