"""alignd_client: the Python client of alignd, for notebooks and scripts.

    from alignd_client import Client
    c = Client("localhost:50051")
    ds = c.upload_array(x, labels, name="my-data")          # x: (n, d) float, labels: (n,) int
    s = c.create_session(ds, sizes=[784, 1000, 10], rule="fa", output="softmax",
                         loss="cross_entropy", epochs=5, eval_dataset=test_ds)
    for event in c.metrics(s):                               # resumes by seq if the link drops
        print(event.get("step"))
    weights = c.snapshot(s)                                  # {"W0": ndarray, "b0": ..., "B1": ...}
    y = c.predict(s, x[:10])

Stubs are generated at build time with Debian's protoc and grpc_python_plugin into
build/python (make builds them); put that folder on PYTHONPATH, or set ALIGND_PYTHON_GEN.
"""
from .client import Client, AligndError  # noqa: F401
