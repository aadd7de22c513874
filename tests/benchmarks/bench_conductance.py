"""Conductance benchmark on the fine-tuned MiniLM (layer 3, zero baseline,
the first 8 bundled dev sentences, target = predicted class):

(a) layer conductance of every neuron of the layer: model evaluations and
    wall time to reach a maximum relative completeness error <= 1%, ours
    (exact dh/dα by forward-mode AD; Gauss–Legendre, steps doubled from 16,
    and the adaptive mode) vs Captum's `LayerConductance` (finite differences
    of the activations between consecutive points), its steps doubled from 64
    until it gets there;
(b) neuron conductance of 10 neurons (the layer's largest total conductance,
    at the [CLS] position): ours, one shared pass along the path, vs Captum's
    `NeuronConductance` called once per neuron, at the same steps; and how
    far apart the numbers are.

    .venv/bin/python -m tests.benchmarks.bench_conductance [--examples 8] [--threads 1]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
from captum.attr import LayerConductance, NeuronConductance

from lit_plugins.attribution import conductance as conductance_lib
from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.data import loaders
from lit_plugins.hf import layer_hooks
from lit_plugins.hf import paths as hf_paths
from lit_plugins.lit import demo_models
from tests.benchmarks.machine import describe

TOL = 0.01
LAYER = 3


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


class CaptumSetup:
    """The model as Captum sees it: softmax over inputs_embeds, the block whose
    output is hidden_states[LAYER], the padded batch, zero baselines."""

    def __init__(self, clf, examples, targets):
        self.clf = clf
        batch = clf.encode(examples)
        self.x = batch["embs"]
        self.mask = batch["enc"]["attention_mask"]
        self.lengths = batch["lengths"]
        self.targets = [clf.labels.index(t) for t in targets]
        self.block = layer_hooks.layer_modules(clf.model, clf.num_layers)[LAYER]
        with torch.no_grad():
            p_x = self.forward(self.x, self.mask)
            p_b = self.forward(torch.zeros_like(self.x), self.mask)
        rows = torch.arange(len(examples))
        t = torch.tensor(self.targets)
        self.delta_f = (p_x[rows, t] - p_b[rows, t]).double().numpy()

    def forward(self, embs, mask):
        return torch.softmax(self.clf.model(inputs_embeds=embs, attention_mask=mask).logits, -1)

    def kwargs(self, steps):
        return dict(
            baselines=torch.zeros_like(self.x),
            target=self.targets,
            additional_forward_args=(self.mask,),
            n_steps=steps,
            method="gausslegendre",
            internal_batch_size=512,
        )


def captum_layer(cap: CaptumSetup, steps):
    lc = LayerConductance(cap.forward, cap.block)
    attr, seconds = timed(lambda: lc.attribute(cap.x, **cap.kwargs(steps)))
    totals = attr.detach().double().sum(dim=(1, 2)).numpy()
    errors = [ig_lib._relative_gap(t, d) for t, d in zip(totals, cap.delta_f)]
    return max(errors), seconds


def ours_layer(clf, examples, steps, tolerance=None):
    def run():
        path_fn, _, _ = hf_paths.make_layer_conductance_path_fn(clf, examples, LAYER)
        return conductance_lib.layer_conductance(
            len(examples), path_fn, "gausslegendre", steps, tolerance, max_steps=512, batch_size=64
        )

    results, seconds = timed(run)
    evals = np.mean([r.evaluations for r in results])
    return results, max(r.completeness_error for r in results), seconds, evals


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--neurons", type=int, default=10)
    parser.add_argument("--neuron-steps", type=int, default=64)
    parser.add_argument("--captum-max-steps", type=int, default=2048)
    # One thread by default: on a shared 2-core machine, OpenMP barriers under
    # oversubscription slow every small op by milliseconds (5-10x overall),
    # which says more about the neighbours than about either method.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe())
    print(
        "command: .venv/bin/python -m tests.benchmarks.bench_conductance " + " ".join(sys.argv[1:])
    )
    clf = demo_models.finetuned_minilm(batch_size=64)
    examples = loaders.load_bundled_sentiment("dev").examples[: args.examples]
    _, _, targets = hf_paths.make_path_fn(clf, examples)
    cap = CaptumSetup(clf, examples, targets)
    print(
        f"\nfine-tuned MiniLM-L6, layer {LAYER} ({clf.model.config.hidden_size} neurons),"
        f" {len(examples)} dev sentences ({sum(cap.lengths)} tokens, padded batch"
        f" {len(examples)}×{max(cap.lengths)}), zero baseline, target = predicted class;"
        f" goal: max relative completeness error <= {TOL:.0%}\n"
    )

    # ---------------------------------------------------------- (a) layer
    rows = []
    steps = 16
    while True:
        results, err, sec, evals = ours_layer(clf, examples, steps)
        print(f"  ours GL {steps}: max err {err:.4f} {sec:.1f}s", file=sys.stderr)
        rows.append((f"ours, Gauss–Legendre {steps}", evals, err, sec))
        if err <= TOL or steps >= 512:
            break
        steps *= 2
    ours_fixed = rows[-1]
    reference = results
    _, err, sec, evals = ours_layer(clf, examples, 16, tolerance=TOL)
    rows.append(("ours, adaptive Gauss–Legendre from 16 (tol 1%)", evals, err, sec))
    ours_best = min((r for r in rows if r[2] <= TOL), key=lambda r: r[3], default=ours_fixed)
    cap_rows = []
    steps = 64
    while True:
        err, sec = captum_layer(cap, steps)
        print(f"  captum {steps}: max err {err:.4f} {sec:.1f}s", file=sys.stderr)
        cap_rows.append((f"Captum LayerConductance, gausslegendre {steps}", steps + 1, err, sec))
        if err <= TOL or steps >= args.captum_max_steps:
            break
        steps *= 2
    cap_final = cap_rows[-1]
    print("### (a) Layer conductance, every neuron of the layer\n")
    print(
        "| method | model evaluations / example | max rel. completeness error |"
        " wall time (s) | time vs Captum at <= 1% |"
    )
    print("|---|---|---|---|---|")
    for name, evals, err, sec in rows + cap_rows:
        print(f"| {name} | {evals:.1f} | {err:.4f} | {sec:.1f} | {cap_final[3] / sec:.1f}x |")
    print(
        f"\nto reach <= 1%: ours ({ours_best[0]}) {ours_best[3]:.1f}s, {ours_best[1]:.0f} evaluations"
        f" / example; Captum {cap_final[3]:.1f}s, {cap_final[1]} evaluations / example"
        f" ({'reached' if cap_final[2] <= TOL else 'NOT reached'}); "
        f"{cap_final[3] / ours_best[3]:.1f}x less wall time"
        f" (Captum's doubling search itself took {sum(r[3] for r in cap_rows):.1f}s)."
    )

    # --------------------------------------------------------- (b) neuron
    total = np.sum([np.abs(r.neuron_attributions) for r in reference], axis=0)
    top = np.argsort(-total)[: args.neurons]
    neurons = [(LAYER, int(j), 0) for j in top]
    steps = args.neuron_steps

    def run_ours():
        path_fn, _, _, ns = hf_paths.make_neuron_conductance_path_fn(clf, examples, neurons)
        return conductance_lib.neuron_conductance(
            len(examples), path_fn, ns, "gausslegendre", steps, batch_size=64
        )

    ours_n, ours_sec = timed(run_ours)
    nc = NeuronConductance(cap.forward, cap.block)

    def run_captum():
        return [
            nc.attribute(cap.x, neuron_selector=(0, j), **cap.kwargs(steps))
            .detach()
            .double()
            .sum(-1)
            .numpy()
            for _, j, _ in neurons
        ]

    cap_n, cap_sec = timed(run_captum)
    diffs, pearsons = [], []
    for k in range(len(neurons)):
        for i, r in enumerate(ours_n):
            a = r.attributions[k]
            b = cap_n[k][i, : len(a)]
            diffs.append(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
            if a.std() > 0 and b.std() > 0:
                pearsons.append(np.corrcoef(a, b)[0, 1])
    print(f"\n### (b) Neuron conductance, {len(neurons)} neurons at [CLS], {steps} steps\n")
    print(
        "| method | model passes along the path / example | path completeness error (max) |"
        " wall time (s) | speed-up |"
    )
    print("|---|---|---|---|---|")
    ours_evals = np.mean([r.evaluations for r in ours_n])
    ours_err = max(r.completeness_error for r in ours_n)
    print(
        f"| ours, one shared pass + {len(neurons)} VJPs per point | {ours_evals:.0f} |"
        f" {ours_err:.4f} | {ours_sec:.1f} | {cap_sec / ours_sec:.1f}x |"
    )
    print(
        f"| Captum NeuronConductance × {len(neurons)} | {len(neurons) * steps} | – |"
        f" {cap_sec:.1f} | 1.0x |"
    )
    print(
        f"\nagreement per (sentence, neuron): max |ours − Captum| / max|Captum| ="
        f" {max(diffs):.2e}; Pearson min {min(pearsons):.6f}, median"
        f" {np.median(pearsons):.6f} ({len(pearsons)} pairs)."
    )
    print(f"neurons: {', '.join(conductance_lib.Neuron(*n).label for n in neurons)}")


if __name__ == "__main__":
    main()
