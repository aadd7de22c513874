"""Benchmark: one-pass linear layer sweep vs a per-layer re-run MLP probe loop.

Run:  python -m tests.benchmarks.bench_layer_sweep [--no-neurox] [--repeats N]

The first lines printed are the machine (`machine.describe()`), the exact
command line and the parsed arguments; part (b) prints its own.

Data: the bundled sentiment train split (probes are fit on it) and dev split
(probes are scored on it); model: the fine-tuned MiniLM-L6 checkpoint
(`lit_plugins.lit.demo_models.finetuned_minilm()`, 6 layers + embeddings).

(a) Ours: ONE streamed pass of `model.predict(..., activation_layers='all',
    gradients=False)` over train + dev, mean-pooled per layer with
    `probe_inputs.collect_pooled_activations` (the interpreter's own
    collection code), then `probing.LayerSweep` (one elastic-net
    `LinearProbe` per layer, the interpreter's defaults L1 = L2 = 1e-3).
    Baseline ("Carpentries-style" probing tutorial loop): for each layer, run
    the HF model again over train and dev with `output_hidden_states=True`,
    take that layer, mean-pool over the attention mask, and train an MLP probe
    (Linear(H, 128) -> ReLU -> Linear(128, 2), Adam lr 1e-3, 10 epochs,
    batch 32, seeded shuffles). Both use batch 32 for the forward passes, the
    same tokenizer settings and the same device. Wall times are the median of
    `--repeats` interleaved runs.
(b) Unless --no-neurox: every layer's mean-pooled vectors are written to a
    temporary .npz and tests.benchmarks.bench_probe_training (NeuroX vs
    our LinearProbe) is run on them: speed on the last layer, dev accuracy
    on every layer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from lit_plugins import probing
from lit_plugins.data import loaders
from lit_plugins.lit import demo_models, probe_inputs
from tests.benchmarks.bench_probe_training import print_header

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

BATCH = 32


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(model, train, dev, y_tr, y_dev):
    """One forward pass (all layers) + one linear probe per layer."""
    acts = probe_inputs.collect_pooled_activations(
        model, train + dev, "all", "mean", batch_size=BATCH
    )
    n = len(train)
    sweep = probing.LayerSweep("classification", lambda_l1=1e-3, lambda_l2=1e-3).fit(
        {l: a[:n] for l, a in acts.items()}, y_tr, {l: a[n:] for l, a in acts.items()}, y_dev
    )
    return sweep.scores_, acts


def _layer_vectors(model, texts, layer):
    """Carpentries-style: run the model, keep one layer, mean-pool."""
    hf, tok, device = model.model, model.tokenizer, model.device
    out = []
    with torch.no_grad():
        for lo in range(0, len(texts), BATCH):
            enc = tok(
                texts[lo : lo + BATCH],
                padding=True,
                truncation=True,
                max_length=model.max_length,
                return_tensors="pt",
            ).to(device)
            hs = hf(**enc, output_hidden_states=True).hidden_states[layer]
            m = enc["attention_mask"].unsqueeze(-1).to(hs.dtype)
            out.append(((hs * m).sum(1) / m.sum(1)).cpu())
    return torch.cat(out)


def _mlp_probe(X, y, seed=0, epochs=10):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, 2)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(X.shape[0], generator=g)
        for lo in range(0, X.shape[0], 32):
            idx = perm[lo : lo + 32]
            opt.zero_grad()
            loss_fn(net(X[idx]), y[idx]).backward()
            opt.step()
    return net


def baseline(model, train_texts, dev_texts, y_tr, y_dev):
    """Per layer: a full model re-run, then an MLP probe."""
    scores = {}
    ytr = torch.from_numpy(y_tr.astype(np.int64))
    for layer in range(model.num_layers + 1):
        X_tr = _layer_vectors(model, train_texts, layer)
        X_dev = _layer_vectors(model, dev_texts, layer)
        net = _mlp_probe(X_tr, ytr)
        with torch.no_grad():
            pred = net(X_dev).argmax(1).numpy()
        scores[layer] = float(np.mean(pred == y_dev))
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-neurox", action="store_true", help="skip part (b), bench_probe_training.py"
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print_header(args)

    model = demo_models.finetuned_minilm(batch_size=BATCH)
    train = list(loaders.load_bundled_sentiment("train").examples)
    dev = list(loaders.load_bundled_sentiment("dev").examples)
    y_tr = np.array([loaders.SENTIMENT_LABELS.index(ex["label"]) for ex in train])
    y_dev = np.array([loaders.SENTIMENT_LABELS.index(ex["label"]) for ex in dev])
    train_texts = [ex["sentence"] for ex in train]
    dev_texts = [ex["sentence"] for ex in dev]
    device = model.device
    print(
        f"model: {model.name_or_path} ({model.num_layers} layers, hidden "
        f"{model.hidden_size}); train {len(train)}, dev {len(dev)} "
        f"sentences; device {device}, torch threads "
        f"{torch.get_num_threads()}\n"
    )

    # Warm-up (kernels, allocator, tokenizer caches) for both.
    ours(model, train[:64], dev[:32], y_tr[:64], y_dev[:32])
    baseline_warm = _layer_vectors(model, train_texts[:32], 1)
    _mlp_probe(baseline_warm, torch.from_numpy(y_tr[:32]), epochs=1)

    t_ours, t_base = [], []
    for _ in range(args.repeats):
        _sync(device)
        t0 = time.perf_counter()
        s_ours, acts = ours(model, train, dev, y_tr, y_dev)
        _sync(device)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s_base = baseline(model, train_texts, dev_texts, y_tr, y_dev)
        _sync(device)
        t_base.append(time.perf_counter() - t0)
    to, tb = float(np.median(t_ours)), float(np.median(t_base))

    print(f"(a) layer sweep, median of {args.repeats} interleaved runs\n")
    print("| layer | one-pass linear sweep dev acc | per-layer re-run + MLP dev acc |")
    print("|---|---|---|")
    for l in sorted(s_ours):
        print(f"| {l} | {s_ours[l]:.4f} | {s_base[l]:.4f} |")
    best_o = max(s_ours, key=lambda l: (s_ours[l], -l))
    best_b = max(s_base, key=lambda l: (s_base[l], -l))
    print(
        f"| best | {s_ours[best_o]:.4f} (layer {best_o}) | {s_base[best_b]:.4f} (layer {best_b}) |"
    )
    print(f"| mean | {np.mean(list(s_ours.values())):.4f} | {np.mean(list(s_base.values())):.4f} |")
    print(f"| wall time (s) | {to:.2f} | {tb:.2f} |")
    print(
        f"\nspeed-up: {tb / to:.1f}x (all runs, ours: "
        f"{', '.join(f'{t:.2f}' for t in t_ours)} s; baseline: "
        f"{', '.join(f'{t:.2f}' for t in t_base)} s)\n"
    )

    if args.no_neurox:
        return
    last = max(acts)
    n = len(train)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "minilm_mean_pooled.npz")
        per_layer = {}
        for l, a in acts.items():
            per_layer[f"X_train_L{l}"] = a[:n]
            per_layer[f"X_dev_L{l}"] = a[n:]
        np.savez(
            path,
            X_train=acts[last][:n],
            y_train=y_tr,
            X_dev=acts[last][n:],
            y_dev=y_dev,
            **per_layer,
        )
        print(
            f"(b) bench_probe_training.py on layer {last} mean-pooled "
            "activations (speed), and every layer (accuracy)\n",
            flush=True,
        )
        cmd = [
            sys.executable,
            "-m",
            "tests.benchmarks.bench_probe_training",
            "--activations",
            path,
            "--repeats",
            str(args.repeats),
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        subprocess.run(cmd, check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
