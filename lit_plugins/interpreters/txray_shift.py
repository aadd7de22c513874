"""TX-Ray neuron shift as a LIT interpreter.

Compares the selected model with a *reference* model (another model loaded in
the same LIT app, chosen in the config) neuron by neuron at one layer, as in
TX-Ray (Rethmeier, Saxena & Augenstein, UAI 2020): every neuron is described
by the distribution of activation mass over the input features (word pieces or
whole words) of the whole dataset, and neurons are ranked by the Hellinger
distance between the reference's and the model's distributions. The heavy
lifting is in the LIT-free :mod:`lit_plugins.txray`; this module streams the
dataset through both models, caches one fit per (models, dataset, options) and
renders the result per example:

* ``shifted_neurons`` (FeatureSalience): the top-k most shifted neurons with
  their distance, labelled ``"L<layer> n<neuron>: <top features in reference>
  → <top features in model>"``.
* ``neuron_token_salience`` (TokenSalience): per token of the example, the
  summed positive activation of the *selected* model on those top-k neurons,
  scaled so that the largest token is 1 (all zeros if none is positive).

The reference is model A ("before"), the selected model is B ("after").
Special tokens ([CLS], [SEP], <s>, ...) are features like any other token.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types
from lit_nlp.lib import caching as lit_caching

from lit_plugins import specs, txray
from lit_plugins.interpreters import common

JsonDict = common.JsonDict

REFERENCE_KEY = "Reference model"
LAYER_KEY = "Layer"
MODE_KEY = "Mode"
FEATURES_KEY = "Features"
TOP_K_KEY = "Top k"
NORMALIZE_KEY = "Divide distance by union length (original code)"

FEATURE_CHOICES = ("tokens", "words", "tags")
TAGS_KEY = "Tags field (Features = tags)"
TOKEN_SALIENCE = "neuron_token_salience"
SHIFTED_NEURONS = "shifted_neurons"

_DEFAULT_TOP_K = 10
_MAX_TOP_K = 100_000
_LABEL_FEATURES = 3  # top features per side in a neuron's label
_LOG_EVERY_S = 10.0


def dataset_fingerprint(examples: Sequence[JsonDict]) -> str:
    """Hash of the examples' contents (order-sensitive; ignores _id/_meta)."""
    digest = hashlib.sha1()
    digest.update(str(len(examples)).encode())
    for ex in examples:
        digest.update(str(lit_caching.input_hash(ex)).encode())
    return digest.hexdigest()


def neuron_label(layer: int, shift: txray.NeuronShift) -> str:
    """E.g. 'L5 n201: great, fun → boring, waste'."""

    def names(scores):
        return ", ".join(str(s.name) for s in scores) or "(none)"

    return (
        f"L{layer} n{shift.neuron}: {names(shift.top_features_a)} → {names(shift.top_features_b)}"
    )


def _word_convention(model: lit_model.Model) -> dict[str, Any]:
    """merge_subwords arguments for the model's tokenizer."""
    tokenizer = getattr(specs.unwrap(model), "tokenizer", None)
    special = list(getattr(tokenizer, "all_special_tokens", []) or [])
    backend = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    if type(backend).__name__ == "WordPiece":
        prefix = getattr(backend, "continuing_subword_prefix", None) or "##"
        return dict(continuation_prefix=prefix, special_tokens=special)
    vocab = {}
    if tokenizer is not None and hasattr(tokenizer, "get_vocab"):
        try:
            vocab = tokenizer.get_vocab()
        except Exception:  # pylint: disable=broad-except
            vocab = {}
    starts = {m: sum(1 for t in vocab if t.startswith(m)) for m in ("\u2581", "\u0120")}
    marker = max(starts, key=starts.get)
    if starts[marker] > 0:
        return dict(continuation_prefix=None, word_start_prefix=marker, special_tokens=special)
    return dict(continuation_prefix="##", special_tokens=special)


