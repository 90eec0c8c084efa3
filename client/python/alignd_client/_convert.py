"""Messages to Python values, and tensors to and from NumPy without per-value copies."""
from __future__ import annotations

import datetime
from typing import Any, Dict, Tuple

import numpy as np
from google.protobuf import descriptor as _d
from google.protobuf.message import Message

_T = _d.FieldDescriptor


def to_python(m: Message) -> Dict[str, Any]:
    """A message as a dict: every field of the message (zero values included), the set member
    of each oneof only, sub-messages that are set, ints as int, floats as float (NaN stays
    float("nan")), enums by name, Timestamps as aware datetimes, maps as dicts."""
    out: Dict[str, Any] = {}
    for f in m.DESCRIPTOR.fields:
        if f.containing_oneof is not None and m.WhichOneof(f.containing_oneof.name) != f.name:
            continue
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            value = f.message_type.fields_by_name["value"]
            out[f.name] = {k: _value(value, v) for k, v in getattr(m, f.name).items()}
        elif f.label == _T.LABEL_REPEATED:
            out[f.name] = [_value(f, v) for v in getattr(m, f.name)]
        elif f.type == _T.TYPE_MESSAGE:
            if m.HasField(f.name):
                out[f.name] = _value(f, getattr(m, f.name))
        else:
            out[f.name] = _value(f, getattr(m, f.name))
    return out


def _value(f: _d.FieldDescriptor, v: Any) -> Any:
    if f.type == _T.TYPE_MESSAGE:
        if f.message_type.full_name == "google.protobuf.Timestamp":
            return datetime.datetime.fromtimestamp(v.seconds + v.nanos * 1e-9, tz=datetime.timezone.utc)
        return to_python(v)
    if f.type == _T.TYPE_ENUM:
        ev = f.enum_type.values_by_number.get(v)
        return ev.name if ev is not None else v
    return v


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> Tuple[int, int]:
    n, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7


def _tensor_parts(x: np.ndarray) -> Tuple[bytes, memoryview]:
    """An (n, d) array as a serialized alignd.v1.Tensor in two parts: the fields before the
    values (rows = d features, cols = n examples, the values' key and length) and the values,
    a view of the array's own bytes (its row-major bytes are the tensor's column-major values).
    """
    x = np.ascontiguousarray(x, dtype="<f4")
    if x.ndim != 2:
        raise ValueError(f"expected an (examples, features) array, got shape {x.shape}")
    head = (b"\x08" + _varint(x.shape[1]) + b"\x10" + _varint(x.shape[0]) +
            b"\x1a" + _varint(x.nbytes))
    return head, memoryview(x.reshape(-1).view(np.uint8))


def encode_tensor(x: np.ndarray) -> bytes:
    """An (n, d) array as a serialized alignd.v1.Tensor (rows = d features, cols = n examples:
    the array's row-major bytes are the tensor's column-major values)."""
    head, values = _tensor_parts(x)
    return b"".join((head, values))


def packed_floats(serialized: bytes, field: int) -> np.ndarray:
    """The values of packed float field `field` in a serialized message, as a float32 array
    that shares nothing with the message."""
    pos, parts = 0, []
    while pos < len(serialized):
        key, pos = _read_varint(serialized, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(serialized, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            if number == field:
                parts.append(serialized[pos:pos + 4])
            pos += 4
        elif wire == 2:
            length, pos = _read_varint(serialized, pos)
            if number == field:
                parts.append(serialized[pos:pos + length])
            pos += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return np.frombuffer(b"".join(parts), dtype="<f4").astype(np.float32)


def tensor_to_numpy(t: Message) -> np.ndarray:
    """An alignd.v1.Tensor (rows x cols, column-major) as a (cols, rows) array: examples first."""
    return packed_floats(t.SerializeToString(), 3).reshape(t.cols, t.rows)


def request_with_tensor(prefix: bytes, field: int, x: np.ndarray) -> bytes:
    """`prefix` (serialized fields of a request) followed by field `field` holding x as a Tensor.
    The array's bytes are copied once, into the request (3 MB for 1,000 MNIST images: each
    further copy was a fresh allocation the kernel had to fault in)."""
    head, values = _tensor_parts(x)
    size = len(head) + len(values)
    return b"".join((prefix, _varint(field << 3 | 2), _varint(size), head, values))
