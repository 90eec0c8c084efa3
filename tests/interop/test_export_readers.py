"""Tests of export_readers.py on files built here by hand, independently of alignd: TFRecord framing
(every single-bit flip caught), Event wire bytes written out, safetensors files and each rejection,
and ONNX models built with onnx.helper, evaluated against loops written here.

Run from the repository root: /usr/bin/python3 tests/interop/test_export_readers.py -v
"""
import json
import os
import struct
import sys
import time
import unittest

import crcmod.predefined
import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_readers as er  # noqa: E402

CRC32C = crcmod.predefined.mkCrcFun("crc-32c")


def masked(data):
    crc = CRC32C(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload):
    head = struct.pack("<Q", len(payload))
    return head + struct.pack("<I", masked(head)) + payload + struct.pack("<I", masked(payload))


class TFRecordTest(unittest.TestCase):
    RECORDS = [b"", b"alignd", bytes(range(256)) * 2]

    def test_reads_and_catches_every_bit_flip(self):
        self.assertEqual(CRC32C(b"123456789"), 0xE3069283)  # the Castagnoli check value
        data = b"".join(map(frame, self.RECORDS))
        self.assertEqual(er.read_tfrecords(data), self.RECORDS)
        self.assertEqual(er.read_tfrecords(b""), [])
        start, end = len(frame(self.RECORDS[0])), len(frame(self.RECORDS[0])) + len(frame(self.RECORDS[1]))
        for bit in range(start * 8, end * 8):  # length, its CRC, payload, its CRC of record 1
            bad = bytearray(data)
            bad[bit // 8] ^= 1 << bit % 8
            with self.assertRaisesRegex(ValueError, "record 1", msg=f"bit {bit}"):
                er.read_tfrecords(bytes(bad))

    def test_truncation_and_trailing_garbage(self):
        data = b"".join(map(frame, self.RECORDS))
        for bad, record in [(data[:-1], 2), (data[:-520], 2), (data + b"\0", 3), (data + bytes(16), 3),
                            (data + frame(b"x")[:-1], 3)]:
            with self.assertRaisesRegex(ValueError, f"record {record}"):
                er.read_tfrecords(bad)


def ld(key, body):  # a length-delimited field with a one-byte key and length
    return bytes([key, len(body)]) + body


class EventTest(unittest.TestCase):
    def test_decodes_hand_written_events(self):
        loss = ld(0x0A, b"train/loss") + b"\x15" + struct.pack("<f", 0.25)
        acc = b"\x4a\x00" + ld(0x0A, b"eval/accuracy") + b"\x15\x00\x00\x40\x3f"  # metadata=9 first
        no_simple = ld(0x0A, b"images") + ld(0x22, b"\x08\x01")  # image=4: not a scalar
        summary = ld(0x0A, loss) + ld(0x0A, acc) + ld(0x0A, no_simple) + b"\x10\x07"  # unknown 2
        unknown = (b"\xa0\x01\x96\x01"  # field 20 varint 150
                   b"\xa9\x01" + bytes(8) +  # field 21 fixed64
                   b"\xb5\x01\x01\x02\x03\x04"  # field 22 fixed32
                   b"\xbb\x01\x08\x05\x1b\x1c\xbc\x01"  # group 23 { 1: 5, group 3 {} }
                   b"\xb2\x01\x03abc")  # field 22 length-delimited
        first = b"\x09" + struct.pack("<d", 1700000000.5) + ld(0x1A, b"brain.Event:2")
        second = b"\x09\x00\x00\x00\x00\x00\x00\xf8\x3f\x10\xac\x02" + unknown + ld(0x2A, summary)
        third = b"\x10" + b"\xff" * 9 + b"\x01" + ld(0x2A, b"") + ld(0x2A, ld(0x0A, loss))
        self.assertEqual(er.parse_events([first, second, third, b""]), [
            {"wall_time": 1700000000.5, "step": 0, "file_version": "brain.Event:2", "scalars": {}},
            {"wall_time": 1.5, "step": 300, "file_version": None,
             "scalars": {"train/loss": 0.25, "eval/accuracy": 0.75}},
            {"wall_time": 0.0, "step": -1, "file_version": None, "scalars": {"train/loss": 0.25}},
            {"wall_time": 0.0, "step": 0, "file_version": None, "scalars": {}}])

    def test_rejects_malformed_wire_data(self):
        for bad in [b"\x10", b"\x10\x80", b"\x10" + b"\xff" * 10 + b"\x01", b"\x09\x00\x00",
                    b"\x2a\x05\x0a", b"\x0e", b"\x0f\x00", b"\x00\x01", b"\x0c", b"\x1b\x08\x01",
                    b"\x1b\x24", b"\x08\x00", b"\x2a\x02\x0a\x05", b"\x2a\x03\x0a\x01\x80",
                    b"\x2a\x06\x0a\x04\x15\x00\x00\x00", b"\x10" + b"\xff" * 9 + b"\x02"]:
            with self.assertRaisesRegex(ValueError, "record 1", msg=bad.hex()):
                er.parse_events([b"", bad])
        value = ld(0x0A, ld(0x0A, b"t") + b"\x15" + bytes(4))
        with self.assertRaisesRegex(ValueError, "twice"):
            er.parse_events([ld(0x2A, value + value)])


def safetensors(header, buffer, align=8):
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % align)
    return struct.pack("<Q", len(raw)) + raw + buffer


