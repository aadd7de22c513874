"""IG benchmark: model evaluations and wall time to reach a maximum relative
completeness error <= 1% over the bundled dev sentences, LIT 1.3's IG vs each
of our rules and our adaptive mode, on the fine-tuned MiniLM; plus our time
per path point against a raw batched forward+backward of the same model.

  .venv/bin/python -m tests.benchmarks.bench_integrated_gradients [--examples 16]

16 sentences by default: LIT's IG needs up to 1920 steps on some fine-tunes,
and its ladder of step counts (30 … 1920) on 48 sentences takes tens of
minutes on a 2-core CPU. The fine-tune differs across machines, so the model's
weight digest is printed with the table.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
from lit_nlp.components import gradient_maps

from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.data import loaders
from lit_plugins.lit import demo_models
from tests.benchmarks import machine

TOL = 0.01


def lit_ig(model, examples, steps):
    """LIT's IG, unnormalised; returns (max relative error, seconds)."""
    ig = gradient_maps.IntegratedGradients(interpolation_steps=steps, normalize=False)
    outputs = list(model.predict(examples))
    zero = [
        dict(ex, token_embs=np.zeros_like(o["token_embs"]), grad_class=o["grad_class"])
        for ex, o in zip(examples, outputs)
    ]
    base = list(model.predict(zero))
    start = time.perf_counter()
    res = ig.run(
        examples,
        model,
        None,
        outputs,
        {"Class to explain": "", "Normalize": False, "Interpolation steps": steps},
    )
    seconds = time.perf_counter() - start
    errs = []
    for r, o, b in zip(res, outputs, base):
        k = model.labels.index(o["grad_class"])
        delta = float(o["probas"][k] - b["probas"][k])
        errs.append(ig_lib.relative_completeness_error(r["token_grads"].salience, delta))
    return max(errs), seconds


def ours(model, examples, rule, steps, tolerance=None, max_steps=1024):
    start = time.perf_counter()
    path_fn, _, _ = model.integrated_gradients_path(examples, "zero")
    res = ig_lib.integrated_gradients(
        len(examples), path_fn, rule, steps, tolerance=tolerance, max_steps=max_steps, batch_size=64
    )
    seconds = time.perf_counter() - start
    return (
        max(r.completeness_error for r in res),
        seconds,
        sum(r.evaluations for r in res) / len(res),
    )


def raw_point_seconds(model, examples, rows=640, batch=64):
    """A plain batched forward+backward over padded input embeddings."""
    texts = [ex["sentence"] for ex in examples]
    texts = (texts * (batch // len(texts) + 1))[:batch]  # full batches of rows
    enc = model.tokenizer(texts, padding=True, return_tensors="pt")
    embs = model.model.get_input_embeddings()(enc["input_ids"]).detach()
    other = {k: v for k, v in enc.items() if k != "input_ids"}
    start = time.perf_counter()
    for _ in range(rows // batch):
        e = embs.clone().requires_grad_(True)
        p = torch.softmax(model.model(inputs_embeds=e, **other).logits, -1)[:, 1]
        torch.autograd.grad(p.sum(), e)
    return (time.perf_counter() - start) / rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=16)
    args = parser.parse_args()
    machine.print_header(args)
    model = demo_models.finetuned_minilm(batch_size=64)
    examples = loaders.load_bundled_sentiment("dev").examples[: args.examples]
    checkpoint = machine.checkpoint(demo_models.finetuned_checkpoint())
    print(
        f"fine-tuned MiniLM-L6 ({checkpoint}), {len(examples)} dev sentences, zero baseline,"
        f" target = predicted class; goal: max relative completeness error "
        f"<= {TOL:.0%}\n"
    )
    rows = []
    lit_result = None
    for steps in (30, 120, 240, 480, 960, 1920):
        err, sec = lit_ig(model, examples, steps)
        print(f"  LIT IG {steps:4d} steps: max err {err:.4f}  {sec:.1f}s", file=sys.stderr)
        lit_result = ("LIT 1.3 IntegratedGradients", steps, steps, err, sec)
        if err <= TOL:
            break
    rows.append(lit_result)
    for rule, start in [
        ("riemann_left", 32),
        ("riemann_right", 32),
        ("riemann_middle", 16),
        ("riemann_trapezoid", 17),
        ("gausslegendre", 16),
        ("clenshaw_curtis", 17),
    ]:
        steps = start
        while True:
            err, sec, evals = ours(model, examples, rule, steps)
            print(f"  {rule} {steps}: max err {err:.4f} {sec:.1f}s", file=sys.stderr)
            if err <= TOL or steps >= 1024:
                break
            steps = 2 * steps - (1 if rule in ("riemann_trapezoid", "clenshaw_curtis") else 0)
        rows.append((f"lit-plugins {rule}", steps, evals, err, sec))
    for rule, start in [("clenshaw_curtis", 9), ("gausslegendre", 8)]:
        err, sec, evals = ours(model, examples, rule, start, tolerance=TOL)
        rows.append((f"lit-plugins adaptive {rule} (tol 1%)", "adaptive", evals, err, sec))
    lit_evals, lit_sec = rows[0][2], rows[0][4]
    print(
        "| method | steps | model evaluations / example | max rel. "
        "completeness error | wall time (s) | evals vs LIT | time vs LIT |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, steps, evals, err, sec in rows:
        print(
            f"| {name} | {steps} | {evals:.1f} | {err:.4f} | {sec:.1f} | "
            f"{lit_evals / evals:.1f}x fewer | {lit_sec / sec:.1f}x faster |"
        )
    # Time per path point: ours vs a raw batched forward+backward.
    n_points = 640
    path_fn, _, _ = model.integrated_gradients_path(examples[:64], "zero")
    points = [(i % len(examples[:64]), (j + 0.5) / 10) for j in range(10) for i in range(64)]
    start = time.perf_counter()
    for k in range(0, n_points, 64):
        path_fn(points[k : k + 64])
    ours_point = (time.perf_counter() - start) / n_points
    raw_point = raw_point_seconds(model, examples, n_points)
    print(
        f"\ntime per path point: ours {ours_point * 1e3:.2f} ms, raw batched "
        f"forward+backward {raw_point * 1e3:.2f} ms, ratio "
        f"{ours_point / raw_point:.2f}"
    )


if __name__ == "__main__":
    main()
