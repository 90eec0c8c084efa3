"""TLS, mTLS, bearer tokens, ownership and quotas against a real alignd on 127.0.0.1.

Certificates are made with openssl in setUpClass (certs.py); clients are Debian's grpcio
(raw stubs), alignctl and the Python client. Run by ctest with PYTHONPATH=build/python,
ALIGND_BINARY and ALIGNCTL_BINARY set."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
from test_hostile import floats, regression_header, session_request, upload  # noqa: E402

from alignd_client import AligndError, Client  # noqa: E402
from alignd_client._pb.alignd.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from alignd_client._pb.alignd.v1 import datasets_pb2, datasets_pb2_grpc, sessions_pb2, sessions_pb2_grpc  # noqa: E402

C = grpc.StatusCode
TOKENS = {"alice": ("tok-alice", "user"), "bob": ("tok-bob", "user"), "root": ("tok-root", "admin"),
          "grafana": ("tok-grafana", "viewer")}


def token_file(path, names=TOKENS):
    with open(path, "w") as f:
        f.write("# sha256(token) principal role\n")
        for who in names:
            tok, role = TOKENS[who]
            f.write(f"{hashlib.sha256(tok.encode()).hexdigest()} {who} {role}\n")


class Alignd:
    """alignd on an ephemeral port; stdout's lines (addresses) and stderr (JSON log) kept."""

    def __init__(self, root, *flags, name="data", listen="127.0.0.1:0", metrics=""):
        self.data_dir = os.path.join(root, name)
        self.log_path = self.data_dir + ".log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.environ["ALIGND_BINARY"], "--listen", listen, "--metrics_listen", metrics, "--data_dir",
             self.data_dir, "--heartbeat_ms", "100", *flags],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        first = self.proc.stdout.readline().strip()
        if not first:
            self.proc.wait(timeout=10)
            self.log.close()
            raise RuntimeError("alignd did not start: " + read(self.log_path).decode())
        self.address = first.rsplit(" ", 1)[-1]
        self.port = int(self.address.rsplit(":", 1)[1])

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.proc.stdout.close()
        self.log.close()

    def log_text(self, until=None, timeout=10):
        """The log so far; with `until` (a string, or a predicate of the text), waits up to
        `timeout` s for it: alignd writes its log from a queue, a moment after the reply."""
        deadline = time.time() + timeout
        while True:
            text = read(self.log_path).decode()
            done = until is None or (until(text) if callable(until) else until in text)
            if done or time.time() > deadline:
                return text
            time.sleep(0.02)


def exits_with(*flags):
    """Runs alignd expecting it to refuse to start: (exit code, its log)."""
    root = tempfile.mkdtemp(prefix="alignd_sec_")
    try:
        metrics = [] if "--metrics_listen" in flags else ["--metrics_listen", ""]
        p = subprocess.run([os.environ["ALIGND_BINARY"], *metrics, "--data_dir", os.path.join(root, "d"), *flags],
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def json_name(text):
    import json
    return json.loads(text)["name"]


def code_of(fn, *args, **kw):
    try:
        r = fn(*args, timeout=30, **kw)
        if hasattr(r, "__iter__") and not hasattr(r, "ListFields"):
            list(r)  # a stream: its code comes with the first read
        return C.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


class Stubs:
    def __init__(self, channel):
        self.channel = channel
        self.datasets = datasets_pb2_grpc.DatasetServiceStub(channel)
        self.training = sessions_pb2_grpc.TrainingServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)


