"""The seams of the tree, checked: each room includes only what it may (the include paths
alone do not prevent it, since every target sees the project root).

  base/     absl and the standard library only
  formats/  no Eigen, no proto or gRPC, nothing of core/, server/, client/
  core/     no proto, gRPC or protobuf, nothing of server/ or client/
  proto/    (hand-written parts) nothing of core/, server/, client/
  client/   nothing of core/ or server/ (it speaks the wire format only)
  server/   nothing of client/
  dashboard/ nothing of core/ or server/ (a gRPC client of alignd, as client/ is)
"""
import os
import re
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)

FORBIDDEN = {
    "base": [r"^core/", r"^server/", r"^client/", r"^formats/", r"^alignd/", r"^grpc", r"^google/", r"^Eigen"],
    "formats": [r"^Eigen", r"^core/", r"^server/", r"^client/", r"^alignd/", r"^grpc", r"^google/protobuf"],
    "core": [r"^server/", r"^client/", r"^alignd/", r"^grpc", r"^google/protobuf", r"\.pb\.h$"],
    "proto": [r"^core/", r"^server/", r"^client/"],
    "client": [r"^core/", r"^server/"],
    "server": [r"^client/"],
    "dashboard": [r"^core/", r"^server/"],
}


def sources(room):
    for dirpath, _, files in os.walk(os.path.join(ROOT, room)):
        for f in files:
            if f.endswith((".h", ".cc")):
                yield os.path.join(dirpath, f)


class LayeringTest(unittest.TestCase):
    def test_every_room_includes_only_what_it_may(self):
        violations = []
        for room, patterns in FORBIDDEN.items():
            files = list(sources(room))
            self.assertTrue(files, f"{room}/ has no sources: is the tree where this test thinks?")
            for path in files:
                with open(path) as f:
                    for inc in INCLUDE.findall(f.read()):
                        if any(re.search(p, inc) for p in patterns):
                            violations.append(f"{os.path.relpath(path, ROOT)} includes {inc}")
        self.assertEqual(violations, [], "\n".join(violations))

    def test_the_checker_catches_a_violation(self):
        self.assertTrue(any(re.search(p, "alignd/v1/sessions.pb.h") for p in FORBIDDEN["core"]))
        self.assertTrue(any(re.search(p, "core/trainer.h") for p in FORBIDDEN["client"]))
        self.assertTrue(any(re.search(p, "Eigen/Core") for p in FORBIDDEN["formats"]))


if __name__ == "__main__":
    unittest.main()
