"""alignd_client: the Python client of alignd, for notebooks and scripts.

    from alignd_client import Client
    with Client("localhost:50051") as c:
        ds = c.upload_dataset(x, labels, name="my-data")    # x: (n, d) float, labels: (n,) int
        s = c.create_session(ds, sizes=[784, 1000, 10], rule="fa", output="softmax",
                             loss="cross_entropy", epochs=5, eval_dataset=test_ds)
        for event in c.stream_metrics(s):                    # resumes by seq if the link drops
            print(event.get("step"))
        weights = c.read_snapshot(s)                         # {"W0": ndarray, "b0": ..., "B1": ...}
        lenet = c.create_session(img_ds, layers="conv:6x5x5,pool:2,conv:16x5x5,pool:2,dense:120,dense:84,dense:10",
                                 rule="fa", input_shape=(1, 32, 32))  # or a list of dicts
        c.list_rules()                                       # the server's rules and their traits
        y = c.predict(s, x[:10])
        c.list_sessions(filter='labels.study = depth')      # with create_session(labels={...})
        c.export_session(s, "csv", path="out/")             # csv, jsonl, tfevents, json, safetensors, onnx
        e = c.create_experiment(ds, {"network": {"sizes": [784, 100, 10]}, "validation_fraction": 0.1,
                                     "eval_every": 100}, rules=["bp", "fa"], seeds=[1, 2, 3],
                                grid={"optimizer.learning_rate": [0.01, 0.03]},
                                early_stopping={"asha": {"min_steps": 100}}, request_id="lr-1")
        c.compare_groups(e, "g0", "g2")                      # paired difference, t-test, Wilcoxon
        c.list_experiments(filter='labels.study = lr')      # all pages

Results are plain Python values: dicts and lists, ints as int, NaN as float("nan"), times as
datetime, enums by name ("SESSION_STATE_SUCCEEDED"); arrays as NumPy arrays.
"""
from ._version import __version__  # noqa: F401  (made by the build from VERSION)
from .client import AligndError, Client, rule_names  # noqa: F401
from .layers import from_layer_specs, parse_layers, to_layer_specs  # noqa: F401
from .payload import encode_payload, decode_payload  # noqa: F401
