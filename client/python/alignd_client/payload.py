"""The upload payload codec, mirroring formats/payload.h (and tested against it): features as
float32 little-endian, example-major, then int32 labels or float32 target rows."""
from __future__ import annotations

import hashlib
from typing import Optional, Tuple

import numpy as np


def encode_payload(x: np.ndarray, y: np.ndarray, classification: Optional[bool] = None,
                   num_classes: Optional[int] = None) -> Tuple[dict, bytes]:
    """(header fields, payload bytes) for features x (n, ...) and targets y: (n,) integer labels
    or (n, k) floats. The header's sha256 is the payload's."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0] if x.ndim else 0} examples and y {y.shape[0]}")
    if classification is None:
        classification = y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
    header = {"num_examples": int(x.shape[0]), "feature_shape": [int(s) for s in x.shape[1:]] or [1]}
    features = np.ascontiguousarray(x, dtype="<f4").tobytes()
    if classification:
        labels = np.ascontiguousarray(y, dtype="<i4")
        header["target_kind"] = "TARGET_KIND_CLASS_LABELS"
        header["num_classes"] = int(num_classes if num_classes else (int(labels.max()) + 1 if labels.size else 1))
        payload = features + labels.tobytes()
    else:
        t = np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype="<f4")
        header["target_kind"] = "TARGET_KIND_FLOAT_VECTORS"
        header["target_dim"] = int(t.shape[1])
        payload = features + t.tobytes()
    header["sha256"] = hashlib.sha256(payload).hexdigest()
    return header, payload


def decode_payload(header: dict, payload: bytes) -> Tuple[np.ndarray, np.ndarray]:
    """The inverse: (x (n, *feature_shape) float32, y (n,) int32 or (n, k) float32)."""
    n = int(header["num_examples"])
    shape = [int(s) for s in header["feature_shape"]]
    d = int(np.prod(shape))
    labels = header["target_kind"] in ("TARGET_KIND_CLASS_LABELS", 1)
    k = 1 if labels else int(header["target_dim"])
    if len(payload) != 4 * n * (d + k):
        raise ValueError(f"payload has {len(payload)} bytes; the header declares {4 * n * (d + k)}")
    x = np.frombuffer(payload, dtype="<f4", count=n * d).reshape([n] + shape)
    rest = payload[4 * n * d:]
    y = np.frombuffer(rest, dtype="<i4" if labels else "<f4")
    return x.astype(np.float32), (y.astype(np.int32) if labels else y.reshape(n, k).astype(np.float32))
