"""Hostile clients against a real alignd on 127.0.0.1 (Debian's grpcio, raw stubs).

Each test is one finding of the adversarial review (issue "Trustworthy results under
concurrency and hostile clients"), replayed through the gRPC API: what once crashed the
server, leaked an upload, raced, or broke a contract, and the code it gets now. Run by
ctest with PYTHONPATH=build/python and ALIGND_BINARY set."""
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import grpc

from alignd_client._pb.alignd.v1 import config_pb2, datasets_pb2, datasets_pb2_grpc, sessions_pb2, sessions_pb2_grpc

C = grpc.StatusCode


class Server:
    """alignd on an ephemeral port with its own data directory; stderr kept for reading."""

    def __init__(self, data_dir, *flags, address_space_gib=None):
        self.data_dir = data_dir
        self.stderr_path = data_dir + ".stderr"
        self.stderr = open(self.stderr_path, "ab")
        limit = None
        if address_space_gib:
            n = address_space_gib << 30
            limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (n, n))  # noqa: E731
        self.proc = subprocess.Popen(
            [os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--metrics_listen", "", "--data_dir", data_dir,
             "--heartbeat_ms", "100", *flags],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, preexec_fn=limit)
        self.address = self.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        self.channel = grpc.insecure_channel(self.address)
        grpc.channel_ready_future(self.channel).result(timeout=20)
        self.datasets = datasets_pb2_grpc.DatasetServiceStub(self.channel)
        self.training = sessions_pb2_grpc.TrainingServiceStub(self.channel)

    def stop(self, sig=signal.SIGTERM):
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.proc.stdout.close()
        self.stderr.close()

    def log_lines(self):
        with open(self.stderr_path) as f:
            return [line for line in f.read().splitlines() if line.strip()]

    def alive(self):
        return self.proc.poll() is None


def code_of(fn, *args, **kwargs):
    try:
        fn(*args, timeout=60, **kwargs)
        return C.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


def upload(stub, header, payload, chunk=1 << 20):
    def requests():
        yield datasets_pb2.UploadDatasetRequest(header=header)
        for i in range(0, len(payload), chunk):
            yield datasets_pb2.UploadDatasetRequest(chunk=payload[i:i + chunk])
    return stub.UploadDataset(requests(), timeout=60)


def regression_header(n, d, k, payload, **kw):
    return datasets_pb2.DatasetHeader(num_examples=n, feature_shape=[d],
                                      target_kind=datasets_pb2.TARGET_KIND_FLOAT_VECTORS, target_dim=k,
                                      sha256=hashlib.sha256(payload).hexdigest(), **kw)


def floats(values):
    return struct.pack(f"<{len(values)}f", *values)


def session_request(dataset, sizes=(30, 20, 10), steps=200, batch=4, **config):
    c = config_pb2.TrainingConfig(batch_size=batch, max_steps=steps, metrics_every=10, seed=3, **config)
    c.network.sizes.extend(sizes)
    c.feedback.rule = config_pb2.RULE_FEEDBACK_ALIGNMENT
    return sessions_pb2.CreateSessionRequest(session=sessions_pb2.Session(train_dataset=dataset, config=c))


def stream(server, name, start_seq=0, history_only=False):
    events, end, heartbeats = [], None, 0
    for e in server.training.StreamMetrics(
            sessions_pb2.StreamMetricsRequest(parent=name, start_seq=start_seq, history_only=history_only), timeout=120):
        kind = e.WhichOneof("event")
        if kind == "end":
            end = e
        elif kind == "heartbeat":
            heartbeats += 1
        else:
            events.append(e)
    return events, end


class HostileTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="alignd_hostile_")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def start(self, *flags, name="data", **kw):
        s = Server(os.path.join(self.root, name), *flags, **kw)
        self.servers.append(s)
        return s

    def generated(self, server, n=500, kind=datasets_pb2.GeneratorSpec.KIND_LINEAR):
        return server.datasets.CreateGeneratedDataset(
            datasets_pb2.CreateGeneratedDatasetRequest(spec=datasets_pb2.GeneratorSpec(kind=kind, num_examples=n)),
            timeout=60).name

    # ---- 3: a header whose payload size wrapped to 0 ------------------------------------
    def test_wrapping_upload_header_is_refused_and_the_server_lives(self):
        s = self.start()
        h = datasets_pb2.DatasetHeader(num_examples=2147483648, feature_shape=[1],
                                       target_kind=datasets_pb2.TARGET_KIND_FLOAT_VECTORS, target_dim=2147483647,
                                       sha256=hashlib.sha256(b"").hexdigest())
        code, msg = code_of(lambda timeout: upload(s.datasets, h, b""))
        self.assertEqual(code, C.INVALID_ARGUMENT, msg)
        self.assertIn("num_examples", msg)
        h.num_examples = 5
        code, msg = code_of(lambda timeout: upload(s.datasets, h, b""))
        self.assertEqual(code, C.INVALID_ARGUMENT, msg)
        self.assertIn("target_dim", msg)
        self.assertEqual(len(s.datasets.ListDatasets(datasets_pb2.ListDatasetsRequest(), timeout=10).datasets), 0)
        self.assertTrue(s.alive())

    # ---- 4: allocation failures in handlers ------------------------------------------------
    def test_huge_tensors_and_generators_get_a_code_with_a_message(self):
        s = self.start()
        ds = self.generated(s)
        sess = s.training.CreateSession(session_request(ds, steps=10), timeout=30)
        stream(s, sess.name)
        req = sessions_pb2.PredictRequest(name=sess.name)
        req.inputs.rows = 2 ** 32
        req.inputs.cols = 2 ** 32
        code, msg = code_of(s.training.Predict, req)
        self.assertEqual(code, C.INVALID_ARGUMENT, msg)
        self.assertIn("inputs", msg)
        # A valid Predict whose answer would not fit a message.
        req = sessions_pb2.PredictRequest(name=sess.name)
        req.inputs.rows, req.inputs.cols = 30, 1
        req.inputs.values.extend([0.5] * 30)
        self.assertEqual(code_of(s.training.Predict, req)[0], C.OK)
        spec = datasets_pb2.GeneratorSpec(kind=datasets_pb2.GeneratorSpec.KIND_LINEAR, input_dim=100000,
                                          output_dim=100000, num_examples=10_000_000)
        code, msg = code_of(s.datasets.CreateGeneratedDataset, datasets_pb2.CreateGeneratedDatasetRequest(spec=spec))
        self.assertEqual(code, C.RESOURCE_EXHAUSTED, msg)
        self.assertIn("--max_dataset_bytes", msg)
        self.assertTrue(s.alive())

    # ---- 5: memory that no limit bounded -----------------------------------------------------
    def big_batch_dataset(self, s):
        n = 200_000
        payload = floats([0.5] * n) + floats([0.25] * n)
        return upload(s.datasets, regression_header(n, 1, 1, payload), payload).name

    def test_a_session_that_needs_80_gb_is_refused_at_creation(self):
        s = self.start()
        ds = self.big_batch_dataset(s)
        code, msg = code_of(s.training.CreateSession, session_request(ds, sizes=(1, 100000, 1), batch=200000, steps=1))
        self.assertEqual(code, C.RESOURCE_EXHAUSTED, msg)
        self.assertIn("--max_session_bytes", msg)
        self.assertTrue(s.alive())

    def test_a_batch_larger_than_the_data_set_is_named_before_memory_is_estimated(self):
        # 2^31-1 at batch: the memory estimate alone would say RESOURCE_EXHAUSTED; the caller's
        # mistake is the batch, and that is said first.
        s = self.start()
        ds = self.generated(s, n=240)
        code, msg = code_of(s.training.CreateSession, session_request(ds, batch=2147483647, steps=1))
        self.assertEqual(code, C.INVALID_ARGUMENT, msg)
        self.assertIn("session.config.batch_size is 2147483647", msg)
        self.assertIn("240 examples", msg)
        self.assertTrue(s.alive())

    def test_sigterm_ends_within_the_grace_period_whatever_clients_hold_open(self):
        # Kubernetes kills at the end of its grace period: 44 client connections, two of them
        # with a fast session checkpointing every 500 steps (hundreds a second, more than the
        # writer stores) and one following it, must not hold alignd past --grace_s plus a
        # bound for the final checkpoints and the log, and both sessions are kept to resume.
        # Before, shutdown first stored every checkpoint still queued: seconds per session.
        grace = 2
        s = self.start("--grace_s", str(grace), "--max_running", "2")
        ds = self.generated(s)
        channels, sessions = [], []
        for i in range(44):
            ch = grpc.insecure_channel(s.address, options=[("grpc.use_local_subchannel_pool", 1)])
            stub = sessions_pb2_grpc.TrainingServiceStub(ch)
            if i < 2:
                req = session_request(ds, steps=10 ** 9, batch=1)
                req.session.checkpoint_every = 100
                sessions.append(stub.CreateSession(req, timeout=30))
            else:
                stub.ListSessions(sessions_pb2.ListSessionsRequest(), timeout=30)
            channels.append(ch)
        follow = s.training.StreamMetrics(sessions_pb2.StreamMetricsRequest(parent=sessions[0].name))
        next(follow)
        time.sleep(6)  # the checkpoints pile up faster than one disk stores them
        try:
            t = time.monotonic()
            s.proc.send_signal(signal.SIGTERM)
            s.proc.wait(timeout=120)
            took = time.monotonic() - t
            self.assertEqual(s.proc.returncode, 0)
            self.assertLess(took, grace + 5, f"SIGTERM took {took:.1f} s with --grace_s {grace}")
        finally:
            for ch in channels:
                ch.close()
        s2 = self.start("--max_running", "2")
        for sess in sessions:
            got = s2.training.GetSession(sessions_pb2.GetSessionRequest(name=sess.name), timeout=10)
            self.assertIn(got.state, (sessions_pb2.SESSION_STATE_QUEUED, sessions_pb2.SESSION_STATE_RUNNING))
            self.assertGreater(got.step, 0)

    def test_idle_connections_do_not_hold_shutdown_for_the_grace_period(self):
        # gRPC's Shutdown waits for connections to close, not only for calls: 44 channels
        # that made a call and stay open (dashboards, notebooks), a raw TCP connection and
        # one that sent half the HTTP/2 preface held alignd for the whole --grace_s (or for
        # 20 s, when gRPC gives up on a GOAWAY that is never acknowledged). With no call in
        # flight, shutdown ends with the work, not at a deadline.
        grace = 60
        s = self.start("--grace_s", str(grace))
        host, port = s.address.rsplit(":", 1)
        channels, sockets = [], []
        for _ in range(44):
            ch = grpc.insecure_channel(s.address, options=[("grpc.use_local_subchannel_pool", 1)])
            sessions_pb2_grpc.TrainingServiceStub(ch).ListSessions(sessions_pb2.ListSessionsRequest(), timeout=30)
            channels.append(ch)
        for preface in (b"", b"PRI * HTTP/2.0\r\n"):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(preface)
            sockets.append(sock)
        try:
            t = time.monotonic()
            s.proc.send_signal(signal.SIGTERM)
            s.proc.wait(timeout=grace + 30)
            took = time.monotonic() - t
            self.assertEqual(s.proc.returncode, 0)
            self.assertLess(took, 10, f"SIGTERM took {took:.1f} s with no call in flight")
        finally:
            for ch in channels:
                ch.close()
            for sock in sockets:
                sock.close()

    def test_a_call_in_flight_at_sigterm_finishes_within_the_grace_period(self):
        # Closing idle connections early must not cut a call that is still working: an
        # upload half sent when SIGTERM comes, its rest sent a second later, is stored.
        s = self.start("--grace_s", "30")
        payload = floats([float(i % 7) for i in range(3000)]) + floats([1.0] * 1000)
        header = regression_header(1000, 3, 1, payload)
        half = threading.Event()
        rest = threading.Event()

        def requests():
            yield datasets_pb2.UploadDatasetRequest(header=header)
            for i in range(0, len(payload), 4096):
                if i >= len(payload) // 2 and not half.is_set():
                    half.set()
                    rest.wait(30)
                yield datasets_pb2.UploadDatasetRequest(chunk=payload[i:i + 4096])

        call = s.datasets.UploadDataset.future(requests(), timeout=60)
        self.assertTrue(half.wait(10))
        time.sleep(0.3)  # the first half read
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(1)  # long past the first look for idle connections
        self.assertTrue(s.alive())
        rest.set()
        name = call.result().name
        s.proc.wait(timeout=60)
        self.assertEqual(s.proc.returncode, 0)
        s2 = self.start(name="data")
        got = s2.datasets.GetDataset(datasets_pb2.GetDatasetRequest(name=name), timeout=10)
        self.assertEqual(got.num_examples, 1000)

    @unittest.skipIf(os.environ.get("ALIGND_SANITIZER"),
                     "sanitizers reserve terabytes of address space: an RLIMIT_AS leaves them none")
    def test_a_session_that_runs_out_of_memory_fails_alone_and_stays_failed_after_restart(self):
        # The limit raised past what the process may map: the allocation itself fails.
        s = self.start("--max_session_bytes", str(1 << 50), address_space_gib=8)
        ds = self.big_batch_dataset(s)
        sess = s.training.CreateSession(session_request(ds, sizes=(1, 100000, 1), batch=200000, steps=1), timeout=30)
        _, end = stream(s, sess.name)
        self.assertEqual(end.end.state, sessions_pb2.SESSION_STATE_FAILED)
        self.assertIn("memory", end.end.failure_reason)
        self.assertTrue(s.alive())
        # The server still trains other sessions.
        small = s.training.CreateSession(session_request(self.generated(s), steps=20), timeout=30)
        self.assertEqual(stream(s, small.name)[1].end.state, sessions_pb2.SESSION_STATE_SUCCEEDED)
        s.stop()
        s2 = self.start("--max_session_bytes", str(1 << 50), address_space_gib=8)
        got = s2.training.GetSession(sessions_pb2.GetSessionRequest(name=sess.name), timeout=10)
        self.assertEqual(got.state, sessions_pb2.SESSION_STATE_FAILED)  # not resumed: no crash loop
        self.assertTrue(s2.alive())

    # ---- 7: a fatal signal leaves a trace ------------------------------------------------------
    def test_a_fatal_signal_writes_the_signal_and_a_stack_trace_to_the_log(self):
        s = self.start()
        s.proc.send_signal(signal.SIGSEGV)
        s.proc.wait(timeout=30)
        crash = [json.loads(line) for line in s.log_lines() if '"crash"' in line]
        self.assertTrue(crash, "no crash line in the log")
        text = "\n".join(c["text"] for c in crash)
        self.assertIn("SIGSEGV", text)
        self.assertTrue(any("@" in c["text"] for c in crash), "no stack frame")
        self.assertTrue(all(c["level"] == "fatal" and "time" in c for c in crash))

    # ---- 8: a cancelled upload stays invisible ---------------------------------------------------
    def test_an_upload_cancelled_before_half_close_is_not_stored(self):
        s = self.start()
        payload = floats([float(i % 7) for i in range(3000)]) + floats([1.0] * 1000)
        header = regression_header(1000, 3, 1, payload)
        sent = threading.Event()
        hold = threading.Event()

        def requests():
            yield datasets_pb2.UploadDatasetRequest(header=header)
            for i in range(0, len(payload), 4096):
                yield datasets_pb2.UploadDatasetRequest(chunk=payload[i:i + 4096])
            sent.set()
            hold.wait(30)  # keep the stream open: no half-close

        call = s.datasets.UploadDataset.future(requests(), timeout=60)
        self.assertTrue(sent.wait(10))
        time.sleep(0.5)  # let the server read every chunk
        call.cancel()
        hold.set()
        with self.assertRaises(grpc.FutureCancelledError):
            call.result()
        time.sleep(0.5)
        self.assertEqual(len(s.datasets.ListDatasets(datasets_pb2.ListDatasetsRequest(), timeout=10).datasets), 0)
        # The same upload, half-closed, is stored.
        self.assertTrue(upload(s.datasets, header, payload).name.startswith("datasets/"))

    # ---- 9: DeleteDataset racing CreateSession ------------------------------------------------------
    def test_delete_dataset_racing_create_session_has_one_winner(self):
        s = self.start("--max_running", "1")
        both_ok = 0
        for k in range(20):
            ds = s.datasets.CreateGeneratedDataset(datasets_pb2.CreateGeneratedDatasetRequest(
                spec=datasets_pb2.GeneratorSpec(kind=datasets_pb2.GeneratorSpec.KIND_LINEAR, num_examples=300,
                                                seed=100 + k)), timeout=30).name
            results = {}

            def create():
                results["create"] = code_of(s.training.CreateSession, session_request(ds, steps=50000))

            def delete():
                time.sleep((k % 6) * 0.01)
                results["delete"] = code_of(s.datasets.DeleteDataset, datasets_pb2.DeleteDatasetRequest(name=ds))

            threads = [threading.Thread(target=create), threading.Thread(target=delete)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if results["create"][0] == C.OK and results["delete"][0] == C.OK:
                both_ok += 1
            self.assertIn(results["create"][0], (C.OK, C.NOT_FOUND), results)
            self.assertIn(results["delete"][0], (C.OK, C.FAILED_PRECONDITION), results)
        self.assertEqual(both_ok, 0)
        for sess in s.training.ListSessions(sessions_pb2.ListSessionsRequest(page_size=100), timeout=10).sessions:
            self.assertNotIn("not found", sess.failure_reason)
            code_of(s.training.CancelSession, sessions_pb2.CancelSessionRequest(name=sess.name))

    # ---- 10, 11: the end-of-run evaluation, once ------------------------------------------------------
    def eval_events(self, s, name):
        events, end = stream(s, name)  # to the end of the run
        return [e for e in events if e.WhichOneof("event") == "eval"], end

    def as_if_killed(self, data_dir, name, drop_events=0):
        """Rewrites a stopped server's data directory as a kill -9 would have left it: the session
        still RUNNING, and its last `drop_events` metric events never written."""
        db = sqlite3.connect(os.path.join(data_dir, "alignd.db"))
        rec = sessions_pb2.Session.FromString(db.execute("SELECT record FROM sessions WHERE id = ?",
                                                         (name,)).fetchone()[0])
        rec.last_seq -= drop_events
        rec.state = sessions_pb2.SESSION_STATE_RUNNING
        db.execute("DELETE FROM metrics WHERE session = ? AND seq > ?", (name, rec.last_seq))
        db.execute("UPDATE sessions SET record = ? WHERE id = ?", (rec.SerializeToString(), name))
        db.commit()
        db.close()

    def finished_session(self, s, **config):
        ds = self.generated(s)
        req = session_request(ds, steps=200, **config)
        req.session.eval_dataset = ds
        req.session.config.eval_every = 50
        req.session.checkpoint_every = 100
        sess = s.training.CreateSession(req, timeout=30)
        self.assertEqual(stream(s, sess.name)[1].end.state, sessions_pb2.SESSION_STATE_SUCCEEDED)
        s.stop()
        return sess.name

    def test_a_restart_after_the_final_evaluation_does_not_log_it_twice(self):
        s = self.start()
        name = self.finished_session(s)
        # 0: killed after the final checkpoint and evaluation, before SUCCEEDED was stored.
        # 1: killed after the periodic checkpoint at the last step, before the final evaluation.
        for drop in (0, 1):
            self.as_if_killed(s.data_dir, name, drop)
            s2 = self.start()
            evals, end = self.eval_events(s2, name)
            self.assertEqual(end.end.state, sessions_pb2.SESSION_STATE_SUCCEEDED)
            self.assertEqual([e.eval.step for e in evals], [50, 100, 150, 200], f"drop {drop}")
            s2.stop()

    def test_a_restart_between_validation_and_test_makes_each_evaluation_once(self):
        s = self.start()
        name = self.finished_session(s, validation_fraction=0.25)
        s2 = self.start()
        want = [(step, v) for step in (50, 100, 150, 200) for v in (True, False)]
        evals, _ = self.eval_events(s2, name)
        self.assertEqual([(e.eval.step, e.eval.validation) for e in evals], want)
        self.assertEqual({e.eval.examples for e in evals if e.eval.validation}, {125})  # 500 / 4
        s2.stop()
        for drop in (1, 2):  # killed after the validation at step 200, or before it
            self.as_if_killed(s.data_dir, name, drop)
            s2 = self.start()
            evals, end = self.eval_events(s2, name)
            self.assertEqual(end.end.state, sessions_pb2.SESSION_STATE_SUCCEEDED)
            self.assertEqual([(e.eval.step, e.eval.validation) for e in evals], want, f"drop {drop}")
            s2.stop()

    def test_pause_at_the_last_step_keeps_the_end_of_run_evaluation(self):
        s = self.start()
        ds = self.generated(s, n=2000)
        outcomes = set()
        for k in range(6):
            req = session_request(ds, sizes=(30, 256, 256, 10), steps=400 + 10 * k)
            req.session.eval_dataset = ds
            req.session.config.metrics_every = 1
            sess = s.training.CreateSession(req, timeout=30)
            total = 400 + 10 * k
            for e in s.training.StreamMetrics(sessions_pb2.StreamMetricsRequest(parent=sess.name), timeout=60):
                if e.WhichOneof("event") == "step" and e.step.step >= total - (k % 3):
                    code_of(s.training.PauseSession, sessions_pb2.PauseSessionRequest(name=sess.name))
                    break
            _, end = stream(s, sess.name)
            outcomes.add(end.end.state)
            if end.end.state == sessions_pb2.SESSION_STATE_PAUSED:
                s.training.ResumeSession(sessions_pb2.ResumeSessionRequest(name=sess.name), timeout=10)
                self.assertEqual(stream(s, sess.name)[1].end.state, sessions_pb2.SESSION_STATE_SUCCEEDED)
            evals, end = self.eval_events(s, sess.name)
            self.assertEqual(end.end.state, sessions_pb2.SESSION_STATE_SUCCEEDED)
            self.assertEqual([e.eval.step for e in evals], [total], f"try {k}")
        self.assertIn(sessions_pb2.SESSION_STATE_SUCCEEDED, outcomes)

    # ---- 12, 13: generators at once; one payload, two meanings -----------------------------------------
    def test_identical_generator_requests_at_once_all_succeed(self):
        s = self.start()
        spec = datasets_pb2.GeneratorSpec(kind=datasets_pb2.GeneratorSpec.KIND_NONLINEAR, num_examples=20000)
        names = []

        def run(i):
            try:
                names.append(s.datasets.CreateGeneratedDataset(
                    datasets_pb2.CreateGeneratedDatasetRequest(spec=spec), timeout=60).name)
            except grpc.RpcError as e:
                names.append(f"{e.code()}: {e.details()}")
        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(set(names)), 1, names)
        self.assertTrue(names[0].startswith("datasets/"), names)

    def test_the_same_payload_with_another_header_is_another_dataset(self):
        s = self.start()
        payload = floats([0.1 * i for i in range(40)]) + struct.pack("<10i", *([1, 2] * 5))
        h3 = datasets_pb2.DatasetHeader(num_examples=10, feature_shape=[4], target_kind=datasets_pb2.TARGET_KIND_CLASS_LABELS,
                                        num_classes=3, sha256=hashlib.sha256(payload).hexdigest())
        h7 = datasets_pb2.DatasetHeader()
        h7.CopyFrom(h3)
        h7.num_classes = 7
        d3, d7 = upload(s.datasets, h3, payload), upload(s.datasets, h7, payload)
        self.assertNotEqual(d3.name, d7.name)
        self.assertEqual((d3.num_classes, d7.num_classes), (3, 7))
        self.assertEqual(upload(s.datasets, h3, payload).name, d3.name)  # same meaning: stored once

    # ---- 14: names of 10,000 characters ------------------------------------------------------------------
    def test_huge_names_are_invalid_argument_with_a_short_message(self):
        s = self.start()
        long_session = "sessions/" + "x" * 10000
        long_dataset = "datasets/" + "y" * 10000
        calls = [
            (s.training.GetSession, sessions_pb2.GetSessionRequest(name=long_session)),
            (s.training.PauseSession, sessions_pb2.PauseSessionRequest(name=long_session)),
            (s.training.ListMetrics, sessions_pb2.ListMetricsRequest(parent=long_session)),
            (s.training.Predict, sessions_pb2.PredictRequest(name=long_session + "/snapshots/latest")),
            (s.datasets.GetDataset, datasets_pb2.GetDatasetRequest(name=long_dataset)),
            (s.datasets.DeleteDataset, datasets_pb2.DeleteDatasetRequest(name=long_dataset)),
            (s.training.CreateSession, session_request(long_dataset)),
        ]
        for fn, req in calls:
            code, msg = code_of(fn, req)
            self.assertEqual(code, C.INVALID_ARGUMENT, f"{fn}: {msg[:200]}")
            self.assertLess(len(msg), 400)
        try:
            list(s.training.StreamMetrics(sessions_pb2.StreamMetricsRequest(parent=long_session), timeout=10))
            self.fail("no error")
        except grpc.RpcError as e:
            self.assertEqual(e.code(), C.INVALID_ARGUMENT)
            self.assertLess(len(e.details()), 400)

    # ---- 15: a body that does not parse; every log line is JSON ----------------------------------------------
    def test_an_unparseable_body_is_internal_with_a_message_and_the_log_stays_json(self):
        s = self.start()
        # A typed method (gRPC parses its body) and Predict, which parses its own (raw).
        for method in ("GetSession", "Predict"):
            raw = s.channel.unary_unary(f"/alignd.v1.TrainingService/{method}")  # bytes in, bytes out
            try:
                raw(b"\xff\xff\xff\xff\x0f", timeout=10)
                self.fail("no error")
            except grpc.RpcError as e:
                self.assertEqual(e.code(), C.INTERNAL)
                self.assertIn(f"does not parse as alignd.v1.{method}Request", e.details())
        # An unknown method is still UNIMPLEMENTED.
        try:
            s.channel.unary_unary("/alignd.v1.TrainingService/NoSuchMethod")(b"", timeout=10)
            self.fail("no error")
        except grpc.RpcError as e:
            self.assertEqual(e.code(), C.UNIMPLEMENTED)
        s.stop()
        for line in s.log_lines():
            json.loads(line)  # raises on a line that is not JSON

    # ---- 16: StreamMetrics' end event and history_only ---------------------------------------------------------
    def test_stream_end_carries_the_real_last_seq_and_history_only_on_a_running_session_has_no_end(self):
        s = self.start()
        ds = self.generated(s)
        done = s.training.CreateSession(session_request(ds, steps=100), timeout=30)
        events, end = stream(s, done.name)
        last = events[-1].seq
        _, end = stream(s, done.name, start_seq=last + 1000)
        self.assertEqual(end.seq, last)
        self.assertEqual(end.end.last_seq, last)
        running = s.training.CreateSession(session_request(ds, sizes=(30, 256, 256, 10), steps=10 ** 6), timeout=30)
        time.sleep(0.3)
        events, end = stream(s, running.name, history_only=True)
        self.assertIsNone(end, "history_only on a RUNNING session ended with an end event")
        s.training.CancelSession(sessions_pb2.CancelSessionRequest(name=running.name), timeout=10)
        events, end = stream(s, running.name, history_only=True)
        self.assertEqual(end.end.state, sessions_pb2.SESSION_STATE_CANCELLED)

    # ---- 17: garbage page tokens, everywhere alike --------------------------------------------------------------
    def test_a_garbage_page_token_is_invalid_argument_in_every_list(self):
        s = self.start()
        ds = self.generated(s)
        sess = s.training.CreateSession(session_request(ds, steps=10), timeout=30)
        stream(s, sess.name)
        for fn, req in [
            (s.training.ListSessions, sessions_pb2.ListSessionsRequest(page_token="garbage")),
            (s.datasets.ListDatasets, datasets_pb2.ListDatasetsRequest(page_token="garbage")),
            (s.training.ListMetrics, sessions_pb2.ListMetricsRequest(parent=sess.name, page_token="garbage")),
            (s.training.ListSnapshots, sessions_pb2.ListSnapshotsRequest(parent=sess.name, page_token="garbage")),
        ]:
            self.assertEqual(code_of(fn, req)[0], C.INVALID_ARGUMENT, fn)
        # Tokens the server gave work; they are opaque (not a name to edit) and bound to their listing.
        self.generated(s, n=600)
        first = s.datasets.ListDatasets(datasets_pb2.ListDatasetsRequest(page_size=1), timeout=10)
        self.assertTrue(first.next_page_token)
        self.assertNotIn("datasets/", first.next_page_token)
        self.assertEqual(code_of(s.datasets.ListDatasets,
                                 datasets_pb2.ListDatasetsRequest(page_token=first.next_page_token))[0], C.OK)
        self.assertEqual(code_of(s.training.ListSessions,
                                 sessions_pb2.ListSessionsRequest(page_token=first.next_page_token))[0],
                         C.INVALID_ARGUMENT)
        self.assertEqual(code_of(s.datasets.ListDatasets,
                                 datasets_pb2.ListDatasetsRequest(page_token=first.datasets[0].name))[0],
                         C.INVALID_ARGUMENT)


    # ---- 18: a message limit that does not fit gRPC's int of bytes ----------------------------------------------
    def test_a_message_limit_past_2047_mib_is_refused_at_start(self):
        # --max_receive_mib 2048 << 20 overflowed the int gRPC takes (negative: no limit, or
        # every message refused); alignd now refuses the flag and names its range.
        for mib in ("2048", "1000000"):
            p = subprocess.run([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0", "--data_dir",
                                os.path.join(self.root, "limit"), "--max_receive_mib", mib],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("--max_receive_mib in [2, 2047]", p.stderr)


if __name__ == "__main__":
    unittest.main()
