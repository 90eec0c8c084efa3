"""make test-image: the container image, run for real on this machine.

There is no Docker daemon and `podman run` cannot set up a container here, so the image's
file system is exported (podman export) and run the way a runtime would: in its own mount
and PID namespaces (unshare), chrooted, as the image's USER, with the image's ENTRYPOINT
and CMD, a host directory as its volume and certificates and tokens mounted where the CMD
expects them. Only the listening ports are changed, to free ones on 127.0.0.1. Checks:
the image's metadata (user, volume, ports, health check, stop signal), its size, that no
build tool is left in it, that alignd runs as the non-root user and serves TLS with tokens,
that the image's own HEALTHCHECK command says SERVING, that a session trains to SUCCEEDED
through alignctl from outside, that SIGTERM checkpoints running sessions, and that a new
container on the same volume resumes them.

Usage: tests/deploy/test_image.py [--image localhost/alignd:latest] [--alignctl build/client/alignctl]
Needs root (unshare, chroot, mount), podman and openssl."""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import certs  # noqa: E402

ARGS = None
MAX_IMAGE_BYTES = 150_000_000
TOKEN = "alignd_image_test_token"


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


class Container:
    """The image's file system run as a container: namespaces, chroot, USER, ENTRYPOINT + CMD."""

    def __init__(self, rootfs, config, volume, secrets, log_path):
        self.rootfs = rootfs
        user = config["User"]
        cmd = []
        for a in config["Cmd"]:
            for flag in ("--listen=", "--health_listen=", "--metrics_listen="):
                if a.startswith(flag):
                    a = flag + "127.0.0.1:0"
            cmd.append(a)
        script = (
            'set -e; mount --make-rprivate /; '
            'mount --bind "$1" "$ROOT/var/lib/alignd"; mount --bind "$2" "$ROOT/etc/alignd"; '
            'mount --bind /dev "$ROOT/dev"; mount -t proc proc "$ROOT/proc"; shift 2; '
            f'exec chroot --userspec={user} --groups= "$ROOT" "$@"')
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "sh", "-c", script, "sh", volume, secrets,
             *config["Entrypoint"], *cmd],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=dict(os.environ, ROOT=rootfs))
        lines = {}
        for _ in range(3):
            line = self.proc.stdout.readline().strip()
            if not line:
                break
            kind = line.split(" ")[1]  # "alignd listening on ...", "alignd metrics on ..."
            lines[kind] = line.rsplit(" ", 1)[-1]
        if "listening" not in lines:
            self.proc.wait(timeout=30)
            raise RuntimeError("alignd did not start in the image: " + open(log_path).read())
        self.address = lines["listening"]
        self.health = lines["health"]
        self.metrics = lines["metrics"].replace("/metrics", "")
        children = run("pgrep", "-P", str(self.proc.pid)).split()
        self.pid = int(children[0])  # unshare's child: exec'd into sh, chroot, then alignd

    def uid(self):
        with open(f"/proc/{self.pid}/status") as f:
            return [line.split()[1:] for line in f if line.startswith("Uid:")][0]

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
            self.proc.wait(timeout=timeout)
        self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="alignd_image_")
        cls.info = json.loads(run("podman", "image", "inspect", ARGS.image))[0]
        cls.config = cls.info["Config"]
        name = f"alignd-image-test-{os.getpid()}"
        run("podman", "create", "--name", name, ARGS.image)
        try:
            tar = os.path.join(cls.tmp, "rootfs.tar")
            run("podman", "export", "-o", tar, name)
        finally:
            run("podman", "rm", name)
        cls.rootfs = os.path.join(cls.tmp, "rootfs")
        os.makedirs(cls.rootfs)
        run("tar", "-C", cls.rootfs, "--numeric-owner", "-xf", tar)
        os.remove(tar)
        # What the deployment mounts at /etc/alignd: a certificate for 127.0.0.1, its key and
        # the token file (readable by the image's user, as a Secret's files would be).
        cls.pki = certs.make_pki(os.path.join(cls.tmp, "pki"))
        cls.secrets = os.path.join(cls.tmp, "etc-alignd")
        os.makedirs(os.path.join(cls.secrets, "tls"))
        shutil.copy(cls.pki["server_cert"], os.path.join(cls.secrets, "tls", "tls.crt"))
        shutil.copy(cls.pki["server_key"], os.path.join(cls.secrets, "tls", "tls.key"))
        os.chmod(os.path.join(cls.secrets, "tls", "tls.key"), 0o644)
        with open(os.path.join(cls.secrets, "tokens"), "w") as f:
            f.write(f"{hashlib.sha256(TOKEN.encode()).hexdigest()} tester admin\n")
        uid, gid = (int(x) for x in cls.config["User"].split(":"))
        cls.volume = os.path.join(cls.tmp, "volume")
        os.makedirs(cls.volume)
        os.chown(cls.volume, uid, gid)
        os.chmod(cls.volume, 0o700)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start(self):
        c = Container(self.rootfs, self.config, self.volume, self.secrets, os.path.join(self.tmp, "alignd.log"))
        self.addCleanup(lambda: c.stop(signal.SIGKILL) if c.proc.poll() is None else None)
        return c

    def alignctl(self, c, *args, check=True):
        p = subprocess.run([ARGS.alignctl, "--server", c.address, "--ca", self.pki["ca"], "--timeout", "30", *args],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ, ALIGND_TOKEN=TOKEN))
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def session(self, c, name):
        return json.loads(self.alignctl(c, "-o", "json", "sessions", "get", name).stdout)

    # ---- the image as built -------------------------------------------------------------
    def test_metadata_size_and_no_build_tools(self):
        c = self.config
        self.assertEqual(c["User"], "10001:10001")
        self.assertIn("/var/lib/alignd", c["Volumes"])
        self.assertEqual(sorted(c["ExposedPorts"]), ["50051/tcp", "50052/tcp", "8080/tcp", "9464/tcp"])
        self.assertEqual(c["StopSignal"], "SIGTERM")
        self.assertEqual(c["Entrypoint"], ["/usr/bin/alignd"])
        self.assertIn("/usr/bin/alignctl", self.info["Healthcheck"]["Test"])
        size = int(self.info["Size"])
        print(f"\nimage {ARGS.image}: {size / 1e6:.1f} MB (target < {MAX_IMAGE_BYTES / 1e6:.0f} MB)", file=sys.stderr)
        self.assertLess(size, MAX_IMAGE_BYTES)
        for tool in ("gcc", "g++", "cc", "c++", "cmake", "ninja", "make", "protoc", "ld", "as", "cpp"):
            self.assertFalse(os.path.exists(os.path.join(self.rootfs, "usr/bin", tool)), tool)
        self.assertFalse(os.path.exists(os.path.join(self.rootfs, "usr/include/c++")))
        packages = run("dpkg-query", "--admindir", os.path.join(self.rootfs, "var/lib/dpkg"), "-W",
                       "-f", "${Package}\n").split()
        self.assertIn("alignd", packages)
        build = [p for p in packages if p.endswith("-dev") or p in ("build-essential", "cmake", "ninja-build")
                 or re.match(r"^(gcc|g\+\+|cpp)(-\d+)?$", p)]
        self.assertEqual(build, [])
        self.assertTrue(os.path.exists(os.path.join(self.rootfs, "usr/lib/python3/dist-packages/alignd_client")))
        # The image leaves out libraries nothing loads: everything the binaries need is there.
        for binary in ("/usr/bin/alignd", "/usr/bin/alignctl", "/usr/bin/alignd-dashboard"):
            libs = run("chroot", self.rootfs, "/usr/bin/ldd", binary)
            self.assertNotIn("not found", libs, f"{binary}:\n{libs}")

    def test_the_dashboard_serves_its_front_end_from_the_image(self):
        dash = subprocess.Popen(["chroot", f"--userspec={self.config['User']}", "--groups=", self.rootfs,
                                 "/usr/bin/alignd-dashboard", "--alignd", "127.0.0.1:1", "--listen", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = dash.stdout.readline().strip().rsplit(" ", 1)[-1]
            with urllib.request.urlopen(url, timeout=30) as page:
                self.assertIn("<title>alignd dashboard</title>", page.read().decode())
            with urllib.request.urlopen(url + "app.js", timeout=30) as js:
                self.assertGreater(len(js.read()), 10000)
        finally:
            dash.send_signal(signal.SIGTERM)
            self.assertEqual(dash.wait(timeout=30), 0)
            dash.stdout.close()
            dash.stderr.close()

    # ---- the image running --------------------------------------------------------------
    def test_runs_as_its_user_trains_checkpoints_on_sigterm_and_resumes_on_the_same_volume(self):
        c = self.start()
        self.assertEqual(c.uid()[0], "10001")  # real uid
        with open(os.path.join(self.tmp, "alignd.log")) as f:
            log = f.read()
        serving = [json.loads(x) for x in log.splitlines() if '"msg":"serving"' in x][-1]
        self.assertTrue(serving["tls"] and serving["tokens"], serving)
        self.assertEqual(self.alignctl(c, "health").stdout.strip(), f"{c.address}: SERVING")
        # The image's own HEALTHCHECK, run inside it against the health port.
        test = [a.replace("127.0.0.1:50052", c.health) for a in self.info["Healthcheck"]["Test"][1:]]
        hc = subprocess.run(["chroot", f"--userspec={self.config['User']}", "--groups=", self.rootfs, *test],
                            capture_output=True, text=True, timeout=60)
        self.assertEqual((hc.returncode, hc.stdout.strip()), (0, f"{c.health}: SERVING"), hc.stderr)
        # A session trains to the end through alignctl from outside.
        ds = self.alignctl(c, "-o", "name", "datasets", "generate", "--kind", "linear", "--examples", "1000").stdout.strip()
        short = json.loads(self.alignctl(c, "-o", "json", "sessions", "create", "--dataset", ds, "--sizes", "30,20,10",
                                         "--rule", "fa", "--max-steps", "200").stdout)["name"]
        watched = self.alignctl(c, "sessions", "watch", short)
        self.assertIn("SUCCEEDED", watched.stdout)
        # A long one is running when the container is stopped.
        long = json.loads(self.alignctl(c, "-o", "json", "sessions", "create", "--dataset", ds, "--sizes",
                                        "30,100,100,10", "--rule", "fa", "--batch", "1", "--max-steps", "2000000",
                                        "--checkpoint-every", "100000000").stdout)["name"]
        deadline = time.time() + 60
        while int(self.session(c, long).get("step", 0)) < 1000 and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(c.stop(signal.SIGTERM), 0)
        with open(os.path.join(self.tmp, "alignd.log")) as f:
            self.assertIn('"msg":"shutting down"', f.read())
        # A new container on the same volume: the session resumes from the checkpoint that
        # SIGTERM wrote (checkpoint_every is far away: only the stop can have written one).
        c2 = self.start()
        s = self.session(c2, long)
        self.assertIn(s["state"], ("SESSION_STATE_QUEUED", "SESSION_STATE_RUNNING"))
        self.assertGreaterEqual(int(s.get("step", 0)), 1000)
        self.assertEqual(self.session(c2, short)["state"], "SESSION_STATE_SUCCEEDED")
        before = int(s["step"])
        time.sleep(1.5)
        self.assertGreater(int(self.session(c2, long).get("step", 0)), before)  # training again
        self.alignctl(c2, "sessions", "cancel", long)
        self.assertEqual(c2.stop(signal.SIGTERM), 0)


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", default="localhost/alignd:latest")
    p.add_argument("--alignctl", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "client", "alignctl"))
    ARGS, rest = p.parse_known_args()
    ARGS.alignctl = os.path.abspath(ARGS.alignctl)
    unittest.main(argv=[sys.argv[0], "-v", *rest])


if __name__ == "__main__":
    main()
