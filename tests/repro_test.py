#!/usr/bin/python3
"""`make repro-quick` end to end: tools/repro/repro.py starts a real alignd, makes its data sets
through the Python client, creates each comparison as one alignd experiment, and reports alignd's
statistics. The checks are the protocol's, not the numbers': the validation split is evaluated
every epoch and alignd's best step is the lowest validation error, the runs succeed (but for the
two variants that diverge by design), Kolen-Pollack with weight decay aligns B with W^T, depth
helps BP on the deep task; and the report's statistics are alignd's: the experiments exist on
the server, the report's means and p-values are what GetExperimentStatistics and CompareGroups
return there (and what NumPy and SciPy compute from the runs' own values), and a rerun against
the same alignd resumes the same experiments instead of making new sessions.

Run by ctest with ALIGND_BUILD (the build folder) and, when make test could fetch it,
ALIGND_MNIST_DIR; without MNIST only the generated tasks run."""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ReproQuickTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.build = os.environ["ALIGND_BUILD"]
        sys.path.insert(0, os.path.join(cls.build, "python"))
        cls.mnist = bool(os.environ.get("ALIGND_MNIST_DIR"))
        cls.dir = tempfile.mkdtemp(prefix="alignd_repro_test_")
        cls.cmd = [sys.executable, os.path.join(ROOT, "tools/repro/repro.py"), "--build", cls.build, "--quick"]
        if not cls.mnist:
            cls.cmd += ["--only", "linear,deep"]
        # The first run starts its own alignd on a data directory that outlives it.
        p = subprocess.run(cls.cmd + ["--data_dir", cls.dir], capture_output=True, text=True, timeout=600)
        cls.output = p.stdout + p.stderr
        cls.returncode = p.returncode
        cls.out = os.path.join(cls.build, "repro-quick" if cls.mnist else "repro-quick-linear-deep")
        cls.results, cls.md = cls.read(cls.out)
        cls.rows = cls.results["runs"]
        cls.experiments = cls.results["experiments"]
        # The same data directory, served again: the experiments and their sessions are there.
        cls.proc = subprocess.Popen([os.path.join(cls.build, "server/alignd"), "--listen", "127.0.0.1:0",
                                     "--metrics_listen", "", "--data_dir", os.path.join(cls.dir, "data"),
                                     "--max_running", "2"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        cls.address = cls.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        from alignd_client import Client
        cls.client = Client(cls.address, timeout=120)
        cls.client.wait_ready()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.proc.terminate()
        cls.proc.wait(timeout=60)
        shutil.rmtree(cls.dir, ignore_errors=True)

    @staticmethod
    def read(out):
        with open(os.path.join(out, "results.json")) as f:
            results = json.load(f)
        with open(os.path.join(out, "results.md")) as f:
            return results, f.read()

    def runs(self, experiment, **kw):
        return [r for r in self.rows if r["experiment"] == experiment and all(r.get(k) == v for k, v in kw.items())]

    def experiment(self, key):
        return next(e for e in self.experiments if e["key"] == key)

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
            # The epoch alignd chose (its best step) has the lowest validation error.
            self.assertEqual(f["validation_error_selected"], min(r["validation_error"]))
            self.assertGreaterEqual(f["selected_epoch"], 1)
            self.assertLess(f["test_error_selected"], 0.9)  # it learned something
        self.assertIn("Paired comparison, same seeds", self.md)
        # BP and FA each at its own rate, in one experiment: two variants, nothing more made.
        self.assertEqual(sorted((r["rule"], r["config"]["optimizer"]["learning_rate"]) for r in self.runs("mnist")),
                         [("bp", 0.2), ("bp", 0.2), ("fa", 0.05), ("fa", 0.05)])
        x = self.client.get_experiment(self.experiment("mnist")["name"])
        self.assertEqual([(g["rule"], g["variant"]) for g in x["groups"]],
                         [("RULE_BACKPROP", "BP"), ("RULE_FEEDBACK_ALIGNMENT", "FA")])
        self.assertEqual(x["sessions_total"], 4)
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
        kp = self.runs("linear", rule="kp")
        self.assertTrue(all(r["config"]["optimizer"]["weight_decay"] == 0.1 for r in kp))

    def test_deep_task_depth_helps_bp_on_every_seed(self):
        three = {r["seed"]: r["figures"]["nse"] for r in self.runs("deep", rule="bp", net="3-layer")}
        four = {r["seed"]: r["figures"]["nse"] for r in self.runs("deep", rule="bp", net="4-layer")}
        self.assertEqual(sorted(three), [1, 2, 3])
        for s in three:
            # One teacher for every seed (an experiment has one data set; the seed sets each
            # student's init and order): in the quick version's 20 epochs the 4-layer BP student
            # ends 10 to 2,000 times lower than the 3-layer one.
            self.assertLess(four[s], three[s] / 5, s)
        self.assertIn("### Deep nonlinear task", self.md)
        self.assertEqual(sum(line.startswith(("| bp | ", "| fa | ")) and "-layer |" in line
                             for line in self.md.splitlines()), 4)

    def test_the_experiments_are_on_the_server(self):
        for e in self.experiments:
            x = self.client.get_experiment(e["name"])
            self.assertEqual(x["state"], "EXPERIMENT_STATE_SUCCEEDED", e["name"])
            self.assertEqual(x["sessions_ended"], x["sessions_total"])
            self.assertEqual(x["sessions_total"], sum(len(g["sessions"]) for g in e["groups"]))
            groups = {g["id"]: g for g in x["groups"]}
            for g in e["groups"]:
                self.assertEqual(groups[g["id"]]["sessions"], g["sessions"])
                for s in g["sessions"]:
                    self.assertEqual(self.client.get_session(s)["experiment"], e["name"])
            self.assertIn(f"`{e['name']}`", self.md)
        names = {e["name"] for e in self.experiments}
        self.assertEqual({r["experiment_name"] for r in self.rows}, names)

    def test_the_reports_statistics_are_alignds(self):
        import numpy as np
        for e in self.experiments:
            stats = self.client.experiment_statistics(e["name"])
            for g in e["groups"]:
                runs = [r for r in self.rows if r["experiment_name"] == e["name"] and r["group"] == g["id"]]
                best = stats[g["id"]]["best"]
                self.assertEqual(best["best_steps"].tolist(), g["statistics"]["best"]["best_steps"])
                for k, v in best["eval_at_best"].items():  # NaN (no value) equals NaN here
                    w = g["statistics"]["best"]["eval_at_best"][k]
                    self.assertTrue(v == w or (math.isnan(v) and math.isnan(w)), (e["name"], g["id"], k, v, w))
                ok = [r for r in runs if "test_error_selected" in r["figures"]]
                if len(ok) >= 2 and len(ok) == len(runs):  # alignd's summary of the runs' own values
                    xs = np.array([r["figures"]["test_error_selected"] for r in ok])
                    self.assertEqual(best["eval_at_best"]["n"], len(xs))
                    self.assertAlmostEqual(best["eval_at_best"]["mean"], xs.mean(), delta=1e-12)
                    self.assertAlmostEqual(best["eval_at_best"]["sd"], xs.std(ddof=1), delta=1e-12)
                nse = [r["figures"]["nse"] for r in runs if "nse" in r["figures"]]
                if len(nse) >= 2:
                    last = stats[g["id"]]["eval.nse"]
                    self.assertEqual(last["n"][-1], len(nse))
                    self.assertAlmostEqual(last["mean"][-1], np.mean(nse), delta=1e-12 * np.mean(nse))

    def test_the_reports_p_values_are_compare_groups(self):
        if not self.mnist:
            self.skipTest("MNIST not available")
        from scipy import stats as sp
        e = self.experiment("mnist")
        rows = [line for line in self.md.splitlines() if line.startswith("| test error, ")]
        self.assertEqual(len(rows), 2)
        key = {"best.eval": "test_error_selected", "eval.error_rate": "test_error_last"}
        for c, row in zip(e["comparisons"], rows):
            got = self.client.compare_groups(e["name"], c["group_a"], c["group_b"], figure=c["figure"])
            cells = [x.strip() for x in row.split("|")[1:-1]]
            self.assertEqual(cells[1], str(got["n"]))
            self.assertEqual(cells[2], f"{100 * got['diff']:+.2f} points")
            self.assertEqual(cells[5], f"{got['p_t']:.3g}")
            self.assertEqual(cells[6], "–" if math.isnan(got["p_w"]) else f"{got['p_w']:.3g}")
            self.assertEqual(c["p_t"], got["p_t"])
            # ... and SciPy's on the runs' own values.
            fa = {r["seed"]: r["figures"][key[c["figure"]]] for r in self.runs("mnist", rule="fa")}
            bp = {r["seed"]: r["figures"][key[c["figure"]]] for r in self.runs("mnist", rule="bp")}
            a, b = [fa[s] for s in sorted(fa)], [bp[s] for s in sorted(fa)]
            self.assertAlmostEqual(got["p_t"], sp.ttest_rel(a, b).pvalue, delta=1e-9)
            self.assertAlmostEqual(got["p_w"], sp.wilcoxon(a, b).pvalue, delta=1e-12)

    def test_z_a_rerun_resumes_the_same_experiments(self):
        before = len(self.client.list_sessions())
        p = subprocess.run(self.cmd + ["--address", self.address], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr)[-3000:])
        self.assertIn("resumed", p.stdout)
        again, _ = self.read(self.out)
        self.assertEqual([e["name"] for e in again["experiments"]], [e["name"] for e in self.experiments])
        self.assertEqual(len(self.client.list_sessions()), before)


if __name__ == "__main__":
    unittest.main()
