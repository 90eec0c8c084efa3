"""Independent readers of the files alignd's ExportSession writes (proto/alignd/v1/sessions.proto,
enum ExportFormat), for tests. They share no code with alignd and check strictly:

  read_tfrecords(data)    TFRecord framing; every masked CRC-32C checked (crcmod's 'crc-32c')
  parse_events(records)   TensorBoard Event/Summary protos, by a hand-written wire-format decoder
  read_safetensors(data)  the published safetensors format (F32 only; holes, overlaps, sizes checked)
  check_onnx(data)        onnx's checker (full_check) and strict shape inference
  run_onnx(model, x)      a float64 NumPy evaluator of the ops alignd emits, with opset 13 semantics

Malformed input raises ValueError; an ONNX op, attribute or value run_onnx does not implement
raises NotImplementedError. Imports only NumPy, Debian's python3-onnx (1.12: no onnx.reference)
and python3-crcmod.
"""
import inspect
import json
import math
import struct

import crcmod.predefined
import numpy as np
import onnx
from onnx import helper, numpy_helper

_crc32c = crcmod.predefined.mkCrcFun("crc-32c")


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C (Castagnoli) of data."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecords(data: bytes) -> list[bytes]:
    """The payloads of TFRecord-framed data: per record a uint64 LE length, the masked CRC of
    those 8 bytes (uint32 LE), the payload, the payload's masked CRC. Raises ValueError naming the
    record on a CRC mismatch or truncation (trailing garbage is a truncated or corrupt record)."""
    records, pos = [], 0
    while pos < len(data):
        i = len(records)
        if len(data) - pos < 12:
            raise ValueError(f"record {i}: truncated length header ({len(data) - pos} bytes left)")
        head = bytes(data[pos:pos + 8])
        if struct.unpack_from("<I", data, pos + 8)[0] != masked_crc32c(head):
            raise ValueError(f"record {i}: length CRC mismatch")
        end = pos + 12 + struct.unpack("<Q", head)[0]
        if end + 4 > len(data):
            raise ValueError(f"record {i}: truncated payload")
        payload = bytes(data[pos + 12:end])
        if struct.unpack_from("<I", data, end)[0] != masked_crc32c(payload):
            raise ValueError(f"record {i}: payload CRC mismatch")
        records.append(payload)
        pos = end + 4
    return records


# --- Protobuf wire format -------------------------------------------------------------------

def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if result >> 64:
                raise ValueError("varint over 64 bits")
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")


def _field(buf, pos):
    """One field at pos: (number, wire type, value, next pos). The value is an int for a varint,
    bytes for fixed64/length-delimited/fixed32, None for a group (skipped whole) or an end-group."""
    key, pos = _varint(buf, pos)
    num, wt = key >> 3, key & 7
    if not 0 < num < 1 << 29:
        raise ValueError(f"invalid field number {num}")
    if wt == 0:
        return (num, wt, *_varint(buf, pos))
    if wt in (1, 2, 5):
        n = 8 if wt == 1 else 4 if wt == 5 else None
        if n is None:
            n, pos = _varint(buf, pos)
        if n > len(buf) - pos:
            raise ValueError(f"field {num}: runs past the end of its message")
        return num, wt, bytes(buf[pos:pos + n]), pos + n
    if wt == 3:
        while True:
            if pos >= len(buf):
                raise ValueError(f"group {num}: no end-group")
            inner, inner_wt, _, pos = _field(buf, pos)
            if inner_wt == 4:
                if inner != num:
                    raise ValueError(f"group {num} closed by end-group {inner}")
                return num, wt, None, pos
    if wt == 4:
        return num, wt, None, pos
    raise ValueError(f"field {num}: invalid wire type {wt}")


def _fields(buf):
    """Yields (number, wire type, value) for each field of a message; skips groups."""
    pos = 0
    while pos < len(buf):
        num, wt, value, pos = _field(buf, pos)
        if wt == 4:
            raise ValueError(f"end-group {num} without a group")
        if wt != 3:
            yield num, wt, value


def _want(num, wt, expected):
    if wt != expected:
        raise ValueError(f"field {num}: wire type {wt}, expected {expected}")


