"""The Debian packages, built by CPack from this build and installed into a scratch root with
dpkg -x (no root, no system changes): the files are where Debian expects them, the systemd
unit verifies, and the installed alignd, alignctl and Python client work together on
127.0.0.1. Run by ctest with ALIGND_BUILD_DIR set."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.request


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="alignd_pkg_")
        build = os.environ["ALIGND_BUILD_DIR"]
        out = os.path.join(cls.tmp, "out")
        r = subprocess.run(["cpack", "-G", "DEB", "-B", out, "--config", os.path.join(build, "CPackConfig.cmake")],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        cls.debs = sorted(glob.glob(os.path.join(out, "*.deb")))
        cls.root = os.path.join(cls.tmp, "root")
        for deb in cls.debs:
            subprocess.run(["dpkg", "-x", deb, cls.root], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip("/"))

    def field(self, deb, name):
        return subprocess.run(["dpkg-deb", "-f", deb, name], capture_output=True, text=True, check=True).stdout.strip()

    def test_two_packages_with_their_dependencies(self):
        names = sorted(os.path.basename(d).split("_")[0] for d in self.debs)
        self.assertEqual(names, ["alignd", "python3-alignd"])
        server = [d for d in self.debs if os.path.basename(d).startswith("alignd_")][0]
        depends = self.field(server, "Depends")
        for lib in ("libgrpc++1.51", "libprotobuf32", "libsqlite3-0", "libssl3"):
            self.assertIn(lib, depends)  # found by dpkg-shlibdeps from the binaries
        client = [d for d in self.debs if "python3-alignd" in d][0]
        self.assertEqual(self.field(client, "Architecture"), "all")
        self.assertIn("python3-grpcio", self.field(client, "Depends"))
        scripts = subprocess.run(["dpkg-deb", "-I", server], capture_output=True, text=True, check=True).stdout
        for s in ("postinst", "prerm", "postrm"):
            self.assertIn(s, scripts)

    def test_files_are_where_debian_expects_them(self):
        for rel in ("/usr/bin/alignd", "/usr/bin/alignctl", "/usr/lib/systemd/system/alignd.service",
                    "/usr/bin/alignd-dashboard", "/usr/lib/systemd/system/alignd-dashboard.service",
                    "/usr/share/alignd/dashboard/index.html", "/usr/share/alignd/dashboard/app.js",
                    "/usr/share/alignd/proto/alignd/v1/sessions.proto", "/usr/share/doc/alignd/DEPLOY.md",
                    "/usr/share/doc/alignd/default.example",
                    "/usr/lib/python3/dist-packages/alignd_client/client.py",
                    "/usr/lib/python3/dist-packages/alignd_client/_pb/alignd/v1/sessions_pb2_grpc.py"):
            self.assertTrue(os.path.exists(self.path(rel)), rel)
        self.assertTrue(os.access(self.path("/usr/bin/alignd"), os.X_OK))

    def test_the_systemd_units_verify_and_sandbox_the_services(self):
        unit = open(self.path("/usr/lib/systemd/system/alignd.service")).read()
        for line in ("DynamicUser=yes", "StateDirectory=alignd", "ExecStart=/usr/bin/alignd --data_dir /var/lib/alignd",
                     "NoNewPrivileges=yes", "ProtectSystem=strict", "KillSignal=SIGTERM"):
            self.assertIn(line, unit)
        dash = open(self.path("/usr/lib/systemd/system/alignd-dashboard.service")).read()
        for line in ("DynamicUser=yes", "ExecStart=/usr/bin/alignd-dashboard --alignd localhost:50051",
                     "MemoryDenyWriteExecute=yes", "ProtectSystem=strict"):
            self.assertIn(line, dash)
        if shutil.which("systemd-analyze") is None:
            self.skipTest("no systemd-analyze")
        # The binary paths made to point into the scratch root; every key must be known.
        for name, text in (("alignd.service", unit), ("alignd-dashboard.service", dash)):
            test_unit = os.path.join(self.tmp, name)
            with open(test_unit, "w") as f:
                f.write(text.replace("/usr/bin/", self.path("/usr/bin/") + "/"))
            r = subprocess.run(["systemd-analyze", "verify", test_unit], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout + r.stderr, "", name)

    def test_the_installed_binaries_and_client_train_a_session(self):
        alignd, alignctl = self.path("/usr/bin/alignd"), self.path("/usr/bin/alignctl")
        version = subprocess.run([alignd, "--version"], capture_output=True, text=True, check=True).stdout
        self.assertRegex(version, r"^alignd \d+\.\d+\.\d+ \(\w+\)")
        data = os.path.join(self.tmp, "data")
        proc = subprocess.Popen([alignd, "--listen", "127.0.0.1:0", "--metrics_listen", "", "--data_dir", data],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            address = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
            r = subprocess.run([alignctl, "--server", address, "health"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.stdout.strip(), f"{address}: SERVING", r.stderr)
            env = dict(os.environ, PYTHONPATH=self.path("/usr/lib/python3/dist-packages"))
            script = (
                "import sys; from alignd_client import Client\n"
                "import alignd_client; assert alignd_client.__file__.startswith(sys.argv[2]), alignd_client.__file__\n"
                "with Client(sys.argv[1]) as c:\n"
                "    d = c.generate_dataset('linear', examples=200)\n"
                "    s = c.create_session(d, sizes=[30, 20, 10], rule='fa', max_steps=30)\n"
                "    print(list(c.stream_metrics(s))[-1]['end']['state'])\n")
            r = subprocess.run([sys.executable, "-c", script, address, self.root], capture_output=True, text=True,
                               timeout=120, env=env)
            self.assertEqual(r.stdout.strip(), "SESSION_STATE_SUCCEEDED", r.stderr)
            # The installed dashboard finds its installed front end by itself.
            dash = subprocess.Popen([self.path("/usr/bin/alignd-dashboard"), "--alignd", address, "--listen",
                                     "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                url = dash.stdout.readline().strip().rsplit(" ", 1)[-1]
                with urllib.request.urlopen(url, timeout=30) as page:
                    self.assertIn("<title>alignd dashboard</title>", page.read().decode())
                with urllib.request.urlopen(url + "app.js", timeout=30) as js:
                    self.assertGreater(len(js.read()), 10000)
                with urllib.request.urlopen(url + "api/sessions", timeout=30) as api:
                    self.assertEqual(len(json.load(api)["sessions"]), 1)
            finally:
                dash.send_signal(signal.SIGTERM)
                self.assertEqual(dash.wait(timeout=30), 0)
                self.assertNotIn("no front end found", dash.stderr.read())
                dash.stdout.close()
                dash.stderr.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=60), 0)
            proc.stdout.close()


if __name__ == "__main__":
    unittest.main()
