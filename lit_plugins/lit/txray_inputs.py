"""From two LIT models and a dataset to TX-Ray's aggregations and shift.

One streamed pass over the examples runs the reference (A, "before") and the
model (B, "after") at one layer, maps each token to its feature (the word
piece, the whole word, or the tag of its word), and feeds both
`txray.NeuronFeatureAggregator`s with one shared `FeatureVocab`. Only the
aggregations are kept, never the [tokens × neurons] activations. With
`record_units=True` each position also carries its example's index (the unit
of TX-Ray's bootstrap over sentences, `txray.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from lit_nlp.api import model as lit_model

from lit_plugins import txray
from lit_plugins.lit import alignment, dataset_level, specs
from lit_plugins.txray import options as txray_options

JsonDict = specs.JsonDict
FEATURES = txray_options.FEATURES


def check_same_inputs(
    model: lit_model.Model,
    reference: lit_model.Model,
    reference_name: str,
    layer: int,
    example: JsonDict,
) -> None:
    """Same tokenisation and same layer width on one example, or a ValueError."""
    (tok_m, act_m), (tok_r, act_r) = (
        dataset_level.layer_outputs(m, [example], layer)[0] for m in (model, reference)
    )
    if act_m.shape[-1] != act_r.shape[-1]:
        raise ValueError(
            f"Reference model {reference_name!r} has hidden size {act_r.shape[-1]} at layer "
            f"{layer} but the selected model has hidden size {act_m.shape[-1]}; TX-Ray "
            "compares neurons one to one and needs the same hidden size."
        )
    if tok_m != tok_r:
        raise ValueError(
            f"Reference model {reference_name!r} tokenizes differently from the selected model "
            f"(e.g. {tok_r[:8]} vs {tok_m[:8]}); TX-Ray needs the same tokenizer for both models."
        )


def feature_mapper(
    model: lit_model.Model, features: str, tags_field: str = ""
) -> Callable[[JsonDict, list[str]], list[str | None]]:
    """(example, tokens) → each token's feature (None: not counted, e.g. [CLS] for tags)."""
    if features == "tags":
        return lambda example, tokens: alignment.tags_per_token(model, example, tokens, tags_field)
    if features == "words":
        convention = alignment.word_convention(model)  # once: it scans the vocabulary
        return lambda example, tokens: txray.merge_subwords(tokens, **convention)
    if features == "tokens":
        return lambda example, tokens: list(tokens)
    raise ValueError(f"features must be one of {FEATURES}, got {features!r}.")


def aggregate_pair(
    model: lit_model.Model,
    reference: lit_model.Model,
    examples: Sequence[JsonDict],
    layer: int,
    mode: str = "max1",
    features: str = "tokens",
    tags_field: str = "",
    batch_size: int = 32,
    names: tuple[str, str] = ("reference", "model"),
    log_name: str = "",
    record_units: bool = False,
    first_unit: int = 0,
) -> tuple[txray.NeuronFeatureAggregator, txray.NeuronFeatureAggregator, txray.FeatureVocab]:
    """(reference aggregation, model aggregation, shared feature vocab) at `layer`.

    Both models see the same batches; a model whose tokens differ from the
    reference's on any example raises a ValueError naming it. `record_units`:
    the aggregators also keep credits per example, for the bootstrap, example
    j as unit `first_unit + j` (a corpus shard passes its first example's
    corpus index, so shards' tables merge into the corpus's).
    """
    same = specs.unwrap(model) is specs.unwrap(reference)
    fields = {
        key: (act, specs.find_tokens_field(specs.unwrap(m).output_spec(), act))
        for key, m in (("model", model), ("reference", reference))
        for act in [dataset_level.layer_activation_fields(specs.unwrap(m))[layer]]
    }
    to_features = feature_mapper(model, features, tags_field)
    vocab = txray.FeatureVocab()
    aggregators: dict[str, txray.NeuronFeatureAggregator] = {}
    stream_ref = None
    if not same:
        stream_ref = dataset_level.stream_predictions(reference, examples, batch_size, [layer])
    for offset, batch, outs_m in dataset_level.stream_predictions(
        model, examples, batch_size, [layer], log_name
    ):
        outs_r = outs_m if stream_ref is None else next(stream_ref)[2]
        feats, acts, units = [], {"model": [], "reference": []}, []
        for i, (ex, out_m, out_r) in enumerate(zip(batch, outs_m, outs_r)):
            tokens = [str(t) for t in out_m[fields["model"][1]]]
            if [str(t) for t in out_r[fields["reference"][1]]] != tokens:
                raise ValueError(
                    f"Reference model {names[0]!r} tokenizes example {offset + i} differently "
                    "from the selected model; TX-Ray needs the same tokenizer for both models."
                )
            feats.extend(to_features(ex, tokens))
            units.append(np.full(len(tokens), first_unit + offset + i, dtype=np.int64))
            acts["model"].append(np.asarray(out_m[fields["model"][0]]))
            acts["reference"].append(np.asarray(out_r[fields["reference"][0]]))
        stacked = {key: np.concatenate(value, axis=0) for key, value in acts.items()}
        if stacked["model"].shape[-1] != stacked["reference"].shape[-1]:
            raise ValueError(
                f"Reference model {names[0]!r} has hidden size {stacked['reference'].shape[-1]} "
                f"but the selected model has hidden size {stacked['model'].shape[-1]}."
            )
        if not aggregators:
            aggregators = {
                key: txray.NeuronFeatureAggregator(
                    value.shape[-1], mode=mode, record_units=record_units
                )
                for key, value in stacked.items()
            }
        # Tokens outside any tagged word ([CLS], [SEP]) are skipped (id -1).
        ids = np.asarray([-1 if f is None else vocab.add(f) for f in feats], dtype=np.int64)
        unit_ids = np.concatenate(units) if record_units else None
        aggregators["reference"].update(stacked["reference"], ids, units=unit_ids)
        aggregators["model"].update(stacked["model"], ids, units=unit_ids)
    if record_units:  # every example is a unit, even one with no credited position
        for agg in aggregators.values():
            agg.units.seen(np.array([len(examples) - 1]))
    return aggregators["reference"], aggregators["model"], vocab


def fit_shift(
    model: lit_model.Model,
    reference: lit_model.Model,
    examples: Sequence[JsonDict],
    settings: txray.TXRaySettings,
    names: tuple[str, str] = ("reference", "model"),
    batch_size: int = 32,
    log_name: str = "",
) -> txray.ShiftResult:
    """TX-Ray's shift of `model` from `reference` over `examples`, as `settings`
    says (`settings.layer` None: the last layer both models have). The LIT
    interpreter and scripts (demos/txray_report.py) call this one fit."""
    layer = settings.layer
    if layer is None:
        layer = min(
            max(dataset_level.layer_activation_fields(specs.unwrap(m))) for m in (model, reference)
        )
    agg_ref, agg_model, vocab = aggregate_pair(
        model,
        reference,
        examples,
        layer,
        mode=settings.mode,
        features=settings.features,
        tags_field=settings.tags_field,
        batch_size=batch_size,
        names=names,
        log_name=log_name,
        record_units=settings.replicates > 0,
    )
    return txray.compute_shift(
        agg_ref,
        agg_model,
        normalize_by_length=settings.normalize,
        feature_names=vocab,
        labels=names,
        replicates=settings.replicates,
        seed=settings.seed,
    )
