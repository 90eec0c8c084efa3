#!/usr/bin/python3
"""`make repro-conv`'s short version end to end: tools/repro/repro.py --quick --only conv starts a
real alignd, uploads MNIST through the Python client, and trains LeNet-5 with every rule of the
conv table (BP, FA, DFA, uSF, brSF, frSF, Kolen-Pollack; two seeds, four epochs of 5,000
examples) under BioTorch's protocol, as one alignd experiment. The checks are the protocol's and
the literature's ordering, not the full run's numbers: every session succeeds, each rule at its own
learning rate; the validation split is evaluated every epoch and alignd's best step is the lowest
validation error; the rate falls at the epochs the protocol says; BP and sign symmetry learn; FA
trails BP; and the table's differences and p-values against BP are alignd's CompareGroups (as
SciPy computes them from the runs' own values).

Run by ctest with ALIGND_BUILD and ALIGND_MNIST_DIR (skipped without MNIST)."""
import json
import math
import os
import statistics
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@unittest.skipUnless(os.environ.get("ALIGND_MNIST_DIR"), "MNIST not available")
class ReproConvQuickTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        build = os.environ["ALIGND_BUILD"]
        cmd = [sys.executable, os.path.join(ROOT, "tools/repro/repro.py"), "--build", build, "--quick",
               "--only", "conv"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        cls.output = p.stdout + p.stderr
        cls.returncode = p.returncode
        out = os.path.join(build, "repro-quick-conv")
        with open(os.path.join(out, "results.json")) as f:
            results = json.load(f)
        cls.rows = [r for r in results["runs"] if r["experiment"] == "conv"]
        cls.experiment = next(e for e in results["experiments"] if e["key"] == "conv")
        with open(os.path.join(out, "results.md")) as f:
            cls.md = f.read()

    def errors(self, variant):
        return [r["figures"]["test_error_selected"] for r in self.rows if r["variant"] == variant]

    def test_every_rule_trains_lenet_through_alignd(self):
        self.assertEqual(self.returncode, 0, self.output[-3000:])
        self.assertEqual(sorted({r["variant"] for r in self.rows}),
                         sorted(["bp", "fa", "dfa", "usf", "brsf", "frsf", "kp"]))
        self.assertEqual(len(self.rows), 7 * 2)
        for r in self.rows:
            self.assertEqual(r["state"], "SESSION_STATE_SUCCEEDED", r["name"] + ": " + r.get("failure", ""))
            self.assertEqual([l["kind"] for l in r["config"]["network"]["layers"]][:2],
                             ["LAYER_KIND_CONV", "LAYER_KIND_MAX_POOL"])

    def test_the_protocol(self):
        for r in self.rows:
            c = r["config"]
            self.assertEqual(c["batch_size"], 64)
            self.assertEqual(c["optimizer"]["momentum"], 0.9)
            self.assertEqual(c["optimizer"]["weight_decay"], 1e-3)
            self.assertEqual(c["optimizer"]["decay_epochs"], [2, 3])  # 50 % and 75 % of 4 epochs
            # Validation every epoch, and the epoch chosen by it.
            self.assertEqual(len(r["validation_error"]), 4, r["name"])
            best = min(range(4), key=lambda k: (r["validation_error"][k], k))
            self.assertEqual(r["figures"]["selected_epoch"], best + 1, r["name"])
        self.assertIn("### LeNet-5 on MNIST, every rule", self.md)
        self.assertIn("| 0.91 % |", self.md)  # BioTorch's BP beside ours

    def test_each_rule_at_its_rate_in_one_experiment(self):
        rates = {"bp": 0.03, "fa": 0.01, "dfa": 0.001, "usf": 0.03, "brsf": 0.01, "frsf": 0.03, "kp": 0.01}
        for r in self.rows:
            self.assertEqual(r["config"]["optimizer"]["learning_rate"], rates[r["variant"]], r["name"])
            self.assertEqual(r["experiment_name"], self.experiment["name"])
        self.assertIn(f"`{self.experiment['name']}`", self.md)

    def test_the_tables_comparisons_are_alignds(self):
        from scipy import stats as sp
        bp_id = next(g["id"] for g in self.experiment["groups"] if g["label"] == "bp")
        cs = {c["a"]: c for c in self.experiment["comparisons"]}
        self.assertEqual(sorted(cs), sorted(["fa", "dfa", "usf", "brsf", "frsf", "kp"]))
        bp = {r["seed"]: r["figures"]["test_error_selected"] for r in self.rows if r["variant"] == "bp"}
        for variant, c in cs.items():
            self.assertEqual((c["group_b"], c["figure"]), (bp_id, "best.eval"))
            row = next(line for line in self.md.splitlines() if line.startswith(f"| {variant} |"))
            cells = [x.strip() for x in row.split("|")[1:-1]]
            self.assertEqual(cells[6], f"{100 * c['diff']:+.2f}")
            self.assertEqual(cells[8], "–" if math.isnan(c["p_t"]) else f"{c['p_t']:.3g}")
            self.assertEqual(cells[9], "–" if math.isnan(c["p_w"]) else f"{c['p_w']:.3g}")
            mine = {r["seed"]: r["figures"]["test_error_selected"] for r in self.rows if r["variant"] == variant}
            a, b = [mine[k] for k in sorted(mine)], [bp[k] for k in sorted(mine)]
            self.assertAlmostEqual(c["diff"], statistics.mean(x - y for x, y in zip(a, b)), delta=1e-12)
            if not math.isnan(c["p_t"]):
                self.assertAlmostEqual(c["p_t"], sp.ttest_rel(a, b).pvalue, delta=1e-9)

    def test_bp_and_sign_symmetry_learn_and_fa_trails(self):
        # Four short epochs of 78 steps: far from the full protocol's errors (BP ~15 %, sign
        # symmetry ~30 %, FA ~80 % here), but BP and sign symmetry well below chance (90 %).
        for variant in ("bp", "usf", "brsf", "frsf"):
            self.assertLess(statistics.mean(self.errors(variant)), 0.5, variant)
        self.assertGreater(statistics.mean(self.errors("fa")), statistics.mean(self.errors("bp")))


if __name__ == "__main__":
    unittest.main()