def _summary_values(buf):
    """(tag, simple_value) of each Summary.Value that has a simple_value."""
    for num, wt, value in _fields(buf):
        if num != 1:
            continue
        _want(num, wt, 2)
        tag, simple = "", None
        for vnum, vwt, v in _fields(value):
            if vnum == 1:
                _want(vnum, vwt, 2)
                tag = v.decode("utf-8")
            elif vnum == 2:
                _want(vnum, vwt, 5)
                simple = struct.unpack("<f", v)[0]
        if simple is not None:
            yield tag, simple


def _event(buf):
    event = {"wall_time": 0.0, "step": 0, "file_version": None, "scalars": {}}
    for num, wt, value in _fields(buf):
        if num == 1:
            _want(num, wt, 1)
            event["wall_time"] = struct.unpack("<d", value)[0]
        elif num == 2:
            _want(num, wt, 0)
            event["step"] = value - (1 << 64) if value >> 63 else value
        elif num == 3:
            _want(num, wt, 2)
            event["file_version"] = value.decode("utf-8")
        elif num == 5:
            _want(num, wt, 2)
            for tag, simple in _summary_values(value):
                if tag in event["scalars"]:
                    raise ValueError(f"tag {tag!r} twice in one event")
                event["scalars"][tag] = simple
    return event


def parse_events(records: list[bytes]) -> list[dict]:
    """Decodes each record as a TensorBoard Event: {"wall_time", "step", "file_version" (None when
    absent), "scalars": {tag: simple_value}}. Unknown fields are skipped; Values without a
    simple_value are left out. Raises ValueError naming the record on malformed wire data, a known
    field with the wrong wire type, or a tag twice in one event."""
    events = []
    for i, record in enumerate(records):
        try:
            events.append(_event(record))
        except ValueError as e:
            raise ValueError(f"record {i}: {e}") from None
    return events


# --- safetensors ----------------------------------------------------------------------------

def _ints(v):
    return isinstance(v, list) and all(isinstance(d, int) and not isinstance(d, bool) for d in v)


def _no_duplicates(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("safetensors: duplicate key in the header")
    return d


def _no_constant(name):
    raise ValueError(f"safetensors: {name} is not JSON")


def read_safetensors(data: bytes, *, require_aligned: bool = True):
    """(tensors, metadata) of a safetensors file: float32 arrays in their shapes, and __metadata__
    ({} when absent). Raises ValueError if the file breaks the spec, has a dtype other than F32,
    or (require_aligned) its header size is not a multiple of 8."""
    if len(data) < 8:
        raise ValueError("safetensors: shorter than the 8-byte header size")
    n = struct.unpack_from("<Q", data)[0]
    if n > 100_000_000 or 8 + n > len(data):
        raise ValueError(f"safetensors: header size {n} past the end of a {len(data)}-byte file")
    if require_aligned and n % 8:
        raise ValueError(f"safetensors: header size {n} is not a multiple of 8")
    raw = bytes(data[8:8 + n])
    if not raw.startswith(b"{"):
        raise ValueError("safetensors: the header does not begin with '{'")
    header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                        parse_constant=_no_constant)
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("safetensors: __metadata__ is not a map of strings to strings")
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"safetensors: {name}: want exactly dtype, shape and data_offsets")
        if info["dtype"] != "F32":
            raise ValueError(f"safetensors: {name}: dtype {info['dtype']!r} is not supported")
        shape, offsets = info["shape"], info["data_offsets"]
        if not _ints(shape) or min(shape, default=0) < 0:
            raise ValueError(f"safetensors: {name}: bad shape {shape!r}")
        if not _ints(offsets) or len(offsets) != 2 or not 0 <= offsets[0] <= offsets[1]:
            raise ValueError(f"safetensors: {name}: bad data_offsets {offsets!r}")
        if offsets[1] - offsets[0] != 4 * math.prod(shape):
            raise ValueError(f"safetensors: {name}: {offsets[1] - offsets[0]} bytes for shape {shape}")
        spans.append((offsets[0], offsets[1], name, shape))
    buffer = memoryview(data)[8 + n:]
    at = 0
    for begin, end, name, _ in sorted(spans):
        if begin != at:
            what = "a hole in the buffer" if begin > at else "overlaps the tensors before it"
            raise ValueError(f"safetensors: {name} begins at {begin}, the tensors before it end at "
                             f"{at}: {what}")
        at = end
    if at != len(buffer):
        raise ValueError(f"safetensors: the tensors cover {at} bytes of a {len(buffer)}-byte buffer")
    tensors = {name: np.frombuffer(buffer, "<f4", (end - begin) // 4, begin).reshape(shape)
               .astype(np.float32) for begin, end, name, shape in spans}
    return tensors, metadata


# --- ONNX -----------------------------------------------------------------------------------

def check_onnx(data: bytes):
    """Loads an ONNX model, runs the full checker and strict shape inference; returns the model."""
    model = onnx.load_model_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    return model


_OPS = {}  # op type -> (the attributes it may have, fn(attributes, *inputs) -> output)


def _op(name, *attributes):
    def register(fn):
        _OPS[name] = (set(attributes), fn)
        return fn
    return register


_op("Identity")(lambda at, x: x)
_op("Relu")(lambda at, x: np.maximum(x, 0.0))
_op("Tanh")(lambda at, x: np.tanh(x))
_op("Sigmoid")(lambda at, x: 0.5 * (1.0 + np.tanh(0.5 * x)))  # 1/(1+e^-x), without overflow


@_op("Softmax", "axis")
def _softmax(at, x):
    axis = at.get("axis", -1)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"Softmax: axis {axis} of a rank-{x.ndim} input")
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@_op("Gemm", "alpha", "beta", "transA", "transB")
def _gemm(at, a, b, c=None):
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError("Gemm: A and B must be matrices")
    a, b = (a.T if at.get("transA", 0) else a), (b.T if at.get("transB", 0) else b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"Gemm: {a.shape} x {b.shape}")
    y = at.get("alpha", 1.0) * (a @ b)
    if c is not None:
        if np.broadcast_shapes(c.shape, y.shape) != y.shape:
            raise ValueError(f"Gemm: C {c.shape} does not broadcast to {y.shape}")
        y = y + at.get("beta", 1.0) * c
    return y