class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="alignd_pki_")
        cls.pki = certs.make_pki(cls.pki_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="alignd_sec_")
        self.servers = []
        self.channels = []

    def tearDown(self):
        for ch in self.channels:
            ch.close()
        for s in self.servers:
            s.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- helpers ------------------------------------------------------------------------
    def start(self, *flags, tls=True, tokens=True, name="data"):
        args = list(flags)
        if tls:
            args += ["--tls_cert", self.pki["server_cert"], "--tls_key", self.pki["server_key"]]
        if tokens:
            self.tokens_path = os.path.join(self.root, "tokens")
            if not os.path.exists(self.tokens_path):
                token_file(self.tokens_path)
            args += ["--token_file", self.tokens_path]
        s = Alignd(self.root, *args, name=name)
        self.servers.append(s)
        return s

    def stubs(self, server, who=None, ca="ca", cert=None, plaintext=False):
        if plaintext:
            ch = grpc.insecure_channel(server.address)
        else:
            root = read(self.pki[ca])
            key = chain = None
            if cert:
                key = read(self.pki[cert + "_key"])
                chain = read(self.pki[cert + "_cert"])
            creds = grpc.ssl_channel_credentials(root, key, chain)
            if who:
                creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(TOKENS[who][0]))
            ch = grpc.secure_channel(server.address, creds)
        self.channels.append(ch)
        return Stubs(ch)

    def alignctl(self, server, *args, env=None):
        e = dict(os.environ)
        for k in ("ALIGND_TLS", "ALIGND_CA", "ALIGND_CERT", "ALIGND_KEY", "ALIGND_TOKEN", "ALIGND_TOKEN_FILE"):
            e.pop(k, None)
        e.update(env or {})
        p = subprocess.run([os.environ["ALIGNCTL_BINARY"], "--server", server.address, "--timeout", "10", *args],
                           capture_output=True, text=True, timeout=60, env=e)
        return p.returncode, p.stdout, p.stderr

    def generated(self, stubs, n=400, seed=1):
        spec = datasets_pb2.GeneratorSpec(kind=datasets_pb2.GeneratorSpec.KIND_LINEAR, num_examples=n, seed=seed)
        return stubs.datasets.CreateGeneratedDataset(datasets_pb2.CreateGeneratedDatasetRequest(spec=spec),
                                                     timeout=60)

    def finished(self, stubs, name):
        for e in stubs.training.StreamMetrics(sessions_pb2.StreamMetricsRequest(parent=name), timeout=120):
            if e.WhichOneof("event") == "end":
                return e.end
        self.fail("the stream ended without an end event")

    # ---- transport ----------------------------------------------------------------------
    def test_plaintext_is_refused_off_loopback_unless_asked_for_and_then_logged_loudly(self):
        code, log = exits_with("--listen", "0.0.0.0:0")
        self.assertEqual(code, 2, log)
        self.assertIn("refusing to serve plaintext", log)
        s = Alignd(self.root, "--insecure", listen="0.0.0.0:0")
        self.servers.append(s)
        self.assertIn("PLAINTEXT on an address other machines can reach", s.log_text())
        # Tokens need TLS.
        token_file(os.path.join(self.root, "t"))
        code, log = exits_with("--listen", "127.0.0.1:0", "--token_file", os.path.join(self.root, "t"))
        self.assertEqual(code, 2, log)
        self.assertIn("--token_file needs TLS", log)

    def test_bad_certificate_files_stop_alignd_with_a_message_naming_them(self):
        p = self.pki
        cases = [
            ([p["expired_cert"], p["expired_key"]], "expired on Jan  2 00:00:00 2020 GMT"),
            ([p["server_cert"], p["client_key"]], "is not the key of the certificate"),
            ([p["server_key"], p["server_key"]], "not a PEM certificate"),
            ([p["server_cert"], os.path.join(self.root, "missing.key")], "cannot read it"),
        ]
        for (cert, key), words in cases:
            code, log = exits_with("--listen", "127.0.0.1:0", "--tls_cert", cert, "--tls_key", key)
            self.assertEqual(code, 2, log)
            self.assertIn(words, log)

    def test_tls_handshakes_succeed_with_the_right_ca_and_fail_clearly_otherwise(self):
        s = self.start(tokens=False)
        ok = self.stubs(s)
        self.assertEqual(ok.health.Check(health_pb2.HealthCheckRequest(), timeout=10).status,
                         health_pb2.HealthCheckResponse.SERVING)
        # Plaintext to a TLS port: refused.
        code, _ = code_of(self.stubs(s, plaintext=True).health.Check, health_pb2.HealthCheckRequest())
        self.assertEqual(code, C.UNAVAILABLE)
        # A CA that did not sign the server's certificate.
        code, _ = code_of(self.stubs(s, ca="other_ca").health.Check, health_pb2.HealthCheckRequest())
        self.assertEqual(code, C.UNAVAILABLE)
        rc, out, err = self.alignctl(s, "--ca", self.pki["other_ca"], "health")
        self.assertEqual(rc, 4, err)
        self.assertIn("does not verify against --ca", err)
        self.assertIn("unable to get local issuer certificate", err)
        rc, out, err = self.alignctl(s, "--ca", self.pki["ca"], "health")
        self.assertEqual((rc, out.strip()), (0, f"{s.address}: SERVING"), err)
        # TLS to a plaintext server: said so.
        plain = self.start(tls=False, tokens=False, name="plain")
        rc, _, err = self.alignctl(plain, "--ca", self.pki["ca"], "health")
        self.assertEqual(rc, 4, err)
        self.assertIn("does not speak TLS", err)
        # The Python client gives the same diagnosis.
        with Client(s.address, ca=self.pki["other_ca"], timeout=10) as c:
            with self.assertRaises(AligndError) as e:
                c.health()
            self.assertEqual(e.exception.code, C.UNAVAILABLE)
            self.assertIn("unable to get local issuer certificate", e.exception.hint)

    def test_mtls_requires_a_client_certificate_the_ca_signed(self):
        s = self.start("--tls_client_ca", self.pki["ca"], tokens=False)
        self.assertIn('"client_certificates":"required"', s.log_text())
        req = health_pb2.HealthCheckRequest()
        self.assertEqual(code_of(self.stubs(s, cert="client").health.Check, req)[0], C.OK)
        self.assertEqual(code_of(self.stubs(s).health.Check, req)[0], C.UNAVAILABLE)
        self.assertEqual(code_of(self.stubs(s, cert="stranger").health.Check, req)[0], C.UNAVAILABLE)
        rc, _, err = self.alignctl(s, "--ca", self.pki["ca"], "health")
        self.assertEqual(rc, 4, err)
        self.assertIn("wants a client certificate", err)
        rc, _, err = self.alignctl(s, "--ca", self.pki["ca"], "--cert", self.pki["stranger_cert"], "--key",
                                   self.pki["stranger_key"], "health")
        self.assertEqual(rc, 4, err)
        self.assertIn("refused our certificate", err)
        rc, _, err = self.alignctl(s, "--ca", self.pki["ca"], "--cert", self.pki["client_expired_cert"], "--key",
                                   self.pki["client_expired_key"], "health")
        self.assertEqual(rc, 4, err)
        self.assertIn("expired on Jan  2 00:00:00 2020 GMT", err)
        env = {"ALIGND_CA": self.pki["ca"], "ALIGND_CERT": self.pki["client_cert"], "ALIGND_KEY": self.pki["client_key"]}
        rc, out, err = self.alignctl(s, "health", env=env)
        self.assertEqual(rc, 0, err)

    def test_a_renewed_certificate_is_served_without_a_restart_and_open_streams_go_on(self):
        cert, key = os.path.join(self.root, "cert.pem"), os.path.join(self.root, "cert.key")
        shutil.copy(self.pki["server_cert"], cert)
        shutil.copy(self.pki["server_key"], key)
        s = Alignd(self.root, "--tls_cert", cert, "--tls_key", key, "--tls_reload_s", "1")
        self.servers.append(s)
        old = self.stubs(s)
        ds = self.generated(old, n=2000)
        sess = old.training.CreateSession(session_request(ds.name, steps=3000, batch=1), timeout=30)
        events, ended = [], threading.Event()

        def follow():
            for e in old.training.StreamMetrics(sessions_pb2.StreamMetricsRequest(parent=sess.name), timeout=120):
                events.append(e)
            ended.set()
        t = threading.Thread(target=follow)
        t.start()
        while not any(e.WhichOneof("event") == "step" for e in events):
            time.sleep(0.02)
        self.assertEqual(code_of(self.stubs(s, ca="other_ca").health.Check, health_pb2.HealthCheckRequest())[0],
                         C.UNAVAILABLE)
        # Renewed by another CA (so that a client can tell): key first, then the certificate.
        shutil.copy(self.pki["renewed_key"], key + ".new")
        shutil.copy(self.pki["renewed_cert"], cert + ".new")
        os.replace(key + ".new", key)
        os.replace(cert + ".new", cert)
        deadline = time.time() + 20
        while time.time() < deadline:
            fresh = self.stubs(s, ca="other_ca")
            if code_of(fresh.health.Check, health_pb2.HealthCheckRequest())[0] == C.OK:
                break
            time.sleep(0.3)
        else:
            self.fail("the renewed certificate was not served within 20 s")
        t.join(timeout=120)
        self.assertTrue(ended.is_set())
        self.assertEqual(events[-1].WhichOneof("event"), "end")
        self.assertEqual(events[-1].end.state, sessions_pb2.SESSION_STATE_SUCCEEDED)
        seqs = [e.seq for e in events if e.WhichOneof("event") == "step"]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))  # nothing lost on the old connection

    def test_an_expired_certificate_put_in_place_is_reported_to_clients_as_expired(self):
        cert, key = os.path.join(self.root, "cert.pem"), os.path.join(self.root, "cert.key")
        shutil.copy(self.pki["server_cert"], cert)
        shutil.copy(self.pki["server_key"], key)
        s = Alignd(self.root, "--tls_cert", cert, "--tls_key", key, "--tls_reload_s", "1")
        self.servers.append(s)
        shutil.copy(self.pki["expired_key"], key)
        shutil.copy(self.pki["expired_cert"], cert)
        deadline = time.time() + 20
        while time.time() < deadline:
            rc, _, err = self.alignctl(s, "--ca", self.pki["ca"], "health")
            if "certificate has expired" in err:
                break
            time.sleep(0.3)
        self.assertEqual(rc, 4, err)
        self.assertIn("TLS: the server's certificate does not verify against --ca", err)
        self.assertIn("certificate has expired", err)

    # ---- /metrics -----------------------------------------------------------------------
    def test_metrics_over_https_with_basic_auth_and_refused_plaintext_off_loopback(self):
        import base64
        import ssl
        import urllib.error
        import urllib.request
        auth = os.path.join(self.root, "metrics-users")
        with open(auth, "w") as f:
            f.write(f"# user sha256(password)\nprometheus {hashlib.sha256(b's3cret').hexdigest()}\n")
        s = Alignd(self.root, "--metrics_tls_cert", self.pki["server_cert"], "--metrics_tls_key",
                   self.pki["server_key"], "--metrics_basic_auth_file", auth, metrics="127.0.0.1:0")
        self.servers.append(s)
        url = "https://" + s.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        ctx = ssl.create_default_context(cafile=self.pki["ca"])

        def get(user=None, password=None, context=ctx, address=url):
            req = urllib.request.Request(address)
            if user:
                req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
            try:
                with urllib.request.urlopen(req, context=context, timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, ""
        self.assertEqual(get()[0], 401)
        self.assertEqual(get("prometheus", "wrong")[0], 401)
        self.assertEqual(get("nobody", "s3cret")[0], 401)
        code, body = get("prometheus", "s3cret")
        self.assertEqual(code, 200)
        self.assertIn('alignd_sessions{state="QUEUED"} 0', body)
        import http.client
        with self.assertRaises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            get("prometheus", "s3cret", address=url.replace("https://", "http://"), context=None)
        code, log = exits_with("--listen", "127.0.0.1:0", "--metrics_listen", "0.0.0.0:0")
        self.assertEqual(code, 2, log)
        self.assertIn("refusing to serve /metrics off loopback", log)

    # ---- tokens -------------------------------------------------------------------------
    def test_calls_without_a_valid_token_are_unauthenticated_and_probes_need_none(self):
        s = self.start("--health_listen", "127.0.0.1:0")
        req = sessions_pb2.ListSessionsRequest()
        code, msg = code_of(self.stubs(s).training.ListSessions, req)
        self.assertEqual(code, C.UNAUTHENTICATED)
        self.assertIn("bearer token", msg)
        bad = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(read(self.pki["ca"])),
                                                 grpc.access_token_call_credentials("tok-nobody"))
        ch = grpc.secure_channel(s.address, bad)
        self.channels.append(ch)
        code, msg = code_of(sessions_pb2_grpc.TrainingServiceStub(ch).ListSessions, req)
        self.assertEqual((code, msg), (C.UNAUTHENTICATED, "the bearer token is not valid here (unknown or revoked)"))
        code, _ = code_of(self.stubs(s).datasets.UploadDataset, iter([]))
        self.assertEqual(code, C.UNAUTHENTICATED)
        refused = [x for x in s.log_text(until="unknown or revoked").splitlines() if '"msg":"unauthenticated"' in x]
        self.assertTrue(any("/alignd.v1.TrainingService/ListSessions" in x and "unknown or revoked" in x
                            for x in refused), refused)
        # Health: on the TLS port without a token, and alone on the plaintext probe port.
        self.assertEqual(code_of(self.stubs(s).health.Check, health_pb2.HealthCheckRequest())[0], C.OK)
        probe_addr = self._probe_address(s)
        probe = grpc.insecure_channel(probe_addr)
        self.channels.append(probe)
        self.assertEqual(health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=10).status,
                         health_pb2.HealthCheckResponse.SERVING)
        self.assertEqual(code_of(sessions_pb2_grpc.TrainingServiceStub(probe).ListSessions, req)[0], C.UNIMPLEMENTED)
        # ... and nothing else: no server reflection (which would list the services and hand out
        # their descriptors), though the TLS port has it for those with a token.
        list_services = b"\x3a\x01*"  # ServerReflectionRequest{list_services: "*"}
        for method in ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                       "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"):
            reflect = probe.stream_stream(method)
            self.assertEqual(code_of(lambda **kw: reflect(iter([list_services]), **kw))[0], C.UNIMPLEMENTED, method)
        tls = self.stubs(s, "alice").channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        answer = b"".join(tls(iter([list_services]), timeout=10))
        self.assertIn(b"alignd.v1.TrainingService", answer)
        # alignctl: the missing token is named, with how to get one.
        rc, _, err = self.alignctl(s, "--ca", self.pki["ca"], "sessions", "list")
        self.assertEqual(rc, 1, err)
        self.assertIn("UNAUTHENTICATED", err)
        self.assertIn("alignctl token new", err)
        rc, _, err = self.alignctl(s, "--token", "x", "sessions", "list")
        self.assertEqual(rc, 2, err)
        self.assertIn("a token is sent over TLS only", err)

    def _probe_address(self, s):
        line = s.proc.stdout.readline().strip()
        self.assertTrue(line.startswith("alignd health on "), line)
        return line.rsplit(" ", 1)[-1]

    def test_another_user_gets_not_found_for_everything_of_yours(self):
        s = self.start()
        alice, bob = self.stubs(s, "alice"), self.stubs(s, "bob")
        ds = self.generated(alice)
        self.assertEqual(list(ds.owners), ["alice"])
        req = session_request(ds.name, steps=100)
        req.session.snapshot_every = 50
        sess = alice.training.CreateSession(req, timeout=30)
        self.assertEqual(sess.owner, "alice")
        self.assertEqual(self.finished(alice, sess.name).state, sessions_pb2.SESSION_STATE_SUCCEEDED)
        snap = sess.name + "/snapshots/50"
        self.assertEqual(code_of(alice.training.GetSnapshot, sessions_pb2.GetSnapshotRequest(name=snap))[0], C.OK)
        inputs = sessions_pb2.PredictRequest(name=sess.name)
        inputs.inputs.rows, inputs.inputs.cols = 30, 1
        inputs.inputs.values.extend([0.1] * 30)
        t = bob.training
        calls = {
            "GetSession": (t.GetSession, sessions_pb2.GetSessionRequest(name=sess.name)),
            "PauseSession": (t.PauseSession, sessions_pb2.PauseSessionRequest(name=sess.name)),
            "ResumeSession": (t.ResumeSession, sessions_pb2.ResumeSessionRequest(name=sess.name)),
            "CancelSession": (t.CancelSession, sessions_pb2.CancelSessionRequest(name=sess.name)),
            "DeleteSession": (t.DeleteSession, sessions_pb2.DeleteSessionRequest(name=sess.name)),
            "StreamMetrics": (t.StreamMetrics, sessions_pb2.StreamMetricsRequest(parent=sess.name)),
            "ListMetrics": (t.ListMetrics, sessions_pb2.ListMetricsRequest(parent=sess.name)),
            "ListSnapshots": (t.ListSnapshots, sessions_pb2.ListSnapshotsRequest(parent=sess.name)),
            "GetSnapshot": (t.GetSnapshot, sessions_pb2.GetSnapshotRequest(name=snap)),
            "ReadSnapshot": (t.ReadSnapshot, sessions_pb2.ReadSnapshotRequest(name=snap)),
            "StreamSnapshots": (t.StreamSnapshots, sessions_pb2.StreamSnapshotsRequest(parent=sess.name)),
            "Predict": (t.Predict, inputs),
            "Evaluate": (t.Evaluate, sessions_pb2.EvaluateRequest(name=sess.name)),
            "ExportSession": (t.ExportSession, sessions_pb2.ExportSessionRequest(
                name=sess.name, format=sessions_pb2.EXPORT_FORMAT_CSV)),
            "ExportSession(onnx)": (t.ExportSession, sessions_pb2.ExportSessionRequest(
                name=sess.name, format=sessions_pb2.EXPORT_FORMAT_ONNX, snapshot=snap)),
            "GetDataset": (bob.datasets.GetDataset, datasets_pb2.GetDatasetRequest(name=ds.name)),
            "DeleteDataset": (bob.datasets.DeleteDataset, datasets_pb2.DeleteDatasetRequest(name=ds.name)),
        }
        for rpc, (fn, req) in calls.items():
            code, msg = code_of(fn, req)
            self.assertEqual(code, C.NOT_FOUND, f"{rpc}: {code} {msg}")
            # The same words as for what does not exist: nothing tells "yours" from "absent".
            self.assertTrue(msg.endswith(" not found"), f"{rpc}: {msg}")
        missing = sess.name + "x"
        self.assertEqual(code_of(t.GetSession, sessions_pb2.GetSessionRequest(name=missing))[1],
                         f"{missing} not found")
        self.assertEqual(code_of(t.GetSession, sessions_pb2.GetSessionRequest(name=sess.name))[1],
                         f"{sess.name} not found")
        # Bob's own session on Alice's data set, and with Alice's data set for evaluation.
        code, msg = code_of(t.CreateSession, session_request(ds.name, steps=10))
        self.assertEqual((code, msg), (C.NOT_FOUND, f"session.train_dataset: {ds.name} not found"))
        own = self.generated(bob, seed=2)
        req = session_request(own.name, steps=10)
        req.session.eval_dataset = ds.name
        self.assertEqual(code_of(t.CreateSession, req)[0], C.NOT_FOUND)
        mine = t.CreateSession(session_request(own.name, steps=10), timeout=30)
        ev = sessions_pb2.EvaluateRequest(name=mine.name, dataset=ds.name)
        self.finished(bob, mine.name)
        self.assertEqual(code_of(t.Evaluate, ev)[0], C.NOT_FOUND)
        # Lists hold one's own only; Alice's session is untouched by all of the above.
        names = lambda r: [x.name for x in r]  # noqa: E731
        self.assertEqual(names(t.ListSessions(sessions_pb2.ListSessionsRequest(), timeout=10).sessions), [mine.name])
        self.assertEqual(names(bob.datasets.ListDatasets(datasets_pb2.ListDatasetsRequest(), timeout=10).datasets),
                         [own.name])
        got = alice.training.GetSession(sessions_pb2.GetSessionRequest(name=sess.name), timeout=10)
        self.assertEqual(got.state, sessions_pb2.SESSION_STATE_SUCCEEDED)
        # The admin sees both; the viewer sees both and changes nothing.
        root = self.stubs(s, "root")
        self.assertEqual(len(root.training.ListSessions(sessions_pb2.ListSessionsRequest(), timeout=10).sessions), 2)
        viewer = self.stubs(s, "grafana")
        self.assertEqual(len(viewer.training.ListSessions(sessions_pb2.ListSessionsRequest(), timeout=10).sessions), 2)
        self.assertEqual(code_of(viewer.training.ListMetrics, sessions_pb2.ListMetricsRequest(parent=sess.name))[0], C.OK)
        self.assertEqual(code_of(viewer.training.ExportSession, sessions_pb2.ExportSessionRequest(
            name=sess.name, format=sessions_pb2.EXPORT_FORMAT_SAFETENSORS, snapshot=snap))[0], C.OK)
        for fn, req in [(viewer.training.DeleteSession, sessions_pb2.DeleteSessionRequest(name=sess.name)),
                        (viewer.training.CreateSession, session_request(ds.name, steps=10)),
                        (viewer.datasets.DeleteDataset, datasets_pb2.DeleteDatasetRequest(name=ds.name)),
                        (viewer.datasets.CreateGeneratedDataset, datasets_pb2.CreateGeneratedDatasetRequest(
                            spec=datasets_pb2.GeneratorSpec(kind=datasets_pb2.GeneratorSpec.KIND_TOY)))]:
            code, msg = code_of(fn, req)
            self.assertEqual(code, C.PERMISSION_DENIED, msg)
            self.assertIn("viewer 'grafana' may not", msg)
        code, msg = code_of(viewer.datasets.UploadDataset, iter([datasets_pb2.UploadDatasetRequest()]))
        self.assertEqual(code, C.PERMISSION_DENIED, msg)
        self.assertEqual(code_of(root.training.DeleteSession, sessions_pb2.DeleteSessionRequest(name=sess.name))[0], C.OK)
        # Every mutating RPC's log line names its principal. The log is written from a queue a
        # moment after each reply: wait for the lines themselves (root's earlier ListSessions
        # line is not the DeleteSession one; under TSan the last line came after it).
        import json

        def rpcs_in(text):
            out = set()
            for line in text.splitlines():
                try:  # the last line may be half written
                    x = json.loads(line) if line.startswith("{") else {}
                except ValueError:
                    continue
                if x.get("msg") == "rpc":
                    out.add((x["method"].rsplit("/", 1)[-1], x["principal"]))
            return out
        wanted = [("CreateGeneratedDataset", "alice"), ("CreateSession", "alice"), ("CreateSession", "bob"),
                  ("DeleteSession", "root"), ("DeleteSession", "grafana"), ("PauseSession", "bob")]
        rpcs = rpcs_in(s.log_text(until=lambda text: set(wanted) <= rpcs_in(text), timeout=30))
        for expected in wanted:
            self.assertIn(expected, rpcs)

    def test_each_call_on_one_shared_channel_is_its_own_caller(self):
        """One TLS connection, a different token on each call (what alignd-dashboard does with
        every browser's token): every call is answered as its own principal, whoever called
        on that connection before it, over unary, server-streaming and client-streaming calls
        and every ordered pair of roles; and each call's log line names its own principal."""
        import itertools
        import json
        s = self.start()
        ch = grpc.secure_channel(s.address, grpc.ssl_channel_credentials(read(self.pki["ca"])))
        self.channels.append(ch)
        shared = Stubs(ch)
        expected_log = []  # (method, principal) of every call, in order

        def call(who, method, fn, req):
            expected_log.append((method, who))
            try:
                r = fn(req, timeout=30, metadata=(("authorization", "Bearer " + TOKENS[who][0]),))
                if hasattr(r, "__iter__") and not hasattr(r, "ListFields"):
                    r = list(r)
                return C.OK, r
            except grpc.RpcError as e:
                return e.code(), e.details()

        t, d = shared.training, shared.datasets
        spec = datasets_pb2.GeneratorSpec(kind=datasets_pb2.GeneratorSpec.KIND_LINEAR, num_examples=200, seed=1)
        code, ds = call("alice", "CreateGeneratedDataset", d.CreateGeneratedDataset,
                        datasets_pb2.CreateGeneratedDatasetRequest(spec=spec))
        self.assertEqual(code, C.OK, ds)
        self.assertEqual(list(ds.owners), ["alice"])
        code, sess = call("alice", "CreateSession", t.CreateSession, session_request(ds.name, steps=20))
        self.assertEqual(code, C.OK, sess)
        self.assertEqual(sess.owner, "alice")
        code, events = call("alice", "StreamMetrics", t.StreamMetrics,
                            sessions_pb2.StreamMetricsRequest(parent=sess.name))
        self.assertEqual(code, C.OK, events)
        self.assertEqual(events[-1].WhichOneof("event"), "end")

        payload = floats([0.25] * (4 * 31))  # 4 examples: 30 features, 1 target each
        header = regression_header(4, 30, 1, payload)

        def upload_requests():
            yield datasets_pb2.UploadDatasetRequest(header=header)
            yield datasets_pb2.UploadDatasetRequest(chunk=payload)

        sees_alices = {"alice": True, "bob": False, "root": True, "grafana": True}
        writes = {"alice": True, "bob": True, "root": True, "grafana": False}
        # Each kind of call, and what each principal must get from it.
        kinds = {
            "ListSessions (unary)": lambda who: self._sees(
                call(who, "ListSessions", t.ListSessions, sessions_pb2.ListSessionsRequest()),
                lambda r: sess.name in [x.name for x in r.sessions], sees_alices[who], who),
            "GetSession (unary)": lambda who: self._expect(
                call(who, "GetSession", t.GetSession, sessions_pb2.GetSessionRequest(name=sess.name)),
                C.OK if sees_alices[who] else C.NOT_FOUND, who),
            "StreamMetrics (server stream)": lambda who: self._expect(
                call(who, "StreamMetrics", t.StreamMetrics,
                     sessions_pb2.StreamMetricsRequest(parent=sess.name, history_only=True)),
                C.OK if sees_alices[who] else C.NOT_FOUND, who),
            # Alice's data set for bob (NOT_FOUND: not his) and the viewer (PERMISSION_DENIED); an
            # absent one for alice and root, so that it stays for the next pair.
            "DeleteDataset (unary write)": lambda who: self._expect(
                call(who, "DeleteDataset", d.DeleteDataset, datasets_pb2.DeleteDatasetRequest(
                    name=ds.name if who in ("bob", "grafana") else "datasets/absent")),
                C.NOT_FOUND, who, denied=not writes[who]),
            "UploadDataset (client stream)": lambda who: self._expect(
                call(who, "UploadDataset", lambda req, **kw: d.UploadDataset(upload_requests(), **kw), None),
                None, who, denied=not writes[who]),
        }
        for first, second in itertools.permutations(TOKENS, 2):
            for kind, check in kinds.items():
                with self.subTest(first=first, then=second, call=kind):
                    check(first)   # the connection's earlier caller
                    check(second)  # must not be answered as `first`
        code, got = call("alice", "GetDataset", d.GetDataset, datasets_pb2.GetDatasetRequest(name=ds.name))
        self.assertEqual(code, C.OK, got)  # bob's and the viewer's deletes took nothing
        # The log: one line per call, each naming that call's own principal.
        rpc_lines = lambda text: text.count('"msg":"rpc"')  # noqa: E731
        lines = [json.loads(x) for x in s.log_text(until=lambda t: rpc_lines(t) >= len(expected_log)).splitlines()
                 if x.startswith("{")]
        logged = [(x["method"].rsplit("/", 1)[-1], x["principal"]) for x in lines if x.get("msg") == "rpc"]
        self.assertEqual(sorted(logged), sorted(expected_log))
        self.assertEqual([p for _, p in logged], [p for _, p in expected_log])

    def _expect(self, result, code, who, denied=None):
        got, detail = result
        if denied is None:
            self.assertEqual(got, code, f"{who}: {detail}")
        elif denied:
            self.assertEqual(got, C.PERMISSION_DENIED, f"{who}: {detail}")
            self.assertIn(f"viewer '{who}' may not", detail)
        else:
            self.assertEqual(got, code or C.OK, f"{who}: {detail}")

    def _sees(self, result, pred, expect, who):
        code, r = result
        self.assertEqual(code, C.OK, f"{who}: {r}")
        self.assertEqual(pred(r), expect, f"{who}: {r}")

    # ---- alignd-dashboard in front of alignd -------------------------------------------
    def dashboard(self, server, *flags):
        """alignd-dashboard over TLS to `server` (one gRPC channel for every browser)."""
        p = subprocess.Popen([os.environ["ALIGND_DASHBOARD_BINARY"], "--alignd", server.address, "--ca",
                              self.pki["ca"], "--listen", "127.0.0.1:0", *flags],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        url = p.stdout.readline().strip().rsplit(" ", 1)[-1].rstrip("/")
        self.addCleanup(lambda: (p.kill(), p.wait(), p.stdout.close()))
        self.assertTrue(url.startswith("http://"), "alignd-dashboard did not start")
        return p, url

    def http(self, url, method="GET", body=None, token=None, headers=None, raw_auth=None, timeout=30):
        """(status, JSON body) of one request on its own connection; raw_auth: the Authorization
        header's bytes as given (http.client sends them unchecked)."""
        import http.client
        import json
        import urllib.parse
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        try:
            conn.putrequest(method, u.path + (f"?{u.query}" if u.query else ""), skip_accept_encoding=True)
            h = dict(headers or {})
            if token:
                h["Authorization"] = f"Bearer {token}"
            data = json.dumps(body).encode() if body is not None else b""
            if body is not None:
                h["Content-Type"] = "application/json"
            if body is not None or method in ("POST", "PUT", "DELETE"):
                h["Content-Length"] = str(len(data))  # as a browser's fetch() sends it
            for k, v in h.items():
                conn.putheader(k, v)
            if raw_auth is not None:
                conn._output(b"Authorization: " + raw_auth)  # noqa: SLF001 - exactly these bytes
            conn.endheaders(data or None)
            r = conn.getresponse()
            text = r.read()
            try:
                return r.status, json.loads(text or b"{}")
            except ValueError:
                return r.status, text
        finally:
            conn.close()

    @staticmethod
    def answer(sock):
        """One HTTP response read whole from a socket (head and Content-Length body)."""
        import re
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length: *(\d+)", head)
        while m and len(body) < int(m.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return (head + b"\r\n\r\n" + body).decode(errors="replace")

    def test_through_one_dashboard_each_browser_is_its_own_caller(self):
        """Two pages with two tokens through one alignd-dashboard (one gRPC connection to
        alignd): each request is answered as its own token's principal, in every order."""
        s = self.start()
        _, url = self.dashboard(s)
        tok = {who: TOKENS[who][0] for who in TOKENS}
        # Alice creates a data set and a session; bob, right after her on the same
        # connection, neither sees nor touches them.
        alice = self.stubs(s, "alice")
        spec = datasets_pb2.GeneratorSpec(kind=datasets_pb2.GeneratorSpec.KIND_LINEAR, num_examples=200, seed=1)
        ds = alice.datasets.CreateGeneratedDataset(datasets_pb2.CreateGeneratedDatasetRequest(spec=spec), timeout=30)
        body = {"session": {"train_dataset": ds.name, "config": {"network": {"sizes": [30, 20, 10]},
                "feedback": {"rule": "RULE_FEEDBACK_ALIGNMENT"}, "batch_size": 1, "max_steps": 100000000,
                "metrics_every": 100}}}
        code, sess = self.http(url + "/api/sessions", "POST", body, token=tok["alice"])
        self.assertEqual(code, 200, sess)
        sid = sess["name"].split("/")[1]
        for _ in range(3):  # alternating, so each follows the other on the connection
            code, mine = self.http(url + f"/api/sessions/{sid}", token=tok["alice"])
            self.assertEqual((code, mine.get("owner")), (200, "alice"), mine)
            code, err = self.http(url + f"/api/sessions/{sid}", token=tok["bob"])
            self.assertEqual((code, err.get("code")), (404, "NOT_FOUND"), err)
            code, listed = self.http(url + "/api/sessions", token=tok["bob"])
            self.assertEqual(code, 200, listed)
            self.assertNotIn(sess["name"], [x["name"] for x in listed.get("sessions", [])])
            code, err = self.http(url + f"/api/sessions/{sid}:pause", "POST", token=tok["bob"])
            self.assertEqual(code, 404, err)
            code, err = self.http(url + f"/api/events?s={sid}:1", token=tok["bob"])
            self.assertEqual(code, 200)  # a stream whose only session ends with NOT_FOUND
        # The admin, then the viewer: the viewer may read but neither create nor delete.
        code, _ = self.http(url + f"/api/sessions/{sid}", token=tok["root"])
        self.assertEqual(code, 200)
        code, err = self.http(url + "/api/sessions", "POST", body, token=tok["grafana"])
        self.assertEqual((code, err.get("code")), (403, "PERMISSION_DENIED"), err)
        code, err = self.http(url + f"/api/sessions/{sid}", "DELETE", token=tok["grafana"])
        self.assertEqual((code, err.get("code")), (403, "PERMISSION_DENIED"), err)
        code, mine = self.http(url + f"/api/sessions/{sid}", token=tok["grafana"])
        self.assertEqual(code, 200, mine)
        # Bob's event stream for alice's session carries no event of hers.
        import urllib.request
        req = urllib.request.Request(url + f"/api/sessions/{sid}/events", headers={"Authorization": "Bearer " + tok["bob"]})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
        self.assertNotIn("\nid: ", "\n" + text)
        self.assertIn("NOT_FOUND", text)
        # And no request without a token gets anything.
        code, err = self.http(url + "/api/sessions")
        self.assertEqual((code, err.get("code")), (401, "UNAUTHENTICATED"), err)
        code, done = self.http(url + f"/api/sessions/{sid}:cancel", "POST", token=tok["alice"])
        self.assertEqual((code, done.get("state")), (200, "SESSION_STATE_CANCELLED"), done)

    def test_no_authorization_header_kills_the_dashboard(self):
        """Bytes gRPC refuses as metadata (tab, DEL, control, non-ASCII, CR) in the header of an
        unauthenticated request: 401, and the dashboard answers the next request."""
        s = self.start()
        p, url = self.dashboard(s)
        bad = [b"Bearer tok\tx", b"Bearer tok\x7f", b"Bearer tok\x01", b"Bearer t\xc3\xa9", b"Bearer \x80",
               b"Bearer", b"Bearer ", b"bearer  tok-alice extra", b"Basic YWxpY2U6eA==", b"Bearer " + b"a" * 5000,
               b"Bearer tok\x00x"]
        for raw in bad:
            code, err = self.http(url + "/api/sessions", raw_auth=raw)
            self.assertIn(code, (400, 401), (raw, code, err))
            self.assertIsNone(p.poll(), f"the dashboard died on {raw!r}")
        # Two Authorization headers: refused too.
        code, _ = self.http(url + "/api/sessions", token=TOKENS["alice"][0], raw_auth=b"Bearer tok-bob")
        self.assertEqual(code, 401)
        # A lowercase scheme is still the bearer scheme (RFC 7235), and it works.
        code, listed = self.http(url + "/api/sessions", raw_auth=b"bearer " + TOKENS["alice"][0].encode())
        self.assertEqual(code, 200, listed)
        self.assertIsNone(p.poll())

    def test_the_dashboards_bodies_and_streams_are_bounded(self):
        """A body past --max_body_bytes: 413 before it is read. Streams past the bound per
        client: 429; /healthz and the API answer meanwhile."""
        import socket
        s = self.start()
        p, url = self.dashboard(s, "--threads", "16", "--max_streams_per_client", "4")
        tok = TOKENS["alice"][0]
        host, port = url[len("http://"):].split(":")
        # 64 MiB announced, a little sent: refused from the header alone.
        with socket.create_connection((host, int(port)), timeout=30) as c:
            c.sendall(b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Authorization: Bearer " + tok.encode() + b"\r\nContent-Length: 67108864\r\n\r\n{")
            answer = self.answer(c)
        self.assertTrue(answer.startswith("HTTP/1.1 413"), answer[:200])
        self.assertIn("RESOURCE_EXHAUSTED", answer)
        # Chunked bodies (which would escape the bound) are refused.
        with socket.create_connection((host, int(port)), timeout=30) as c:
            c.sendall(b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Authorization: Bearer " + tok.encode() + b"\r\n\r\n1\r\n{\r\n")
            answer = self.answer(c)
        self.assertRegex(answer, r"^HTTP/1.1 4(11|13)")
        self.assertIsNone(p.poll())
        # Event streams held open by one client: the fifth gets 429, health still answers.
        alice = self.stubs(s, "alice")
        spec = datasets_pb2.GeneratorSpec(kind=datasets_pb2.GeneratorSpec.KIND_LINEAR, num_examples=200, seed=1)
        ds = alice.datasets.CreateGeneratedDataset(datasets_pb2.CreateGeneratedDatasetRequest(spec=spec), timeout=30)
        sess = alice.training.CreateSession(session_request(ds.name, steps=10 ** 8), timeout=30)
        sid = sess.name.split("/")[1]
        held = []
        try:
            for _ in range(4):
                c = socket.create_connection((host, int(port)), timeout=30)
                held.append(c)
                c.sendall(f"GET /api/sessions/{sid}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\r\n"
                          .encode())
                self.assertTrue(c.recv(4096).startswith(b"HTTP/1.1 200"))
            code, err = self.http(url + f"/api/sessions/{sid}/events", token=tok)
            self.assertEqual((code, err.get("code")), (429, "RESOURCE_EXHAUSTED"), err)
            code, health = self.http(url + "/healthz", token=tok)
            self.assertEqual((code, health.get("status")), (200, "SERVING"), health)
            code, listed = self.http(url + "/api/sessions", token=tok)
            self.assertEqual(code, 200, listed)
        finally:
            for c in held:
                c.close()
        # Closed, the slots come back.
        deadline = time.time() + 30
        while time.time() < deadline:
            import urllib.request
            try:
                req = urllib.request.Request(url + f"/api/sessions/{sid}/events",
                                             headers={"Authorization": f"Bearer {tok}"})
                with urllib.request.urlopen(req, timeout=30) as r:
                    self.assertEqual(r.status, 200)
                    break
            except urllib.error.HTTPError as e:
                self.assertEqual(e.code, 429)
                time.sleep(0.2)
        else:
            self.fail("the stream slots did not come back after their connections closed")
        alice.training.CancelSession(sessions_pb2.CancelSessionRequest(name=sess.name), timeout=30)
        self.assertIsNone(p.poll())

    def test_a_shared_upload_belongs_to_each_uploader_until_each_deletes_it(self):
        s = self.start()
        alice, bob, root = self.stubs(s, "alice"), self.stubs(s, "bob"), self.stubs(s, "root")
        payload = floats([0.5] * 200)
        h = regression_header(100, 1, 1, payload)
        a = upload(alice.datasets, h, payload)
        b = upload(bob.datasets, h, payload)
        self.assertEqual(a.name, b.name)  # content-addressed: one data set
        self.assertEqual(list(a.owners), ["alice"])
        self.assertEqual(list(b.owners), ["bob"])  # bob does not learn who else holds it
        self.assertEqual(sorted(root.datasets.GetDataset(datasets_pb2.GetDatasetRequest(name=a.name), timeout=10).owners),
                         ["alice", "bob"])
        alice.datasets.DeleteDataset(datasets_pb2.DeleteDatasetRequest(name=a.name), timeout=10)
        self.assertEqual(code_of(alice.datasets.GetDataset, datasets_pb2.GetDatasetRequest(name=a.name))[0], C.NOT_FOUND)
        self.assertEqual(code_of(bob.datasets.GetDataset, datasets_pb2.GetDatasetRequest(name=a.name))[0], C.OK)
        sess = bob.training.CreateSession(session_request(b.name, sizes=(1, 4, 1), steps=10), timeout=30)
        self.assertEqual(self.finished(bob, sess.name).state, sessions_pb2.SESSION_STATE_SUCCEEDED)
        bob.datasets.DeleteDataset(datasets_pb2.DeleteDatasetRequest(name=a.name), timeout=10)
        self.assertEqual(code_of(root.datasets.GetDataset, datasets_pb2.GetDatasetRequest(name=a.name))[0], C.NOT_FOUND)

    def test_request_ids_are_per_principal(self):
        s = self.start()
        alice, bob = self.stubs(s, "alice"), self.stubs(s, "bob")
        ra = session_request(self.generated(alice).name, steps=10)
        ra.request_id = "retry-1"
        first = alice.training.CreateSession(ra, timeout=30)
        self.assertEqual(alice.training.CreateSession(ra, timeout=30).name, first.name)  # a retry
        rb = session_request(self.generated(bob, seed=3).name, steps=10)
        rb.request_id = "retry-1"
        other = bob.training.CreateSession(rb, timeout=30)
        self.assertNotEqual(other.name, first.name)
        self.assertEqual(other.owner, "bob")

    def test_quotas_are_per_principal_and_name_themselves(self):
        s = self.start("--quota_active_sessions", "1", "--quota_stored_mib", "1", "--max_running", "1")
        alice, bob, root = self.stubs(s, "alice"), self.stubs(s, "bob"), self.stubs(s, "root")
        ds = self.generated(alice, n=2000)
        long = alice.training.CreateSession(session_request(ds.name, steps=100000, batch=1), timeout=30)
        code, msg = code_of(alice.training.CreateSession, session_request(ds.name, steps=10))
        self.assertEqual(code, C.RESOURCE_EXHAUSTED, msg)
        self.assertIn("quota active_sessions", msg)
        self.assertIn("--quota_active_sessions 1", msg)
        # Bob's quota is his own; the admin has none.
        mine = bob.training.CreateSession(session_request(self.generated(bob, seed=2).name, steps=10), timeout=30)
        self.assertEqual(mine.owner, "bob")
        root_ds = self.generated(root, seed=4)
        for _ in range(3):
            root.training.CreateSession(session_request(root_ds.name, steps=10), timeout=30)
        # Pausing frees the slot; resuming takes it again, so it is refused while another runs.
        alice.training.PauseSession(sessions_pb2.PauseSessionRequest(name=long.name), timeout=60)
        short = alice.training.CreateSession(session_request(ds.name, steps=100000, batch=1), timeout=30)
        code, msg = code_of(alice.training.ResumeSession, sessions_pb2.ResumeSessionRequest(name=long.name))
        self.assertEqual(code, C.RESOURCE_EXHAUSTED, msg)
        for name in (short.name, long.name):
            code_of(root.training.CancelSession, sessions_pb2.CancelSessionRequest(name=name))
        # Stored bytes: 1 MiB each; an upload that would pass it is refused before its bytes.
        n = 200_000  # 1.6 MB
        payload = floats([0.5] * n) + floats([0.25] * n)
        code, msg = code_of(lambda timeout: upload(alice.datasets, regression_header(n, 1, 1, payload), payload))
        self.assertEqual(code, C.RESOURCE_EXHAUSTED, msg)
        self.assertIn("quota stored_bytes", msg)
        self.assertEqual(code_of(lambda timeout: upload(root.datasets, regression_header(n, 1, 1, payload), payload))[0],
                         C.OK)

    def test_sighup_rereads_the_token_file_so_a_revoked_token_stops_at_once(self):
        s = self.start()
        bob, alice = self.stubs(s, "bob"), self.stubs(s, "alice")
        req = sessions_pb2.ListSessionsRequest()
        self.assertEqual(code_of(bob.training.ListSessions, req)[0], C.OK)
        token_file(self.tokens_path, ["alice", "root"])
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while code_of(bob.training.ListSessions, req)[0] == C.OK and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(code_of(bob.training.ListSessions, req)[0], C.UNAUTHENTICATED)
        self.assertEqual(code_of(alice.training.ListSessions, req)[0], C.OK)
        self.assertIn("token file reloaded", s.log_text(until="token file reloaded"))
        # A broken file keeps the tokens in use.
        with open(self.tokens_path, "a") as f:
            f.write("not-a-hash alice user\n")
        s.proc.send_signal(signal.SIGHUP)
        self.assertIn("token file not reloaded", s.log_text(until="token file not reloaded"))
        self.assertEqual(code_of(alice.training.ListSessions, req)[0], C.OK)

    def test_alignctl_and_the_python_client_train_with_tls_and_a_token_from_the_environment(self):
        s = self.start()
        tok = os.path.join(self.root, "alice.token")
        with open(tok, "w") as f:
            f.write(TOKENS["alice"][0] + "\n")
        env = {"ALIGND_CA": self.pki["ca"], "ALIGND_TOKEN_FILE": tok}
        rc, out, err = self.alignctl(s, "-o", "name", "datasets", "generate", "--kind", "linear", "--examples", "300",
                                     env=env)
        self.assertEqual(rc, 0, err)
        ds = out.strip()
        rc, out, err = self.alignctl(s, "-o", "json", "sessions", "create", "--dataset", ds, "--sizes", "30,20,10",
                                     "--rule", "fa", "--max-steps", "50", env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn('"owner": "alice"', out)
        rc, out, err = self.alignctl(s, "sessions", "watch", json_name(out), env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn("SUCCEEDED", out)
        old = dict(os.environ)
        try:
            os.environ.update({"ALIGND_CA": self.pki["ca"], "ALIGND_TOKEN": TOKENS["bob"][0]})
            with Client(s.address) as c:
                self.assertTrue(c.tls)
                self.assertEqual(c.list_sessions(), [])  # bob's view
                d = c.generate_dataset("linear", examples=300)
                sess = c.create_session(d, sizes=[30, 20, 10], rule="bp", max_steps=20)
                self.assertEqual(sess["owner"], "bob")
        finally:
            os.environ.clear()
            os.environ.update(old)
        with self.assertRaises(ValueError):
            Client(s.address, tls=False, token="x")


if __name__ == "__main__":
    unittest.main()
