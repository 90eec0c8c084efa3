"""The upload payload codec, mirroring formats/payload.h (and tested against it): features as
float32 little-endian, example-major, then int32 labels or float32 target rows."""
from __future__ import annotations

import hashlib
from typing import Iterator, List, Optional, Tuple

import numpy as np


def payload_parts(x: np.ndarray, y: np.ndarray, classification: Optional[bool] = None,
                  num_classes: Optional[int] = None,
                  digest: bool = True) -> Tuple[dict, List[memoryview]]:
    """(header fields, the payload as byte views): the features, then the targets, without
    joining them into one copy. The header's sha256 is that of their concatenation (left out
    with digest=False, for a caller that hashes while it sends)."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0] if x.ndim else 0} examples and y {y.shape[0]}")
    if classification is None:
        classification = y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
    header = {"num_examples": int(x.shape[0]), "feature_shape": [int(s) for s in x.shape[1:]] or [1]}
    features = np.ascontiguousarray(x, dtype="<f4")
    if classification:
        targets = np.ascontiguousarray(y, dtype="<i4")
        header["target_kind"] = "TARGET_KIND_CLASS_LABELS"
        header["num_classes"] = int(num_classes if num_classes else (int(targets.max()) + 1 if targets.size else 1))
    else:
        targets = np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype="<f4")
        header["target_kind"] = "TARGET_KIND_FLOAT_VECTORS"
        header["target_dim"] = int(targets.shape[1])
    parts = [memoryview(a.reshape(-1)).cast("B") for a in (features, targets)]
    if digest:
        h = hashlib.sha256()
        for part in parts:
            h.update(part)
        header["sha256"] = h.hexdigest()
    return header, parts


def chunk_views(parts: List[memoryview], size: int) -> Iterator[List[memoryview]]:
    """The concatenation of `parts` in pieces of `size` bytes (the last one shorter), each as
    the views of `parts` it is made of: nothing is copied."""
    pending: List[memoryview] = []
    have = 0
    for part in parts:
        i = 0
        while i < len(part):
            take = min(size - have, len(part) - i)
            pending.append(part[i:i + take])
            have += take
            i += take
            if have == size:
                yield pending
                pending, have = [], 0
    if have:
        yield pending


def chunks(parts: List[memoryview], size: int) -> Iterator[bytes]:
    """The concatenation of `parts` in pieces of `size` bytes (the last one shorter)."""
    for views in chunk_views(parts, size):
        yield views[0].tobytes() if len(views) == 1 else b"".join(views)


def encode_payload(x: np.ndarray, y: np.ndarray, classification: Optional[bool] = None,
                   num_classes: Optional[int] = None) -> Tuple[dict, bytes]:
    """(header fields, payload bytes) for features x (n, ...) and targets y: (n,) integer labels
    or (n, k) floats. The header's sha256 is the payload's."""
    header, parts = payload_parts(x, y, classification, num_classes)
    return header, b"".join(parts)


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
