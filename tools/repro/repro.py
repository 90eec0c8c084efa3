#!/usr/bin/python3
"""make repro / make repro-quick: the experiments of Lillicrap et al. (2016), run through
alignd as users run them: this script starts a server (build/server/alignd, a data
directory of its own, two sessions at a time on two cores), uploads or generates the data
sets through the Python client, creates every session, follows them and reads their metric
logs back. The numbers are the service's.

  mnist     784-1000-10, logistic units, squared error, plain SGD on one example at a time,
            the paper's init (W ~ U[-0.05, 0.05], B ~ U[-0.5, 0.5]), weight decay 1e-6; the last
            10,000 training examples held out for validation (the epoch is chosen by it); BP,
            FA, and shallow at two init scales
  sparse    the same with 50 % of W and B removed for good: FA
  adam      the same network with Adam on mini-batches of 32 (not the paper's protocol)
  linear    30-20-10 linear net on y* = T x: test NSE vs examples and the FA-BP angle for
            shallow, BP, FA, DFA and Kolen-Pollack with weight decay
  deep      nonlinear teacher 30-20-10-10 tanh: 3-layer vs 4-layer students, BP and FA, many seeds
  pbp       a 64-100-100-100-10 tanh net on 8x8 MNIST: pseudo-backprop exact and damped, sign
            symmetry uSF and scale-matched, beside BP and FA
  conv      (opt-in: --only conv, or make repro-conv) LeNet-5 on MNIST under BioTorch's protocol:
            BP, FA, DFA, uSF, brSF, frSF and Kolen-Pollack, SGD with momentum 0.9, weight decay
            1e-3, batch 64, 100 epochs, a learning rate per rule (CONV_LR) divided by 10 at
            epochs 50 and 75, a 10,000-example validation split and the best-validation epoch's
            test error
  convtune  (opt-in: --only convtune --conv_epochs 20) the study that chose CONV_LR: every conv
            rule at each rate of --conv_tune_lr, seed 1, validation error at the best epoch

Writes BUILD/repro/results.json (one object per run: its config, curves and figures),
BUILD/repro/results.md (the tables with the statistics) and PNG plots (matplotlib), and with
--docs copies the plots to docs/img/.
"""
import argparse
import gzip
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# ---- The plan ------------------------------------------------------------------------------------

# MNIST learning rates, one per rule, chosen on the validation split (seed 1, 15 epochs; the
# sweep is in docs/RESULTS.md): BP 0.2 of {0.05, 0.1, 0.2}; FA 0.05 (FA's B ~ U[-0.5, 0.5] is ten
# times W's init scale, so its hidden signal is ~10x BP's at the same rate).
MNIST_LR = {"bp": 0.2, "fa": 0.05, "shallow": 0.1}

# LeNet-5 as BioTorch trains it on MNIST (Sanfiz & Akrout 2021; their le_net_mnist): conv 6x5x5,
# max pool 2, conv 16x5x5, max pool 2, conv 120x5x5 (to 1x1), dense 84, dense 10, ReLU. BioTorch
# pads MNIST to 32x32; padding 2 in the first convolution is the same zeros. Their top-1 test
# error, % (100 epochs, the best-validation model).
LENET_LAYERS = [dict(kind="LAYER_KIND_CONV", units=6, kernel_h=5, padding=2),
                dict(kind="LAYER_KIND_MAX_POOL", kernel_h=2),
                dict(kind="LAYER_KIND_CONV", units=16, kernel_h=5),
                dict(kind="LAYER_KIND_MAX_POOL", kernel_h=2),
                dict(kind="LAYER_KIND_CONV", units=120, kernel_h=5),
                dict(kind="LAYER_KIND_DENSE", units=84),
                dict(kind="LAYER_KIND_DENSE", units=10)]
BIOTORCH_LENET = {"bp": 0.91, "fa": 1.70, "dfa": 1.61, "usf": 0.94, "brsf": 0.91, "frsf": 0.97}
# The rules of the conv table: (variant, rule, feedback config). uSF is sign(W) at a magnitude of
# mean|W| per layer (the engine's scaled mode: BioTorch scales sign(W) by a per-layer constant
# too, its "scaling factor"); brSF and frSF draw |B| at Xavier's scale, every batch or once.
CONV_RULES = [("bp", "bp", {}), ("fa", "fa", {}), ("dfa", "dfa", {}),
              ("usf", "sign", {"sign_mode": "SIGN_SYMMETRY_MODE_SCALED"}),
              ("brsf", "sign", {"sign_mode": "SIGN_SYMMETRY_MODE_BATCH_RANDOM"}),
              ("frsf", "sign", {"sign_mode": "SIGN_SYMMETRY_MODE_FIXED_RANDOM"}),
              ("kp", "kp", {})]
# The learning rate per rule, chosen on the validation split (--only convtune --conv_epochs 20: seed 1, 20 epochs
# with the decays at 10 and 15, the grid CONV_TUNE_LR; docs/RESULTS.md has the table). Every
# choice is inside the grid. DFA collapses to chance from 0.003 up; FA is best at 0.01 and
# worse at 0.03.
CONV_LR = {"bp": 0.03, "fa": 0.01, "dfa": 0.001, "usf": 0.03, "brsf": 0.01, "frsf": 0.03, "kp": 0.01}
CONV_TUNE_LR = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)