class TXRayNeuronShift(lit_components.Interpreter):
    """TX-Ray: which neurons changed their preferred inputs vs a reference?"""

    def __init__(
        self,
        models: Mapping[str, lit_model.Model],
        default_reference: str | None = None,
        batch_size: int = 32,
    ):
        if not models:
            raise ValueError("TXRayNeuronShift needs at least one model to use as reference.")
        self._models = dict(models)
        if default_reference is None:
            default_reference = next(iter(self._models))
        if default_reference not in self._models:
            raise ValueError(
                f"default_reference {default_reference!r} is not one "
                f"of the models: {list(self._models)}."
            )
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self._default_reference = default_reference
        self._batch_size = int(batch_size)
        self._cache = common.FitOnceCache()

    # ---------------------------------------------------------------- LIT API
    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        del dataset
        return bool(specs.find_layer_activation_fields(model.output_spec()))

    def config_spec(self) -> lit_types.Spec:
        ref_layers = self._layers(self._models[self._default_reference])
        max_layer = max(ref_layers) if ref_layers else 0
        return {
            REFERENCE_KEY: lit_types.CategoryLabel(
                required=False, vocab=list(self._models), default=self._default_reference
            ),
            LAYER_KEY: lit_types.Scalar(
                required=False, min_val=0, max_val=max_layer, default=max_layer, step=1
            ),
            MODE_KEY: lit_types.CategoryLabel(
                required=False, vocab=list(txray.MODES), default="max1"
            ),
            TAGS_KEY: lit_types.TextSegment(required=False, default=""),
            FEATURES_KEY: lit_types.CategoryLabel(
                required=False, vocab=list(FEATURE_CHOICES), default="tokens"
            ),
            TOP_K_KEY: lit_types.Scalar(
                required=False, min_val=1, max_val=100, default=_DEFAULT_TOP_K, step=1
            ),
            NORMALIZE_KEY: lit_types.Boolean(required=False, default=False),
        }

    def meta_spec(self) -> lit_types.Spec:
        return {
            TOKEN_SALIENCE: lit_types.TokenSalience(autorun=False, signed=False),
            SHIFTED_NEURONS: lit_types.FeatureSalience(autorun=False, signed=False),
        }

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        del model_outputs  # activations need a dedicated predict call
        opts = self._parse_config(model, config)
        result = self._fit(model, dataset, opts)
        if not inputs:
            return []
        ranked = result.rank_shifts(k=opts["top_k"], n_features=_LABEL_FEATURES).most
        layer = opts["layer"]
        shifted = dtypes.FeatureSalience(
            {neuron_label(layer, s): float(s.distance) for s in ranked}
        )
        neurons = np.array([s.neuron for s in ranked], dtype=np.int64)

        raw = specs.unwrap(model)
        act_field = specs.find_layer_activation_fields(raw.output_spec())[layer]
        tokens_field = specs.find_tokens_field(raw.output_spec(), act_field)
        outputs = list(raw.predict(list(inputs), activation_layers=[layer], gradients=False))
        results = []
        for out in outputs:
            tokens = [str(t) for t in out[tokens_field]]
            acts = np.asarray(out[act_field], dtype=np.float64)
            scores = np.clip(acts[:, neurons], 0.0, None).sum(axis=1)
            top = float(scores.max()) if scores.size else 0.0
            if top > 0:
                scores = scores / top
            results.append(
                {
                    TOKEN_SALIENCE: dtypes.TokenSalience(tokens, scores),
                    SHIFTED_NEURONS: shifted,
                }
            )
        return results

    # ------------------------------------------------------------ public API
    @property
    def fit_count(self) -> int:
        """How many fits ran (cache misses); for tests and monitoring."""
        return self._cache.fit_count

    def fit(
        self,
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        config: JsonDict | None = None,
    ) -> txray.ShiftResult:
        """The (cached) ShiftResult of reference vs `model` on `dataset`."""
        return self._fit(model, dataset, self._parse_config(model, config))

    # -------------------------------------------------------------- helpers
    @staticmethod
    def _layers(model: lit_model.Model) -> dict[int, str]:
        return specs.find_layer_activation_fields(model.output_spec())

    def _model_name(self, model: lit_model.Model) -> str | None:
        raw = specs.unwrap(model)
        for name, candidate in self._models.items():
            if candidate is model or specs.unwrap(candidate) is raw:
                return name
        return None

    def _parse_config(self, model: lit_model.Model, config: JsonDict | None) -> dict[str, Any]:
        config = dict(config or {})
        ref_name = config.get(REFERENCE_KEY, self._default_reference)
        if not isinstance(ref_name, str) or ref_name not in self._models:
            raise ValueError(
                f"{REFERENCE_KEY!r} must be one of {list(self._models)}, got {ref_name!r}."
            )
        reference = self._models[ref_name]
        model_layers = self._layers(model)
        if not model_layers:
            raise ValueError(
                "The selected model exposes no per-layer token "
                "activations (layer_<i>/token_activations)."
            )
        ref_layers = self._layers(reference)
        if not ref_layers:
            raise ValueError(
                f"Reference model {ref_name!r} exposes no per-layer "
                "token activations (layer_<i>/token_activations)."
            )
        common_layers = sorted(set(model_layers) & set(ref_layers))
        if not common_layers:
            raise ValueError(
                f"The selected model (layers {list(model_layers)}) "
                f"and reference model {ref_name!r} (layers "
                f"{list(ref_layers)}) share no layer."
            )
        layer = common.parse_int(config, LAYER_KEY, common_layers[-1], 0, common_layers[-1])
        if layer not in common_layers:
            raise ValueError(
                f"{LAYER_KEY!r} must be one of {common_layers}, got {config.get(LAYER_KEY)!r}."
            )
        return dict(
            reference_name=ref_name,
            reference=reference,
            layer=layer,
            mode=common.parse_choice(config, MODE_KEY, "max1", txray.MODES),
            features=common.parse_choice(config, FEATURES_KEY, "tokens", FEATURE_CHOICES),
            top_k=common.parse_int(config, TOP_K_KEY, _DEFAULT_TOP_K, 1, _MAX_TOP_K),
            normalize=common.parse_bool(config, NORMALIZE_KEY, False),
            tags_field=str(config.get(TAGS_KEY, "") or "").strip(),
        )

    def _fit(
        self, model: lit_model.Model, dataset: lit_dataset.Dataset, opts: dict[str, Any]
    ) -> txray.ShiftResult:
        examples = list(dataset.examples) if dataset is not None else []
        if not examples:
            raise ValueError(
                "TX-Ray needs a non-empty dataset to aggregate neuron activations over."
            )
        if opts["features"] == "tags":
            opts = dict(opts, tags_field=_tags_field(dataset, opts["tags_field"]))
        else:
            opts = dict(opts, tags_field="")
        name = self._model_name(model)
        # A model that is not one of self._models (e.g. loaded later in the UI)
        # is keyed by the object itself, not id(): the key then keeps it alive,
        # so a later model can never reuse its id and get its cached result.
        model_key = ("name", name) if name is not None else ("model", specs.unwrap(model))
        key = (
            model_key,
            opts["reference_name"],
            dataset_fingerprint(examples),
            opts["layer"],
            opts["mode"],
            opts["features"],
            opts["tags_field"],
            opts["normalize"],
        )
        return self._cache.get_or_fit(
            key, lambda: self._compute(model, name or model.description(), examples, opts)
        )

    def _check_pair(self, raw_model, raw_ref, ref_name: str, layer: int, example: JsonDict) -> None:
        """Same tokenisation and same layer width on one example, or ValueError."""
        outs = []
        for raw in (raw_model, raw_ref):
            act_field = self._layers(raw)[layer]
            tok_field = specs.find_tokens_field(raw.output_spec(), act_field)
            (out,) = list(raw.predict([example], activation_layers=[layer], gradients=False))
            outs.append((list(out[tok_field]), np.asarray(out[act_field])))
        (tok_m, act_m), (tok_r, act_r) = outs
        width_m, width_r = act_m.shape[-1], act_r.shape[-1]
        if width_m != width_r:
            raise ValueError(
                f"Reference model {ref_name!r} has hidden size {width_r} at layer "
                f"{layer} but the selected model has hidden size {width_m}; TX-Ray "
                "compares neurons one to one and needs the same hidden size."
            )
        if [str(t) for t in tok_m] != [str(t) for t in tok_r]:
            raise ValueError(
                f"Reference model {ref_name!r} tokenizes differently from the "
                f"selected model (e.g. {tok_r[:8]} vs {tok_m[:8]}); TX-Ray needs "
                "the same tokenizer for both models."
            )

    def _compute(
        self,
        model: lit_model.Model,
        model_name: str,
        examples: list[JsonDict],
        opts: dict[str, Any],
    ) -> txray.ShiftResult:
        ref_name, layer = opts["reference_name"], opts["layer"]
        raw_model = specs.unwrap(model)
        raw_ref = specs.unwrap(opts["reference"])
        same = raw_model is raw_ref
        if not same:
            self._check_pair(raw_model, raw_ref, ref_name, layer, examples[0])
        act_field = self._layers(raw_model)[layer]
        tok_field = specs.find_tokens_field(raw_model.output_spec(), act_field)
        ref_act_field = self._layers(raw_ref)[layer]
        ref_tok_field = specs.find_tokens_field(raw_ref.output_spec(), ref_act_field)
        words = _word_convention(model) if opts["features"] == "words" else None

        vocab = txray.FeatureVocab()
        agg_ref = agg_model = None
        n = len(examples)
        start = last_log = time.time()
        logging.info(
            "TX-Ray: fitting %r vs reference %r, layer %d, mode %s, %s, on %d examples.",
            model_name,
            ref_name,
            layer,
            opts["mode"],
            opts["features"],
            n,
        )
        for lo in range(0, n, self._batch_size):
            batch = examples[lo : lo + self._batch_size]
            outs_m = list(raw_model.predict(batch, activation_layers=[layer], gradients=False))
            outs_r = (
                outs_m
                if same
                else list(raw_ref.predict(batch, activation_layers=[layer], gradients=False))
            )
            feats, acts_m, acts_r = [], [], []
            for i, (om, orf) in enumerate(zip(outs_m, outs_r)):
                tokens = [str(t) for t in om[tok_field]]
                if [str(t) for t in orf[ref_tok_field]] != tokens:
                    raise ValueError(
                        f"Reference model {ref_name!r} tokenizes example {lo + i} "
                        "differently from the selected model; TX-Ray needs the same "
                        "tokenizer for both models."
                    )
                if opts["features"] == "tags":
                    feats.extend(_token_tags(raw_model, batch[i], tokens, opts["tags_field"]))
                else:
                    feats.extend(txray.merge_subwords(tokens, **words) if words else tokens)
                acts_m.append(np.asarray(om[act_field]))
                acts_r.append(np.asarray(orf[ref_act_field]))
            acts_m = np.concatenate(acts_m, axis=0)
            acts_r = np.concatenate(acts_r, axis=0)
            if acts_m.shape[-1] != acts_r.shape[-1]:
                raise ValueError(
                    f"Reference model {ref_name!r} has hidden size "
                    f"{acts_r.shape[-1]} but the selected model has hidden size "
                    f"{acts_m.shape[-1]}."
                )
            if agg_model is None:
                agg_model = txray.NeuronFeatureAggregator(acts_m.shape[-1], mode=opts["mode"])
                agg_ref = txray.NeuronFeatureAggregator(acts_r.shape[-1], mode=opts["mode"])
            # Tokens outside any tagged word ([CLS], [SEP]) are skipped (id -1).
            ids = np.asarray([-1 if f is None else vocab.add(f) for f in feats], dtype=np.int64)
            agg_ref.update(acts_r, ids)
            agg_model.update(acts_m, ids)
            now = time.time()
            if now - last_log >= _LOG_EVERY_S:
                last_log = now
                logging.info(
                    "TX-Ray: %d / %d examples (%.0f s).", min(lo + len(batch), n), n, now - start
                )
        result = txray.compute_shift(
            agg_ref,
            agg_model,
            normalize_by_length=opts["normalize"],
            feature_names=vocab,
            labels=(ref_name, model_name),
        )
        logging.info(
            "TX-Ray: done in %.1f s; %d features, %d neurons active in both models.",
            time.time() - start,
            len(vocab),
            result.num_shared,
        )
        return result


