#!/usr/bin/python3
"""PyTorch reference for `make bench`: the same training step as alignd's engine
(784-1000-10 tanh + softmax cross-entropy, plain SGD; and the paper's 30-20-10
linear net at batch 1), on --threads threads (1 by default), two ways:

  torch_autograd  nn.Linear layers and loss.backward(); FA through a custom
                  autograd Function whose backward sends grad_output through a
                  fixed random B instead of W^T.
  torch_manual    the same step written out with torch.matmul / addmm_ (no autograd).

--threads N runs only the 784-1000-10 rows at batch 32 and 128, labelled as N threads,
with torch's intra-op pool at --intra_op (default N); OpenBLAS's threads come from the
caller's environment (OPENBLAS_NUM_THREADS). --scaling adds the width and depth table
(BP, batch 128, one thread).

Prints JSON rows (net, impl, rule, batch, threads, samples_per_s) on stdout.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

torch.set_flush_denormal(True)
torch.manual_seed(0)


def load_mnist(path):
    if path:
        f = os.path.join(path, "train-images-idx3-ubyte")
        if os.path.exists(f):
            with open(f, "rb") as fh:
                raw = np.frombuffer(fh.read(), dtype=np.uint8, offset=16)
            with open(os.path.join(path, "train-labels-idx1-ubyte"), "rb") as fh:
                labels = np.frombuffer(fh.read(), dtype=np.uint8, offset=8)
            x = torch.from_numpy(raw.reshape(-1, 784).astype(np.float32) / 255.0)
            return x, torch.from_numpy(labels.astype(np.int64))
    g = torch.Generator().manual_seed(1)
    return torch.rand(60000, 784, generator=g), torch.randint(0, 10, (60000,), generator=g)


class FALinearFn(torch.autograd.Function):
    """y = x W^T + b; backward sends grad through B (shape of W) instead of W."""

    @staticmethod
    def forward(ctx, x, w, b, fb):
        ctx.save_for_backward(x, fb)
        return torch.addmm(b, x, w.t())

    @staticmethod
    def backward(ctx, grad_out):
        x, fb = ctx.saved_tensors
        return grad_out.mm(fb), grad_out.t().mm(x), grad_out.sum(0), None


class Net(torch.nn.Module):
    def __init__(self, sizes, hidden, rule):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.hidden = hidden
        self.rule = rule
        self.fb = [torch.empty_like(l.weight).uniform_(-0.05, 0.05) for l in self.layers]

    def forward(self, x):
        for i, l in enumerate(self.layers):
            if self.rule == "fa" and i > 0:
                x = FALinearFn.apply(x, l.weight, l.bias, self.fb[i])
            else:
                x = l(x)
            if i + 1 < len(self.layers):
                x = self.hidden(x)
        return x


# The scaling table's networks (784 inputs, 10 classes): width 256..4096 with one hidden
# layer, then 1..4 hidden layers of 1000. engine_bench.cc runs the same list.
SCALING_NETS = [[784, w, 10] for w in (256, 512, 1024, 2048, 4096)] + \
    [[784] + [1000] * d + [10] for d in (1, 2, 3, 4)]


def time_steps(step, batches, seconds):
    for i in range(3):
        step(*batches[i % len(batches)])
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            for k in range(8):
                step(*batches[(n + k) % len(batches)])
            n += 8
        best = max(best, n / (time.perf_counter() - start))
    return best


def autograd_step_fn(sizes, hidden, rule, loss_kind, lr):
    net = Net(sizes, hidden, rule)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss() if loss_kind == "ce" else torch.nn.MSELoss()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()
    return step


def manual_step_fn(sizes, act, dact, rule, loss_kind, lr):
    ws = [torch.empty(b, a).uniform_(-0.05, 0.05) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [torch.zeros(b) for b in sizes[1:]]
    fbs = [torch.empty_like(w).uniform_(-0.05, 0.05) for w in ws]
    L = len(ws)

    def step(x, y):
        with torch.no_grad():
            n = x.shape[0]
            acts = [x]
            for i in range(L):
                z = torch.addmm(bs[i], acts[-1], ws[i].t())
                acts.append(act(z) if i + 1 < L else z)
            if loss_kind == "ce":
                delta = torch.softmax(acts[-1], 1)
                delta[torch.arange(n), y] -= 1
            else:
                delta = acts[-1] - y
            delta /= n
            for i in range(L - 1, -1, -1):
                back = ws[i] if rule == "bp" else fbs[i]
                if i > 0:
                    dh = delta.mm(back) * dact(acts[i])
                ws[i].addmm_(delta.t(), acts[i], alpha=-lr)
                bs[i].add_(delta.sum(0), alpha=-lr)
                if i > 0:
                    delta = dh
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mnist_dir", default="")
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--intra_op", type=int, default=0, help="torch threads (default --threads)")
    p.add_argument("--scaling", action="store_true",
                   help="also the width/depth table (batch 128, BP, one thread)")
    args = p.parse_args()
    torch.set_num_threads(args.intra_op or args.threads)
    config = f"intra_op {args.intra_op or args.threads}, OpenBLAS {os.environ.get('OPENBLAS_NUM_THREADS', '?')}"
    x, y = load_mnist(args.mnist_dir)
    rows = []
    tanh = torch.tanh
    dtanh = lambda a: 1 - a * a
    def mnist_rows(batch_sizes, **extra):
        """The 784-1000-10 rows, both rules and both implementations, at each batch size."""
        for batch in batch_sizes:
            batches = [(x[i:i + batch].contiguous(), y[i:i + batch].contiguous())
                       for i in range(0, 256 * batch, batch)]
            for rule in ("bp", "fa"):
                for impl, step in (
                    ("torch_autograd", autograd_step_fn([784, 1000, 10], tanh, rule, "ce", 0.01)),
                    ("torch_manual", manual_step_fn([784, 1000, 10], tanh, dtanh, rule, "ce", 0.01)),
                ):
                    sps = time_steps(step, batches, args.seconds) * batch
                    rows.append(dict(net="mnist", impl=impl, rule=rule, batch=batch,
                                     threads=args.threads, samples_per_s=sps, **extra))
                    print(f"torch {impl:15s} {rule} batch {batch:4d} ({config}): "
                          f"{sps:10.0f} samples/s", file=sys.stderr)

    if args.threads > 1:
        mnist_rows((32, 128), config=config)
        json.dump(rows, sys.stdout)
        return
    if args.scaling:
        batch = 128
        batches = [(x[i:i + batch].contiguous(), y[i:i + batch].contiguous())
                   for i in range(0, 64 * batch, batch)]
        for sizes in SCALING_NETS:
            for impl, step in (
                ("torch_autograd", autograd_step_fn(sizes, tanh, "bp", "ce", 0.01)),
                ("torch_manual", manual_step_fn(sizes, tanh, dtanh, "bp", "ce", 0.01)),
            ):
                sps = time_steps(step, batches, args.seconds) * batch
                rows.append(dict(net="-".join(map(str, sizes)), impl=impl, rule="bp",
                                 batch=batch, threads=1, samples_per_s=sps))
                print(f"torch {impl:15s} {sizes}: {sps:10.0f} samples/s", file=sys.stderr)
    mnist_rows((1, 32, 128))
    g = torch.Generator().manual_seed(2)
    tx = torch.randn(1000, 30, generator=g)
    ty = tx.mm(torch.rand(30, 10, generator=g) * 2 - 1)
    batches = [(tx[i:i + 1], ty[i:i + 1]) for i in range(1000)]
    ident = lambda z: z
    one = lambda a: torch.ones_like(a)
    for rule in ("bp", "fa"):
        for impl, step in (
            ("torch_autograd", autograd_step_fn([30, 20, 10], ident, rule, "mse", 0.001)),
            ("torch_manual", manual_step_fn([30, 20, 10], ident, one, rule, "mse", 0.001)),
        ):
            sps = time_steps(step, batches, args.seconds)
            rows.append(dict(net="tiny", impl=impl, rule=rule, batch=1, threads=1,
                             samples_per_s=sps))
            print(f"torch {impl:15s} {rule} tiny batch 1: {sps:10.0f} samples/s", file=sys.stderr)
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
