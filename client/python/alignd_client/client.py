"""The alignd client: typed methods over the generated gRPC stubs, results as Python values."""
from __future__ import annotations

import hashlib
import os
import pathlib
import socket
import ssl
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import Message

from ._convert import _varint, packed_floats, request_with_tensor, tensor_to_numpy, to_python
from ._pb.alignd.health.v1 import health_pb2, health_pb2_grpc
from ._pb.alignd.v1 import (config_pb2, datasets_pb2, datasets_pb2_grpc, experiments_pb2, experiments_pb2_grpc,
                           sessions_pb2, sessions_pb2_grpc)
from .layers import LayersArg, to_layer_specs
from .payload import chunk_views, payload_parts

CHUNK = 1 << 20

# A resource: its name ("sessions/abc"), its bare id ("abc"), or a dict with "name".
Resource = Union[str, Mapping[str, Any]]


def rule_names() -> Dict[str, str]:
    """Short rule name -> enum name ({"fa": "RULE_FEEDBACK_ALIGNMENT", ...}), read from the Rule
    enum's rule_name option in config.proto: the one table the server and alignctl use too."""
    out = {}
    for v in config_pb2.Rule.DESCRIPTOR.values:
        short = v.GetOptions().Extensions[config_pb2.rule_name]
        if short:
            out[short] = v.name
    return out



def upload_requests(header: Message, parts: List[memoryview], size: int) -> Iterator[bytes]:
    """UploadDataset's requests, serialized: the header, the payload `parts` in chunks of `size`
    bytes, then the payload's SHA-256, hashed as the chunks go. A chunk's request is written
    straight from the parts' views (field 2, its length, the bytes: one copy of the payload)
    rather than built as a message and serialized (three copies)."""
    yield datasets_pb2.UploadDatasetRequest(header=header).SerializeToString()
    digest = hashlib.sha256()
    for views in chunk_views(parts, size):
        for v in views:
            digest.update(v)
        yield b"".join([b"\x12", _varint(sum(len(v) for v in views)), *views])
    yield datasets_pb2.UploadDatasetRequest(sha256=digest.hexdigest()).SerializeToString()

class AligndError(Exception):
    """A failed call: .code is the grpc.StatusCode, str() the code and the server's message."""

    def __init__(self, err: grpc.RpcError):
        self.code = err.code()
        self.details = err.details()
        self.hint = ""  # for a TLS connection that failed: why (diagnose_tls)
        super().__init__(f"{self.code.name}: {self.details}")


def _safetensors(weights: Union[None, bytes, str, Mapping[str, np.ndarray]]) -> bytes:
    """Initial weights as a safetensors file: bytes as they are, a path read, or arrays (as
    read_snapshot gives them) written in the format (float32, C order, header padded to 8)."""
    if weights is None:
        return b""
    if isinstance(weights, (bytes, bytearray, memoryview)):
        data = bytes(weights)
    elif isinstance(weights, (str, os.PathLike)):
        data = _read(str(weights), "initial_weights")
    else:
        data = b""
    if isinstance(weights, (bytes, bytearray, memoryview, str, os.PathLike)):
        if not data:
            raise ValueError("initial_weights is empty: give a safetensors file")
        return data
    header: Dict[str, Any] = {}
    parts = []
    offset = 0
    for name, array in weights.items():
        if name in ("step", "layer_kinds"):
            continue
        a = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        parts.append(a.tobytes())
        offset += a.nbytes
    import json
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(parts)


def _env(name: str) -> Optional[str]:
    v = os.environ.get(name)
    return v if v else None


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{what} {path}: cannot read it ({e.strerror})") from None