def _tags_field(dataset: lit_dataset.Dataset, name: str) -> str:
    """The dataset's SequenceTags field to use as features (ValueError if none)."""
    spec = dataset.spec() if dataset is not None else {}
    fields = [k for k, v in spec.items() if isinstance(v, lit_types.SequenceTags)]
    if not fields:
        raise ValueError(
            "Features = 'tags' needs a SequenceTags field (e.g. POS "
            "tags over whitespace words) in the dataset; it has "
            "none. Use 'tokens' or 'words'."
        )
    if name and name not in fields:
        raise ValueError(f"{TAGS_KEY!r} must be one of {fields}, got {name!r}.")
    return name or fields[0]


def _token_tags(
    raw_model, example: JsonDict, tokens: list[str], tags_field: str
) -> list[str | None]:
    """Each token's feature: the tag of the whitespace word it belongs to in
    the model's first text field (None for special tokens)."""
    from lit_plugins.interpreters import linear_probe  # pylint: disable=g-import-not-at-top

    text_field = getattr(raw_model, "text_fields", ("sentence",))[0]
    tags = example.get(tags_field)
    words = str(example.get(text_field) or "").split()
    if not isinstance(tags, (list, tuple)) or len(tags) != len(words):
        raise ValueError(
            f"{tags_field!r} must hold one tag per whitespace word of "
            f"{text_field!r} ({len(words)} words), got {tags!r}."
        )
    _, weights, kept = linear_probe.word_piece_weights(
        raw_model, example, text_field, tokens, "mean"
    )
    out: list[str | None] = [None] * len(tokens)
    for row, word in enumerate(kept):
        for t in np.flatnonzero(weights[row]):
            out[t] = str(tags[int(word)])
    return out