@_op("Reshape", "allowzero")
def _reshape(at, x, shape):
    if at.get("allowzero", 0):
        raise NotImplementedError("Reshape: allowzero=1")
    if shape.dtype.kind not in "iu" or shape.ndim != 1:
        raise ValueError("Reshape: shape must be a 1-D integer tensor")
    dims = [int(d) for d in shape]
    bad = ValueError(f"Reshape: shape {dims} for input {x.shape}")
    if dims.count(-1) > 1 or any(d < -1 or d == 0 and i >= x.ndim for i, d in enumerate(dims)):
        raise bad
    dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]  # 0: copy that dimension
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or x.size % known:
            raise bad
        dims[dims.index(-1)] = x.size // known
    if math.prod(dims) != x.size:
        raise bad
    return x.reshape(dims)


@_op("Flatten", "axis")
def _flatten(at, x):
    axis = at.get("axis", 1)
    if not -x.ndim <= axis <= x.ndim:
        raise ValueError(f"Flatten: axis {axis} of a rank-{x.ndim} input")
    axis += x.ndim if axis < 0 else 0
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _geometry(op, at, x, kernel=None):
    """kernel, strides and pads [top, left, bottom, right] of a 2-D Conv or pooling node."""
    if x.ndim != 4:
        raise ValueError(f"{op}: input {x.shape} is not NCHW")
    for name, default in (("auto_pad", b"NOTSET"), ("ceil_mode", 0), ("dilations", [1, 1]), ("group", 1)):
        if name in at and at[name] != default:
            raise NotImplementedError(f"{op}: {name}={at[name]!r}")
    ks = list(at.get("kernel_shape", kernel or []))
    strides, pads = list(at.get("strides", [1, 1])), list(at.get("pads", [0, 0, 0, 0]))
    if len(ks) != 2 or min(ks) < 1 or kernel is not None and ks != list(kernel):
        raise ValueError(f"{op}: kernel_shape {ks}")
    if len(strides) != 2 or min(strides) < 1 or len(pads) != 4 or min(pads) < 0:
        raise ValueError(f"{op}: strides {strides}, pads {pads}")
    if kernel is None and (max(pads[0], pads[2]) >= ks[0] or max(pads[1], pads[3]) >= ks[1]):
        raise ValueError(f"{op}: pads {pads} not smaller than the kernel {ks}")
    return ks, strides, pads


