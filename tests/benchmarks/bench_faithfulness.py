"""Salience faithfulness: scoring 5 salience methods (+ the random baseline)
on 100 bundled dev sentences with the fine-tuned MiniLM, batched (ours) vs
ferret's procedure run one example and one method at a time.

  .venv/bin/python -m tests.benchmarks.bench_faithfulness [--examples 100] [--threads 1] \
      [--report docs/faithfulness] [--skip_ferret] [--forward_costs]

The maps are computed once (LIT's Grad L2 Norm, Grad ⋅ Input, Integrated
Gradients and LIME, and our Integrated Gradients, default configs) and cached
under the lit-plugins cache, so a rerun only re-times the scoring. The
ferret-style loop is `tests/kit/ferret_reference.py` (ferret 0.4.2's evaluators:
each of AOPC comprehensiveness, AOPC sufficiency and τ-LOO runs f(x) at batch
1 and its perturbations in chunks of 8, per example and per method); both
sides run the same HF forward (`PerturbationRunner`), on token ids, removal
"delete". The three scorers are timed interleaved, --chunk examples at a
time (ours batches each chunk's perturbations), so load changes on a shared
machine hit them alike. Printed: the machine, timings, the largest difference between the
two on (example, method) pairs whose scores have no ties (with ties the two
differ by design: ferret breaks them by position), and the ranking of the
methods with 95 % bootstrap intervals.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import torch
from lit_nlp.api import model as lit_model
from lit_nlp.components import gradient_maps, lime_explainer

from lit_plugins.data import loaders
from lit_plugins.faithfulness import metrics as core
from lit_plugins.faithfulness.perturbed_inputs import Row
from lit_plugins.hf import finetune
from lit_plugins.hf.perturb import PerturbationRunner
from lit_plugins.lit import demo_models
from lit_plugins.lit import interpreters as ours
from lit_plugins.lit import salience_evaluation as faithfulness
from tests.benchmarks import machine
from tests.kit import ferret_reference


class WithoutGradients(lit_model.ModelWrapper):
    """The model's predictions without token gradients (LIME only reads the
    probabilities; this spares it a backward pass per perturbation)."""

    def predict(self, inputs, *args, **kw):
        return self.wrapped.predict(inputs, *args, gradients=False, **kw)


def methods():
    return {
        "Grad L2 Norm": (gradient_maps.GradientNorm(), False),
        "Grad ⋅ Input": (gradient_maps.GradientDotInput(), False),
        "Integrated Gradients": (gradient_maps.IntegratedGradients(), False),
        "LIME": (lime_explainer.LIME(seed=0), True),
        "lit-plugins: Integrated Gradients": (ours.IntegratedGradients(), False),
    }


def salience_maps(model, examples, tokens, cache_path):
    if os.path.exists(cache_path):
        data = np.load(cache_path, allow_pickle=False)
        names = [str(n) for n in data["names"]]
        return {
            n: [data[f"{j}_{i}"] for i in range(len(examples))] for j, n in enumerate(names)
        }, None
    maps, times = {}, {}
    no_grad = WithoutGradients(model)
    for name, (interp, lime) in methods().items():
        start = time.perf_counter()
        out = []
        for s in range(0, len(examples), 16):
            chunk = examples[s : s + 16]
            m = no_grad if lime else model
            outputs = None if lime else list(model.predict(chunk))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = faithfulness.run_methods(
                    {name: interp}, chunk, m, None, tokens[s : s + 16], outputs
                )
            out += got[name]
        maps[name] = out
        times[name] = time.perf_counter() - start
        print(f"  {name}: {times[name]:.1f}s", flush=True)
    arrays = {f"{j}_{i}": v for j, n in enumerate(maps) for i, v in enumerate(maps[n])}
    np.savez(cache_path, names=np.array(list(maps)), **arrays)
    return maps, times


class Counted:
    def __init__(self, fn):
        self.fn, self.calls, self.rows = fn, 0, 0

    def __call__(self, rows):
        self.calls += 1
        self.rows += len(rows)
        return self.fn(rows)


def ferret_loop(examples, maps, prob_fn, seed):
    """ferret's three evaluators, one example and one method at a time."""
    out = {}
    for i, ex in enumerate(examples):
        run = lambda seqs, i=i: prob_fn(
            [Row(i, s, np.ones(len(s), np.int64), np.arange(len(s))) for s in seqs]
        )
        target = int(np.argmax(run([ex.input_ids])[0]))  # what the methods explain
        for name, values in [*maps.items(), (core.RANDOM, None)]:
            sal = core.random_salience(ex, seed) if values is None else values[i]
            with warnings.catch_warnings(), np.errstate(invalid="ignore"):
                warnings.simplefilter("ignore")
                out[(i, name)] = (
                    ferret_reference.aopc_comprehensiveness(run, ex.input_ids, sal, target),
                    ferret_reference.aopc_sufficiency(run, ex.input_ids, sal, target),
                    ferret_reference.tau_loo(run, ex.input_ids, sal, target),
                )
    return out


