"""The alignd client: thin, typed helpers over the generated gRPC stubs."""
import hashlib
import os
import sys
import time

import grpc
import numpy as np

_gen = os.environ.get("ALIGND_PYTHON_GEN")
if _gen and _gen not in sys.path:
    sys.path.insert(0, _gen)

from google.protobuf import json_format  # noqa: E402
from alignd.v1 import config_pb2, datasets_pb2, datasets_pb2_grpc, sessions_pb2, sessions_pb2_grpc  # noqa: E402
from alignd.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

CHUNK = 1 << 20

_RULES = {"bp": "RULE_BACKPROP", "fa": "RULE_FEEDBACK_ALIGNMENT", "dfa": "RULE_DIRECT_FEEDBACK_ALIGNMENT",
          "sign": "RULE_SIGN_SYMMETRY", "kp": "RULE_KOLEN_POLLACK", "pbp": "RULE_PSEUDO_BACKPROP",
          "shallow": "RULE_SHALLOW"}


class AligndError(Exception):
    """A failed call: .code is the grpc.StatusCode, str() the server's message."""

    def __init__(self, err):
        self.code = err.code()
        super().__init__(f"{self.code.name}: {err.details()}")


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as e:
        raise AligndError(e) from None


def _name(x):
    return x if isinstance(x, str) else x.name