class SafetensorsTest(unittest.TestCase):
    W = np.arange(6, dtype="<f4").reshape(2, 3) / 4
    B = np.array([0.5, -1.0], "<f4")
    BUFFER = B.tobytes() + W.tobytes()

    def header(self, **changes):
        h = {"__metadata__": {"step": "7", "format": "pt"},
             "W0": {"dtype": "F32", "shape": [2, 3], "data_offsets": [8, 32]},
             "b0": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "B0": {"dtype": "F32", "shape": [0, 0], "data_offsets": [8, 8]}}
        h.update(changes)
        return h

    def test_reads(self):
        tensors, metadata = er.read_safetensors(safetensors(self.header(), self.BUFFER))
        self.assertEqual(metadata, {"step": "7", "format": "pt"})
        self.assertEqual(sorted(tensors), ["B0", "W0", "b0"])
        np.testing.assert_array_equal(tensors["W0"], self.W)
        np.testing.assert_array_equal(tensors["b0"], self.B)
        self.assertEqual((tensors["B0"].shape, tensors["W0"].dtype), ((0, 0), np.float32))
        h = {"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}
        tensors, metadata = er.read_safetensors(safetensors(h, struct.pack("<f", 2.5)))
        self.assertEqual((tensors["s"].shape, float(tensors["s"]), metadata), ((), 2.5, {}))

    def test_rejects(self):
        good = safetensors(self.header(), self.BUFFER)
        st = lambda buffer=self.BUFFER, align=8, **changes: safetensors(self.header(**changes), buffer, align)
        cases = [("hole", st(bytes(4) + self.BUFFER, b0=entry(offsets=(4, 12)))),
                 ("overlap", st(self.BUFFER[:28], W0=entry(shape=(2, 3), offsets=(4, 28)))),
                 ("overlap", st(B0=entry(shape=(0,), offsets=(12, 12)))),  # empty, inside W0
                 ("bytes for shape", st(b0=entry(shape=(3,)))),
                 ("dtype", st(b0=entry(dtype="F64", shape=(1,)))),
                 ("shorter than", good[:7]),
                 ("past the end", good[:20]),
                 ("cover 32 bytes of a 28", good[:-4]),
                 ("cover 32 bytes of a 36", good + bytes(4)),
                 ("multiple of 8", st(align=1, __metadata__={"x": "y"})),
                 ("metadata", st(__metadata__={"step": 7})),
                 ("data_offsets", st(x=entry(offsets=(8, 0)))),
                 ("shape", st(b0=entry(shape=(2.0,)))),
                 ("exactly", st(b0=dict(entry(), extra=1))),
                 ("duplicate", b"\x10" + bytes(7) + b'{"a":{},"a":{}} '),
                 ("begin with", b"\x08" + bytes(7) + b"[]" + b" " * 6),
                 ("NaN", safetensors({"x": float("nan")}, b""))]
        er.read_safetensors(cases[9][1], require_aligned=False)
        for message, data in cases:
            with self.subTest(message), self.assertRaisesRegex(ValueError, message):
                er.read_safetensors(data)


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


# --- ONNX: models built with onnx.helper against NumPy written out here --------------------

def const(name, a, raw=True):
    a = np.asarray(a)
    if raw or a.dtype != np.float32:
        return numpy_helper.from_array(a, name)  # raw_data
    return helper.make_tensor(name, TensorProto.FLOAT, a.shape, a.ravel().tolist())  # float_data


def model(nodes, inits, shape, out, opset=13):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return er.check_onnx(m.SerializeToString()) if opset == 13 else m


def ref_conv(x, w, b=None, strides=(1, 1), pads=(0, 0, 0, 0)):
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    (sh, sw), (kh, kw) = strides, w.shape[2:]
    y = np.zeros((x.shape[0], w.shape[0], (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1))
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            for o in range(w.shape[0]):
                y[:, o, i, j] = (xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] * w[o]).sum(axis=(1, 2, 3))
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def ref_pool(x, kernel, strides, pads=(0, 0, 0, 0), kind="max", include_pad=False):
    (kh, kw), (sh, sw), (n, c, h, w) = kernel, strides, x.shape
    y = np.zeros((n, c, (h + pads[0] + pads[2] - kh) // sh + 1, (w + pads[1] + pads[3] - kw) // sw + 1))
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            top, left = i * sh - pads[0], j * sw - pads[1]
            patch = x[:, :, max(top, 0):min(top + kh, h), max(left, 0):min(left + kw, w)]
            if kind == "max":
                y[:, :, i, j] = patch.max(axis=(2, 3))
            else:
                y[:, :, i, j] = patch.sum(axis=(2, 3)) / (kh * kw if include_pad else patch[0, 0].size)
    return y


def ref_softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def node(op, inputs, output, **attributes):
    return helper.make_node(op, inputs, [output], **attributes)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


class OnnxTest(unittest.TestCase):
    rng = np.random.default_rng(0)

    def f32(self, *shape):
        return self.rng.standard_normal(shape).astype(np.float32)

    def assertClose(self, got, want):
        self.assertEqual(got.dtype, np.float64)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)

    def test_gemm_attributes(self):  # alpha, beta: exact in float32, as ONNX stores them
        for ta, tb, c_shape in [(a, b, c) for a in (0, 1) for b in (0, 1)
                                for c in (None, (), (2,), (3, 1), (3, 2))]:
            x, b = self.f32(*((4, 3) if ta else (3, 4))), self.f32(*((2, 4) if tb else (4, 2)))
            want = 0.75 * (x.T if ta else x).astype(float) @ (b.T if tb else b).astype(float)
            inits, inputs = [const("b", b)], ["x", "b"]
            if c_shape is not None:
                c = self.f32(*c_shape)
                inits, inputs = inits + [const("c", c, raw=False)], inputs + ["c"]
                want = want - 1.5 * c.astype(float)
            m = model([node("Gemm", inputs, "y", alpha=0.75, beta=-1.5, transA=ta, transB=tb)], inits,
                      list(x.shape), [3, 2])
            with self.subTest(transA=ta, transB=tb, c=c_shape):
                self.assertClose(er.run_onnx(m, x), want)

    def test_mlp(self):
        w1, b1, w2, c2, x = self.f32(5, 4), self.f32(5), self.f32(5, 3), self.f32(1, 3), self.f32(6, 4)
        m = model([node("Gemm", ["x", "w1", "b1"], "h", transB=1), node("Relu", ["h"], "r"),
                   node("Gemm", ["r", "w2", "c2"], "z", alpha=0.5, beta=2.0), node("Sigmoid", ["z"], "s"),
                   node("Identity", ["s"], "i"), node("Tanh", ["i"], "y")],
                  [const("w1", w1), const("b1", b1, raw=False), const("w2", w2, raw=False), const("c2", c2)],
                  ["N", 4], ["N", 3])
        h = np.maximum(x.astype(float) @ w1.T.astype(float) + b1, 0)
        self.assertClose(er.run_onnx(m, x), np.tanh(sigmoid(0.5 * h @ w2.astype(float) + 2.0 * c2)))

    def test_cnn(self):
        w1, b1, w2 = self.f32(3, 1, 3, 3), self.f32(3), self.f32(4, 3, 2, 2)
        w3, b3, x = self.f32(40, 5), self.f32(5), self.f32(2, 1, 10, 10)
        m = model([node("Conv", ["x", "w1", "b1"], "c1", kernel_shape=[3, 3], pads=[1, 0, 2, 1],
                        strides=[1, 2]),
                   node("MaxPool", ["c1"], "p1", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 1, 1, 0]),
                   node("Tanh", ["p1"], "t1"),  # not Relu: it would hide MaxPool's padding
                   node("Conv", ["t1", "w2"], "c2"),
                   node("AveragePool", ["c2"], "p2", kernel_shape=[2, 2], pads=[1, 1, 0, 0]),
                   node("Flatten", ["p2"], "f"), node("Gemm", ["f", "w3", "b3"], "g"),
                   node("Softmax", ["g"], "y")],
                  [const("w1", w1), const("b1", b1, raw=False), const("w2", w2, raw=False), const("w3", w3),
                   const("b3", b3)], ["N", 1, 10, 10], ["N", 5])
        c1 = ref_conv(x.astype(float), w1.astype(float), b1, strides=(1, 2), pads=(1, 0, 2, 1))
        t1 = np.tanh(ref_pool(c1, (2, 2), (2, 2), (0, 1, 1, 0)))
        p2 = ref_pool(ref_conv(t1, w2.astype(float)), (2, 2), (1, 1), (1, 1, 0, 0), kind="avg")
        self.assertEqual(p2.shape, (2, 4, 5, 2))
        self.assertClose(er.run_onnx(m, x), ref_softmax(p2.reshape(2, -1) @ w3.astype(float) + b3))

    def test_average_pool_count_include_pad(self):
        x = self.f32(2, 3, 5, 4)
        m = model([node("AveragePool", ["x"], "y", kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 2, 1],
                        count_include_pad=1)], [], list(x.shape), [2, 3, 3, 4])
        want = ref_pool(x.astype(float), (3, 2), (2, 1), (1, 0, 2, 1), kind="avg", include_pad=True)
        self.assertClose(er.run_onnx(m, x), want)

    def test_reshape_softmax_axis_flatten(self):  # opset 13's Softmax: along axis 1 only
        x = self.f32(3, 24)
        m = model([node("Reshape", ["x", "s1"], "a"), node("Softmax", ["a"], "b", axis=1),
                   node("Reshape", ["b", "s2"], "c"), node("Flatten", ["c"], "y", axis=0)],
                  [const("s1", np.array([0, 2, -1], np.int64)), const("s2", np.array([-1, 4], np.int64))],
                  [3, 24], [1, 72])
        want = ref_softmax(x.astype(float).reshape(3, 2, 12), axis=1).reshape(1, 72)
        self.assertClose(er.run_onnx(m, x), want)

    def test_lenet5_20_examples_in_seconds(self):
        shapes = {"c1": (6, 1, 5, 5), "c2": (16, 6, 5, 5), "d1": (120, 400), "d2": (84, 120), "d3": (10, 84)}
        params = {k: (self.f32(*s) / 4, self.f32(s[0])) for k, s in shapes.items()}
        nodes = [node("Reshape", ["x", "shape"], "img"), node("Conv", ["img", "c1w", "c1b"], "c1"),
                 node("Relu", ["c1"], "r1"), node("MaxPool", ["r1"], "p1", kernel_shape=[2, 2], strides=[2, 2]),
                 node("Conv", ["p1", "c2w", "c2b"], "c2"), node("Relu", ["c2"], "r2"),
                 node("AveragePool", ["r2"], "p2", kernel_shape=[2, 2], strides=[2, 2]),
                 node("Flatten", ["p2"], "f"),
                 node("Gemm", ["f", "d1w", "d1b"], "d1", transB=1), node("Tanh", ["d1"], "a1"),
                 node("Gemm", ["a1", "d2w", "d2b"], "d2", transB=1), node("Sigmoid", ["d2"], "a2"),
                 node("Gemm", ["a2", "d3w", "d3b"], "d3", transB=1), node("Softmax", ["d3"], "y")]
        inits = [const("shape", np.array([-1, 1, 32, 32], np.int64))]
        inits += [const(k + "w", w) for k, (w, _) in params.items()]
        inits += [const(k + "b", b) for k, (_, b) in params.items()]
        x = self.f32(20, 1024)
        m = model(nodes, inits, ["N", 1024], ["N", 10])
        started = time.monotonic()
        got = er.run_onnx(m, x)
        self.assertLess(time.monotonic() - started, 3.0)
        (c1, c1b), (c2, c2b), (d1, d1b), (d2, d2b), (d3, d3b) = [
            (w.astype(float), b.astype(float)) for w, b in params.values()]
        h = ref_pool(np.maximum(ref_conv(x.astype(float).reshape(20, 1, 32, 32), c1, c1b), 0), (2, 2), (2, 2))
        h = ref_pool(np.maximum(ref_conv(h, c2, c2b), 0), (2, 2), (2, 2), kind="avg").reshape(20, 400)
        h = sigmoid(np.tanh(h @ d1.T + d1b) @ d2.T + d2b)
        self.assertClose(got, ref_softmax(h @ d3.T + d3b))

    def test_rejects_what_it_does_not_implement(self):
        w = [const("w", self.f32(2, 2, 3, 3))]
        cases = [(node("Add", ["x", "x"], "y"), []), (node("Conv", ["x", "w"], "y", group=2), w),
                 (node("Conv", ["x", "w"], "y", dilations=[2, 2]), w),
                 (node("Conv", ["x", "w"], "y", auto_pad="SAME_UPPER"), w),
                 (node("MaxPool", ["x"], "y", kernel_shape=[2, 2], ceil_mode=1), []),
                 (helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]), []),
                 (node("Relu", ["x"], "y", alpha=0.1), [])]
        for n, inits in cases:
            with self.subTest(n.op_type), self.assertRaises(NotImplementedError):
                er.run_onnx(model([n], inits, [1, 2, 6, 6], None, opset=14), self.f32(1, 2, 6, 6))
        with self.assertRaises(NotImplementedError):  # opset 12's Softmax differs
            er.run_onnx(model([node("Relu", ["x"], "y")], [], [1], [1], opset=12), self.f32(1))


if __name__ == "__main__":
    unittest.main()
