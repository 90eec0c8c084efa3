"""Experiments through a real alignd and the Python client: the server's statistics
equal NumPy's (and SciPy's tests) on the same stored logs; list_experiments by filter and in
pages; cancel and delete.

Run by ctest with PYTHONPATH=build/python and ALIGND_BINARY set."""
import math
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import numpy as np

from alignd_client import AligndError, Client
from alignd_client._pb.alignd.v1 import experiments_pb2


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

    def test_list_experiments_by_filter_and_in_pages(self):
        ds = self.c.generate_dataset("linear", examples=100)
        suite = "paging-" + ds["name"].split("/")[1]
        made = []
        for i in range(5):
            made.append(self.c.create_experiment(
                ds, {"network": {"sizes": [30, 10]}, "max_steps": 10 ** 6 if i == 4 else 10},
                rules=["fa"] if i < 3 else ["bp", "dfa"], name=f"page-{i}",
                labels={"suite": suite, "parity": "even" if i % 2 == 0 else "odd"}))
        names = [e["name"] for e in made]

        def listed(flt, page_size=0):
            return [e["name"] for e in self.c.list_experiments(filter=flt, page_size=page_size)]
        everything = listed(f"labels.suite = {suite}")
        self.assertEqual(everything, sorted(names))  # by name
        # Page after page, whatever the page's size: the same list.
        for size in (1, 2, 3, 1000):
            self.assertEqual(listed(f"labels.suite = {suite}", size), everything, size)
        # ... and they are pages: two at a time, with a token for the rest.
        first = self.c._experiments.ListExperiments(
            experiments_pb2.ListExperimentsRequest(filter=f"labels.suite = {suite}", page_size=2))
        self.assertEqual([e.name for e in first.experiments], everything[:2])
        self.assertTrue(first.next_page_token)
        # A token binds its filter.
        with self.assertRaises(AligndError) as ctx:
            self.c._call(self.c._experiments.ListExperiments, experiments_pb2.ListExperimentsRequest(
                filter="labels.suite = other", page_size=2, page_token=first.next_page_token))
        self.assertEqual(ctx.exception.code.name, "INVALID_ARGUMENT")
        # Fields: labels, rule (any of the experiment's rules), display_name by prefix, state.
        self.assertEqual(listed(f"labels.suite = {suite} AND rule = dfa", 1), sorted(names[3:]))
        self.assertEqual(listed(f"labels.suite = {suite} AND labels.parity = even AND rule = fa", 1),
                         sorted([names[0], names[2]]))
        self.assertEqual(listed(f'labels.suite = {suite} AND display_name = "page-*" AND NOT rule = fa'),
                         sorted(names[3:]))
        # The state each one's sessions give it now: the short ones end, the long one runs.
        deadline = time.time() + 120
        while listed(f"labels.suite = {suite} AND state = succeeded") != sorted(names[:4]):
            self.assertLess(time.time(), deadline)
            time.sleep(0.1)
        self.assertEqual(listed(f"labels.suite = {suite} AND state = running"), [names[4]])
        self.assertEqual(listed("labels.suite = no-such-suite", 1), [])
        for bad, why in (("labels.suite = (", "a value expected"),
                         ("experiment_group = g0", "unknown field 'experiment_group'")):
            with self.assertRaises(AligndError) as ctx:
                self.c.list_experiments(filter=bad)
            self.assertEqual(ctx.exception.code.name, "INVALID_ARGUMENT")
            self.assertIn(why, ctx.exception.details)
        # Delete refuses while a session runs; cancel ends it CANCELLED, then delete takes it.
        with self.assertRaises(AligndError) as ctx:
            self.c.delete_experiment(made[4])
        self.assertEqual(ctx.exception.code.name, "FAILED_PRECONDITION")
        cancelled = self.c.cancel_experiment(made[4]["name"].split("/")[1])  # a bare id names it too
        self.assertEqual(cancelled["state"], "EXPERIMENT_STATE_CANCELLED")
        self.assertEqual(listed(f"labels.suite = {suite} AND state = cancelled"), [names[4]])
        self.assertEqual(listed(f"labels.suite = {suite} AND NOT state = cancelled", 3), sorted(names[:4]))
        for e in made:
            self.c.delete_experiment(e)
        self.assertEqual(listed(f"labels.suite = {suite}", 2), [])
        with self.assertRaises(AligndError) as ctx:
            self.c.get_experiment(made[0])
        self.assertEqual(ctx.exception.code.name, "NOT_FOUND")

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

    def test_every_figure_while_running_and_after_is_numpys(self):
        """Asked for again and again while the sessions run (each step counts the sessions
        that reached it; the server keeps what it read and reads only what was logged since),
        then once they have ended: every figure, every 40 steps, equals NumPy's on the logs,
        and so do the best validation values and the test values at their steps."""
        ds = self.c.generate_dataset("linear", examples=400)
        ev = self.c.generate_dataset("linear", examples=200, split="test")
        e = self.c.create_experiment(
            ds, {"network": {"sizes": [30, 20, 16, 10]}, "batch_size": 4, "max_steps": 800,
                 "metrics_every": 10, "eval_every": 40, "validation_fraction": 0.25,
                 "pbp_angle": True},
            rules=["fa", "bp"], seeds=[1, 2, 3], eval_dataset=ev, name="running",
            request_id="interop-running")
        deadline, calls = time.time() + 240, 0
        while self.c.get_experiment(e)["state"] == "EXPERIMENT_STATE_RUNNING":
            self.assertLess(time.time(), deadline)
            during = self.c.experiment_statistics(e, figures=["train.loss"])
            calls += 1
            for g in e["groups"]:
                n = during[g["id"]]["train.loss"]["n"]
                self.assertTrue(((n >= 0) & (n <= len(g["sessions"]))).all())
            time.sleep(0.05)
        self.assertGreater(calls, 0)

        def figure(event, name):
            kind, _, rest = name.partition(".")
            if kind == "train" and "step" in event:
                return event["step"][rest]
            if kind in ("eval", "validation") and "eval" in event and \
                    event["eval"]["validation"] == (kind == "validation"):
                return event["eval"][rest]
            if kind == "alignment" and "step" in event:
                layer, _, field = rest.partition(".")
                for a in event["step"]["alignment"]:
                    if a["layer"] == int(layer[1:]):
                        return a[field]
            return None

        def step_of(event):
            return event["step"]["step"] if "step" in event else event["eval"]["step"]

        def close(a, b, rel):
            return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= rel * max(abs(b), 1e-300)

        every = 40
        stats = self.c.experiment_statistics(e, every_steps=every)
        for g in e["groups"]:
            logs = [self.c.list_metrics(s) for s in g["sessions"]]
            got = stats[g["id"]]
            figures = [f for f in got if f != "best"]
            self.assertIn("eval.error_rate", figures)
            self.assertEqual(list(got["train.loss"]["step"][:3]), [1, 41, 81])  # metric steps 1, 11, ...
            self.assertIn("alignment.h2.update_angle_mean", figures)
            for f in figures:
                by_step = {}
                for log in logs:
                    # Each log's first step with the figure in each window [40k, 40k + 40).
                    first = {}
                    for event in log:
                        if figure(event, f) is not None:
                            first.setdefault(step_of(event) // every, step_of(event))
                    for event in log:
                        v = figure(event, f)
                        if v is not None and first[step_of(event) // every] == step_of(event):
                            by_step.setdefault(step_of(event), []).append(v)
                self.assertEqual(list(got[f]["step"]), sorted(by_step), f)
                for i, step in enumerate(got[f]["step"]):
                    xs = np.array(by_step[step], dtype=np.float64)
                    xs = xs[~np.isnan(xs)]
                    self.assertEqual(got[f]["n"][i], len(xs), (f, step))
                    if len(xs) == 0:
                        self.assertTrue(math.isnan(got[f]["mean"][i]))
                        continue
                    self.assertTrue(close(got[f]["mean"][i], xs.mean(), 1e-12), (f, step))
                    sd = xs.std(ddof=1) if len(xs) > 1 else float("nan")
                    self.assertTrue(close(got[f]["sd"][i], sd, 1e-12), (f, step))
            # Best validation per session (the lowest error rate, or NSE for regression as
            # here), and the test value at that step.
            def err(m):
                return m["nse"] if math.isnan(m["error_rate"]) else m["error_rate"]
            best, at = [], []
            for log in logs:
                vals = [(err(ev["eval"]), ev["eval"]["step"]) for ev in log
                        if "eval" in ev and ev["eval"]["validation"]]
                b, step = min(vals, key=lambda x: x[0])  # the first of equal ones, as alignd
                best.append(b)
                at.append([err(ev["eval"]) for ev in log if "eval" in ev and
                           not ev["eval"]["validation"] and ev["eval"]["step"] == step][-1])
                self.assertFalse(math.isnan(b))
            self.assertTrue(close(got["best"]["validation"]["mean"], np.mean(best), 1e-12))
            self.assertTrue(close(got["best"]["eval_at_best"]["mean"], np.mean(at), 1e-12))
            self.assertTrue(close(got["best"]["eval_at_best"]["sd"], np.std(at, ddof=1), 1e-12))


if __name__ == "__main__":
    unittest.main()
