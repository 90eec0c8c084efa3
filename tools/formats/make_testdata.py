"""Writes tests/formats/testdata: .npy files as NumPy writes them, and the golden upload
payloads that formats/ (C++) and the Python client's payload.py must both produce.

    /usr/bin/python3 tools/formats/make_testdata.py      # then commit tests/formats/testdata
"""
import json
import os
import struct

import numpy as np

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
out = os.path.join(root, "tests", "formats", "testdata")

os.makedirs(out, exist_ok=True)
np.save(os.path.join(out, "f4_2x3.npy"), np.arange(6, dtype=np.float32).reshape(2, 3) / 4)
np.save(os.path.join(out, "f8_3.npy"), np.array([0.5, -1.25, 1e30]))
np.save(os.path.join(out, "u1_2x2x2.npy"), np.arange(8, dtype=np.uint8).reshape(2, 2, 2) * 30)
np.save(os.path.join(out, "i8_4.npy"), np.array([3, 0, 7, 2], dtype=np.int64))
np.save(os.path.join(out, "b1_3.npy"), np.array([True, False, True]))
np.save(os.path.join(out, "f4_fortran.npy"), np.asfortranarray(np.ones((2, 3), dtype=np.float32)))
np.save(os.path.join(out, "be_f4.npy"), np.ones(2, dtype=">f4"))
with open(os.path.join(out, "f4_v2.npy"), "wb") as f:
    np.lib.format.write_array(f, np.full((2, 2), 2.5, dtype=np.float32), version=(2, 0))

# The payloads straight from the layout in proto/alignd/v1/datasets.proto (DatasetHeader):
# features as little-endian float32, example-major, then int32 labels or float32 targets.
x = np.array([[0.0, 1.5], [-2.0, 3.25], [4.0, 0.125]], dtype=np.float32)
labels = [0, 2, 1]
targets = [[1.0], [2.0], [-0.5]]
features = struct.pack("<6f", *x.reshape(-1))
golden = {
    "labels": {"num_examples": 3, "feature_shape": [2], "num_classes": 3,
               "bytes": features + struct.pack("<3i", *labels)},
    "targets": {"num_examples": 3, "feature_shape": [2], "target_dim": 1,
                "bytes": features + struct.pack("<3f", *[t[0] for t in targets])},
}
for name, g in golden.items():
    with open(os.path.join(out, f"payload_{name}.bin"), "wb") as f:
        f.write(g.pop("bytes"))
with open(os.path.join(out, "payloads.json"), "w") as f:
    json.dump(golden, f, indent=1, sort_keys=True)
print("wrote", out)
