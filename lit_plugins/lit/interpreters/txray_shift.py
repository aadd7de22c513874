"""TX-Ray neuron shift as a LIT interpreter.

Compares the selected model with a *reference* model (another model loaded in
the same LIT app, chosen in the config) neuron by neuron at one layer, as in
TX-Ray (Rethmeier, Saxena & Augenstein, UAI 2020): every neuron is described
by the distribution of activation mass over the input features (word pieces,
whole words, or the tags of words) of the whole dataset, and neurons are
ranked by the Hellinger distance between the reference's and the model's
distributions. This module is LIT glue only: config → `TXRayOptions` →
:mod:`lit_plugins.lit.txray_inputs` (one streamed pass over both models) →
`txray.compute_shift` → LIT output types. One fit per (models, dataset
contents, `TXRayFitOptions`) is cached. Per example:

* ``shifted_neurons`` (labelled chips, `common.labelled_chips`): the top-k
  most shifted neurons, each reading ``"L<layer> n<neuron>: <top features in
  reference> → <top features in model> = <distance> [<lower>, <upper>],
  support <Hellinger length>"`` (`common.chips_dict` gives {label: distance}
  back; the chip's colour is the distance). With *Bootstrap replicates* > 0
  (default 200) the distances carry a percentile interval from a seeded
  bootstrap over the dataset's sentences (cached with the fit), and the
  neurons are ranked by its lower bound at *Confidence level* (see
  `lit_plugins.txray.bootstrap` for the rule), so a neuron at distance 1.0
  seen in one or two sentences ranks below a well-supported one. With 0 the
  chips read ``"... = <distance>"`` and are ranked by distance, as before.
* ``neuron_token_salience`` (TokenSalience): per token of the example, the
  summed positive activation of the *selected* model on those top-k neurons,
  scaled so that the largest token is 1 (all zeros if none is positive).
* ``use_for_decision`` (labelled chips; *Check use for the decision*, default
  off -- minutes on a CPU -- so the chip says how to start it): do the most
  shifted neurons matter for the selected model's decision?
  Their first k ablated in the running model vs k random ones of the layer,
  and each one's mean |layer conductance| with its rank
  (`interpreters.neuron_use`, cached per model, layer, neurons and dataset).

The reference is model A ("before"), the selected model is B ("after").
Special tokens ([CLS], [SEP], <s>, ...) are features like any other token.

A model compared with itself (the same object, or a reference that gives
every neuron the same feature distribution) has distance 0 for every neuron,
which is not a finding: that raises a ValueError saying what is needed instead (LIT shows
it as the request's error).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

import numpy as np
from absl import logging
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins import txray
from lit_plugins.lit import dataset_level, specs, txray_inputs
from lit_plugins.lit.interpreters import common, neuron_use
from lit_plugins.txray import options as txray_options

JsonDict = specs.JsonDict

REFERENCE_KEY = "Reference model"
LAYER_KEY = "Layer"
MODE_KEY = "Mode"
FEATURES_KEY = "Features"
TOP_K_KEY = "Top k"
NORMALIZE_KEY = "Divide distance by union length (original code)"
REPLICATES_KEY = "Bootstrap replicates (0 = off)"
CONFIDENCE_KEY = "Confidence level"
SEED_KEY = "Bootstrap seed"

FEATURE_CHOICES = txray_options.FEATURES
DEFAULTS = txray_options.DEFAULTS  # every default, in one place
TAGS_KEY = "Tags field (Features = tags)"
TOKEN_SALIENCE = "neuron_token_salience"
SHIFTED_NEURONS = "shifted_neurons"

_LABEL_FEATURES = 3  # top features per side in a neuron's label
DISTANCE_FORMAT = ".3f"  # how the chips print the distance
INTERVAL_FORMAT = ".2f"  # how the chips print the interval's bounds
SELF_COMPARISON = "TX-Ray needs a reference model different from the selected one"


@dataclasses.dataclass(frozen=True)
class TXRayFitOptions:
    """What a fit depends on (hashable: part of the cache key)."""

    reference_name: str
    layer: int
    mode: str  # txray.MODES
    features: str  # FEATURE_CHOICES
    tags_field: str  # the SequenceTags field when features == 'tags', else ''
    normalize: bool  # divide the distance by the union length (original code)
    replicates: int = DEFAULTS.replicates  # bootstrap over sentences; 0: off
    seed: int = 0  # the bootstrap's seed


@dataclasses.dataclass(frozen=True)
class TXRayOptions:
    """A parsed config: the fit's options plus the display-only top k and
    confidence level (never refit: the bootstrap's replicates are cached)."""

    fit: TXRayFitOptions
    top_k: int
    confidence: float = DEFAULTS.confidence
    # neuron_use.USE_KEY: conductance + ablation of the listed neurons (default off)
    check_use: bool = neuron_use.DEFAULT_CHECK_USE


def neuron_label(layer: int, shift: txray.NeuronShift) -> str:
    """E.g. 'L5 n201: great, fun → boring, waste'."""

    def names(scores):
        return ", ".join(str(s.name) for s in scores) or "(none)"

    return (
        f"L{layer} n{shift.neuron}: {names(shift.top_features_a)} → {names(shift.top_features_b)}"
    )


def chip_text(layer: int, shift: txray.NeuronShift) -> str:
    """E.g. 'L5 n201: great, fun → boring, waste = 0.912 [0.80, 0.97], support 14'
    (without a bootstrap: '... = 0.912')."""
    text = f"{neuron_label(layer, shift)}{common.CHIP_SEPARATOR}{shift.distance:{DISTANCE_FORMAT}}"
    if np.isnan(shift.lower):
        return text
    return (
        f"{text} [{shift.lower:{INTERVAL_FORMAT}}, {shift.upper:{INTERVAL_FORMAT}}], "
        f"support {shift.hellinger_length}"
    )


class TXRayNeuronShift(dataset_level.DatasetInterpreter):
    """TX-Ray: which neurons changed their preferred inputs vs a reference?

    `fit(model, dataset, config)` returns the cached `txray.ShiftResult`.
    """

    def __init__(
        self,
        models: Mapping[str, lit_model.Model],
        default_reference: str | None = None,
        batch_size: int = 32,
    ):
        super().__init__(batch_size)
        self._use = neuron_use.NeuronUse()
        if not models:
            raise ValueError("TXRayNeuronShift needs at least one model to use as reference.")
        self._models = dict(models)
        if default_reference is None:
            default_reference = next(iter(self._models))
        if default_reference not in self._models:
            raise ValueError(
                f"default_reference {default_reference!r} is not one of the models: "
                f"{list(self._models)}."
            )
        self._default_reference = default_reference
        self._preloaded: dict[tuple, tuple] = {}

    def preload(
        self,
        model_name: str,
        fit: TXRayFitOptions,
        reference: txray.NeuronFeatureAggregator,
        model: txray.NeuronFeatureAggregator,
        feature_names: list[str],
    ) -> None:
        """Serves the shift of these aggregations (e.g. a corpus run of
        ``python -m lit_plugins txray``, `saved_results.load_txray_results`) whenever
        model `model_name` is compared with `fit.reference_name` at `fit.layer`
        with `fit`'s mode and features, on any dataset.  When both carry
        their per-sentence table (the command's default, ``--replicates`` >
        0), the bootstrap runs on it with the UI's replicates and seed, as
        for a fit here; without it, no intervals."""
        if model_name not in self._models:
            raise ValueError(
                f"TX-Ray results for model {model_name!r}, which is not served "
                f"({list(self._models)})."
            )
        if fit.reference_name not in self._models:
            raise ValueError(
                f"TX-Ray results against reference {fit.reference_name!r}, which is not "
                f"loaded ({list(self._models)}); pass it as --reference_model."
            )
        self._preloaded[(model_name, *_preload_key(fit))] = (reference, model, feature_names)

    # ---------------------------------------------------------------- LIT API
    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        del dataset
        return bool(specs.find_layer_activation_fields(model.output_spec()))

    def config_spec(self) -> lit_types.Spec:
        ref_layers = specs.find_layer_activation_fields(
            self._models[self._default_reference].output_spec()
        )
        max_layer = max(ref_layers) if ref_layers else 0
        return {
            REFERENCE_KEY: lit_types.CategoryLabel(
                required=False, vocab=list(self._models), default=self._default_reference
            ),
            LAYER_KEY: lit_types.Scalar(
                required=False, min_val=0, max_val=max_layer, default=max_layer, step=1
            ),
            MODE_KEY: lit_types.CategoryLabel(
                required=False, vocab=list(txray.MODES), default=DEFAULTS.mode
            ),
            TAGS_KEY: lit_types.TextSegment(required=False, default=""),
            FEATURES_KEY: lit_types.CategoryLabel(
                required=False, vocab=list(FEATURE_CHOICES), default=DEFAULTS.features
            ),
            TOP_K_KEY: lit_types.Scalar(
                required=False, min_val=1, max_val=100, default=DEFAULTS.top_k, step=1
            ),
            NORMALIZE_KEY: lit_types.Boolean(required=False, default=DEFAULTS.normalize),
            REPLICATES_KEY: lit_types.Scalar(
                required=False,
                min_val=0,
                max_val=1000,
                default=DEFAULTS.replicates,
                step=1,
            ),
            CONFIDENCE_KEY: lit_types.Scalar(
                required=False,
                min_val=0.5,
                max_val=0.99,
                default=DEFAULTS.confidence,
                step=0.01,
            ),
            SEED_KEY: lit_types.Scalar(
                required=False, min_val=0, max_val=1000, default=DEFAULTS.seed, step=1
            ),
            neuron_use.USE_KEY: lit_types.Boolean(
                required=False, default=neuron_use.DEFAULT_CHECK_USE
            ),
        }

    def meta_spec(self) -> lit_types.Spec:
        return {
            TOKEN_SALIENCE: lit_types.TokenSalience(autorun=False, signed=False),
            SHIFTED_NEURONS: lit_types.TokenSalience(autorun=False, signed=False),
            neuron_use.USE_FIELD: lit_types.TokenSalience(autorun=False, signed=True),
        }

    def explain(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        result: txray.ShiftResult,
        opts: TXRayOptions,
        dataset: lit_dataset.Dataset | None = None,
    ) -> list[JsonDict]:
        """The most shifted neurons, how strongly each token drives them, and
        whether the model uses them (`neuron_use`)."""
        layer = opts.fit.layer
        ranked = result.rank_shifts(
            k=opts.top_k, n_features=_LABEL_FEATURES, confidence=opts.confidence
        ).most
        # The text is the whole chip ("label = distance [interval], support n");
        # common.chips_dict still reads {label: distance} back from it.
        shifted = common.labelled_chips(
            ((chip_text(layer, s), float(s.distance)) for s in ranked), None
        )
        neurons = np.array([s.neuron for s in ranked], dtype=np.int64)
        use = neuron_use.off_chips()
        if opts.check_use:
            use = self._use.chips(
                model,
                self.dataset_examples(dataset, "The neuron-use check"),
                layer,
                neurons.tolist(),
            )
        results = []
        for tokens, acts in dataset_level.layer_outputs(model, inputs, layer):
            scores = np.clip(acts[:, neurons], 0.0, None).sum(axis=1)
            top = float(scores.max()) if scores.size else 0.0
            if top > 0:
                scores = scores / top
            results.append(
                {
                    TOKEN_SALIENCE: dtypes.TokenSalience(tokens, scores),
                    SHIFTED_NEURONS: shifted,
                    neuron_use.USE_FIELD: use,
                }
            )
        return results

    # ------------------------------------------------------------ public API
    def parse_config(
        self,
        model: lit_model.Model,
        dataset: lit_dataset.Dataset | None,
        config: JsonDict | None,
    ) -> TXRayOptions:
        """The config as TXRayOptions, or a ValueError naming what is accepted."""
        config = dict(config or {})
        ref_name = config.get(REFERENCE_KEY, self._default_reference)
        if not isinstance(ref_name, str) or ref_name not in self._models:
            raise ValueError(
                f"{REFERENCE_KEY!r} must be one of {list(self._models)}, got {ref_name!r}."
            )
        if specs.unwrap(self._models[ref_name]) is specs.unwrap(model):
            raise ValueError(self._self_comparison_error(ref_name, model, "is the selected model"))
        model_layers = dataset_level.layer_activation_fields(model)
        ref_layers = dataset_level.layer_activation_fields(
            self._models[ref_name], f"Reference model {ref_name!r}"
        )
        shared = sorted(set(model_layers) & set(ref_layers))
        if not shared:
            raise ValueError(
                f"The selected model (layers {list(model_layers)}) and reference model "
                f"{ref_name!r} (layers {list(ref_layers)}) share no layer."
            )
        layer = common.parse_int(config, LAYER_KEY, shared[-1], 0, shared[-1])
        if layer not in shared:
            raise ValueError(
                f"{LAYER_KEY!r} must be one of {shared}, got {config.get(LAYER_KEY)!r}."
            )
        features = common.parse_choice(config, FEATURES_KEY, DEFAULTS.features, FEATURE_CHOICES)
        tags_field = ""
        if features == "tags":
            tags_field = _tags_field(dataset, str(config.get(TAGS_KEY, "") or "").strip())
        fit = TXRayFitOptions(
            reference_name=ref_name,
            layer=layer,
            mode=common.parse_choice(config, MODE_KEY, DEFAULTS.mode, txray.MODES),
            features=features,
            tags_field=tags_field,
            normalize=common.parse_bool(config, NORMALIZE_KEY, DEFAULTS.normalize),
            replicates=common.parse_int(
                config,
                REPLICATES_KEY,
                DEFAULTS.replicates,
                0,
                txray.bootstrap.MAX_REPLICATES,
            ),
            seed=common.parse_int(config, SEED_KEY, DEFAULTS.seed, 0, txray_options.MAX_SEED),
        )
        return TXRayOptions(
            fit=fit,
            top_k=common.parse_int(config, TOP_K_KEY, DEFAULTS.top_k, 1, txray_options.MAX_TOP_K),
            confidence=_parse_confidence(config),
            check_use=common.parse_bool(config, neuron_use.USE_KEY, neuron_use.DEFAULT_CHECK_USE),
        )

    # -------------------------------------------------------------- fitting
    def _model_name(self, model: lit_model.Model) -> str | None:
        raw = specs.unwrap(model)
        for name, candidate in self._models.items():
            if candidate is model or specs.unwrap(candidate) is raw:
                return name
        return None

    def _self_comparison_error(self, ref_name: str, model: lit_model.Model, why: str) -> str:
        same = {id(specs.unwrap(model)), id(specs.unwrap(self._models[ref_name]))}
        others = [n for n, m in self._models.items() if id(specs.unwrap(m)) not in same]
        choose = (
            f"choose another {REFERENCE_KEY!r} ({', '.join(map(repr, others))}), or "
            if others
            else ""
        )
        return (
            f"{SELF_COMPARISON}: reference {ref_name!r} {why}; every neuron's distance is 0, "
            f"which is not a result. To compare, {choose}load the checkpoint "
            "this model was fine-tuned from as a reference: ./run demo "
            "--reference_model=<checkpoint dir> (in your own app: "
            "TXRayNeuronShift({..., 'base': base_model}, default_reference='base'))."
        )

    def _fit(
        self, model: lit_model.Model, dataset: lit_dataset.Dataset, opts: TXRayFitOptions
    ) -> txray.ShiftResult:
        examples = self.dataset_examples(dataset, "TX-Ray (to aggregate neuron activations over)")
        name = self._model_name(model)
        preloaded = self._preloaded.get((name, *_preload_key(opts)))
        if preloaded is not None:
            agg_ref, agg_model, names = preloaded
            with_units = agg_ref.units is not None and agg_model.units is not None
            replicates = opts.replicates if with_units else 0
            return self._cache.get_or_fit(
                ("preloaded", name, _preload_key(opts), opts.normalize, replicates, opts.seed),
                lambda: txray.compute_shift(
                    agg_ref,
                    agg_model,
                    normalize_by_length=opts.normalize,
                    feature_names=names,
                    labels=(opts.reference_name, name),
                    replicates=replicates,
                    seed=opts.seed,
                ),
            )
        # Both models are keyed by the objects themselves, not id(): the key keeps
        # them alive, so a later model can never reuse an id and get this result;
        # with a fit store they stand for their weights' digests. The name labels
        # the result.
        reference = specs.unwrap(self._models[opts.reference_name])
        return self.cached_fit(
            (("model", specs.unwrap(model)), ("name", name), ("reference", reference), opts),
            examples,
            lambda: self._compute(model, name or model.description(), examples, opts),
        )

    def _compute(
        self,
        model: lit_model.Model,
        model_name: str,
        examples: list[JsonDict],
        opts: TXRayFitOptions,
    ) -> txray.ShiftResult:
        reference = self._models[opts.reference_name]
        txray_inputs.check_same_inputs(
            model, reference, opts.reference_name, opts.layer, examples[0]
        )
        start = time.time()
        logging.info(
            "TX-Ray: fitting %r vs reference %r, layer %d, mode %s, %s, on %d examples.",
            model_name,
            opts.reference_name,
            opts.layer,
            opts.mode,
            opts.features,
            len(examples),
        )
        settings = txray.TXRaySettings(
            layer=opts.layer,
            mode=opts.mode,
            features=opts.features,
            tags_field=opts.tags_field,
            normalize=opts.normalize,
            replicates=opts.replicates,
            seed=opts.seed,
        )
        result = txray_inputs.fit_shift(
            model,
            reference,
            examples,
            settings,
            names=(opts.reference_name, model_name),
            batch_size=self._batch_size,
            log_name="TX-Ray",
        )
        if result.num_shared and not np.any(result.distance > 0):
            raise ValueError(
                self._self_comparison_error(
                    opts.reference_name,
                    model,
                    "gives every neuron the same feature distribution as the selected model "
                    "(the same weights?)",
                )
            )
        logging.info(
            "TX-Ray: done in %.1f s; %d features, %d neurons active in both models.",
            time.time() - start,
            len(result.feature_names or ()),
            result.num_shared,
        )
        return result


def _preload_key(fit: TXRayFitOptions) -> tuple:
    """What a preloaded aggregation answers for (not the distance's
    normalisation nor the bootstrap's settings: both computed on demand)."""
    return (fit.reference_name, fit.layer, fit.mode, fit.features, fit.tags_field)


def _parse_confidence(config: JsonDict) -> float:
    value = config.get(CONFIDENCE_KEY, DEFAULTS.confidence)
    try:
        return txray.bootstrap.check_confidence(value)
    except ValueError:
        raise ValueError(
            f"{CONFIDENCE_KEY!r} must be a number strictly between 0 and 1 (e.g. 0.9), "
            f"got {value!r}."
        ) from None


def _tags_field(dataset: lit_dataset.Dataset | None, name: str) -> str:
    """The dataset's SequenceTags field to use as features (ValueError if none)."""
    spec = dataset.spec() if dataset is not None else {}
    fields = [k for k, v in spec.items() if isinstance(v, lit_types.SequenceTags)]
    if not fields:
        raise ValueError(
            "Features = 'tags' needs a SequenceTags field (e.g. POS tags over whitespace words) "
            "in the dataset; it has none. Use 'tokens' or 'words'."
        )
    if name and name not in fields:
        raise ValueError(f"{TAGS_KEY!r} must be one of {fields}, got {name!r}.")
    return name or fields[0]