class Client:
    def __init__(self, address="localhost:50051", timeout=30.0):
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])
        self.datasets = datasets_pb2_grpc.DatasetServiceStub(self.channel)
        self.training = sessions_pb2_grpc.TrainingServiceStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)
        self.timeout = timeout

    def close(self):
        self.channel.close()

    # ---- health ------------------------------------------------------------------------
    def health(self):
        """'SERVING' or 'NOT_SERVING'."""
        r = _call(self.health_stub.Check, health_pb2.HealthCheckRequest(), timeout=self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    # ---- data sets ---------------------------------------------------------------------
    def upload_array(self, x, y, name="", classification=None, num_classes=None):
        """Uploads features x (n, ...) and targets y: (n,) integer labels or (n, k) floats.
        Returns the data set's name."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.asarray(y)
        if classification is None:
            classification = y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
        header = datasets_pb2.DatasetHeader(display_name=name, num_examples=x.shape[0],
                                            feature_shape=list(x.shape[1:]) or [1])
        if classification:
            labels = np.ascontiguousarray(y, dtype="<i4")
            header.target_kind = datasets_pb2.TARGET_KIND_CLASS_LABELS
            header.num_classes = int(num_classes if num_classes else labels.max() + 1)
            payload = x.astype("<f4").tobytes() + labels.tobytes()
        else:
            t = np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype="<f4")
            header.target_kind = datasets_pb2.TARGET_KIND_FLOAT_VECTORS
            header.target_dim = t.shape[1]
            payload = x.astype("<f4").tobytes() + t.tobytes()
        header.sha256 = hashlib.sha256(payload).hexdigest()

        def requests():
            yield datasets_pb2.UploadDatasetRequest(header=header)
            for i in range(0, len(payload), CHUNK):
                yield datasets_pb2.UploadDatasetRequest(chunk=payload[i:i + CHUNK])
        return _call(self.datasets.UploadDataset, requests()).name

    def generate(self, kind="linear", examples=1000, split="train", seed=1, **spec):
        s = datasets_pb2.GeneratorSpec(kind="KIND_" + kind.upper(), split="SPLIT_" + split.upper(),
                                       num_examples=examples, seed=seed, **spec)
        return _call(self.datasets.CreateGeneratedDataset,
                     datasets_pb2.CreateGeneratedDatasetRequest(spec=s), timeout=self.timeout).name

    def list_datasets(self):
        out, token = [], ""
        while True:
            r = _call(self.datasets.ListDatasets, datasets_pb2.ListDatasetsRequest(page_token=token),
                      timeout=self.timeout)
            out += list(r.datasets)
            token = r.next_page_token
            if not token:
                return out

    # ---- sessions ----------------------------------------------------------------------
    def create_session(self, dataset, sizes, rule="fa", eval_dataset="", name="", config=None,
                       snapshot_every=0, hidden=None, output=None, loss=None, **fields):
        """Creates a session. `config` is a TrainingConfig as a dict (JSON names); the keyword
        arguments set the common fields: sizes, rule, hidden/output activations, loss, and any
        top-level TrainingConfig field (batch_size, epochs, max_steps, seed, metrics_every, ...)."""
        c = config_pb2.TrainingConfig()
        if config:
            json_format.ParseDict(config, c)
        c.network.sizes[:] = list(sizes)
        c.feedback.rule = config_pb2.Rule.Value(_RULES.get(rule, rule))
        if hidden:
            c.network.hidden_activation = config_pb2.Activation.Value("ACTIVATION_" + hidden.upper())
        if output:
            c.network.output_activation = config_pb2.Activation.Value("ACTIVATION_" + output.upper())
        if loss:
            c.network.loss = config_pb2.Loss.Value("LOSS_" + {"mse": "SQUARED_ERROR"}.get(loss, loss).upper())
        lr = fields.pop("learning_rate", None)
        if lr is not None:
            c.optimizer.learning_rate = lr
        for k, v in fields.items():
            setattr(c, k, v)
        req = sessions_pb2.CreateSessionRequest(train_dataset=_name(dataset), eval_dataset=eval_dataset and _name(eval_dataset),
                                                display_name=name, config=c, snapshot_every=snapshot_every)
        return _call(self.training.CreateSession, req, timeout=self.timeout)

    def get(self, session):
        return _call(self.training.GetSession, sessions_pb2.GetSessionRequest(name=_name(session)), timeout=self.timeout)

    def list_sessions(self, state=None, page_size=0):
        out, token = [], ""
        while True:
            r = _call(self.training.ListSessions,
                      sessions_pb2.ListSessionsRequest(state=state or 0, page_size=page_size, page_token=token),
                      timeout=self.timeout)
            out += list(r.sessions)
            token = r.next_page_token
            if not token:
                return out

    def pause(self, session):
        return _call(self.training.PauseSession, sessions_pb2.PauseSessionRequest(name=_name(session)), timeout=self.timeout)

    def resume(self, session):
        return _call(self.training.ResumeSession, sessions_pb2.ResumeSessionRequest(name=_name(session)), timeout=self.timeout)

    def cancel(self, session):
        return _call(self.training.CancelSession, sessions_pb2.CancelSessionRequest(name=_name(session)), timeout=self.timeout)

    def delete(self, session):
        _call(self.training.DeleteSession, sessions_pb2.DeleteSessionRequest(name=_name(session)), timeout=self.timeout)

    def metrics(self, session, start_seq=0, follow=True, retries=10):
        """Yields the session's metric events as dicts, from start_seq, following it live until it
        ends (follow=False: stored history only). The last one has "end" with the session record.
        A dropped connection is resumed from the last seq, at most `retries` times in a row."""
        next_seq, failures = max(1, start_seq), 0
        while True:
            req = sessions_pb2.StreamMetricsRequest(name=_name(session), start_seq=next_seq, history_only=not follow)
            try:
                for e in self.training.StreamMetrics(req):
                    failures = 0
                    which = e.WhichOneof("event")
                    if which == "heartbeat":
                        continue
                    d = json_format.MessageToDict(e, preserving_proto_field_name=True)
                    d["seq"] = e.seq
                    if which in ("step", "eval"):
                        next_seq = e.seq + 1
                    yield d
                    if which == "end":
                        return
                return
            except grpc.RpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED) or failures >= retries:
                    raise AligndError(err) from None
                failures += 1
                time.sleep(min(5.0, 0.1 * 2 ** failures))

    def history(self, session, max_points=0):
        """The stored metric log as a list of dicts (downsampled to max_points step events if > 0)."""
        out, token = [], ""
        while True:
            r = _call(self.training.ListMetrics, sessions_pb2.ListMetricsRequest(
                name=_name(session), page_token=token, max_points=max_points), timeout=self.timeout)
            out += [json_format.MessageToDict(e, preserving_proto_field_name=True) for e in r.events]
            token = r.next_page_token
            if not token:
                return out

    def snapshot(self, session, step=None):
        """The weights as {"W0": (out, in) array, "b0": (out, 1), "B1": (hidden, out) ...}; the latest
        unless `step` is given. Matrices without entries are left out."""
        name = _name(session)
        if "/snapshots/" not in name:
            name += "/snapshots/" + (str(step) if step is not None else "latest")
        header, values = None, []
        for chunk in _call(lambda: list(self.training.GetSnapshot(sessions_pb2.GetSnapshotRequest(name=name)))):
            if chunk.WhichOneof("part") == "header":
                header = chunk.header
            else:
                values.append(np.asarray(chunk.values.data, dtype=np.float32))
        flat = np.concatenate(values) if values else np.zeros(0, np.float32)
        out, off = {}, 0
        for s in header.shapes:
            n = s.rows * s.cols
            if n:
                out[s.label] = flat[off:off + n].reshape(s.cols, s.rows).T.copy()  # column-major on the wire
            off += n
        out["step"] = header.step
        return out

    def evaluate(self, session, dataset=""):
        """Loss and accuracy/error (labels) or NSE (float targets) of the latest weights, or of a
        snapshot ("sessions/{id}/snapshots/{step}"), on a data set (default: the session's
        evaluation set, else its training set)."""
        r = _call(self.training.Evaluate, sessions_pb2.EvaluateRequest(name=_name(session), dataset=dataset and _name(dataset)),
                  timeout=self.timeout)
        return json_format.MessageToDict(r.metrics, preserving_proto_field_name=True)

    def list_snapshots(self, session):
        out, token = [], ""
        while True:
            r = _call(self.training.ListSnapshots, sessions_pb2.ListSnapshotsRequest(name=_name(session), page_token=token),
                      timeout=self.timeout)
            out += [e.step for e in r.snapshots]
            token = r.next_page_token
            if not token:
                return out

    def predict(self, session, x):
        """Network outputs for inputs x (n, d) as an (n, out) array."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        t = sessions_pb2.Tensor(rows=x.shape[1], cols=x.shape[0], values=x.reshape(-1).tolist())
        r = _call(self.training.Predict, sessions_pb2.PredictRequest(name=_name(session), inputs=t), timeout=self.timeout)
        return np.asarray(r.outputs.values, dtype=np.float32).reshape(r.outputs.cols, r.outputs.rows)
