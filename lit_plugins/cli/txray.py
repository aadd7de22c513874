"""`txray`: two models streamed over a corpus; their aggregations and the shift.

Each shard's examples go through the reference and the model once
(`txray_inputs.aggregate_pair`, as in the interpreter) and the shard's two
aggregations are checkpointed (``shard-….reference.npz`` then
``shard-….model.npz``, the `NeuronFeatureAggregator.save` format with
feature names).  When every shard is there, rank 0 sums them in shard order
(`txray.merge`: the same feature ids as one pass) and writes

* ``reference.npz`` and ``model.npz``: the whole corpus's aggregations
  (``python -m lit_plugins.txray.report reference.npz model.npz`` reads them);
* ``shift.csv``: one row per neuron active in both models (distance, lengths,
  length shift, mass activation; with the bootstrap its interval and the
  sentences crediting it in each model);
* ``summary.json``: the configuration, counts and the top-k most shifted
  neurons with their top features; ``report/``: the TX-Ray plots.

The bootstrap (``--replicates``, default 200, as in the interpreter): each
shard also records its per-sentence credits under corpus-wide sentence ids,
saved in its ``.npz``; merged, they are the table one pass over the corpus
records, so the intervals (and the ranking by their lower bound) are the
interpreter's on the same examples.  The merged ``reference.npz`` /
``model.npz`` keep the table, so results loaded into LIT show intervals.

Shards are fixed by ``--shard_size``, not by the number of ranks, so every
example is computed in the same batch whatever the number of processes.
What holds between 1 and N processes:

* at the same intra-op thread count per process (e.g. ``OMP_NUM_THREADS=1``
  for both) the shards and results are bit-identical;
* by default they differ in threads -- ``torchrun`` gives each rank
  ``OMP_NUM_THREADS=1``, a plain run uses every core -- and torch's float32
  kernels then add in another order: activations, hence the aggregations,
  differ by float32 rounding (measured on MiniLM-L6: 1.6e-6 relative; the
  ``attribute`` command's rows by 8.8e-7), distances and bounds likewise;
* the ranking (``shift.csv``'s order, ``summary.json``'s top neurons) is
  the same: values within ``txray.shift.RANK_RTOL`` (1e-5) relative +
  ``RANK_ATOL`` (1e-7) are ties, decided by the next key and the neuron id.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

from lit_nlp.api import model as lit_model

from lit_plugins import txray
from lit_plugins.cli import shards
from lit_plugins.lit import dataset_level, specs, txray_inputs
from lit_plugins.txray import merge as txray_merge
from lit_plugins.util import distributed, run_files

JsonDict = specs.JsonDict
SHARD_SUFFIX = ".model.npz"
_REFERENCE_SUFFIX = ".reference.npz"
SUMMARY_FILE = "summary.json"
SHIFT_FILE = "shift.csv"
REPORT_DIR = "report"


def reference_path(plan: shards.ShardPlan, k: int) -> str:
    return plan.path(k)[: -len(SHARD_SUFFIX)] + _REFERENCE_SUFFIX


def resolve(
    model: lit_model.Model,
    reference: lit_model.Model,
    reference_name: str,
    examples: Sequence[JsonDict],
    opts: txray.TXRaySettings,
) -> txray.TXRaySettings:
    """`opts` with its layer resolved (None: the last layer both models have), or a
    ValueError before any work: layer out of range, another tokenizer or width, tags
    without a field."""
    if opts.features == "tags" and not opts.tags_field:
        raise ValueError("--features=tags needs --tags_field (a SequenceTags dataset field).")
    layers = {}
    for which, m in (("model", model), (f"reference {reference_name!r}", reference)):
        layers[which] = sorted(dataset_level.layer_activation_fields(specs.unwrap(m)))
    shared = sorted(set.intersection(*map(set, layers.values())))
    layer = opts.layer if opts.layer is not None else (shared[-1] if shared else 0)
    for which, have in layers.items():
        if layer not in have:
            raise ValueError(f"--layer={layer} is not a layer of the {which} (it has {have}).")
    txray_inputs.check_same_inputs(model, reference, reference_name, layer, examples[0])
    return dataclasses.replace(opts, layer=layer)


def run(
    model: lit_model.Model,
    reference: lit_model.Model,
    names: tuple[str, str],
    examples: Sequence[JsonDict],
    plan: shards.ShardPlan,
    opts: txray.TXRaySettings,
    batch_size: int = 32,
    comm: distributed.Comm = distributed.SINGLE,
) -> int:
    """Aggregates this rank's pending shards; returns how many it wrote."""
    written = 0
    for k, start, stop, bar in plan.work("txray", comm):
        agg_ref, agg_model, vocab = txray_inputs.aggregate_pair(
            model,
            reference,
            examples[start:stop],
            opts.layer,
            mode=opts.mode,
            features=opts.features,
            tags_field=opts.tags_field,
            batch_size=batch_size,
            names=names,
            record_units=opts.replicates > 0,
            first_unit=start,  # corpus-wide sentence ids: the shards' tables merge
        )
        names_list = vocab.names
        # The model's file last: its presence marks the shard done.
        for path, agg in ((reference_path(plan, k), agg_ref), (plan.path(k), agg_model)):
            shards.atomic_write(path, lambda tmp, a=agg, n=names_list: a.save(tmp, n))
        bar.update(stop - start)
        written += 1
    return written


