"""Experiments (issue 22, work in progress) through a real alignd and the Python client: the
server's statistics equal NumPy's (and SciPy's tests) on the same stored logs.

Run by ctest with PYTHONPATH=build/python and ALIGND_BINARY set."""
import math
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import numpy as np

from alignd_client import Client


class ExperimentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="alignd_experiments_")
        cls.proc = subprocess.Popen([os.environ["ALIGND_BINARY"], "--listen", "127.0.0.1:0",
                                     "--metrics_listen", "", "--data_dir", cls.dir + "/data",
                                     "--max_running", "2"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        cls.address = cls.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        cls.c = Client(cls.address)
        cls.c.wait_ready()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.proc.terminate()
        cls.proc.wait(timeout=30)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_statistics_are_numpys_on_the_same_logs(self):
        ds = self.c.generate_dataset("linear", examples=400)
        e = self.c.create_experiment(
            ds, {"network": {"sizes": [30, 20, 10]}, "batch_size": 4, "max_steps": 120,
                 "metrics_every": 20, "eval_every": 40, "validation_fraction": 0.25},
            rules=["bp", "fa"], seeds=[1, 2, 3, 4], grid={"optimizer.learning_rate": [0.01, 0.03]},
            name="lr", labels={"study": "interop"}, request_id="interop-1")
        self.assertEqual(e["sessions_total"], 16)
        self.assertEqual([g["id"] for g in e["groups"]], ["g0", "g1", "g2", "g3"])
        deadline = time.time() + 240
        while self.c.get_experiment(e)["state"] == "EXPERIMENT_STATE_RUNNING":
            self.assertLess(time.time(), deadline)
            time.sleep(0.2)
        stats = self.c.experiment_statistics(e, figures=["train.loss", "validation.nse"])
        from scipy import stats as sp
        for g in e["groups"]:
            logs = [self.c.list_metrics(s) for s in g["sessions"]]
            loss = stats[g["id"]]["train.loss"]
            for i, step in enumerate(loss["step"]):
                xs = np.array([ev["step"]["loss"] for log in logs for ev in log
                               if "step" in ev and ev["step"]["step"] == step])
                self.assertEqual(loss["n"][i], len(xs))
                self.assertAlmostEqual(loss["mean"][i], xs.mean(), delta=1e-12 * abs(xs.mean()))
                self.assertAlmostEqual(loss["sd"][i], xs.std(ddof=1), delta=1e-12 * xs.std(ddof=1))
                half = sp.t.ppf(0.975, len(xs) - 1) * xs.std(ddof=1) / math.sqrt(len(xs))
                self.assertAlmostEqual(loss["ci_high"][i] - loss["mean"][i], half, delta=1e-9 * half)
        last = lambda log: [ev for ev in log if "step" in ev][-1]["step"]["loss"]  # noqa: E731
        la = [last(self.c.list_metrics(s)) for s in e["groups"][1]["sessions"]]
        lb = [last(self.c.list_metrics(s)) for s in e["groups"][3]["sessions"]]
        cmp = self.c.compare_groups(e, "g1", "g3", figure="train.loss")
        self.assertEqual(cmp["n"], 4)
        self.assertAlmostEqual(cmp["diff"], np.mean(np.subtract(la, lb)), delta=1e-12)
        self.assertAlmostEqual(cmp["p_t"], sp.ttest_rel(la, lb).pvalue, delta=1e-9)
        self.assertAlmostEqual(cmp["p_w"], sp.wilcoxon(la, lb).pvalue, delta=1e-12)
        # Sessions name their experiment; the filter finds a group's.
        got = self.c.list_sessions(filter=f'experiment = "{e["name"]}" AND experiment_group = g2')
        self.assertEqual(sorted(s["name"] for s in got), sorted(e["groups"][2]["sessions"]))
        # A retry with the request id is the same experiment.
        again = self.c.create_experiment(
            ds, {"network": {"sizes": [30, 20, 10]}, "batch_size": 4, "max_steps": 120,
                 "metrics_every": 20, "eval_every": 40, "validation_fraction": 0.25},
            rules=["bp", "fa"], seeds=[1, 2, 3, 4], grid={"optimizer.learning_rate": [0.01, 0.03]},
            name="lr", labels={"study": "interop"}, request_id="interop-1")
        self.assertEqual(again["name"], e["name"])


if __name__ == "__main__":
    unittest.main()
