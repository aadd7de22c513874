"""Trust checks: the cascading randomization sanity check of salience methods on
the fine-tuned MiniLM, batched (ours: `trust_evaluation.evaluate`, each
randomized copy built once per step and every method's maps for every example
run through it in batches) vs the straightforward loop (one example, one
method, one randomization at a time: a fresh copy randomized from the top
down to the step, the method on that one example).

  .venv/bin/python -m tests.benchmarks.bench_trust_checks [--examples 8] [--threads 0] \
      [--methods "Grad L2 Norm,Grad ⋅ Input"] [--full]

Both sides compute the same Spearman ρ of every (example, method, step) with
the same seeded weights (`hf.randomization` draws a parameter's values from
its name and the seed, so a step's weights are the same in the cascade and in
a copy randomized up to it). Printed: the machine, both wall times and the
ratio, and the largest |Δρ| between the two (maps of one example alone and in
a batch differ by float32 rounding only). `--full` also times ours with its
default infidelity and max-sensitivity, which the loop does not compute.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from lit_plugins.data import loaders
from lit_plugins.faithfulness import sanity
from lit_plugins.hf import randomization
from lit_plugins.hf.perturb import PerturbationRunner
from lit_plugins.lit import demo_models
from lit_plugins.lit import methods as registry
from lit_plugins.lit import salience_evaluation as evaluation
from lit_plugins.lit import trust_evaluation as trust
from tests.benchmarks import machine


def straightforward_loop(model, inputs, methods, seed: int) -> dict[str, np.ndarray]:
    """{method: ρ [examples, steps]}, one example, one method, one step at a time."""
    raw = model
    runner = PerturbationRunner(raw)
    steps = [s.name for s in randomization.randomization_steps(raw.model)]
    out = {name: np.zeros((len(inputs), len(steps))) for name in methods}
    for i, example in enumerate(inputs):
        (encoded,), _ = runner.encode([example])
        tokens = [runner.tokens(encoded)]
        (probs,) = [o["probas"] for o in raw.predict([example], gradients=False)]
        pinned = [{**example, "grad_class": raw.labels[int(np.argmax(probs))]}]
        for name, interp in methods.items():
            original = evaluation.run_methods({name: interp}, pinned, raw, None, tokens)[name]
            for k in range(len(steps)):
                copy = randomization.randomized(raw.model, steps[: k + 1], seed=seed)
                wrapper = trust.randomized_wrapper(raw, copy)
                moved = evaluation.run_methods({name: interp}, pinned, wrapper, None, tokens)
                (corr,) = sanity.step_correlations(
                    original, {steps[k]: moved[name]}, [encoded.special]
                )
                out[name][i, k] = corr.spearman[0]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--methods",
        default=f"{registry.LIT_GRAD_NORM},{registry.LIT_GRAD_DOT_INPUT}",
        help="comma-separated names from lit_plugins.lit.methods (default: the ticked ones)",
    )
    ap.add_argument("--full", action="store_true", help="also time ours with every check")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine.print_header(args)
    model = demo_models.finetuned_minilm(batch_size=32)
    print(f"Model: fine-tuned MiniLM-L6 ({machine.checkpoint(demo_models.finetuned_checkpoint())})")
    inputs = list(loaders.load_bundled_sentiment("dev").examples)[: args.examples]
    served = registry.default_methods()
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    unknown = [n for n in names if n not in served]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; known: {sorted(served)}")
    methods = {n: served[n] for n in names}
    steps = [s.name for s in randomization.randomization_steps(model.model)]
    print(
        f"{len(inputs)} dev sentences, methods {names}, {len(steps)} cascading steps "
        f"({', '.join(steps)}), seed {args.seed}.\n",
        flush=True,
    )

    settings = trust.TrustSettings(seed=args.seed, infidelity_samples=0, sensitivity_samples=0)
    start = time.perf_counter()
    result = trust.evaluate(model, inputs, methods, settings=settings)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    loop = straightforward_loop(model, inputs, methods, args.seed)
    loop_s = time.perf_counter() - start

    print("| run | wall (s) | speed-up |")
    print("|---|---:|---:|")
    print(f"| straightforward loop (one example, method, step at a time) | {loop_s:.1f} | 1.0× |")
    print(
        f"| ours, batched (`trust_evaluation.evaluate`) | {ours_s:.1f} | **{loop_s / ours_s:.1f}×** |"
    )
    worst = 0.0
    for name in names:
        batched = np.stack([step.spearman for step in result.cascade[name]], axis=1)
        worst = max(worst, float(np.max(np.abs(batched - loop[name]))))
    print(
        f"\nSame numbers: max |Δρ| over {len(inputs)} examples × {len(names)} methods × "
        f"{len(steps)} steps = {worst:.2e}"
    )
    if args.full:
        start = time.perf_counter()
        trust.evaluate(model, inputs, methods, settings=trust.TrustSettings(seed=args.seed))
        full_s = time.perf_counter() - start
        defaults = trust.TrustSettings()
        print(
            f"Ours with infidelity ({defaults.infidelity_samples} samples) and max-sensitivity "
            f"({defaults.sensitivity_samples} samples) too: {full_s:.1f} s"
        )
    print("\nMean ρ after each cascading step (ours):")
    print(
        result.curves()
        .pivot(index="method", columns="step", values="rho")[["original", *steps]]
        .round(3)
        .to_markdown()
    )


if __name__ == "__main__":
    main()