def lenet_config(seed, epochs, lr, fb, steps_per_epoch):
    """BioTorch's LeNet protocol as a TrainingConfig (JSON): the rate falls tenfold at 50 % and 75 %
    of the epochs (epochs 50 and 75 of 100)."""
    return dict(
        network=dict(hidden_activation="ACTIVATION_RELU", output_activation="ACTIVATION_SOFTMAX",
                     loss="LOSS_CROSS_ENTROPY", input_shape=dict(channels=1, height=28, width=28),
                     layers=LENET_LAYERS),
        init=dict(kind="WEIGHT_INIT_XAVIER"), feedback=fb,
        optimizer=dict(kind="OPTIMIZER_SGD", learning_rate=lr, momentum=0.9, weight_decay=1e-3,
                       decay_epochs=sorted({max(1, epochs // 2), max(1, epochs * 3 // 4)}), decay_factor=0.1),
        batch_size=64, epochs=epochs, seed=seed, validation_fraction=1 / 6,
        eval_every=steps_per_epoch, metrics_every=max(1, steps_per_epoch // 10))


def mnist_config(seed, epochs, lr, init_scale=0.05, sparsity=0.0, steps_per_epoch=50000):
    """The paper's MNIST TrainingConfig, as JSON (the rule is set beside it, on the session)."""
    return dict(
        network=dict(hidden_activation="ACTIVATION_LOGISTIC", output_activation="ACTIVATION_LOGISTIC",
                     loss="LOSS_SQUARED_ERROR", connection_sparsity=sparsity),
        init=dict(kind="WEIGHT_INIT_UNIFORM", scale=init_scale),
        feedback=dict(scale=0.5),
        optimizer=dict(kind="OPTIMIZER_SGD", learning_rate=lr, weight_decay=1e-6),
        batch_size=1, epochs=epochs, seed=seed, validation_fraction=1 / 6,
        eval_every=steps_per_epoch, metrics_every=steps_per_epoch // 10)


def plan(quick, seeds_mnist, seeds_deep, extra=(), seeds_conv=(1, 2, 3), conv_epochs=100,
         conv_tune_lr=CONV_TUNE_LR):
    """Every run: experiment, rule, seed, data (names of data sets), config, sizes, and a cost
    estimate in seconds (the queue is filled longest first, so that two workers end together)."""
    runs = []
    epochs = 1 if quick else 20
    per_epoch = 5000 if quick else 50000  # the quick version trains on 5,000 (+ 1,000 held out)
    step_s = 8.5 / 50000  # one per-example step of 784-1000-10 on one core

    def mnist(experiment, rule, seed, n_epochs=epochs, lr=None, speed=1.0, **kw):
        """One 784-1000-10 run of the paper's protocol (kw: init_scale, sparsity, and row fields
        such as omega or lr). speed: its cost relative to a BP step (shallow: a third)."""
        cfg = {k: kw.pop(k) for k in ("init_scale", "sparsity") if k in kw}
        runs.append(dict(experiment=experiment, rule=rule, seed=seed, sizes=[784, 1000, 10],
                         data=("mnist_train", "mnist_test"), cost=n_epochs * per_epoch * step_s * speed,
                         config=mnist_config(seed, n_epochs, lr or MNIST_LR[rule], steps_per_epoch=per_epoch,
                                             **cfg), **kw))

    for rule in ("bp", "fa"):
        for s in seeds_mnist:
            mnist("mnist", rule, s)
    for s in seeds_mnist:
        mnist("sparse", "fa", s, sparsity=0.5, speed=1.4)
    for omega in (0.05, 0.5):
        for s in seeds_mnist:
            mnist("shallow", "shallow", s, init_scale=omega, omega=omega, speed=1 / 3)

    # The learning-rate sweep that chose MNIST_LR (run with --only tune; not part of make repro):
    # seed 1, 15 epochs, chosen by validation error.
    if "tune" in extra:
        for rule in ("bp", "fa"):
            for lr in (0.05, 0.1, 0.2):
                mnist("tune", rule, 1, n_epochs=1 if quick else 15, lr=lr)
                runs[-1]["lr"] = lr

    # Which init scale gives the paper's shallow 7.2 %? (--only omega; seeds 1-3)
    if "omega" in extra:
        for omega in (0.1, 0.2, 0.3):
            for s in seeds_mnist[:3]:
                mnist("omega", "shallow", s, init_scale=omega, omega=omega, speed=1 / 3)

    # Longer: does FA keep improving past make repro's 20 epochs? (--only long; seed 1, 60 epochs)
    if "long" in extra:
        for rule in ("bp", "fa"):
            mnist("long", rule, 1, n_epochs=2 if quick else 60)

    # The earlier reproduction's setting, kept as "with a modern optimiser": Adam on mini-batches
    # of 32 (a step costs about 18 per-example steps).
    for rule in ("bp", "fa"):
        for s in seeds_mnist[:3]:
            mnist("adam", rule, s, n_epochs=1 if quick else 30, lr=1e-3, speed=18 / 32)
            c = runs[-1]["config"]
            c["optimizer"]["kind"] = "OPTIMIZER_ADAM"
            c["batch_size"] = 32
            c["eval_every"] = per_epoch // 32
            c["metrics_every"] = per_epoch // 320

    lin_epochs = 2 if quick else 4
    for rule in ("shallow", "bp", "fa", "dfa", "kp"):
        for s in seeds_mnist:
            c = dict(network=dict(hidden_activation="ACTIVATION_LINEAR", output_activation="ACTIVATION_LINEAR",
                                  bias=False),
                     init=dict(kind="WEIGHT_INIT_UNIFORM", scale=0.01), feedback=dict(scale=0.5),
                     optimizer=dict(learning_rate=0.002, weight_decay=0.1 if rule == "kp" else 0.0),
                     batch_size=1, epochs=lin_epochs, seed=s, metrics_every=25, eval_every=100)
            runs.append(dict(experiment="linear", rule=rule, seed=s, sizes=[30, 20, 10],
                             data=(f"linear_train_{s}", f"linear_test_{s}"), config=c, cost=1))

    d_epochs = 20 if quick else 200
    for sizes, net in (([30, 20, 10], "3-layer"), ([30, 20, 10, 10], "4-layer")):
        for rule in ("bp", "fa"):
            for s in seeds_deep:
                c = dict(network=dict(hidden_activation="ACTIVATION_TANH", output_activation="ACTIVATION_LINEAR"),
                         feedback=dict(scale=0.5), optimizer=dict(learning_rate=0.005),
                         batch_size=1, epochs=d_epochs, seed=s, metrics_every=5000, eval_every=5000 * 20)
                runs.append(dict(experiment="deep", rule=rule, seed=s, net=net, sizes=sizes,
                                 data=(f"deep_train_{s}", f"deep_test_{s}"), config=c, cost=d_epochs * 0.008))

    def lenet(experiment, variant, rule, fb, seed, n_epochs, lr):
        runs.append(dict(experiment=experiment, rule=rule, variant=variant, seed=seed, sizes=[],
                         data=("mnist_train", "mnist_test"),
                         cost=n_epochs * per_epoch * 25e-6 * (1.3 if rule == "kp" else 1.0),
                         config=lenet_config(seed, n_epochs, lr, fb, per_epoch // 64)))

    # LeNet-5 under BioTorch's protocol (--only conv; make repro-conv).
    if "conv" in extra:
        c_epochs = 4 if quick else conv_epochs
        for variant, rule, fb in CONV_RULES:
            for s in seeds_conv:
                lenet("conv", variant, rule, fb, s, c_epochs, CONV_LR[variant])

    # The learning rate per rule for LeNet, chosen on the validation split (--only convtune;
    # seed 1, conv_epochs epochs with the same tenfold decays at 50 % and 75 %).
    if "convtune" in extra:
        c_epochs = 2 if quick else conv_epochs
        for variant, rule, fb in CONV_RULES:
            for lr in conv_tune_lr:
                lenet("convtune", variant, rule, fb, 1, c_epochs, lr)
                runs[-1]["lr"] = lr

    p_epochs = 3 if quick else 10
    for variant, rule, fb in (("bp", "bp", {}), ("fa", "fa", {}), ("pbp exact", "pbp", {}),
                              ("pbp damped 0.01", "pbp", {"pinv_damping": 0.01}),
                              ("sign uSF", "sign", {"sign_mode": "SIGN_SYMMETRY_MODE_UNIFORM"}),
                              ("sign scaled", "sign", {"sign_mode": "SIGN_SYMMETRY_MODE_SCALED"})):
        for s in seeds_mnist[:3]:
            c = dict(network=dict(hidden_activation="ACTIVATION_TANH", output_activation="ACTIVATION_LINEAR"),
                     feedback=fb, optimizer=dict(learning_rate=0.05), batch_size=32, epochs=p_epochs, seed=s,
                     metrics_every=50, eval_every=0)
            runs.append(dict(experiment="pbp", rule=rule, variant=variant, seed=s, sizes=[64, 100, 100, 100, 10],
                             data=("digits8_train", "digits8_test"), config=c,
                             cost=p_epochs * (0.2 if rule == "pbp" else 0.03)))
    return runs


def run_name(r):
    parts = [r["experiment"], r.get("net", ""), r.get("variant", r["rule"]), r.get("omega", ""), r.get("lr", ""),
             r["seed"]]
    return "_".join(str(p).replace(" ", "-") for p in parts if p != "")


# ---- Data ----------------------------------------------------------------------------------------

def read_idx(path):
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist_arrays(mnist_dir):
    def find(prefix):
        for name in sorted(os.listdir(mnist_dir)):
            if name.startswith(prefix):
                return os.path.join(mnist_dir, name)
        raise FileNotFoundError(f"{mnist_dir}: no {prefix}* file")
    x_train = read_idx(find("train-images")).reshape(-1, 784).astype("float32") / 255.0
    y_train = read_idx(find("train-labels")).astype("int32")
    x_test = read_idx(find("t10k-images")).reshape(-1, 784).astype("float32") / 255.0
    y_test = read_idx(find("t10k-labels")).astype("int32")
    return x_train, y_train, x_test, y_test


def digits8(x):
    """MNIST images average-pooled to 8x8 (64 features), a stand-in for the 8x8 digits."""
    return x.reshape(-1, 28, 28)[:, 2:26, 2:26].reshape(-1, 8, 3, 8, 3).mean(axis=(2, 4)).reshape(-1, 64)


def make_datasets(client, runs, mnist_dir, quick, log):
    need = {d for r in runs for d in r["data"]}
    names = {}
    if any(n.startswith(("mnist", "digits8")) for n in need):
        x_train, y_train, x_test, y_test = mnist_arrays(mnist_dir)
        if quick:  # 6,000 = 5,000 to train on and the last 1,000 held out
            x_train, y_train, x_test, y_test = x_train[:6000], y_train[:6000], x_test[:2000], y_test[:2000]
        t = time.time()
        if "mnist_train" in need:
            names["mnist_train"] = client.upload_dataset(x_train, y_train, name="mnist-train")["name"]
            names["mnist_test"] = client.upload_dataset(x_test, y_test, name="mnist-test")["name"]
        if "digits8_train" in need:
            names["digits8_train"] = client.upload_dataset(digits8(x_train[:10000]), y_train[:10000],
                                                           name="digits8-train")["name"]
            names["digits8_test"] = client.upload_dataset(digits8(x_test[:2000]), y_test[:2000],
                                                          name="digits8-test")["name"]
        log(f"uploaded MNIST and 8x8 MNIST in {time.time() - t:.1f} s")
    for n in sorted(need - set(names)):
        kind, split, seed = n.split("_")
        if kind == "linear":
            examples = 2000 if split == "train" else 1000
            names[n] = client.generate_dataset("linear", examples, split, seed=int(seed), name=n)["name"]
        else:
            names[n] = client.generate_dataset("nonlinear", 5000, split, seed=int(seed), name=n)["name"]
    return names


# ---- The server ----------------------------------------------------------------------------------

class Alignd:
    """build/server/alignd on 127.0.0.1 and an ephemeral port, with a data directory of its own."""

    def __init__(self, build, data_dir, max_running):
        self.log_path = os.path.join(data_dir, "alignd.log")
        os.makedirs(data_dir, exist_ok=True)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(build, "server/alignd"), "--listen", "127.0.0.1:0", "--metrics_listen", "",
             "--data_dir", os.path.join(data_dir, "data"), "--max_running", str(max_running),
             "--max_threads", str(max_running), "--max_queued", "1000"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"alignd did not start; its log: {self.log_path}")
        self.address = line.rsplit(" ", 1)[-1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.log.close()


# ---- Running -------------------------------------------------------------------------------------

def run_all(client, runs, names, log):
    """Creates every session (longest first), follows them to the end, and reads each one's
    metric log back. Returns the runs with `events`, `session` and `wall_s` filled in."""
    runs = sorted(runs, key=lambda r: -r["cost"])
    total_cost = sum(r["cost"] for r in runs)
    for r in runs:
        train, test = r["data"]
        # A checkpoint every 50,000 steps (an MNIST epoch), not the server's every 1,000.
        s = client.create_session(names[train], r["sizes"], rule=r["rule"], eval_dataset=names[test],
                                  name=run_name(r), config=r["config"], checkpoint_every=50000)
        r["session"] = s["name"]
    start = time.time()
    pending = {r["session"]: r for r in runs}
    done_cost = 0.0
    while pending:
        time.sleep(1.0)
        for s in client.list_sessions():
            r = pending.get(s["name"])
            if r is None or s["state"] not in ("SESSION_STATE_SUCCEEDED", "SESSION_STATE_FAILED",
                                               "SESSION_STATE_CANCELLED"):
                continue
            del pending[s["name"]]
            r["state"] = s["state"]
            r["failure"] = s.get("failure_reason", "")
            r["total_steps"] = int(s["total_steps"])
            r["wall_s"] = _seconds(s.get("end_time")) - _seconds(s.get("start_time"))
            r["events"] = client.list_metrics(s["name"])
            done_cost += r["cost"]
            elapsed = time.time() - start
            eta = elapsed / max(done_cost, 1e-9) * (total_cost - done_cost)
            fig = summarise(r)
            log(f"[{len(runs) - len(pending):3d}/{len(runs)}] {run_name(r):34s} {fig:28s} "
                f"{r['wall_s']:6.1f} s   (elapsed {elapsed:4.0f} s, about {eta:4.0f} s to go)")
    return runs


def _seconds(ts):
    return ts.timestamp() if ts else float("nan")


def evals(r, validation):
    return [e["eval"] for e in r["events"] if "eval" in e and bool(e["eval"].get("validation")) == validation]


def steps(r):
    return [e["step"] for e in r["events"] if "step" in e]


def figures(r):
    """Per run: the final test figure; for runs with a validation split, the epoch chosen by
    validation error and the test error there."""
    if r.get("state") != "SESSION_STATE_SUCCEEDED":
        return {}
    out = {}
    test = evals(r, False)
    if not test:
        return out
    last = test[-1]
    if not math.isnan(last.get("error_rate", float("nan"))):
        out["test_error_last"] = last["error_rate"]
    else:
        out["nse"] = last["nse"]
    val = evals(r, True)
    if val:
        per_epoch = r["config"]["eval_every"]
        best = min(range(len(val)), key=lambda k: (val[k]["error_rate"], k))
        out["selected_epoch"] = int(val[best]["step"]) // per_epoch
        out["validation_error_selected"] = val[best]["error_rate"]
        at = next(e for e in test if e["step"] == val[best]["step"])
        out["test_error_selected"] = at["error_rate"]
        out["epochs"] = int(last["step"]) // per_epoch
    return out


def summarise(r):
    if r.get("state") != "SESSION_STATE_SUCCEEDED":
        return f"{r.get('state', '?')}: {r.get('failure', '')}"[:60]
    f = figures(r)
    if "test_error_selected" in f:
        return f"test {100 * f['test_error_selected']:.2f} % (epoch {f['selected_epoch']})"
    if "test_error_last" in f:
        return f"test error {100 * f['test_error_last']:.2f} %"
    return f"test NSE {f['nse']:.3g}"


# ---- Statistics ----------------------------------------------------------------------------------

def mean_sd(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan")
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def paired(a, b):
    """Paired comparison of a and b (same seeds): mean difference a - b with its 95 % CI, the
    paired t-test's p and the Wilcoxon signed-rank test's p (two-sided)."""
    from scipy import stats
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    m = statistics.mean(d)
    sd = statistics.stdev(d) if n > 1 else float("nan")
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    t = stats.ttest_rel(a, b)
    try:
        w = stats.wilcoxon(a, b).pvalue
    except ValueError:
        w = float("nan")
    return dict(n=n, diff=m, ci=(m - half, m + half), t=float(t.statistic), p_t=float(t.pvalue), p_w=float(w))


# ---- Report --------------------------------------------------------------------------------------

def pct(v):
    return f"{100 * v:.2f} %"


def report(runs, args, wall, md):
    ok = [r for r in runs if r.get("state") == "SESSION_STATE_SUCCEEDED"]
    failed = [r for r in runs if r.get("state") != "SESSION_STATE_SUCCEEDED"]
    for r in ok:
        r["figures"] = figures(r)
    md += [f"Produced by `{args.command}` on {time.strftime('%Y-%m-%d')}: {len(runs)} sessions through alignd "
           f"(two at a time on {os.cpu_count()} cores), {wall / 60:.1f} min in all. "
           f"{len(failed)} ended FAILED (pseudo-backprop exact and sign symmetry uSF on the deeper net diverge "
           "by design; any other is a fault)." +
           "".join(f"\n- FAILED {run_name(r)}: {r.get('failure')}" for r in failed), ""]

    def group(exp, **kw):
        return sorted((r for r in ok if r["experiment"] == exp and all(r.get(k) == v for k, v in kw.items())),
                      key=lambda r: r["seed"])

    # MNIST, as the paper ran it.
    rows = [("BP", group("mnist", rule="bp")), ("FA", group("mnist", rule="fa")),
            ("FA, sparse (50 % of W and B removed)", group("sparse", rule="fa")),
            ("shallow, ω = 0.05 (the paper's init)", group("shallow", omega=0.05))]
    for omega in sorted({r["omega"] for r in ok if r["experiment"] in ("shallow", "omega")} - {0.05}):
        rows.append((f"shallow, ω = {omega:g}", group("shallow", omega=omega) + group("omega", omega=omega)))
    if any(rs for _, rs in rows):
        md += ["### MNIST as the paper ran it (784-1000-10, per-example SGD)", "",
               "Test error at the epoch with the lowest validation error (the last 10,000 training "
               "examples, never trained on), and at the last epoch. Mean ± SD over seeds.", "",
               "| rule | η | seeds | test error, selected epoch | at the last epoch | validation error | "
               "selected epochs | paper |", "|---|---|---|---|---|---|---|---|"]
        paper = {"BP": "2.4 %", "FA": "2.1 %", "FA, sparse (50 % of W and B removed)": "2.4 %"}
        for label, rs in rows:
            if not rs:
                continue
            f = [r["figures"] for r in rs]
            m, sd = mean_sd([x["test_error_selected"] for x in f])
            ml, sdl = mean_sd([x["test_error_last"] for x in f])
            mv, sdv = mean_sd([x["validation_error_selected"] for x in f])
            lr = rs[0]["config"]["optimizer"]["learning_rate"]
            md.append(f"| {label} | {lr:g} | {len(rs)} | **{pct(m)} ± {pct(sd)}** | {pct(ml)} ± {pct(sdl)} | "
                      f"{pct(mv)} ± {pct(sdv)} | {', '.join(str(x['selected_epoch']) for x in f)} of "
                      f"{f[0]['epochs']} | {paper.get(label, '≈ 7.2 %' if 'shallow' in label else '')} |")
        md.append("")
        bp, fa = {r["seed"]: r for r in group("mnist", rule="bp")}, {r["seed"]: r for r in group("mnist", rule="fa")}
        seeds = sorted(set(bp) & set(fa))
        if len(seeds) >= 2:
            md += ["Paired comparison, same seeds (the seed sets W, B and the data order of both):", "",
                   "| comparison | seeds | mean difference (FA − BP) | 95 % CI | paired t | p (t-test) | "
                   "p (Wilcoxon) |", "|---|---|---|---|---|---|---|"]
            for key, label in (("test_error_selected", "test error, selected epoch"),
                               ("test_error_last", "test error, last epoch")):
                p = paired([fa[s]["figures"][key] for s in seeds], [bp[s]["figures"][key] for s in seeds])
                md.append(f"| {label} | {p['n']} | {100 * p['diff']:+.2f} points | "
                          f"[{100 * p['ci'][0]:+.2f}, {100 * p['ci'][1]:+.2f}] | {p['t']:.2f} | {p['p_t']:.3g} | "
                          f"{p['p_w']:.3g} |")
            md.append("")

    # The learning-rate sweep.
    tune = group("tune")
    if tune:
        md += [f"### MNIST learning rate, chosen on the validation split (seed 1, {tune[0]['figures']['epochs']} "
               "epochs)", "",
               "| rule | η | validation error, best epoch | its epoch | validation error, last epoch |",
               "|---|---|---|---|---|"]
        for r in sorted(tune, key=lambda r: (r["rule"], r["lr"])):
            f, v = r["figures"], [e["error_rate"] for e in evals(r, True)]
            md.append(f"| {r['rule']} | {r['lr']:g} | {pct(f['validation_error_selected'])} | "
                      f"{f['selected_epoch']} | {pct(v[-1])} |")
        md.append("")

    # Longer runs.
    long = group("long")
    if long:
        md += ["### Longer: BP and FA for 60 epochs (seed 1, the same protocol)", "",
               "| rule | η | test error, selected epoch | selected epoch | test error at 20 epochs | at the last |",
               "|---|---|---|---|---|---|"]
        for r in long:
            f, t = r["figures"], evals(r, False)
            at20 = t[min(19, len(t) - 1)]["error_rate"]
            md.append(f"| {r['rule']} | {r['config']['optimizer']['learning_rate']:g} | {pct(f['test_error_selected'])} | "
                      f"{f['selected_epoch']} of {f['epochs']} | {pct(at20)} | {pct(f['test_error_last'])} |")
        md.append("")

    # The same network with Adam.
    adam = [("BP", group("adam", rule="bp")), ("FA", group("adam", rule="fa"))]
    if any(rs for _, rs in adam):
        md += ["### The same network with a modern optimiser (Adam, η = 1e-3, batch 32)", "",
               "Not the paper's protocol: Adam's per-parameter normalisation makes FA's feedback scale β "
               "irrelevant and reshapes FA's direction. Same validation split and selection.", "",
               "| rule | seeds | test error, selected epoch | at the last epoch | selected epochs |",
               "|---|---|---|---|---|"]
        for label, rs in adam:
            if not rs:
                continue
            f = [r["figures"] for r in rs]
            m, sd = mean_sd([x["test_error_selected"] for x in f])
            ml, sdl = mean_sd([x["test_error_last"] for x in f])
            md.append(f"| {label} | {len(rs)} | {pct(m)} ± {pct(sd)} | {pct(ml)} ± {pct(sdl)} | "
                      f"{', '.join(str(x['selected_epoch']) for x in f)} of {f[0]['epochs']} |")
        md.append("")

    # Linear task.
    lin = [r for r in ok if r["experiment"] == "linear"]
    if lin:
        md += ["### Linear task (30-20-10, y* = T x, per-example SGD, η = 0.002)", "",
               "Examples seen before the test NSE first falls below each threshold (mean over seeds; "
               "'never' if a seed never did), the update angle to BP of the hidden layer, and for "
               "Kolen–Pollack (weight decay λ = 0.1) the angle between B and Wᵀ.", "",
               "| rule | NSE ≤ 0.5 | ≤ 1e-1 | ≤ 1e-2 | ≤ 1e-4 | final NSE | update angle, first 100 → last 500 "
               "examples | B–Wᵀ angle, start → end |", "|---|---|---|---|---|---|---|---|"]
        for rule in ("shallow", "bp", "fa", "dfa", "kp"):
            rs = [r for r in lin if r["rule"] == rule]
            if not rs:
                continue
            cells = []
            for thr in (0.5, 1e-1, 1e-2, 1e-4):
                hits = [next((int(e["step"]) for e in evals(r, False) if e["nse"] <= thr), None) for r in rs]
                cells.append("never" if any(h is None for h in hits) else f"{statistics.mean(hits):.0f}")
            m, sd = mean_sd([r["figures"]["nse"] for r in rs])
            angle, wangle = "–", "–"
            if rule in ("fa", "dfa", "kp"):
                first = [statistics.mean(a for a in angles(r)[:4]) for r in rs]
                last = [statistics.mean(angles(r)[-20:]) for r in rs]
                angle = f"{statistics.mean(first):.0f}° → {statistics.mean(last):.0f}°"
            if rule == "kp":
                w0 = [weight_angles(r)[0] for r in rs]
                w1 = [weight_angles(r)[-1] for r in rs]
                wangle = f"{statistics.mean(w0):.0f}° → {statistics.mean(w1):.1f}°"
            md.append(f"| {rule} | " + " | ".join(cells) + f" | {m:.3g} ± {sd:.2g} | {angle} | {wangle} |")
        md.append("")

    # Deep task.
    deep = [r for r in ok if r["experiment"] == "deep"]
    if deep:
        md += ["### Deep nonlinear task (teacher 30-20-10-10 tanh; students 3-layer 30-20-10 and 4-layer "
               "30-20-10-10)", "", "Test NSE after the last epoch; one teacher, data set and init per seed, "
               "shared by all four students of that seed.", "",
               "| rule | net | seeds | mean ± SD | median | min – max |", "|---|---|---|---|---|---|"]
        for rule in ("bp", "fa"):
            for net in ("3-layer", "4-layer"):
                v = [r["figures"]["nse"] for r in deep if r["rule"] == rule and r["net"] == net]
                if not v:
                    continue
                m, sd = mean_sd(v)
                md.append(f"| {rule} | {net} | {len(v)} | {m:.3g} ± {sd:.2g} | {statistics.median(v):.3g} | "
                          f"{min(v):.2g} – {max(v):.2g} |")
        md += ["", "Depth, paired by seed (log10 NSE, 4-layer − 3-layer; negative: depth helps):", "",
               "| rule | seeds | mean difference of log10 NSE | 95 % CI | 4-layer better in | p (t-test) | "
               "p (Wilcoxon) |", "|---|---|---|---|---|---|---|"]
        for rule in ("bp", "fa"):
            three = {r["seed"]: r["figures"]["nse"] for r in deep if r["rule"] == rule and r["net"] == "3-layer"}
            four = {r["seed"]: r["figures"]["nse"] for r in deep if r["rule"] == rule and r["net"] == "4-layer"}
            seeds = sorted(set(three) & set(four))
            if len(seeds) < 2:
                continue
            a = [math.log10(four[s]) for s in seeds]
            b = [math.log10(three[s]) for s in seeds]
            p = paired(a, b)
            better = sum(x < y for x, y in zip(a, b))
            md.append(f"| {rule} | {p['n']} | {p['diff']:+.2f} | [{p['ci'][0]:+.2f}, {p['ci'][1]:+.2f}] | "
                      f"{better} of {p['n']} | {p['p_t']:.2g} | {p['p_w']:.2g} |")
        md.append("")

    # LeNet-5 under BioTorch's protocol.
    conv = [r for r in ok if r["experiment"] == "conv"]
    if conv:
        epochs = conv[0]["figures"].get("epochs", 0)
        md += [f"### LeNet-5 on MNIST, every rule (BioTorch's protocol, {epochs} epochs)", "",
               "SGD, momentum 0.9, weight decay 1e-3, batch 64, η per rule (chosen on the validation split: "
               "`--only convtune`) divided by 10 at epochs "
               f"{', '.join(str(e) for e in conv[0]['config']['optimizer']['decay_epochs'])}; the last 10,000 "
               "training examples held out for validation; test error at the epoch of the lowest validation "
               "error. Mean ± SD over seeds; paired against BP over the same seeds (the seed sets W, B and "
               "the data order).", "",
               "| rule | η | seeds | test error, selected epoch | at the last epoch | selected epochs | − BP (points) "
               "| 95 % CI | p (t-test) | p (Wilcoxon) | BioTorch |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        by = {v: {r["seed"]: r for r in conv if r["variant"] == v} for v, _, _ in CONV_RULES}
        for variant, _, _ in CONV_RULES:
            rs = [by[variant][k] for k in sorted(by[variant])]
            if not rs:
                continue
            f = [r["figures"] for r in rs]
            m, sd = mean_sd([x["test_error_selected"] for x in f])
            ml, sdl = mean_sd([x["test_error_last"] for x in f])
            cells = ["–", "–", "–", "–"]
            seeds = sorted(set(by[variant]) & set(by["bp"]))
            if variant != "bp" and len(seeds) >= 2:
                p = paired([by[variant][k]["figures"]["test_error_selected"] for k in seeds],
                           [by["bp"][k]["figures"]["test_error_selected"] for k in seeds])
                cells = [f"{100 * p['diff']:+.2f}", f"[{100 * p['ci'][0]:+.2f}, {100 * p['ci'][1]:+.2f}]",
                         f"{p['p_t']:.3g}", f"{p['p_w']:.3g}"]
            bt = BIOTORCH_LENET.get(variant)
            md.append(f"| {variant} | {rs[0]['config']['optimizer']['learning_rate']:g} | {len(rs)} | **{pct(m)} ± {pct(sd)}** | {pct(ml)} ± {pct(sdl)} | "
                      f"{', '.join(str(x['selected_epoch']) for x in f)} | " + " | ".join(cells) +
                      f" | {f'{bt:.2f} %' if bt else '–'} |")
        md.append("")

    # LeNet's learning rate per rule.
    ct = [r for r in runs if r["experiment"] == "convtune"]
    if ct:
        epochs = max((r["figures"].get("epochs", 0) for r in ct if r.get("figures")), default=0)
        grid = sorted({r["lr"] for r in ct})
        md += [f"### LeNet-5 learning rate per rule, chosen on the validation split (seed 1, {epochs} epochs, "
               "the same decays)", "",
               "| rule | " + " | ".join(f"η = {lr:g}" for lr in grid) + " | chosen |",
               "|---|" + "---|" * (len(grid) + 1)]
        for variant, _, _ in CONV_RULES:
            rs = {r["lr"]: r for r in ct if r["variant"] == variant}
            if not rs:
                continue
            cells, best = [], None
            for lr in grid:
                f = rs[lr].get("figures") if lr in rs else None
                if not f or "validation_error_selected" not in f:
                    why = rs[lr].get("failure", "") if lr in rs else ""
                    cells.append("–" if lr not in rs else "diverged" if "diverged" in why else
                                 rs[lr].get("state", "?").replace("SESSION_STATE_", "").lower())
                    continue
                v = f["validation_error_selected"]
                cells.append(f"{pct(v)} (epoch {f['selected_epoch']})")
                if best is None or v < best[1]:
                    best = (lr, v)
            md.append(f"| {variant} | " + " | ".join(cells) + (f" | {best[0]:g} |" if best else " | – |"))
        md += ["", "Validation error at the best epoch (the last 10,000 training examples).", ""]

    # Pseudo-backprop and sign symmetry on a deeper tanh net.
    pb = [r for r in ok if r["experiment"] == "pbp"]
    if pb:
        md += ["### Pseudo-backprop and sign symmetry on a deeper net (64-100-100-100-10 tanh, 8x8 MNIST, "
               "SGD η = 0.05, batch 32)", "",
               "| variant | seeds | test error | ‖B‖ / ‖W‖ per hidden layer at step 1 | update angle to BP at "
               "step 1 |", "|---|---|---|---|---|"]
        for variant in ("bp", "fa", "pbp exact", "pbp damped 0.01", "sign uSF", "sign scaled"):
            rs = [r for r in pb if r["variant"] == variant]
            if not rs:
                continue
            m, sd = mean_sd([r["figures"].get("test_error_last", float("nan")) for r in rs])
            first = [e["step"] for e in rs[0]["events"] if "step" in e][0]
            ratio = ", ".join(f"{a.get('norm_ratio', float('nan')):.2g}" for a in first.get("alignment", []))
            ang = ", ".join(f"{a.get('update_angle_mean', float('nan')):.0f}°" for a in first.get("alignment", []))
            md.append(f"| {variant} | {len(rs)} | {pct(m)} ± {pct(sd)} | {ratio} | {ang} |")
        diverged = [r for r in runs if r["experiment"] == "pbp" and r.get("state") == "SESSION_STATE_FAILED"]
        for r in diverged:
            md.append(f"| {r['variant']} (seed {r['seed']}) | – | FAILED: {r.get('failure', '')[:80]} | | |")
        md.append("")
    return md


def angles(r, layer=0):
    return [a["alignment"][layer]["update_angle_mean"] for a in steps(r)
            if a.get("alignment") and not math.isnan(a["alignment"][layer].get("update_angle_mean", float("nan")))]


def weight_angles(r, layer=0):
    return [a["alignment"][layer]["weight_angle"] for a in steps(r)
            if a.get("alignment") and not math.isnan(a["alignment"][layer].get("weight_angle", float("nan")))]


# ---- Plots ---------------------------------------------------------------------------------------

def plot(runs, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    ok = [r for r in runs if r.get("state") == "SESSION_STATE_SUCCEEDED"]
    written = []

    def band(ax, xs, ys, label, **kw):
        ys = np.array(ys)
        m, sd = ys.mean(axis=0), ys.std(axis=0, ddof=1) if len(ys) > 1 else np.zeros(ys.shape[1])
        line, = ax.plot(xs, m, label=label, **kw)
        ax.fill_between(xs, m - sd, m + sd, color=line.get_color(), alpha=0.2, lw=0)

    lin = [r for r in ok if r["experiment"] == "linear"]
    if lin:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        for rule in ("shallow", "bp", "fa", "dfa", "kp"):
            rs = [r for r in lin if r["rule"] == rule]
            if not rs:
                continue
            curves = [[e["nse"] for e in evals(r, False)] for r in rs]
            n = min(map(len, curves))
            xs = [int(e["step"]) for e in evals(rs[0], False)][:n]
            ax1.loglog(xs, np.exp(np.mean(np.log([c[:n] for c in curves]), axis=0)),
                       label=rule + (" (λ = 0.1)" if rule == "kp" else ""), ls="--" if rule == "dfa" else "-")
            if rule in ("fa", "kp", "dfa"):
                a = [angles(r) for r in rs]
                n = min(map(len, a))
                xs = [int(e["step"]["step"]) for e in rs[0]["events"] if "step" in e][:n]
                band(ax2, xs, [x[:n] for x in a], rule, lw=0.8, ls="--" if rule == "dfa" else "-")
        ax1.set(xlabel="examples seen", ylabel="test NSE (geometric mean over seeds)", title="Linear task 30-20-10")
        ax1.legend()
        ax2.axhline(90, color="gray", lw=0.5)
        ax2.set(xlabel="examples seen", ylabel="degrees", title="Hidden update angle to BP (mean ± SD over seeds)")
        ax2.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "linear.png"), dpi=110)
        written.append("linear.png")
        plt.close(fig)

    mn = [r for r in ok if r["experiment"] in ("mnist", "sparse", "shallow")]
    if mn:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        for exp, rule, omega, label in (("mnist", "bp", None, "BP"), ("mnist", "fa", None, "FA"),
                                        ("sparse", "fa", None, "FA sparse"),
                                        ("shallow", "shallow", 0.05, "shallow ω=0.05"),
                                        ("shallow", "shallow", 0.5, "shallow ω=0.5")):
            rs = [r for r in mn if r["experiment"] == exp and r["rule"] == rule and r.get("omega") == omega]
            if not rs:
                continue
            for ax, validation in ((ax1, True), (ax2, False)):
                curves = [[100 * e["error_rate"] for e in evals(r, validation)] for r in rs]
                n = min(map(len, curves))
                band(ax, list(range(1, n + 1)), [c[:n] for c in curves], label, ls=":" if exp == "sparse" else "-")
        for ax, title in ((ax1, "validation error (last 10,000 training examples)"), (ax2, "test error")):
            ax.set(xlabel="epoch", ylabel="%", title=title, yscale="log")
            ax.legend(fontsize=8)
        fig.suptitle("MNIST 784-1000-10, logistic units, squared error, per-example SGD (mean ± SD over seeds)")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "mnist.png"), dpi=110)
        written.append("mnist.png")
        plt.close(fig)

    deep = [r for r in ok if r["experiment"] == "deep"]
    if deep:
        fig, ax = plt.subplots(figsize=(6, 4))
        pos = 0
        ticks = []
        for rule in ("bp", "fa"):
            for net in ("3-layer", "4-layer"):
                v = [r["figures"]["nse"] for r in deep if r["rule"] == rule and r["net"] == net]
                if not v:
                    continue
                jitter = np.linspace(-0.15, 0.15, len(v))
                ax.scatter(pos + jitter, v, s=12)
                ax.hlines(statistics.median(v), pos - 0.25, pos + 0.25, color="k", lw=1)
                ticks.append(f"{rule}\n{net}")
                pos += 1
        ax.set_xticks(range(len(ticks)), ticks)
        ax.set(yscale="log", ylabel="test NSE (each dot a seed; bar: median)",
               title="Deep nonlinear task: depth under BP and FA")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "deep.png"), dpi=110)
        written.append("deep.png")
        plt.close(fig)
    return written


# ---- Main ----------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build", help="the build folder (alignd, the Python client)")
    p.add_argument("--quick", action="store_true", help="a small version of each (under a minute)")
    p.add_argument("--only", default="",
                   help="comma-separated experiments: mnist,sparse,shallow,adam,linear,deep,pbp; and, run "
                        "only when named, tune (the MNIST learning-rate sweep), long (60 epochs), omega (shallow "
                        "at more init scales) and conv (LeNet-5, every rule)")
    p.add_argument("--seeds", type=int, default=5, help="seeds of the MNIST and linear experiments (default 5)")
    p.add_argument("--deep_seeds", type=int, default=20, help="seeds of the deep experiment (default 20)")
    p.add_argument("--conv_seeds", type=int, default=3, help="seeds of the conv experiment (default 3)")
    p.add_argument("--conv_epochs", type=int, default=100, help="epochs of the conv experiment (default 100)")
    p.add_argument("--conv_tune_lr", default=",".join(f"{x:g}" for x in CONV_TUNE_LR),
                   help="the learning rates convtune tries (default %(default)s)")
    p.add_argument("--address", default="", help="use this alignd instead of starting one (host:port)")
    p.add_argument("--workers", type=int, default=2, help="sessions at once in the alignd started here")
    p.add_argument("--docs", action="store_true", help="copy the plots into docs/img/")
    args = p.parse_args()
    build = os.path.abspath(args.build)
    sys.path.insert(0, os.path.join(build, "python"))
    from alignd_client import Client  # noqa: E402 (the build's copy, with its generated protos)

    args.command = "make repro-quick" if args.quick else "make repro"
    if args.only:
        args.command = f"tools/repro/repro.py{' --quick' if args.quick else ''} --only {args.only}"
    # build/repro (make repro), build/repro-quick, or build/repro-adam-tune for --only adam,tune.
    out_dir = os.path.join(build, "repro" + ("-quick" if args.quick else "") +
                           ("-" + "-".join(args.only.split(",")) if args.only else ""))
    os.makedirs(out_dir, exist_ok=True)
    log_file = open(os.path.join(out_dir, "progress.log"), "w")

    def log(msg):
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    seeds = list(range(1, (2 if args.quick else args.seeds) + 1))
    deep_seeds = list(range(1, (3 if args.quick else args.deep_seeds) + 1))
    conv_seeds = list(range(1, (2 if args.quick else args.conv_seeds) + 1))
    runs = plan(args.quick, seeds, deep_seeds, extra=args.only.split(","), seeds_conv=conv_seeds,
                conv_epochs=args.conv_epochs, conv_tune_lr=[float(x) for x in args.conv_tune_lr.split(",")])
    if args.only:
        keep = set(args.only.split(","))
        runs = [r for r in runs if r["experiment"] in keep]
    mnist_dir = ""
    if any(r["data"][0].startswith(("mnist", "digits8")) for r in runs):
        mnist_dir = subprocess.run([os.path.join(ROOT, "tools/repro/fetch_mnist.sh")], check=True,
                                   capture_output=True, text=True).stdout.strip()

    start = time.time()
    server, tmp = None, None
    if not args.address:
        tmp = tempfile.mkdtemp(prefix="alignd_repro_")
        server = Alignd(build, tmp, args.workers)
        log(f"alignd at {server.address} (data directory {tmp}/data)")
    try:
        with Client(args.address or server.address, timeout=600) as client:
            client.wait_ready()
            names = make_datasets(client, runs, mnist_dir, args.quick, log)
            log(f"{len(runs)} sessions; the longest first")
            runs = run_all(client, runs, names, log)
    finally:
        if server:
            server.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    wall = time.time() - start

    md = []
    report(runs, args, wall, md)
    md += ["### Commands", "", f"`{args.command}` runs `tools/repro/repro.py`, which starts alignd, makes the data "
           "sets through the Python client and creates one session per run with these configs (TrainingConfig, "
           "as JSON; `seed` varies):", ""]
    seen = set()
    for r in runs:
        key = (r["experiment"], r.get("net", ""), r.get("variant", r["rule"]), r.get("omega"), r.get("lr"))
        if key in seen:
            continue
        seen.add(key)
        c = dict(r["config"])
        c.pop("seed", None)
        md.append(f"- {' '.join(str(k) for k in key if k)}: sizes {r['sizes']}, rule {r['rule']}, "
                  f"`{json.dumps(c, separators=(',', ':'))}`")
    md.append("")
    rows = []
    for r in runs:
        row = {k: r.get(k) for k in ("experiment", "rule", "variant", "net", "omega", "lr", "seed", "sizes", "config",
                                     "state", "failure", "wall_s", "total_steps") if r.get(k) is not None}
        row["figures"] = r.get("figures", {})
        row["name"] = run_name(r)
        row["validation_error"] = [e["error_rate"] for e in evals(r, True)] if "events" in r else []
        row["test_curve"] = [(int(e["step"]), e.get("error_rate") if not math.isnan(e.get("error_rate", float("nan")))
                              else e.get("nse")) for e in evals(r, False)] if "events" in r else []
        rows.append(row)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(rows, f, indent=1, default=float)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    written = plot(runs, out_dir)
    if args.docs:
        for name in written:
            shutil.copy(os.path.join(out_dir, name), os.path.join(ROOT, "docs/img", name))
    log(f"wrote {out_dir}/results.json, results.md and {', '.join(written)} in {wall / 60:.1f} min")
    failed = [r for r in runs if r.get("state") != "SESSION_STATE_SUCCEEDED" and r["experiment"] not in ("pbp", "convtune")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