def diagnose_tls(address: str, ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None, server_name: Optional[str] = None) -> str:
    """Why a TLS connection to `address` fails, in a sentence (our own handshake with Python's
    ssl module: an unverifiable or expired server certificate, a wrong host name, a server that
    wants a client certificate or speaks no TLS); "" if the handshake succeeds."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2"])
    if cert:
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            return f"cert {cert} / key {key}: cannot be used ({e})"
    try:
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name or host) as tls:
                tls.settimeout(3)
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                try:
                    tls.recv(16)
                except ssl.SSLError as e:
                    if "CERTIFICATE_REQUIRED" in str(e) or "certificate required" in str(e):
                        return "the server wants a client certificate (mTLS): give cert and key"
                    return f"the server refused our certificate: {e.reason}"
                except socket.timeout:
                    pass
    except ssl.SSLCertVerificationError as e:
        against = f"ca {ca}" if ca else "this system's CAs"
        return f"the server's certificate does not verify against {against}: {e.verify_message}"
    except ssl.SSLError as e:
        if e.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            return f"the server at {address} does not speak TLS (plaintext alignd?): drop tls"
        if cert is None and e.reason in ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_HANDSHAKE_FAILURE"):
            return "the server wants a client certificate (mTLS): give cert and key"
        return f"TLS handshake failed: {e.reason or e}"
    except OSError:
        return ""
    return ""


def _name(x: Resource, collection: str) -> str:
    name = x if isinstance(x, str) else x["name"]
    return name if name.startswith(collection + "/") else f"{collection}/{name}"


def _enum(enum, prefix: str, value: str) -> int:
    name = value if value.startswith(prefix) else prefix + value.upper().replace("-", "_")
    return enum.Value(name)


class Client:
    """A connection to alignd. Use it as a context manager, or call close()."""

    def __init__(self, address: str = "localhost:50051", timeout: float = 30.0, *,
                 tls: Optional[bool] = None, ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None, token: Optional[str] = None,
                 server_name: Optional[str] = None):
        """Connects to alignd at `address`. Security (docs/DEPLOY.md), each defaulting to its
        environment variable as alignctl's does: tls (ALIGND_TLS; implied by ca, cert, key), ca
        (ALIGND_CA: PEM bundle the server's certificate must chain to; default the system's),
        cert and key (ALIGND_CERT, ALIGND_KEY: a client certificate for mTLS), token
        (ALIGND_TOKEN, or the first line of the file ALIGND_TOKEN_FILE names), server_name (the
        name the server's certificate must hold, when `address` is not one it does)."""
        self.address = address
        self._ca = ca if ca is not None else _env("ALIGND_CA")
        self._cert = cert if cert is not None else _env("ALIGND_CERT")
        self._key = key if key is not None else _env("ALIGND_KEY")
        self._server_name = server_name
        if token is None:
            token = _env("ALIGND_TOKEN")
            if token is None and _env("ALIGND_TOKEN_FILE"):
                token = _read(os.environ["ALIGND_TOKEN_FILE"], "ALIGND_TOKEN_FILE").decode().splitlines()[0].strip()
        if tls is None:
            tls = _env("ALIGND_TLS") not in (None, "0")
        self.tls = bool(tls or self._ca or self._cert or self._key)
        options = [("grpc.max_receive_message_length", 64 << 20)]
        if not self.tls:
            if token:
                raise ValueError("a token is sent over TLS only: pass tls=True (and ca= if the server's "
                                 "certificate is not signed by a CA of this system)")
            self.channel = grpc.insecure_channel(address, options=options)
        else:
            if bool(self._cert) != bool(self._key):
                raise ValueError("cert and key go together (mTLS)")
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(self._ca, "ca") if self._ca else None,
                private_key=_read(self._key, "key") if self._key else None,
                certificate_chain=_read(self._cert, "cert") if self._cert else None)
            if token:
                creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            self.channel = grpc.secure_channel(address, creds, options=options)
        self._datasets = datasets_pb2_grpc.DatasetServiceStub(self.channel)
        self._training = sessions_pb2_grpc.TrainingServiceStub(self.channel)
        self._experiments = experiments_pb2_grpc.ExperimentServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self._upload_raw = self.channel.stream_unary(
            "/alignd.v1.DatasetService/UploadDataset", request_serializer=lambda b: b,
            response_deserializer=datasets_pb2.Dataset.FromString)
        self._predict_raw = self.channel.unary_unary(
            "/alignd.v1.TrainingService/Predict", request_serializer=lambda b: b,
            response_deserializer=sessions_pb2.PredictResponse.FromString)
        self.timeout = timeout

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as e:
            err = AligndError(e)
            if err.code == grpc.StatusCode.UNAVAILABLE and self.tls:
                why = diagnose_tls(self.address, self._ca, self._cert, self._key, self._server_name)
                if why:
                    err.hint = why
                    err.args = (f"{err.args[0]} (TLS: {why})",)
            raise err from None

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Blocks until the channel is connected (grpc.FutureTimeoutError after `timeout`)."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def health(self) -> str:
        """"SERVING" or "NOT_SERVING"."""
        r = self._call(self._health.Check, health_pb2.HealthCheckRequest(), timeout=self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    # ---- data sets ---------------------------------------------------------------------
    def upload_dataset(self, x: np.ndarray, y: np.ndarray, name: str = "",
                       classification: Optional[bool] = None,
                       num_classes: Optional[int] = None) -> Dict[str, Any]:
        """Uploads features x (n, ...) and targets y: (n,) integer labels or (n, k) floats, in
        1 MiB chunks, then the payload's SHA-256 (hashed as the chunks go, so the arrays are
        read once; a second hashing thread measured slower on two cores). The same content
        twice is one data set."""
        fields, parts = payload_parts(x, y, classification, num_classes, digest=False)
        header = datasets_pb2.DatasetHeader(display_name=name, **fields)
        return to_python(self._call(self._upload_raw, upload_requests(header, parts, CHUNK)))

    def generate_dataset(self, kind: str = "linear", examples: int = 1000, split: str = "train",
                         seed: int = 1, name: str = "", **spec: Any) -> Dict[str, Any]:
        """A built-in task's data set (kind: linear, nonlinear, toy; spec: input_dim, output_dim,
        noise)."""
        s = datasets_pb2.GeneratorSpec(kind=_enum(datasets_pb2.GeneratorSpec.Kind, "KIND_", kind),
                                       split=_enum(datasets_pb2.GeneratorSpec.Split, "SPLIT_", split),
                                       num_examples=examples, seed=seed, **spec)
        req = datasets_pb2.CreateGeneratedDatasetRequest(spec=s, display_name=name)
        return to_python(self._call(self._datasets.CreateGeneratedDataset, req, timeout=self.timeout))

    def get_dataset(self, dataset: Resource) -> Dict[str, Any]:
        req = datasets_pb2.GetDatasetRequest(name=_name(dataset, "datasets"))
        return to_python(self._call(self._datasets.GetDataset, req, timeout=self.timeout))

    def list_datasets(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        token = ""
        while True:
            r = self._call(self._datasets.ListDatasets, datasets_pb2.ListDatasetsRequest(page_token=token),
                      timeout=self.timeout)
            out += [to_python(d) for d in r.datasets]
            token = r.next_page_token
            if not token:
                return out

    def delete_dataset(self, dataset: Resource) -> None:
        req = datasets_pb2.DeleteDatasetRequest(name=_name(dataset, "datasets"))
        self._call(self._datasets.DeleteDataset, req, timeout=self.timeout)

    # ---- sessions ----------------------------------------------------------------------
    def create_session(self, dataset: Resource, sizes: Optional[Sequence[int]] = None, rule: str = "fa",
                       eval_dataset: Optional[Resource] = None, name: str = "",
                       config: Optional[Mapping[str, Any]] = None, snapshot_every: int = 0,
                       hidden: Optional[str] = None, output: Optional[str] = None,
                       loss: Optional[str] = None, learning_rate: Optional[float] = None,
                       session_id: str = "", request_id: str = "", checkpoint_every: Optional[int] = None,
                       layers: Optional[LayersArg] = None, input_shape: Optional[Sequence[int]] = None,
                       sign_mode: Optional[str] = None, labels: Optional[Mapping[str, str]] = None,
                       initial_weights: Union[None, bytes, str, Mapping[str, np.ndarray]] = None,
                       **fields: Any) -> Dict[str, Any]:
        """Creates and queues a session. `config` is a TrainingConfig as a dict (proto field
        names); the keyword arguments set the common fields over it: sizes (dense layers' widths,
        input first) or layers (a list of dicts, {"kind": "conv", "channels": 6, "kernel": 5},
        {"kind": "pool", "window": 2}, {"kind": "dense", "units": 10}, ..., or the compact string
        "conv:6x5x5,pool:2,dense:10": see alignd_client.layers; the server derives the sizes),
        input_shape ((channels, height, width); default: the data set's feature shape), rule ("fa" or
        "RULE_FEEDBACK_ALIGNMENT"), hidden/output activations, loss, learning_rate, and any
        top-level TrainingConfig field (batch_size, epochs, max_steps, seed, metrics_every,
        validation_fraction, ...). checkpoint_every: steps between checkpoints (default: the
        server's --checkpoint_every). labels: {"study": "depth", ...}, to find it by
        (list_sessions(filter='labels.study = "depth"')). initial_weights: weights to start
        from instead of the drawn ones: a safetensors file's bytes or path (as export_session
        writes them), or {"W0": array, "b0": ..., "B1": ...} shaped as read_snapshot gives
        them (any subset; the rest are drawn from the seed)."""
        c = config_pb2.TrainingConfig()
        if config:
            json_format.ParseDict(dict(config), c)
        # layers replaces the config's network (the server derives sizes); sizes alone replaces it
        # with dense layers. Empty sizes ([]) count as not given: a config's layers stay.
        sizes = list(sizes) if sizes is not None else []
        if layers is not None:
            del c.network.layers[:]
            c.network.layers.extend(to_layer_specs(layers))
            if not sizes:
                del c.network.sizes[:]
        if sizes:
            c.network.sizes[:] = sizes
            if layers is None:
                del c.network.layers[:]
        if input_shape is not None:
            shape = tuple(int(v) for v in input_shape)
            if len(shape) == 2:
                shape = (1,) + shape
            if len(shape) != 3:
                raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}")
            c.network.input_shape.CopyFrom(config_pb2.ImageShape(channels=shape[0], height=shape[1], width=shape[2]))
        if not c.network.sizes and not c.network.layers:
            raise ValueError("give sizes (e.g. [784, 1000, 10]) or layers")
        if sign_mode:
            mode = {"usf": "uniform", "frsf": "fixed_random", "brsf": "batch_random"}.get(sign_mode, sign_mode)
            c.feedback.sign_mode = _enum(config_pb2.SignSymmetryMode, "SIGN_SYMMETRY_MODE_", mode)
        c.feedback.rule = config_pb2.Rule.Value(rule_names().get(rule, rule))
        if hidden:
            c.network.hidden_activation = _enum(config_pb2.Activation, "ACTIVATION_", hidden)
        if output:
            c.network.output_activation = _enum(config_pb2.Activation, "ACTIVATION_", output)
        if loss:
            c.network.loss = _enum(config_pb2.Loss, "LOSS_", {"mse": "squared_error"}.get(loss, loss))
        if learning_rate is not None:
            c.optimizer.learning_rate = learning_rate
        for k, v in fields.items():
            setattr(c, k, v)
        s = sessions_pb2.Session(train_dataset=_name(dataset, "datasets"), display_name=name, config=c,
                                 snapshot_every=snapshot_every, labels=dict(labels or {}))
        if eval_dataset:
            s.eval_dataset = _name(eval_dataset, "datasets")
        if checkpoint_every is not None:
            s.checkpoint_every = checkpoint_every
        req = sessions_pb2.CreateSessionRequest(session=s, session_id=session_id, request_id=request_id,
                                                initial_weights=_safetensors(initial_weights))
        return to_python(self._call(self._training.CreateSession, req, timeout=self.timeout))

    def get_session(self, session: Resource) -> Dict[str, Any]:
        req = sessions_pb2.GetSessionRequest(name=_name(session, "sessions"))
        return to_python(self._call(self._training.GetSession, req, timeout=self.timeout))

    def list_sessions(self, state: Optional[str] = None, page_size: int = 0,
                      filter: str = "") -> List[Dict[str, Any]]:
        """Every session (or those in `state`: "running" or "SESSION_STATE_RUNNING"), by name;
        `filter` keeps those it matches (AIP-160, as the server documents it on
        ListSessionsRequest.filter): 'labels.study = "depth" AND (rule = fa OR rule = bp)'."""
        st = _enum(sessions_pb2.SessionState, "SESSION_STATE_", state) if state else 0
        out: List[Dict[str, Any]] = []
        token = ""
        while True:
            r = self._call(self._training.ListSessions,
                      sessions_pb2.ListSessionsRequest(state=st, page_size=page_size, page_token=token,
                                                       filter=filter),
                      timeout=self.timeout)
            out += [to_python(s) for s in r.sessions]
            token = r.next_page_token
            if not token:
                return out

    def pause_session(self, session: Resource) -> Dict[str, Any]:
        req = sessions_pb2.PauseSessionRequest(name=_name(session, "sessions"))
        return to_python(self._call(self._training.PauseSession, req, timeout=self.timeout))

    def resume_session(self, session: Resource) -> Dict[str, Any]:
        req = sessions_pb2.ResumeSessionRequest(name=_name(session, "sessions"))
        return to_python(self._call(self._training.ResumeSession, req, timeout=self.timeout))

    def cancel_session(self, session: Resource) -> Dict[str, Any]:
        req = sessions_pb2.CancelSessionRequest(name=_name(session, "sessions"))
        return to_python(self._call(self._training.CancelSession, req, timeout=self.timeout))

    def delete_session(self, session: Resource) -> None:
        req = sessions_pb2.DeleteSessionRequest(name=_name(session, "sessions"))
        self._call(self._training.DeleteSession, req, timeout=self.timeout)

    # ---- metrics -----------------------------------------------------------------------
    def stream_metrics(self, session: Resource, start_seq: int = 0, follow: bool = True,
                       retries: int = 10) -> Iterator[Dict[str, Any]]:
        """The session's metric events from start_seq, following it live until it ends
        (follow=False: the stored history only). The last one has "end" with the session. A
        dropped connection is resumed from the last seq, at most `retries` times in a row."""
        parent = _name(session, "sessions")
        next_seq, failures = max(1, start_seq), 0
        while True:
            req = sessions_pb2.StreamMetricsRequest(parent=parent, start_seq=next_seq, history_only=not follow)
            try:
                for e in self._training.StreamMetrics(req):
                    failures = 0
                    which = e.WhichOneof("event")
                    if which == "heartbeat":
                        continue
                    if which in ("step", "eval"):
                        next_seq = e.seq + 1
                    yield to_python(e)
                    # After "end" the server closes the stream with OK: read to that status
                    # rather than cancel the call (alignd counts it as a stream that ended).
                return
            except grpc.RpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED) or failures >= retries:
                    raise AligndError(err) from None
                failures += 1
                time.sleep(min(5.0, 0.1 * 2 ** failures))

    def list_metrics(self, session: Resource, max_points: int = 0, start_seq: int = 0) -> List[Dict[str, Any]]:
        """The stored metric log (downsampled to max_points step events if > 0)."""
        parent = _name(session, "sessions")
        out: List[Dict[str, Any]] = []
        token = ""
        while True:
            r = self._call(self._training.ListMetrics, sessions_pb2.ListMetricsRequest(
                parent=parent, page_token=token, max_points=max_points, start_seq=start_seq),
                timeout=self.timeout)
            out += [to_python(e) for e in r.events]
            token = r.next_page_token
            if not token:
                return out

    # ---- snapshots ---------------------------------------------------------------------
    @staticmethod
    def _snapshot_name(session: Resource, step: Optional[int]) -> str:
        name = _name(session, "sessions")
        if "/snapshots/" not in name:
            name += "/snapshots/" + (str(step) if step is not None else "latest")
        return name

    def list_snapshots(self, session: Resource) -> List[Dict[str, Any]]:
        """The stored snapshots: name, step, create_time."""
        parent = _name(session, "sessions")
        out: List[Dict[str, Any]] = []
        token = ""
        while True:
            r = self._call(self._training.ListSnapshots,
                      sessions_pb2.ListSnapshotsRequest(parent=parent, page_token=token), timeout=self.timeout)
            out += [to_python(s) for s in r.snapshots]
            token = r.next_page_token
            if not token:
                return out

    def get_snapshot(self, session: Resource, step: Optional[int] = None) -> Dict[str, Any]:
        """A snapshot's metadata: name, step, epoch, shapes, total_values, create_time."""
        req = sessions_pb2.GetSnapshotRequest(name=self._snapshot_name(session, step))
        return to_python(self._call(self._training.GetSnapshot, req, timeout=self.timeout))

    def read_snapshot(self, session: Resource, step: Optional[int] = None) -> Dict[str, Any]:
        """The weights as {"W0": (out, in) array, "b0": (out, 1), "B1": ..., "step": int,
        "layer_kinds": ["LAYER_KIND_CONV", ...]}; the latest unless `step` is given. A conv
        layer's kernel (W, and B where B is shaped like it) is a 4-D (out channels, in channels,
        kernel_h, kernel_w) array, PyTorch's Conv2d weight layout. Tensors without entries (the
        first layer's B, pooling layers) are left out."""
        req = sessions_pb2.ReadSnapshotRequest(name=self._snapshot_name(session, step))
        header, parts = None, []
        for chunk in self._call(lambda: list(self._training.ReadSnapshot(req))):
            if chunk.WhichOneof("part") == "header":
                header = chunk.header
            else:
                parts.append(packed_floats(chunk.values.SerializeToString(), 2))
        flat = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        out: Dict[str, Any] = {}
        off = 0
        for s in header.shapes:
            n = s.rows * s.cols
            if n:
                if len(s.dims) == 4:  # a kernel: C order of its dims on the wire
                    out[s.label] = flat[off:off + n].reshape(tuple(s.dims)).copy()
                else:  # a matrix: column-major on the wire
                    out[s.label] = flat[off:off + n].reshape(s.cols, s.rows).T.copy()
            off += n
        out["step"] = int(header.step)
        out["layer_kinds"] = [config_pb2.LayerKind.Name(k) for k in header.layer_kinds]
        return out

    _EXPORT_FORMATS = {"csv": "EXPORT_FORMAT_CSV", "jsonl": "EXPORT_FORMAT_JSONL",
                       "tfevents": "EXPORT_FORMAT_TFEVENTS", "json": "EXPORT_FORMAT_SESSION_JSON",
                       "safetensors": "EXPORT_FORMAT_SAFETENSORS", "onnx": "EXPORT_FORMAT_ONNX"}

    def export_session(self, session: Resource, format: str, path: Optional[str] = None,
                       step: Optional[int] = None) -> Union[bytes, str]:
        """A session as a file other tools read (the server makes it, as for alignctl and the
        dashboard): `format` is "csv" or "jsonl" (the metric log; the session's config is the
        "json" export), "tfevents" (a TensorBoard event file), "json" (the session),
        "safetensors" or "onnx" (the latest weights, or the snapshot at `step`).

        Without `path`, returns the bytes. With `path`, writes them there whole or not at all
        and returns the path written: a folder `path` gets the server's file name inside it
        (for tfevents put each session in a folder of its own and point
        `tensorboard --logdir` at their parent)."""
        if format not in self._EXPORT_FORMATS:
            raise ValueError(f"format {format!r}: one of {', '.join(self._EXPORT_FORMATS)}")
        if step is not None and format not in ("safetensors", "onnx"):
            raise ValueError("step is for the weights formats (safetensors, onnx)")
        req = sessions_pb2.ExportSessionRequest(
            name=_name(session, "sessions"),
            format=sessions_pb2.ExportFormat.Value(self._EXPORT_FORMATS[format]),
            snapshot="" if step is None else self._snapshot_name(session, step))
        chunks = self._call(lambda: list(self._training.ExportSession(req)))  # a stream: no deadline
        data = b"".join(c.data for c in chunks)
        if path is None:
            return data
        target = pathlib.Path(path)
        if target.is_dir() or str(path).endswith(("/", os.sep)):
            name = chunks[0].filename if chunks else ""
            if not name or "/" in name or name in (".", ".."):
                raise RuntimeError("the export arrived without a usable file name")
            target = target / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return str(target)

    # ---- experiments ------------------------------------------------------------------
    def create_experiment(self, dataset: Resource, config: Mapping[str, Any], rules: Sequence[str] = (),
                          seeds: Sequence[int] = (), grid: Optional[Mapping[str, Sequence[Any]]] = None,
                          eval_dataset: Optional[Resource] = None, name: str = "",
                          labels: Optional[Mapping[str, str]] = None, request_id: str = "",
                          experiment_id: str = "", snapshot_every: int = 0,
                          variants: Sequence[Mapping[str, Any]] = (),
                          early_stopping: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Creates an experiment: a session per rule x grid point x seed, grouped by all but the
        seed. `config` is the base TrainingConfig as a dict (proto names); `grid` maps field
        paths to values: {"optimizer.learning_rate": [0.01, 0.03]}; `variants`, in place of
        `rules`, are rules with fields set for them: [{"rule": "bp", "set":
        {"optimizer.learning_rate": 0.2}}, {"rule": "pbp", "name": "damped", "set":
        {"feedback.pinv_damping": 0.01}}]; `early_stopping` is
        {"asha": {"min_steps": 100, "reduction_factor": 3}} or {"median": {"grace_steps": 500}}."""
        from google.protobuf import struct_pb2
        e = experiments_pb2.Experiment(train_dataset=_name(dataset, "datasets"), display_name=name,
                                       labels=dict(labels or {}), snapshot_every=snapshot_every)
        json_format.ParseDict(dict(config), e.config)
        if eval_dataset:
            e.eval_dataset = _name(eval_dataset, "datasets")
        e.rules.extend(config_pb2.Rule.Value(rule_names().get(r, r)) for r in rules)
        e.seeds.extend(int(s) for s in seeds)
        for field, values in (grid or {}).items():
            axis = e.grid.add(field=field)
            for v in values:
                axis.values.append(json_format.ParseDict(v, struct_pb2.Value()))
        for v in variants:
            rule = v["rule"]
            var = e.variants.add(rule=config_pb2.Rule.Value(rule_names().get(rule, rule)),
                                 name=v.get("name", ""))
            for field, value in v.get("set", {}).items():
                var.set[field].CopyFrom(json_format.ParseDict(value, struct_pb2.Value()))
        if early_stopping:
            json_format.ParseDict(dict(early_stopping), e.early_stopping)
        req = experiments_pb2.CreateExperimentRequest(experiment=e, request_id=request_id,
                                                      experiment_id=experiment_id)
        return to_python(self._call(self._experiments.CreateExperiment, req, timeout=self.timeout))

    def get_experiment(self, experiment: Resource) -> Dict[str, Any]:
        req = experiments_pb2.GetExperimentRequest(name=_name(experiment, "experiments"))
        return to_python(self._call(self._experiments.GetExperiment, req, timeout=self.timeout))

    def list_experiments(self, filter: str = "", page_size: int = 0) -> List[Dict[str, Any]]:
        """Every experiment `filter` matches (all of them without one), by name, page after page
        (page_size per call; 0: the server's default). The filter is AIP-160 as for
        list_sessions, on the experiment's labels.KEY, rule (any of its rules), state (running,
        succeeded, cancelled), name, display_name, train_dataset, eval_dataset and owner:
        'labels.study = "lr" AND state = succeeded'. A filter the server cannot read raises
        AligndError (INVALID_ARGUMENT, saying what and where)."""
        out: List[Dict[str, Any]] = []
        token = ""
        while True:
            r = self._call(self._experiments.ListExperiments,
                           experiments_pb2.ListExperimentsRequest(page_size=page_size, page_token=token,
                                                                  filter=filter),
                           timeout=self.timeout)
            out += [to_python(e) for e in r.experiments]
            token = r.next_page_token
            if not token:
                return out

    def cancel_experiment(self, experiment: Resource) -> Dict[str, Any]:
        """Cancels every session of the experiment that has not ended; it ends CANCELLED."""
        req = experiments_pb2.CancelExperimentRequest(name=_name(experiment, "experiments"))
        return to_python(self._call(self._experiments.CancelExperiment, req, timeout=self.timeout))

    def delete_experiment(self, experiment: Resource) -> None:
        """Deletes the experiment and its sessions (FAILED_PRECONDITION while any runs)."""
        req = experiments_pb2.DeleteExperimentRequest(name=_name(experiment, "experiments"))
        self._call(self._experiments.DeleteExperiment, req, timeout=self.timeout)

    def experiment_statistics(self, experiment: Resource, figures: Sequence[str] = (),
                              every_steps: int = 0) -> Dict[str, Dict[str, Dict[str, np.ndarray]]]:
        """{group id: {figure: {"step", "n", "mean", "sd", "ci_low", "ci_high": ndarray}}} and,
        per group, "best": {"validation": {...}, "eval_at_best": {...}, "best_steps": ndarray}."""
        req = experiments_pb2.GetExperimentStatisticsRequest(
            name=_name(experiment, "experiments"), figures=list(figures), every_steps=every_steps)
        r = self._call(self._experiments.GetExperimentStatistics, req, timeout=self.timeout)
        out: Dict[str, Any] = {}
        for g in r.groups:
            figs: Dict[str, Any] = {}
            for s in g.series:
                figs[s.figure] = {"step": np.array(s.steps, dtype=np.int64),
                                  **{k: np.array([getattr(v, k) for v in s.values],
                                                 dtype=np.int64 if k == "n" else np.float64)
                                     for k in ("n", "mean", "sd", "ci_low", "ci_high")}}
            figs["best"] = {"validation": to_python(g.best.validation),
                            "eval_at_best": to_python(g.best.eval_at_best),
                            "best_steps": np.array(g.best.best_steps, dtype=np.int64)}
            out[g.id] = figs
        return out

    def compare_groups(self, experiment: Resource, group_a: str, group_b: str,
                       figure: str = "") -> Dict[str, Any]:
        req = experiments_pb2.CompareGroupsRequest(name=_name(experiment, "experiments"), group_a=group_a,
                                                   group_b=group_b, figure=figure)
        return to_python(self._call(self._experiments.CompareGroups, req, timeout=self.timeout))

    # ---- serving -----------------------------------------------------------------------
    def predict(self, session: Resource, x: np.ndarray, step: Optional[int] = None) -> np.ndarray:
        """Network outputs for inputs x (n, d) as an (n, out) float32 array, from the latest
        weights (or the snapshot at `step`). Images may be given as (n, H, W) or (n, C, H, W)."""
        name = _name(session, "sessions") if step is None else self._snapshot_name(session, step)
        prefix = sessions_pb2.PredictRequest(name=name).SerializeToString()
        x = np.asarray(x)
        if x.ndim > 2:
            x = x.reshape(x.shape[0], -1)
        r = self._call(self._predict_raw, request_with_tensor(prefix, 2, x), timeout=self.timeout)
        return tensor_to_numpy(r.outputs)

    def list_rules(self) -> List[Dict[str, Any]]:
        """The learning rules the server trains, from its own table: name ("fa"), rule
        ("RULE_FEEDBACK_ALIGNMENT"), long_name, title, traits (learns_hidden, has_feedback,
        draws_feedback, learns_feedback, refreshes, settable, trains_conv, feedback_shape) and
        reference."""
        r = self._call(self._training.ListRules, sessions_pb2.ListRulesRequest(), timeout=self.timeout)
        return [to_python(x) for x in r.rules]

    def evaluate(self, session: Resource, dataset: Optional[Resource] = None,
                 step: Optional[int] = None) -> Dict[str, Any]:
        """Loss and accuracy/error (labels) or NSE (float targets) of the latest weights (or of the
        snapshot at `step`) on a data set (default: the session's evaluation set, else its
        training set)."""
        name = _name(session, "sessions") if step is None else self._snapshot_name(session, step)
        req = sessions_pb2.EvaluateRequest(name=name, dataset=_name(dataset, "datasets") if dataset else "")
        return to_python(self._call(self._training.Evaluate, req, timeout=self.timeout).metrics)
