#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/): small valid
inputs of every format and variant, from which libFuzzer mutates. The seeds are
committed; run this again only to change them:
    PYTHONPATH=build/python python3 tools/fuzz/make_seeds.py tests/fuzz/corpus
"""
import hashlib
import os
import struct
import sys

from alignd_client._pb.alignd.v1 import datasets_pb2


def idx(type_code, dims, values):
    fmt = {0x08: "B", 0x09: "b", 0x0B: "h", 0x0C: "i", 0x0D: "f", 0x0E: "d"}[type_code]
    out = bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return out + b"".join(struct.pack(">" + fmt, v) for v in values)


def npy(descr, shape, data, version=1):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else ""))
    pre = 10 if version == 1 else 12
    header += " " * ((64 - (pre + len(header) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode() + data


def upload(header, payload):
    h = header.SerializeToString()
    return struct.pack("<H", len(h)) + h + payload


def state():
    out = b"ALIGNDST" + struct.pack("<I", 1) + struct.pack("<qqq", 10, 1, 4) + struct.pack("<4Q", 1, 2, 3, 4)
    out += struct.pack("<Q", 8) + struct.pack("<8i", *range(8))

    def matrices(ms):
        b = struct.pack("<Q", len(ms))
        for rows, cols in ms:
            b += struct.pack("<qq", rows, cols) + struct.pack(f"<{rows * cols}f", *([0.25] * (rows * cols)))
        return b
    out += matrices([(3, 2), (2, 3)])   # weights 2 -> 3 -> 2
    out += matrices([(3, 1), (2, 1)])   # biases
    out += matrices([(0, 0), (3, 2)])   # feedback (paper orientation)
    out += matrices([]) + matrices([])  # masks
    out += matrices([(3, 2), (2, 3), (3, 1), (2, 1), (0, 0), (0, 0)]) * 2  # moments (SGD momentum)
    return out + struct.pack("<q", 0)


def safetensors(tensors, metadata=None):
    """A safetensors file: float32 tensors {name: (shape, values)}, header padded to 8."""
    import json
    header, data = {}, b""
    for name, (shape, values) in tensors.items():
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def main(root):
    seeds = {
        "fuzz_idx": {
            "ubyte_images": idx(0x08, [3, 2, 2], list(range(12))),
            "labels": idx(0x08, [3], [0, 1, 2]),
            "float": idx(0x0D, [2, 2], [1.5, -2.0, 0.0, 3.25]),
            "double": idx(0x0E, [2], [1e-3, 7.0]),
            "short": idx(0x0B, [2, 1], [-3, 300]),
            "int": idx(0x0C, [1], [70000]),
            "byte": idx(0x09, [2], [-1, 5]),
        },
        "fuzz_csv": {
            "classification": b"\x01" + b"0.1,0.2,0.3,1\n0.4,0.5,0.6,0\n1e-3,-2,3.5,2\n",
            "regression_2_targets": b"\x02" + b"1,2,3,0.5,0.25\n4,5,6,-1,2\n",
            "with_header": b"\x09" + b"a,b,label\n1,2,0\n3,4,1\n",
            "crlf": b"\x01" + b"1,2,0\r\n3,4,1\r\n",
        },
        "fuzz_npy": {
            "f4_2d": npy("<f4", [2, 3], struct.pack("<6f", *range(6))),
            "f8_1d": npy("<f8", [3], struct.pack("<3d", 0.5, 1.5, 2.5)),
            "i8_1d": npy("<i8", [2], struct.pack("<2q", 1, 2)),
            "u1_3d": npy("|u1", [2, 2, 2], bytes(range(8))),
            "v2_i4": npy("<i4", [4], struct.pack("<4i", 0, 1, 2, 3), version=2),
        },
        "fuzz_state": {"two_layers": state()},
        "fuzz_config": {
            "mnist_fa": b'{"network": {"sizes": [784, 1000, 10], "hidden": "ACTIVATION_LOGISTIC"},'
                        b' "feedback": {"rule": "RULE_FEEDBACK_ALIGNMENT", "scale": 0.5},'
                        b' "optimizer": {"kind": "OPTIMIZER_SGD", "learningRate": 0.1},'
                        b' "batchSize": 1, "epochs": 2, "seed": "3"}',
            "kp_adam": b'{"network": {"sizes": [30, 20, 10]}, "feedback": {"rule": "RULE_KOLEN_POLLACK"},'
                       b' "optimizer": {"kind": "OPTIMIZER_ADAM", "weightDecay": 0.001}, "maxSteps": "100"}',
            "empty": b"{}",
        },
    }
    payload = struct.pack("<6f", 0.1, 0.2, 0.3, 0.4, 0.5, 0.6) + struct.pack("<3i", 0, 1, 1)
    labels = datasets_pb2.DatasetHeader(num_examples=3, feature_shape=[2], num_classes=2,
                                        target_kind=datasets_pb2.TARGET_KIND_CLASS_LABELS,
                                        sha256=hashlib.sha256(payload).hexdigest())
    reg_payload = struct.pack("<8f", *range(8))
    regression = datasets_pb2.DatasetHeader(num_examples=2, feature_shape=[1, 2], target_dim=2,
                                            target_kind=datasets_pb2.TARGET_KIND_FLOAT_VECTORS)
    seeds["fuzz_upload"] = {"labels": upload(labels, payload), "regression": upload(regression, reg_payload)}
    # fuzz_safetensors applies to conv:2x3x3:p1 on 1x4x4, maxpool:2, flatten, dense:3.
    seeds["fuzz_safetensors"] = {
        "conv_net": safetensors({"W0": ([2, 1, 3, 3], [0.1 * i for i in range(18)]), "b0": ([2], [0.5, -0.5]),
                                 "W3": ([3, 8], [0.01 * i for i in range(24)]), "b3": ([3, 1], [1, 2, 3]),
                                 "B3": ([3, 8], [1.0] * 24)}, {"format": "alignd", "step": "7"}),
        "empty": safetensors({}),
    }
    seeds["fuzz_filter"] = {
        "labels": b'labels.study = "depth" AND (rule = fa OR rule = bp) AND NOT state = failed',
        "prefix": b'display_name = "fa-*" -labels.seed:* name != sessions/x',
        "nested": b'((rule = RULE_BACKPROP) OR (state = SESSION_STATE_RUNNING labels.a:b))',
    }
    for target, files in seeds.items():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus")