def forward_costs(sub, sub_maps, runner, prob_fn, seed, repeats=2):
    """µs per token of the forward pass over the distinct rows the three
    metrics need (sorted by length) at several rows per call, and this
    core's float32 GEMM rate on an FFN-shaped product, for the README's
    compute-bound argument."""
    rows = []

    def capture(batch):
        rows.extend(batch)
        return prob_fn(batch)

    core.score(sub, sub_maps, capture, runner.options(curves=False, seed=seed))
    rows.sort(key=lambda r: r.input_ids.size)
    tokens = sum(r.input_ids.size for r in rows)
    print(
        f"\nforward cost over the {len(rows)} distinct rows ({tokens} tokens) of {len(sub)} examples:"
    )
    for size in (1, 8, 32, 64, 128):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for lo in range(0, len(rows), size):
                prob_fn(rows[lo : lo + size])
            best = min(best, time.perf_counter() - start)
        print(f"  {size:>3} rows per call: {1e6 * best / tokens:.0f} µs per token", flush=True)
    hidden = runner.raw.model.config.hidden_size
    inner = runner.raw.model.config.intermediate_size
    x, w = torch.randn(512, hidden), torch.randn(inner, hidden)
    torch.nn.functional.linear(x, w)
    start, reps = time.perf_counter(), 50
    for _ in range(reps):
        torch.nn.functional.linear(x, w)
    rate = 2 * 512 * hidden * inner * reps / (time.perf_counter() - start)
    print(f"  float32 GEMM [512 x {hidden}] x [{hidden} x {inner}]: {rate / 1e9:.0f} GFLOP/s")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=25, help="examples per interleaved timing chunk")
    ap.add_argument("--report", default="", help="also write the report of ours to this directory")
    ap.add_argument("--skip_ferret", action="store_true", help="time ours only")
    ap.add_argument(
        "--forward_costs",
        action="store_true",
        help="only print the forward pass's cost per token by rows per call (first 25 examples)",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine.print_header(args)
    model = demo_models.finetuned_minilm(batch_size=32)
    print(
        f"Model: fine-tuned MiniLM-L6 ({machine.checkpoint(demo_models.finetuned_checkpoint())})\n"
    )
    inputs = list(loaders.load_bundled_sentiment("dev").examples)[: args.examples]
    runner = PerturbationRunner(model)
    examples, prob_fn = runner.encode(inputs)
    tokens = [runner.tokens(e) for e in examples]
    key = hashlib.sha1(
        repr(
            (demo_models.finetuned_checkpoint(), [e.input_ids.tolist() for e in examples])
        ).encode()
    ).hexdigest()[:16]
    cache = os.path.join(finetune.cache_root(), f"bench-faithfulness-maps-{key}.npz")
    print(
        f"{len(examples)} dev sentences ({np.mean([len(t) for t in tokens]):.1f} word pieces on "
        f"average), fine-tuned MiniLM-L6, {len(methods())} methods + random baseline, removal "
        "'delete', predicted class."
    )
    maps, times = salience_maps(model, inputs, tokens, cache)
    if times is None:
        print(f"salience maps: cached ({cache})")
    if args.forward_costs:
        n = min(25, len(examples))
        sub_maps = {k: v[:n] for k, v in maps.items()}
        forward_costs(examples[:n], sub_maps, runner, prob_fn, args.seed)
        return

    # Timed interleaved in chunks of examples (the order rotating), so that
    # a change in machine load hits all three alike.
    fns = {"ferret": Counted(prob_fn), "ours3": Counted(prob_fn), "ours5": Counted(prob_fn)}
    clock = dict.fromkeys(fns, 0.0)
    ref, ours3, ours5 = {}, [], []
    step = max(1, args.chunk)
    for c, lo in enumerate(range(0, len(examples), step)):
        idx = list(range(lo, min(lo + step, len(examples))))
        # Rows name examples by their index in an encode call: encode the chunk.
        sub, sub_fn = runner.encode([inputs[i] for i in idx])
        for f in fns.values():
            f.fn = sub_fn
        sub_maps = {k: [v[i] for i in idx] for k, v in maps.items()}
        jobs = {
            "ferret": lambda: ferret_loop(sub, sub_maps, fns["ferret"], args.seed),
            "ours3": lambda: core.score(
                sub, sub_maps, fns["ours3"], runner.options(curves=False, seed=args.seed)
            ),
            "ours5": lambda: core.score(
                sub, sub_maps, fns["ours5"], runner.options(seed=args.seed)
            ),
        }
        if args.skip_ferret:
            del jobs["ferret"]
        names = list(jobs)
        for name in names[c % len(names) :] + names[: c % len(names)]:
            start = time.perf_counter()
            got = jobs[name]()
            clock[name] += time.perf_counter() - start
            if name == "ferret":
                ref.update({(idx[i], m): v for (i, m), v in got.items()})
            else:
                (ours3 if name == "ours3" else ours5).extend(got)
    t_ferret, t_ours3, t_ours5 = clock["ferret"], clock["ours3"], clock["ours5"]
    ferret_fn = fns["ferret"]
    calls3, rows3 = fns["ours3"].calls, fns["ours3"].rows
    calls5, rows5 = fns["ours5"].calls, fns["ours5"].rows

    print()
    print("| scorer | metrics | forward calls | rows | wall time (s) | speed-up |")
    print("|---|---|---|---|---|---|")
    if args.skip_ferret:
        print(
            f"| lit-plugins, batched | AOPC comp., AOPC suff., τ-LOO | {calls3} | {rows3} | {t_ours3:.1f} | - |"
        )
        print(f"| lit-plugins, batched | all five | {calls5} | {rows5} | {t_ours5:.1f} | - |")
    else:
        print(
            f"| ferret's procedure, one example × method at a time | AOPC comp., AOPC suff., τ-LOO "
            f"| {ferret_fn.calls} | {ferret_fn.rows} | {t_ferret:.1f} | 1.0x |"
        )
        print(
            f"| lit-plugins, batched | the same three | {calls3} | {rows3} | {t_ours3:.1f} "
            f"| **{t_ferret / t_ours3:.1f}x** |"
        )
        print(
            f"| lit-plugins, batched | + deletion / insertion AUC (all five) | {calls5} | {rows5} "
            f"| {t_ours5:.1f} | {t_ferret / t_ours5:.1f}x |"
        )

        # Same numbers where the scores have no ties.
        diffs = {"comprehensiveness": [], "sufficiency": [], "tau_loo": []}
        tied, tied_diff = 0, 0.0
        for i, ex in enumerate(examples):
            cand = ~ex.special
            for name in [*maps, core.RANDOM]:
                sal = core.random_salience(ex, args.seed) if name == core.RANDOM else maps[name][i]
                s = ours3[i][name]
                theirs = ref[(i, name)]
                tau_ref = 0.0 if np.isnan(theirs[2]) else theirs[2]  # τ undefined: ours 0
                got = (s.comprehensiveness, s.sufficiency, s.tau_loo)
                if len(np.unique(sal[cand])) < cand.sum():
                    tied += 1
                    tied_diff = max(tied_diff, abs(got[0] - theirs[0]), abs(got[1] - theirs[1]))
                    continue
                for k, a, b in zip(diffs, got, (theirs[0], theirs[1], tau_ref)):
                    diffs[k].append(abs(a - b))
        n_free = len(diffs["comprehensiveness"])
        print(
            f"\nsame numbers on the {n_free} (example, method) pairs without tied scores: max |Δ| "
            + ", ".join(f"{k} {max(v):.1e}" for k, v in diffs.items())
            + f"; {tied} pairs with ties (word-level LIME maps on multi-piece words) differ by "
            f"design (ours removes a tied group together; max |Δ| {tied_diff:.3f})."
        )

    rows = [
        {"example": i, "method": name, **s.metrics()}
        for i, per in enumerate(ours5)
        for name, s in per.items()
    ]
    summary = faithfulness.summarize(pd.DataFrame(rows), seed=args.seed)
    if args.report:
        from lit_plugins.cli import faithfulness_report

        result = faithfulness.result_from_scores(
            ours5, runner.options(seed=args.seed), runner.labels
        )
        paths = faithfulness_report.write_report(
            result,
            args.report,
            f"Salience faithfulness: fine-tuned MiniLM-L6, {len(examples)} dev sentences",
        )
        print("report: " + ", ".join(str(p) for p in paths.values()))
    ranked = faithfulness.ranking(summary)
    print(
        f"\nWhich method is most faithful ({len(examples)} dev sentences, mean [95 % bootstrap "
        "interval], best comprehensiveness first):\n"
    )
    labels = [
        core.METRIC_LABELS[m] + (" ↑" if core.HIGHER_IS_BETTER[m] else " ↓") for m in core.METRICS
    ]
    print("| method | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for _, r in ranked.iterrows():
        print(f"| {r['method']} | " + " | ".join(r[m] for m in core.METRICS) + " |")
    if times:
        print(
            "\nsalience maps (computed once): "
            + ", ".join(f"{k} {v:.1f}s" for k, v in times.items())
        )


if __name__ == "__main__":
    main()
