"""Benchmark: our `LinearProbe` vs NeuroX's probe training, same activations.

Run:  python -m tests.benchmarks.bench_probe_training [--activations a.npz]

The first lines printed are the machine (`machine.describe()`), the exact
command line and the parsed arguments.

The peer is NeuroX itself (`neurox.interpretation.linear_probe.
train_logistic_regression_probe`: Adam lr 1e-3, 10 epochs, batch 32,
loss = CE + l1 * sum|W| + l2 * sqrt(sum W^2)) when it is importable
(`./run bench` installs neurox 1.0.9 with --no-deps: its pins are from 2021);
otherwise a line-for-line re-implementation of its training loop.  Its
console output (prints, tqdm bars) goes to /dev/null.  NeuroX initialises
the probe randomly, so every repeat uses another torch seed: its accuracy is
reported as mean (min-max) over the repeats.

Ours is run with the NeuroX form of the L2 term (`l2_form="norm"`), as
shipped (early_stopping="auto") and with early_stopping=False (the exact
optimum of the same objective).

The .npz must hold X_train, y_train, X_dev, y_dev (integer class labels),
optionally also per-layer X_train_L<i> / X_dev_L<i> (tests/benchmarks/
bench_layer_sweep.py writes them); then a per-layer dev accuracy table is
printed too.  Without --activations a synthetic token-level-sized matrix is
used: 20,000 x 768, 12 classes, correlated noise, 4 outlier neurons.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time

import numpy as np
import torch

from lit_plugins.probing import LinearProbe
from tests.benchmarks.machine import describe

try:
    from neurox.interpretation import linear_probe as neurox_linear_probe
except ImportError:  # pragma: no cover - depends on the environment
    neurox_linear_probe = None


def synthetic(n_train=20000, n_dev=5000, h=768, num_classes=12, seed=0):
    rng = np.random.default_rng(seed)
    n = n_train + n_dev
    y = rng.choice(num_classes, size=n, p=np.sort(rng.dirichlet(np.ones(num_classes) * 2))[::-1])
    informative = rng.choice(h, size=40, replace=False)
    means = np.zeros((num_classes, h))
    means[:, informative] = rng.normal(scale=0.3, size=(num_classes, 40))
    mix = rng.normal(size=(64, h)) / 8.0  # low-rank correlated noise
    X = means[y] + rng.normal(size=(n, 64)) @ mix + rng.normal(scale=0.7, size=(n, h))
    outliers = rng.choice(h, size=4, replace=False)
    X[:, outliers] *= 20.0
    X = X.astype(np.float32)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _reimplemented_neurox(
    X, y, lambda_l1, lambda_l2, device, num_epochs=10, batch_size=32, learning_rate=1e-3
):
    """NeuroX 1.0.9 `_train_probe` (classification) minus prints/progress."""
    num_classes = len(set(y.tolist()))
    probe = torch.nn.Linear(X.shape[1], num_classes).to(device)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(probe.parameters(), lr=learning_rate)
    X_t = torch.from_numpy(X)
    y_t = torch.from_numpy(y)
    for _ in range(num_epochs):
        avg_loss = 0.0
        for i in range(0, X_t.shape[0], batch_size):
            inputs = X_t[i : i + batch_size].to(device)
            labels = y_t[i : i + batch_size].to(device)
            optimizer.zero_grad()
            outputs = probe(inputs)
            weights = probe.weight
            loss = (
                criterion(outputs, labels)
                + lambda_l1 * weights.abs().sum()
                + lambda_l2 * torch.sqrt(torch.pow(weights, 2).sum())
            )
            loss.backward()
            optimizer.step()
            avg_loss += loss.item()
    return probe


def neurox_train(X, y, lambda_l1, lambda_l2, device, seed):
    torch.manual_seed(seed)
    if neurox_linear_probe is None or device.type != (
        "cuda" if torch.cuda.is_available() else "cpu"
    ):
        return _reimplemented_neurox(X, y, lambda_l1, lambda_l2, device)
    with (
        open(os.devnull, "w") as null,
        contextlib.redirect_stdout(null),
        contextlib.redirect_stderr(null),
    ):
        return neurox_linear_probe.train_logistic_regression_probe(
            X, y, lambda_l1=lambda_l1, lambda_l2=lambda_l2
        )


def neurox_accuracy(probe, X, y, device):
    with torch.no_grad():
        out = probe(torch.from_numpy(X).to(device))
    return float((out.argmax(1).cpu().numpy() == y).mean())


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _encode(y_tr, y_dev):
    """NeuroX wants 0-indexed int64 labels; dev-only labels become -1."""
    classes, y_tr = np.unique(y_tr, return_inverse=True)
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    return y_tr.astype(np.int64), np.array([lookup.get(c, -1) for c in np.asarray(y_dev).tolist()])


def speed_table(X_tr, y_tr, X_dev, y_dev, lambdas, repeats, device):
    rows = []
    for l1, l2 in lambdas:
        t_nx, acc_nx, t_ours, t_exact = [], [], [], []
        # Interleaved repeats: a background load spike hits every method.
        for seed in range(repeats):
            _sync(device)
            base, t = _timed(lambda: neurox_train(X_tr, y_tr, l1, l2, device, seed))
            _sync(device)
            t_nx.append(t)
            acc_nx.append(neurox_accuracy(base, X_dev, y_dev, device))
            ours, t = _timed(
                lambda: LinearProbe(lambda_l1=l1, lambda_l2=l2, l2_form="norm", device=device).fit(
                    X_tr, y_tr
                )
            )
            _sync(device)
            t_ours.append(t)
            exact, t = _timed(
                lambda: LinearProbe(
                    lambda_l1=l1, lambda_l2=l2, l2_form="norm", early_stopping=False, device=device
                ).fit(X_tr, y_tr)
            )
            _sync(device)
            t_exact.append(t)
        t_nx, t_ours, t_exact = (float(np.median(t)) for t in (t_nx, t_ours, t_exact))
        es_iters = (
            f"{len(ours.validation_loss_) - 1}+{ours.n_iter_}"
            if ours.early_stopped_
            else f"{len(ours.validation_loss_) - 1}"
            if ours.validation_loss_
            else f"{ours.n_iter_}"
        )
        rows.append(
            f"| {l1:g} | {l2:g} | {t_nx:.3f} | {np.mean(acc_nx):.4f} "
            f"({min(acc_nx):.4f}-{max(acc_nx):.4f}) | {t_ours:.4f} | "
            f"{ours.score(X_dev, y_dev):.4f} | **{t_nx / t_ours:.1f}x** | "
            f"{ours.solver_} ({es_iters}) | {np.mean(ours.weight_ == 0):.1%} | "
            f"{t_exact:.4f} | {exact.score(X_dev, y_dev):.4f} | "
            f"{t_nx / t_exact:.1f}x |"
        )
    print(
        "| lambda_l1 | lambda_l2 | NeuroX (s) | NeuroX dev acc, mean (range) "
        "| ours (s) | dev acc | speed-up | solver (iters: held-out run + "
        "refit) | zero weights | exact optimum (s) | dev acc | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def layer_table(layers, y_tr, y_dev, lambdas, seeds, device):
    print(
        "\nDev accuracy per layer (NeuroX: mean over "
        f"{seeds} seeds; ours as shipped / exact optimum):\n"
    )
    head = " | ".join(f"l1={l1:g}, l2={l2:g}: NeuroX / ours / exact" for l1, l2 in lambdas)
    print(f"| layer | {head} |")
    print("|---|" + "---|" * len(lambdas))
    diffs = {pair: ([], []) for pair in lambdas}
    for layer, (X_tr, X_dev) in sorted(layers.items()):
        cells = []
        for l1, l2 in lambdas:
            nx = np.mean(
                [
                    neurox_accuracy(
                        neurox_train(X_tr, y_tr, l1, l2, device, s), X_dev, y_dev, device
                    )
                    for s in range(seeds)
                ]
            )
            kw = dict(lambda_l1=l1, lambda_l2=l2, l2_form="norm", device=device)
            ours = LinearProbe(**kw).fit(X_tr, y_tr).score(X_dev, y_dev)
            exact = LinearProbe(early_stopping=False, **kw).fit(X_tr, y_tr).score(X_dev, y_dev)
            diffs[(l1, l2)][0].append(ours - nx)
            diffs[(l1, l2)][1].append(exact - nx)
            cells.append(f"{nx:.4f} / {ours:.4f} / {exact:.4f}")
        print(f"| {layer} | " + " | ".join(cells) + " |")
    cells = [
        f"ours {np.mean(a) * 100:+.2f} (worst {min(a) * 100:+.2f}); "
        f"exact {np.mean(b) * 100:+.2f} (worst {min(b) * 100:+.2f})"
        for a, b in diffs.values()
    ]
    print("| mean diff vs NeuroX, points | " + " | ".join(cells) + " |")


def print_header(args):
    """Machine, exact command line and arguments: the first lines printed."""
    print(describe())
    print(f"Command: {shlex.join(getattr(sys, 'orig_argv', [sys.executable, *sys.argv]))}")
    print(f"Arguments: {vars(args)}\n", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--activations", default=None, help=".npz with X_train, y_train, X_dev, y_dev"
    )
    parser.add_argument(
        "--lambdas", default="0,0;0,1e-3;1e-3,1e-3", help="';'-separated 'l1,l2' pairs to benchmark"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timing repeats = NeuroX seeds (medians reported)"
    )
    parser.add_argument(
        "--layer-seeds", type=int, default=3, help="NeuroX seeds per layer in the per-layer table"
    )
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    print_header(args)
    layers = {}
    if args.activations:
        d = np.load(args.activations)
        X_tr, y_tr, X_dev, y_dev = (d["X_train"], d["y_train"], d["X_dev"], d["y_dev"])
        layers = {
            int(k[len("X_train_L") :]): (d[k], d[f"X_dev_L{k[9:]}"])
            for k in d.files
            if k.startswith("X_train_L")
        }
        source = args.activations
    else:
        X_tr, y_tr, X_dev, y_dev = synthetic()
        source = "synthetic"
    y_tr, y_dev = _encode(y_tr, y_dev)
    X_tr = np.ascontiguousarray(X_tr, dtype=np.float32)
    X_dev = np.ascontiguousarray(X_dev, dtype=np.float32)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    lambdas = [tuple(float(v) for v in pair.split(",")) for pair in args.lambdas.split(";")]
    peer = (
        "NeuroX 1.0.9 (imported)"
        if neurox_linear_probe is not None
        else "NeuroX's loop, re-implemented (neurox not importable)"
    )

    print(
        f"data: {source}; train {X_tr.shape}, dev {X_dev.shape}, "
        f"{len(np.unique(y_tr))} classes; device {device}, "
        f"torch threads {torch.get_num_threads()}; peer: {peer}\n"
    )
    # Warm up kernels/allocator for both so neither pays first-call costs.
    LinearProbe(device=device).fit(X_tr[:256], y_tr[:256])
    neurox_train(X_tr[:256], y_tr[:256], 0.0, 0.0, device, 0)

    load_start = os.getloadavg()[0]
    speed_table(X_tr, y_tr, X_dev, y_dev, lambdas, args.repeats, device)
    print(
        f"\nmedian of {args.repeats} interleaved runs; load average (1 min) at "
        f"start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}"
    )
    if layers:
        layers = {
            l: (
                np.ascontiguousarray(a, dtype=np.float32),
                np.ascontiguousarray(b, dtype=np.float32),
            )
            for l, (a, b) in layers.items()
        }
        layer_table(layers, y_tr, y_dev, lambdas, args.layer_seeds, device)


if __name__ == "__main__":
    main()
