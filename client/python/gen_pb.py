"""Build step: makes the protoc/grpc_python_plugin output under alignd_client/_pb importable as
part of the package (the generator writes absolute `from alignd.v1 import ...` imports)."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])  # .../alignd_client/_pb
for d in [root] + [p for p in root.rglob("*") if p.is_dir()]:
    (d / "__init__.py").touch()
for f in root.rglob("*_pb2*.py"):
    text = f.read_text()
    fixed = re.sub(r"^from alignd\.", "from alignd_client._pb.alignd.", text, flags=re.M)
    fixed = re.sub(r"^import alignd\.", "import alignd_client._pb.alignd.", fixed, flags=re.M)
    if fixed != text:
        f.write_text(fixed)