def merge_shards(plan: shards.ShardPlan) -> tuple[txray.NeuronFeatureAggregator, ...]:
    """(reference, model) aggregations of the whole corpus, with the union vocab."""

    def parts(path_of):
        for k in range(plan.num_shards):
            agg, names, _ = txray.NeuronFeatureAggregator.load(path_of(k))
            yield agg, names

    agg_ref, vocab_ref = txray_merge.merge(parts(lambda k: reference_path(plan, k)))
    agg_model, vocab_model = txray_merge.merge(parts(plan.path))
    if vocab_ref.names != vocab_model.names:
        raise ValueError("The two models' shards have different feature vocabularies.")
    return agg_ref, agg_model, vocab_model


def write_results(
    plan: shards.ShardPlan, names: tuple[str, str], opts: txray.TXRaySettings, report: bool = True
) -> txray.ShiftResult:
    """Merges the shards and writes the whole corpus's files (rank 0 only)."""
    agg_ref, agg_model, vocab = merge_shards(plan)
    meta = dict(
        layer=str(opts.layer),
        mode=opts.mode,
        features=opts.features,
        tags_field=opts.tags_field,
        reference=names[0],
        model=names[1],
        config_hash=plan.hash,
    )
    out = plan.out_dir
    shards.atomic_write(
        os.path.join(out, run_files.REFERENCE_FILE),
        lambda tmp: agg_ref.save(tmp, vocab, **meta),
    )
    shards.atomic_write(
        os.path.join(out, run_files.MODEL_FILE), lambda tmp: agg_model.save(tmp, vocab, **meta)
    )
    result = txray.compute_shift(
        agg_ref,
        agg_model,
        normalize_by_length=opts.normalize,
        feature_names=vocab,
        labels=names,
        replicates=opts.replicates,
        seed=opts.seed,
        confidence=opts.confidence,
    )
    frame = result.to_dataframe()
    shards.atomic_write(os.path.join(out, SHIFT_FILE), lambda tmp: frame.to_csv(tmp, index=False))
    ranked = result.rank_shifts(k=opts.top_k)
    summary = {
        "config": plan.config,
        "reference": names[0],
        "model": names[1],
        "layer": opts.layer,
        "mode": opts.mode,
        "features": opts.features,
        "num_examples": plan.num_items,
        "num_tokens": agg_model.num_tokens,
        "num_features": len(vocab),
        "num_shared_neurons": result.num_shared,
        "bootstrap": {
            "replicates": opts.replicates,
            "seed": opts.seed,
            "confidence": opts.confidence,
            "units": result.bootstrap_units,
            "unit_size": result.bootstrap_unit_size,
        }
        if result.has_bootstrap
        else None,
        "most_shifted": [dataclasses.asdict(s) for s in ranked.most],
    }
    shards.write_json(
        os.path.join(out, SUMMARY_FILE), json.loads(json.dumps(summary, default=_plain))
    )
    if report:
        txray.write_report(result, os.path.join(out, REPORT_DIR), k=min(opts.top_k, 10))
    return result


def _plain(value):
    """JSON for numpy scalars/arrays and dataclasses inside the summary."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return str(value)
