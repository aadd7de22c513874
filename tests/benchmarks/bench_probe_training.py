"""Benchmark: full-batch `LinearProbe` vs a NeuroX-style mini-batch Adam loop.

Run:  python tests/benchmarks/bench_probe_training.py [--activations a.npz]

The .npz must hold X_train, y_train, X_dev, y_dev (integer class labels).
Without it a synthetic POS-tagging-like activation matrix is generated:
768 neurons with correlated noise, a few large-magnitude outlier neurons (as
in real transformer layers) and a class signal spread over 40 neurons.

The baseline re-implements NeuroX's `_train_probe` training loop
(torch.nn.Linear, Adam lr 1e-3, 10 epochs, batch 32, sequential batches,
loss = CE + l1 * sum|W| + l2 * sqrt(sum W^2)); our probe is run with
`l2_form="norm"` so both minimise the same objective.  Both run on the same
device, in the same process; the table is printed as markdown.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                "..", "..")))
from lit_plugins.probing import LinearProbe  # noqa: E402


def synthetic(n_train=20000, n_dev=5000, h=768, num_classes=12, seed=0):
  rng = np.random.default_rng(seed)
  n = n_train + n_dev
  y = rng.choice(num_classes, size=n, p=np.sort(rng.dirichlet(np.ones(
      num_classes) * 2))[::-1])
  informative = rng.choice(h, size=40, replace=False)
  means = np.zeros((num_classes, h))
  means[:, informative] = rng.normal(scale=0.3, size=(num_classes, 40))
  mix = rng.normal(size=(64, h)) / 8.0  # low-rank correlated noise
  X = means[y] + rng.normal(size=(n, 64)) @ mix + rng.normal(
      scale=0.7, size=(n, h))
  outliers = rng.choice(h, size=4, replace=False)
  X[:, outliers] *= 20.0
  X = X.astype(np.float32)
  return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def neurox_style_train(X, y, lambda_l1, lambda_l2, device, num_epochs=10,
                       batch_size=32, learning_rate=1e-3, seed=0):
  """NeuroX `_train_probe` (classification) without the progress bar/amp."""
  torch.manual_seed(seed)
  num_classes = len(set(y.tolist()))
  probe = torch.nn.Linear(X.shape[1], num_classes).to(device)
  criterion = torch.nn.CrossEntropyLoss()
  optimizer = torch.optim.Adam(probe.parameters(), lr=learning_rate)
  X_t = torch.from_numpy(X)
  y_t = torch.from_numpy(y.astype(np.int64))
  for _ in range(num_epochs):
    for i in range(0, X_t.shape[0], batch_size):
      inputs = X_t[i:i + batch_size].to(device).float()
      labels = y_t[i:i + batch_size].to(device)
      optimizer.zero_grad()
      outputs = probe(inputs)
      weights = probe.weight
      loss = (criterion(outputs, labels) + lambda_l1 * weights.abs().sum() +
              lambda_l2 * torch.sqrt(torch.pow(weights, 2).sum()))
      loss.backward()
      optimizer.step()
  return probe


def neurox_accuracy(probe, X, y, device):
  with torch.no_grad():
    out = probe(torch.from_numpy(X).to(device).float())
  return float((out.argmax(1).cpu().numpy() == y).mean())


def _sync(device):
  if device.type == "cuda":
    torch.cuda.synchronize()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--activations", default=None,
                      help=".npz with X_train, y_train, X_dev, y_dev")
  parser.add_argument("--lambdas", default="0,0;0,1e-3;1e-3,1e-3",
                      help="';'-separated 'l1,l2' pairs to benchmark")
  parser.add_argument("--repeats", type=int, default=3,
                      help="timing repeats, interleaved (medians reported)")
  parser.add_argument("--device", default=None)
  parser.add_argument("--threads", type=int, default=None,
                      help="torch CPU threads (default: torch's choice); 1 "
                      "gives steadier numbers on a shared machine")
  args = parser.parse_args()

  if args.threads:
    torch.set_num_threads(args.threads)
  if args.activations:
    d = np.load(args.activations)
    X_tr, y_tr, X_dev, y_dev = (d["X_train"], d["y_train"], d["X_dev"],
                                d["y_dev"])
    source = args.activations
  else:
    X_tr, y_tr, X_dev, y_dev = synthetic()
    source = "synthetic"
  # NeuroX wants 0-indexed integer labels; encode (dev-only labels -> -1).
  classes, y_tr = np.unique(y_tr, return_inverse=True)
  lookup = {c: i for i, c in enumerate(classes.tolist())}
  y_dev = np.array([lookup.get(c, -1) for c in np.asarray(y_dev).tolist()])
  X_tr = np.ascontiguousarray(X_tr, dtype=np.float32)
  X_dev = np.ascontiguousarray(X_dev, dtype=np.float32)
  device = torch.device(args.device or (
      "cuda" if torch.cuda.is_available() else "cpu"))

  print(f"data: {source}; train {X_tr.shape}, dev {X_dev.shape}, "
        f"{len(np.unique(y_tr))} classes; device {device}, "
        f"torch threads {torch.get_num_threads()}\n")
  # Warm up kernels/allocator for both so neither pays first-call costs.
  LinearProbe(device=device).fit(X_tr[:256], y_tr[:256])
  neurox_style_train(X_tr[:256], y_tr[:256], 0, 0, device, num_epochs=1)

  rows = []
  for pair in args.lambdas.split(";"):
    l1, l2 = (float(v) for v in pair.split(","))
    t_base_all, t_ours_all = [], []
    # Interleaved repeats: a background load spike hits both methods.
    for _ in range(args.repeats):
      _sync(device)
      t0 = time.perf_counter()
      base = neurox_style_train(X_tr, y_tr, l1, l2, device)
      _sync(device)
      t_base_all.append(time.perf_counter() - t0)
      t0 = time.perf_counter()
      ours = LinearProbe(lambda_l1=l1, lambda_l2=l2, l2_form="norm",
                         device=device).fit(X_tr, y_tr)
      _sync(device)
      t_ours_all.append(time.perf_counter() - t0)
    t_base = float(np.median(t_base_all))
    t_ours = float(np.median(t_ours_all))
    acc_base = neurox_accuracy(base, X_dev, y_dev, device)
    acc_ours = ours.score(X_dev, y_dev)
    sparsity = float(np.mean(ours.weight_ == 0))
    rows.append((l1, l2, t_base, acc_base, t_ours, acc_ours, t_base / t_ours,
                 ours.solver_, ours.n_iter_, sparsity))

  print(f"median of {args.repeats} interleaved runs; os.getloadavg() at "
        f"end: {os.getloadavg()[0]:.2f}\n")
  print("| lambda_l1 | lambda_l2 | NeuroX-style Adam (s) | dev acc | "
        "ours (s) | dev acc | speed-up | solver (iters) | zero weights |")
  print("|---|---|---|---|---|---|---|---|---|")
  for (l1, l2, tb, ab, to, ao, ratio, solver, it, sp) in rows:
    print(f"| {l1:g} | {l2:g} | {tb:.2f} | {ab:.4f} | {to:.3f} | {ao:.4f} | "
          f"{ratio:.1f}x | {solver} ({it}) | {sp:.1%} |")


if __name__ == "__main__":
  main()