def _windows(x, kernel, strides, pads, fill):
    """The windows [N, C, OH, OW, kh, kw] of x [N, C, H, W] padded with fill (ceil_mode 0)."""
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    if xp.shape[2] < kernel[0] or xp.shape[3] < kernel[1]:
        raise ValueError(f"kernel {kernel} larger than the padded input {xp.shape[2:]}")
    w = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(2, 3))
    return w[:, :, ::strides[0], ::strides[1]]


@_op("Conv", "kernel_shape", "strides", "pads", "dilations", "group", "auto_pad")
def _conv(at, x, w, b=None):
    if w.ndim != 4 or x.ndim == 4 and x.shape[1] != w.shape[1]:
        raise ValueError(f"Conv: input {x.shape}, weights {w.shape}")
    kernel, strides, pads = _geometry("Conv", at, x, list(w.shape[2:]))
    y = np.tensordot(_windows(x, kernel, strides, pads, 0.0), w, axes=([1, 4, 5], [1, 2, 3]))
    y = y.transpose(0, 3, 1, 2)
    if b is not None:
        if b.shape != (w.shape[0],):
            raise ValueError(f"Conv: bias {b.shape} for {w.shape[0]} output channels")
        y = y + b[None, :, None, None]
    return np.ascontiguousarray(y)


@_op("MaxPool", "kernel_shape", "strides", "pads", "dilations", "auto_pad", "ceil_mode", "storage_order")
def _max_pool(at, x):  # storage_order only orders the Indices output, which run_onnx rejects
    return _windows(x, *_geometry("MaxPool", at, x), -np.inf).max(axis=(4, 5))


@_op("AveragePool", "kernel_shape", "strides", "pads", "auto_pad", "ceil_mode", "count_include_pad")
def _average_pool(at, x):
    kernel, strides, pads = _geometry("AveragePool", at, x)
    total = _windows(x, kernel, strides, pads, 0.0).sum(axis=(4, 5))
    if at.get("count_include_pad", 0):
        return total / (kernel[0] * kernel[1])
    ones = np.ones((1, 1) + x.shape[2:])
    return total / _windows(ones, kernel, strides, pads, 0.0).sum(axis=(4, 5))


def run_onnx(model, x: np.ndarray) -> np.ndarray:
    """Evaluates model's graph on x (its first input that is not an initializer) in float64, node by
    node in graph order, and returns its first output. Supports Gemm, Relu, Tanh, Sigmoid, Softmax,
    Reshape, Flatten, Conv, MaxPool, AveragePool and Identity as opset 13 defines them (default
    domain opset 13 to 17, where these ops do not change); anything else: NotImplementedError."""
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if len(opset) != 1 or not 13 <= opset[0] <= 17:
        raise NotImplementedError(f"default-domain opset {opset}")
    graph, env = model.graph, {}
    for t in graph.initializer:
        a = numpy_helper.to_array(t)
        env[t.name] = a.astype(np.float64) if a.dtype.kind == "f" else a
    inputs = [v.name for v in graph.input if v.name not in env]
    if not inputs or not graph.output:
        raise ValueError("the graph has no input or no output")
    env[inputs[0]] = np.asarray(x, dtype=np.float64)
    for node in graph.node:
        label = f"{node.op_type} {node.name!r}"
        if node.domain not in ("", "ai.onnx") or node.op_type not in _OPS:
            raise NotImplementedError(f"op {node.domain}:{node.op_type}")
        allowed, fn = _OPS[node.op_type]
        at = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if set(at) - allowed:
            raise NotImplementedError(f"{label}: attributes {sorted(set(at) - allowed)}")
        outputs = list(node.output)
        if not outputs or not outputs[0] or any(outputs[1:]):  # one (MaxPool's Indices left out)
            raise NotImplementedError(f"{label}: outputs {outputs}")
        missing = [i for i in node.input if i and i not in env]
        if missing:
            raise ValueError(f"{label}: inputs {missing} not computed before it")
        args = [env[i] if i else None for i in node.input]  # "": an optional input left out
        try:
            inspect.signature(fn).bind(at, *args)
        except TypeError:
            raise ValueError(f"{label}: {len(args)} inputs") from None
        env[outputs[0]] = fn(at, *args)
    return np.asarray(env[graph.output[0].name], dtype=np.float64)
