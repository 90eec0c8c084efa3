#!/usr/bin/python3
"""`make repro-quick` end to end: tools/repro/repro.py starts a real alignd, makes its data sets
through the Python client, runs every experiment's small version as sessions and reports. The
checks are the protocol's, not the numbers': the validation split is evaluated every epoch and
the epoch is chosen by it, the runs succeed (but for the two variants that diverge by design),
Kolen-Pollack with weight decay aligns B with W^T, and depth helps BP on the deep task.

Run by ctest with ALIGND_BUILD (the build folder) and, when make test could fetch it,
ALIGND_MNIST_DIR; without MNIST only the generated tasks run."""
import json
import os
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ReproQuickTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.build = os.environ["ALIGND_BUILD"]
        cls.mnist = bool(os.environ.get("ALIGND_MNIST_DIR"))
        cmd = [sys.executable, os.path.join(ROOT, "tools/repro/repro.py"), "--build", cls.build, "--quick"]
        if not cls.mnist:
            cmd += ["--only", "linear,deep"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        cls.output = p.stdout + p.stderr
        cls.returncode = p.returncode
        out = os.path.join(cls.build, "repro-quick" if cls.mnist else "repro-quick-linear-deep")
        with open(os.path.join(out, "results.json")) as f:
            cls.rows = json.load(f)
        with open(os.path.join(out, "results.md")) as f:
            cls.md = f.read()

    def runs(self, experiment, **kw):
        return [r for r in self.rows if r["experiment"] == experiment and all(r.get(k) == v for k, v in kw.items())]

    def test_it_ends_well_through_a_server_it_started(self):
        self.assertEqual(self.returncode, 0, self.output[-3000:])
        self.assertIn("alignd at 127.0.0.1:", self.output)
        for r in self.rows:
            if r["experiment"] != "pbp":
                self.assertEqual(r["state"], "SESSION_STATE_SUCCEEDED", r["name"])

    def test_mnist_holds_out_validation_and_chooses_the_epoch_by_it(self):
        if not self.mnist:
            self.skipTest("MNIST not available")
        runs = self.runs("mnist") + self.runs("sparse") + self.runs("shallow")
        self.assertEqual(len(runs), 2 * 2 + 2 + 2 * 2)
        self.assertEqual(len(self.runs("adam")), 2 * 2)
        for r in runs:
            f = r["figures"]
            self.assertEqual(r["config"]["validation_fraction"], 1 / 6)
            self.assertEqual(len(r["validation_error"]), f["epochs"], r["name"])
            self.assertEqual(f["validation_error_selected"], min(r["validation_error"]))
            self.assertGreaterEqual(f["selected_epoch"], 1)
            self.assertLess(f["test_error_selected"], 0.9)  # it learned something
        self.assertIn("Paired comparison, same seeds", self.md)
        # The diverging variants are reported as such, the damped one trains.
        exact = self.runs("pbp", variant="pbp exact")
        damped = self.runs("pbp", variant="pbp damped 0.01")
        self.assertTrue(damped and all(r["state"] == "SESSION_STATE_SUCCEEDED" for r in damped))
        for e in exact:
            if e["state"] == "SESSION_STATE_SUCCEEDED":
                self.assertGreater(e["figures"]["test_error_last"], damped[0]["figures"]["test_error_last"])
            else:
                self.assertIn("diverged", e["failure"])

    def test_linear_task_kolen_pollack_with_decay_aligns_b_with_w(self):
        self.assertIn("| kp |", self.md)
        row = next(line for line in self.md.splitlines() if line.startswith("| kp |"))
        start, end = row.split("|")[-2].strip().split(" → ")
        self.assertGreater(float(start.rstrip("°")), 60)
        self.assertLess(float(end.rstrip("°")), 20)
        self.assertEqual(len(self.runs("linear")), 5 * 2)

    def test_deep_task_depth_helps_bp_on_every_seed(self):
        three = {r["seed"]: r["figures"]["nse"] for r in self.runs("deep", rule="bp", net="3-layer")}
        four = {r["seed"]: r["figures"]["nse"] for r in self.runs("deep", rule="bp", net="4-layer")}
        self.assertEqual(sorted(three), [1, 2, 3])
        for s in three:
            self.assertLess(four[s], three[s] / 10, s)
        self.assertIn("Depth, paired by seed", self.md)


if __name__ == "__main__":
    unittest.main()
