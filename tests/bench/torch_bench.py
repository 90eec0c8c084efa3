#!/usr/bin/python3
"""PyTorch reference for `make bench`: the same training step as alignd's engine
(784-1000-10 tanh + softmax cross-entropy, plain SGD; and the paper's 30-20-10
linear net at batch 1), on --threads threads (1 by default), two ways:

  torch_autograd  nn.Linear layers and loss.backward(); FA through a custom
                  autograd Function whose backward sends grad_output through a
                  fixed random B instead of W^T.
  torch_manual    the same step written out with torch.matmul / addmm_ (no autograd).

--lenet runs only LeNet-5 on 1x28x28 (engine_bench.cc's LeNetOptions: conv 6x5x5 pad 2,
maxpool 2, conv 16x5x5, maxpool 2, dense 120, 84, 10; ReLU hidden, softmax cross-entropy,
plain SGD, Xavier init with the fans alignd uses, zero biases) at batch 1, 64 and 256, rules
bp and fa, one thread:
  torch_autograd  nn.Conv2d / MaxPool2d / Linear and loss.backward(); FA through custom
                  autograd Functions (conv: backward-data with B via torch.nn.grad.conv2d_input;
                  linear: grad_output B) for every weight layer above the first.
  torch_manual    the step written out without autograd: F.conv2d, max_pool2d with indices
                  (and aten's max_pool2d_with_indices_backward), torch.nn.grad.conv2d_input
                  and conv2d_weight, addmm.

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


class FAConv2dFn(torch.autograd.Function):
    """y = conv2d(x, w, b, padding); backward-data with B (shape of w) in w's place."""

    @staticmethod
    def forward(ctx, x, w, b, fb, padding):
        ctx.save_for_backward(x, fb)
        ctx.w_shape, ctx.padding = w.shape, padding
        return torch.nn.functional.conv2d(x, w, b, padding=padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, fb = ctx.saved_tensors
        gx = None
        if ctx.needs_input_grad[0]:
            gx = torch.nn.grad.conv2d_input(x.shape, fb, grad_out, padding=ctx.padding)
        gw = torch.nn.grad.conv2d_weight(x, ctx.w_shape, grad_out, padding=ctx.padding)
        return gx, gw, grad_out.sum((0, 2, 3)), None, None


# LeNet-5 on 1x28x28 (engine_bench.cc's LeNetOptions): (kind, out, kernel, padding).
LENET = [("conv", 6, 5, 2), ("pool",), ("conv", 16, 5, 0), ("pool",),
         ("dense", 120), ("dense", 84), ("dense", 10)]


def lenet_params():
    """W and B (FA's feedback) per weight layer, Xavier uniform with alignd's fans (a conv
    kernel's area counts in both), zero biases; B of W's shape at W's scale."""
    shapes = [(6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84)]
    ws, bs, fbs = [], [], []
    for shp in shapes:
        area = shp[2] * shp[3] if len(shp) == 4 else 1
        r = (6.0 / (shp[1] * area + shp[0] * area)) ** 0.5
        ws.append(torch.empty(shp).uniform_(-r, r))
        fbs.append(torch.empty(shp).uniform_(-r, r))
        bs.append(torch.zeros(shp[0]))
    return ws, bs, fbs


class LeNet(torch.nn.Module):
    def __init__(self, rule):
        super().__init__()
        ws, bs, fbs = lenet_params()
        self.rule, self.fb = rule, fbs
        self.convs = torch.nn.ModuleList(
            [torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.Conv2d(6, 16, 5)])
        self.fcs = torch.nn.ModuleList([torch.nn.Linear(400, 120), torch.nn.Linear(120, 84),
                                        torch.nn.Linear(84, 10)])
        self.pool = torch.nn.MaxPool2d(2)
        with torch.no_grad():
            for m, w, b in zip(list(self.convs) + list(self.fcs), ws, bs):
                m.weight.copy_(w)
                m.bias.copy_(b)

    def forward(self, x):
        fa = self.rule == "fa"
        x = self.pool(torch.relu(self.convs[0](x)))  # the first layer sends no signal down
        c = self.convs[1]
        x = FAConv2dFn.apply(x, c.weight, c.bias, self.fb[1], 0) if fa else c(x)
        x = self.pool(torch.relu(x)).flatten(1)
        for i, l in enumerate(self.fcs):
            x = FALinearFn.apply(x, l.weight, l.bias, self.fb[2 + i]) if fa else l(x)
            if i < 2:
                x = torch.relu(x)
        return x


def lenet_autograd_step_fn(rule, lr):
    net = LeNet(rule)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()
    return step


def lenet_manual_step_fn(rule, lr):
    F = torch.nn.functional
    pool_backward = torch.ops.aten.max_pool2d_with_indices_backward
    ws, bs, fbs = lenet_params()
    ms = ws if rule == "bp" else fbs  # the matrix in W's place in the backward pass

    def step(x, y):
        with torch.no_grad():
            n = x.shape[0]
            a1 = torch.relu(F.conv2d(x, ws[0], bs[0], padding=2))
            p1, i1 = F.max_pool2d(a1, 2, return_indices=True)
            a2 = torch.relu(F.conv2d(p1, ws[1], bs[1]))
            p2, i2 = F.max_pool2d(a2, 2, return_indices=True)
            f = p2.reshape(n, 400)
            a3 = torch.relu(torch.addmm(bs[2], f, ws[2].t()))
            a4 = torch.relu(torch.addmm(bs[3], a3, ws[3].t()))
            z5 = torch.addmm(bs[4], a4, ws[4].t())
            d5 = torch.softmax(z5, 1)
            d5[torch.arange(n), y] -= 1
            d5 /= n
            # dense layers, top down: the signal below, then the update
            d4 = d5.mm(ms[4]).mul_(a4 > 0)
            ws[4].addmm_(d5.t(), a4, alpha=-lr)
            bs[4].add_(d5.sum(0), alpha=-lr)
            d3 = d4.mm(ms[3]).mul_(a3 > 0)
            ws[3].addmm_(d4.t(), a3, alpha=-lr)
            bs[3].add_(d4.sum(0), alpha=-lr)
            df = d3.mm(ms[2])
            ws[2].addmm_(d3.t(), f, alpha=-lr)
            bs[2].add_(d3.sum(0), alpha=-lr)
            # pool 2, conv 2 (signal below with M, then its update), pool 1, conv 1
            dz2 = pool_backward(df.view(p2.shape), a2, [2, 2], [2, 2], [0, 0], [1, 1], False,
                                i2).mul_(a2 > 0)
            dp1 = torch.nn.grad.conv2d_input(p1.shape, ms[1], dz2)
            ws[1].add_(torch.nn.grad.conv2d_weight(p1, ws[1].shape, dz2), alpha=-lr)
            bs[1].add_(dz2.sum((0, 2, 3)), alpha=-lr)
            dz1 = pool_backward(dp1, a1, [2, 2], [2, 2], [0, 0], [1, 1], False, i1).mul_(a1 > 0)
            ws[0].add_(torch.nn.grad.conv2d_weight(x, ws[0].shape, dz1, padding=2), alpha=-lr)
            bs[0].add_(dz1.sum((0, 2, 3)), alpha=-lr)
    return step


def lenet_rows(x, y, seconds):
    rows = []
    images = x.view(-1, 1, 28, 28)
    for batch in (1, 64, 256):
        batches = [(images[i:i + batch].contiguous(), y[i:i + batch].contiguous())
                   for i in range(0, 64 * batch, batch)]
        for rule in ("bp", "fa"):
            for impl, step in (("torch_manual", lenet_manual_step_fn(rule, 0.01)),
                               ("torch_autograd", lenet_autograd_step_fn(rule, 0.01))):
                sps = time_steps(step, batches, seconds) * batch
                rows.append(dict(net="lenet", impl=impl, rule=rule, batch=batch, threads=1,
                                 samples_per_s=sps))
                print(f"torch {impl:15s} {rule} lenet batch {batch:4d}: {sps:10.0f} samples/s",
                      file=sys.stderr)
    return rows


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
    p.add_argument("--lenet", action="store_true",
                   help="only the LeNet-5 rows (batch 1, 64, 256, one thread)")
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

    if args.lenet:
        json.dump(lenet_rows(x, y, args.seconds), sys.stdout)
        return
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
