"""``python -m lit_plugins txray-report``: TX-Ray plots and tables from two saved
aggregations (``NeuronFeatureAggregator.save``, as ``python -m lit_plugins txray``
writes them), or from synthetic activations with planted shifts::

    python -m lit_plugins txray-report --reference_file=pre.npz --model_file=fine.npz \\
        --output_dir=out/txray
    python -m lit_plugins txray-report --synthetic --output_dir=out/txray_demo

Files written: see :mod:`lit_plugins.txray.report`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from absl import app
from absl import flags as absl_flags

from lit_plugins.cli import flags as cli_flags
from lit_plugins.txray import NeuronFeatureAggregator, compute_shift, report
from lit_plugins.txray.bootstrap import DEFAULT_REPLICATES

FLAGS_USED = (
    "output_dir",
    "reference_file",
    "model_file",
    "display_labels",
    "top_k",
    "n_features",
    "normalize_distance",
    "weighting",
    "replicates",
    "seed",
    "plotlyjs",
    "png",
    "html",
    "synthetic",
    "mode",
    "neurons",
    "vocab",
    "tokens",
    "save_aggregations",
)


def flags_used(command: str = "txray-report") -> tuple[str, ...]:
    del command
    return FLAGS_USED


def main(argv: Sequence[str]) -> int:
    """Runs the command (flags already parsed; see `cli.main`); returns the exit code."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {list(argv[1:])}")
    out = cli_flags.OUTPUT_DIR.value
    if not out:
        raise app.UsageError("--output_dir is required.")
    try:
        if cli_flags.SYNTHETIC.value:
            from lit_plugins.txray.synthetic import SyntheticTXRay

            gen = SyntheticTXRay(
                num_neurons=cli_flags.NEURONS.value,
                vocab_size=cli_flags.VOCAB.value,
                seed=cli_flags.SEED.value,
            )
            agg_a = NeuronFeatureAggregator(cli_flags.NEURONS.value, mode=cli_flags.MODE.value)
            agg_b = NeuronFeatureAggregator(cli_flags.NEURONS.value, mode=cli_flags.MODE.value)
            for b in gen.batches(cli_flags.TOKENS.value):
                agg_a.update(b.acts_a, b.feature_ids)
                agg_b.update(b.acts_b, b.feature_ids)
            names = gen.feature_names
            labels = tuple(cli_flags.DISPLAY_LABELS.value or ("pretrained", "finetuned"))
            if cli_flags.SAVE_AGGREGATIONS.value:
                Path(out).mkdir(parents=True, exist_ok=True)
                agg_a.save(Path(out) / "a.npz", feature_names=names, label=labels[0])
                agg_b.save(Path(out) / "b.npz", feature_names=names, label=labels[1])
            print(f"synthetic: planted swaps {gen.swaps}, specialise {gen.specialise}")
        else:
            a, b = cli_flags.REFERENCE_FILE.value, cli_flags.MODEL_FILE.value
            if not (a and b):
                raise app.UsageError("give --reference_file and --model_file, or --synthetic")
            agg_a, agg_b, names = report.load_pair(a, b)
            labels = tuple(cli_flags.DISPLAY_LABELS.value or (Path(a).stem, Path(b).stem))
        recorded = agg_a.units is not None and agg_b.units is not None
        replicates = cli_flags.REPLICATES.value
        if not absl_flags.FLAGS["replicates"].present:
            replicates = DEFAULT_REPLICATES if recorded else 0
        if replicates and not recorded:
            raise ValueError(
                "--replicates needs both aggregations saved with their per-sentence table "
                "(`python -m lit_plugins txray` writes it unless --replicates=0)"
            )
        result = compute_shift(
            agg_a,
            agg_b,
            normalize_by_length=cli_flags.NORMALIZE_DISTANCE.value,
            weighting=cli_flags.WEIGHTING.value,
            feature_names=names,
            labels=labels,
            replicates=replicates,
            seed=cli_flags.SEED.value,
        )
        written = report.write_report(
            result,
            out,
            k=cli_flags.TOP_K.value,
            n_features=cli_flags.N_FEATURES.value,
            png=cli_flags.PNG.value,
            html_out=cli_flags.HTML.value,
            plotlyjs=cli_flags.PLOTLYJS.value,
        )
    except (ValueError, OSError) as e:
        print(f"lit_plugins txray-report: error: {e}", file=sys.stderr)
        return 2
    print(report.summary_line(result))
    print(report.format_ranked(result, min(cli_flags.TOP_K.value, 10), 5))
    print("\nwrote:\n" + "\n".join(f"  {p}" for p in written.values()))
    return 0
