"""Do the neurons the probe, TX-Ray and conductance list matter for the decision?

On the fine-tuned MiniLM-L6 (the demo's cached fine-tune), for each layer:

* probe ranking: the Linear Probe interpreter's sweep (mean-pooled sentence
  vectors of every layer, elastic net L1 = L2 = 1e-3, trained on 80 % of the
  bundled *train* split, `LinearProbeInterpreter.fit`), its layer's probe
  ordered by NeuroX's `get_neuron_ordering` (neurons in order of the share of
  the classes' |weight| mass that first includes them);
* TX-Ray ranking: the TX-Ray interpreter's fit of the fine-tuned model against
  the pre-trained MiniLM on the *train* split (max-1 crediting, word-piece
  features, 200 seeded bootstrap replicates), most shifted first by the lower
  bound of the 90 % bootstrap interval of the Hellinger distance (the
  interpreter's ranking, `ShiftResult.rank_shifts`);
* conductance ranking: mean |total layer conductance| per neuron for the
  predicted class (zero baseline, Gauss–Legendre nodes, exact dh/dα) over the
  first `--conductance-examples` *dev* sentences
  (`neuron_use.layer_conductance_summary`), largest first;

then each ranking's top-k neurons zeroed inside the running model
(`attribution.ablation`) over the 160 *dev* sentences, against k random
neurons of the same layer (one draw per seed, the same draws for every
ranking): accuracy drop in points (gold labels) and mean drop of the intact
model's predicted-class probability.

    .venv/bin/python -m tests.benchmarks.bench_neuron_use [--layers 1,2,3,4,5,6]
        [--ks 10,50] [--seeds 5] [--steps 16] [--examples N] [--conductance-examples 64]

`--examples N` uses the first N dev sentences for the ablation (default: all
160). The first lines printed are the machine (`machine.print_header`), the
command and the checkpoint's weight digest.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from lit_plugins import probing
from lit_plugins.data import loaders
from lit_plugins.hf import live_ablation as ablation
from lit_plugins.lit import demo_models
from lit_plugins.lit.interpreters import LinearProbeInterpreter, TXRayNeuronShift, neuron_use
from tests.benchmarks import machine


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", default="1,2,3,4,5,6", help="comma-separated hidden_states indices")
    p.add_argument("--ks", default="10,50", help="comma-separated numbers of neurons ablated")
    p.add_argument("--seeds", type=int, default=5, help="random-k draws (seeds 0..n-1)")
    p.add_argument("--steps", type=int, default=16, help="Gauss-Legendre nodes for conductance")
    p.add_argument("--examples", type=int, default=None, help="first N dev sentences to ablate on")
    p.add_argument(
        "--conductance-examples",
        type=int,
        default=64,
        help="first N dev sentences for the conductance ranking",
    )
    return p.parse_args(argv)


class Timer:
    def __init__(self):
        self.parts: dict[str, float] = {}

    def __call__(self, name: str, fn, *args, **kwargs):
        """fn(*args, **kwargs), its wall time added to part `name`."""
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - start
        return out


def _fmt(mean: float, sd: float | None, scale: float, digits: int) -> str:
    text = f"{scale * mean + 0.0:+.{digits}f}"
    return text if sd is None else f"{text} ± {scale * sd:.{digits}f}"


def layer_table(layer: int, rows: dict[str, list[ablation.TopVsRandomRow]], n_seeds: int) -> str:
    """Markdown: one row per (ranking, k) and random-k (mean ± sd over seeds)."""
    first = next(iter(rows.values()))
    intact = first[0].top.accuracy_before
    out = [
        f"Layer {layer} (intact dev accuracy {100 * intact:.1f} %)",
        "",
        "| neurons zeroed | k | accuracy drop (points) | mean p(predicted class) drop |",
        "|---|---:|---:|---:|",
    ]
    for i, k_row in enumerate(first):
        k = k_row.k
        for name, per_k in rows.items():
            top = per_k[i].top
            out.append(
                f"| {name} top-k | {k} | {_fmt(top.accuracy_drop, None, 100, 1)} | "
                f"{_fmt(top.mean_prob_drop, None, 1, 3)} |"
            )
        acc, prob = k_row.random_accuracy_drop, k_row.random_mean_prob_drop
        out.append(
            f"| random-k ({n_seeds} seeds, mean ± sd) | {k} | {_fmt(*acc, 100, 1)} | "
            f"{_fmt(*prob, 1, 3)} |"
        )
    return "\n".join(out)


def main(argv=None) -> None:
    args = parse_args(argv)
    machine.print_header(args)
    layers, ks, seeds = _ints(args.layers), _ints(args.ks), list(range(args.seeds))
    timer = Timer()

    checkpoint = timer("load models", demo_models.finetuned_checkpoint)
    print(f"Model: {machine.checkpoint(checkpoint)}")
    model = timer("load models", demo_models.finetuned_minilm)
    reference = timer("load models", demo_models.pretrained_minilm)
    train = loaders.load_bundled_sentiment("train")
    dev = loaders.load_bundled_sentiment("dev")
    dev_examples = list(dev.examples)[: args.examples]
    cond_examples = list(dev.examples)[: args.conductance_examples]
    opts = neuron_use.NeuronUseOptions(steps=args.steps)
    print(
        f"Rankings: probe and TX-Ray fitted on the train split ({len(train.examples)} sentences; "
        f"the probe trains on 80 % of it), conductance over the first {len(cond_examples)} dev "
        f"sentences ({args.steps} Gauss-Legendre nodes, zero baseline, predicted class). "
        f"Ablation (neurons zeroed at every token) measured on {len(dev_examples)} dev "
        f"sentences; k random neurons drawn with seeds {seeds}, the same draws for every "
        "ranking.\n",
        flush=True,
    )

    # Probe: one sweep over every layer (one streamed pass), as the interpreter does.
    probe_state = timer(
        "probe fit (all layers)",
        LinearProbeInterpreter().fit,
        model,
        train,
        {"Layer": "sweep"},
    )
    txray_interp = TXRayNeuronShift({"ft": model, "pre": reference}, default_reference="pre")

    for layer in layers:
        probe = probe_state.probe(layer)
        probe_order, _ = probing.get_neuron_ordering(probe, probe.class_to_idx_)
        shift = timer("TX-Ray fit", txray_interp.fit, model, train, {"Layer": layer})
        ranked = shift.rank_shifts(k=max(ks))
        txray_order = [int(n.neuron) for n in ranked.most]
        summary = timer(
            "conductance ranking",
            neuron_use.layer_conductance_summary,
            model,
            cond_examples,
            layer,
            opts,
        )
        cond_order = [int(i) for i in np.argsort(-summary.mean_abs, kind="stable")]

        # k random neurons depend on the seed only: drawn and measured once, with
        # the probe's top-k; the other rankings' top-k are measured on their own.
        rows = {
            "probe": timer(
                "ablation",
                ablation.top_vs_random,
                model,
                dev_examples,
                layer,
                probe_order,
                ks,
                seeds,
            )
        }
        for name, order in (("TX-Ray", txray_order), ("conductance", cond_order)):
            rows[name] = [
                ablation.TopVsRandomRow(
                    row.k,
                    timer(
                        "ablation",
                        ablation.ablation_effect,
                        model,
                        dev_examples,
                        layer,
                        order[: row.k],
                    ),
                    row.random,
                )
                for row in rows["probe"]
            ]
        print(layer_table(layer, rows, len(seeds)))
        print(
            f"\n(probe held-out accuracy at layer {layer}: {probe_state.scores[layer]:.3f}; "
            f"TX-Ray: {shift.num_shared} neurons active in both models, ranked by the lower "
            f"bound of the {shift.confidence:.0%} interval; conductance max completeness error "
            f"{summary.max_completeness_error:.2%}; overlap of the top-{ks[0]} sets: "
            f"probe∩TX-Ray {len(set(probe_order[: ks[0]]) & set(txray_order[: ks[0]]))}, "
            f"probe∩conductance {len(set(probe_order[: ks[0]]) & set(cond_order[: ks[0]]))}, "
            f"TX-Ray∩conductance {len(set(txray_order[: ks[0]]) & set(cond_order[: ks[0]]))})\n",
            flush=True,
        )

    print("Wall time per part:")
    print("\n| part | wall time (s) |\n|---|---:|")
    for name, seconds in timer.parts.items():
        print(f"| {name} | {seconds:.1f} |")
    print(f"| total | {sum(timer.parts.values()):.1f} |")


if __name__ == "__main__":
    main()
