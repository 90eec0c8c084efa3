"""One version everywhere: VERSION is the source; the programs, the Python client, the
Kubernetes manifests' image tags and the docs' package names must all say the same.

Usage: version_test.py SOURCE_DIR BUILD_DIR
"""
import pathlib
import re
import subprocess
import sys
import unittest

SRC = pathlib.Path(sys.argv[1])
BUILD = pathlib.Path(sys.argv[2])
del sys.argv[1:3]
VERSION = (SRC / "VERSION").read_text().strip()


class VersionTest(unittest.TestCase):
    def test_version_is_semver(self):
        self.assertRegex(VERSION, r"^\d+\.\d+\.\d+$")

    def test_programs_report_it(self):
        for prog in ["server/alignd", "client/alignctl", "dashboard/alignd-dashboard"]:
            out = subprocess.run([str(BUILD / prog), "--version"], capture_output=True,
                                 text=True, check=True).stdout
            self.assertRegex(out, rf"^\S+ {re.escape(VERSION)} \(", prog)

    def test_python_client_reports_it(self):
        out = subprocess.run(
            ["/usr/bin/python3", "-c", "import alignd_client; print(alignd_client.__version__)"],
            env={"PYTHONPATH": str(BUILD / "python")}, capture_output=True, text=True,
            check=True).stdout.strip()
        self.assertEqual(out, VERSION)

    def test_manifests_and_docs_name_it(self):
        tags = []
        for f in (SRC / "deploy" / "k8s").rglob("*.yaml"):
            text = f.read_text()
            tags += [(f.name, t) for t in re.findall(r"localhost/alignd:([0-9][0-9.]*)", text)]
            tags += [(f.name, t) for t in re.findall(r"newTag:\s*([0-9][0-9.]*)", text)]
        self.assertTrue(tags)
        for name, tag in tags:
            self.assertEqual(tag, VERSION, name)
        deploy = (SRC / "docs" / "DEPLOY.md").read_text()
        named = re.findall(r"alignd_([0-9][0-9.]*[0-9])_amd64\.deb", deploy)
        named += re.findall(r"localhost/alignd:([0-9][0-9.]*[0-9])", deploy)
        self.assertTrue(named)
        for v in named:
            self.assertEqual(v, VERSION)

    def test_one_licence(self):
        self.assertIn("Apache License", (SRC / "LICENSE").read_text()[:200])
        self.assertIn('"Apache-2.0"', (SRC / "client/python/pyproject.toml").read_text())
        self.assertIn('licenses="Apache-2.0"', (SRC / "deploy/Dockerfile").read_text())


if __name__ == "__main__":
    unittest.main()
