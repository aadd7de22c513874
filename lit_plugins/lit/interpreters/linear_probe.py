"""Linear probing of per-layer activations as a LIT interpreter.

Dalvi et al. (AAAI 2019) linear probes on the selected model's hidden states,
trained on the *whole dataset* loaded in LIT (a dataset-level interpreter).
This module is LIT glue only: config → `ProbeOptions` → data from
:mod:`lit_plugins.lit.probe_inputs` → `probing.LayerSweep` → LIT output types.
One fit per (model, dataset contents, `ProbeFitOptions`) is cached.

Fitting (first request for a cache key):

* The label field is a dataset field of type ``CategoryLabel`` (sentence
  classification), ``Scalar`` (sentence regression) or ``SequenceTags``
  (token level: one tag per *whitespace-separated word* of the model's text
  field). A multi-label field (``SparseMultilabel``) is probed one label
  against the rest, named ``field:label`` (e.g. ``label:food``); named
  without a label it is refused with a message saying so.
* ONE streamed pass collects every requested layer ('sweep' = all layers,
  0 = embedding output), keeping only pooled vectors (see
  :mod:`lit_plugins.lit.probe_inputs` for the poolings).
* Examples are split deterministically 80/20 into train/held-out
  (`probing.train_held_out_split`, stratified by class for sentence
  classification; token-level data is split by sentence so words of one
  sentence never straddle the split). One ``LinearProbe`` per layer (elastic
  net with the configured L1/L2, NeuroX scaling) is trained on the train part
  and scored on the held-out part (accuracy, or Pearson r for regression).
  The best layer is the highest held-out score (ties: the earlier layer).
* 'Control task' also trains, per layer, a probe with identical settings on
  control labels and reports selectivity = real score - control score:
  token level, Hewitt & Liang (2019): every word type (lower-cased word) gets
  a fixed random label drawn from the label distribution; sentence level,
  there are no shared types to memorise, so each *example* gets an
  independently drawn random label (regression: the targets randomly
  permuted over examples). The sentence-level control is therefore a
  chance-level baseline for the probe on that layer, not a memorisation
  control.

Outputs per selected example (at the configured layer, or the best layer in
sweep mode):

* ``probe_token_salience`` (TokenSalience, signed): each token's additive
  contribution to the probe's output for its predicted class
  (`probing.contributions`: the scores sum exactly to the logit minus the
  bias; token level: per word, for that word's predicted tag).
* ``top_neurons`` (labelled chips, signed): the predicted class's top
  neurons by |weight| - the ones holding 'Weight mass %' of that class's
  absolute weight mass (``get_top_neurons``) - at most 'Top neurons shown',
  largest first, each reading ``"L<layer> n<neuron> = <signed weight>"``.
  Token level uses the example's most frequent predicted tag.
* ``layer_sweep`` (labelled chips): the held-out score per probed layer,
  ``"layer <i> = <score>"``, in layer order; with 'Control task' also
  ``"layer <i> selectivity = <score>"``.
* ``use_for_decision`` (labelled chips; 'Check use for the decision', off by
  default -- minutes on a CPU -- so the chip says how to start it): does
  the model *use* the listed neurons? Their first k ablated inside the
  running model vs k random neurons of the layer (accuracy and predicted-class
  probability over the fitted dataset, 5 seeds), and each neuron's mean
  |layer conductance| with its rank in the layer (`interpreters.neuron_use`,
  computed once per model, layer, neurons and dataset).

The lists are `common.labelled_chips` (a TokenSalience whose chip texts
carry the numbers; LIT 1.3 shows FeatureSalience keys that are not dataset
fields as "key: undefined"); `common.chips_dict(result[TOP_NEURONS])` gives
``{"L6 n123": weight}`` and ``{"layer 6": score}`` back in Python.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from absl import logging
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins import probing
from lit_plugins.lit import alignment, dataset_level, probe_inputs, specs
from lit_plugins.lit.interpreters import common, neuron_use
from lit_plugins.lit.probe_inputs import (
    SENTENCE,
    SENTENCE_POOLINGS,
    TOKEN,
    TOKEN_POOLINGS,
    collect_pooled_activations,
    label_fields,
)
from lit_plugins.lit.probe_state import ProbeFitOptions, ProbeState
from lit_plugins.probing import contributions

JsonDict = specs.JsonDict

LABEL_FIELD_KEY = "Label field"
LAYER_KEY = "Layer"
POOLING_KEY = "Pooling"
L1_KEY = "L1"
L2_KEY = "L2"
MASS_KEY = "Weight mass %"
CONTROL_KEY = "Control task"
TOP_SHOWN_KEY = "Top neurons shown"

TOKEN_SALIENCE = "probe_token_salience"
TOP_NEURONS = "top_neurons"
LAYER_SWEEP = "layer_sweep"

SWEEP = "sweep"
# How the chips print the numbers (the salience keeps full precision).
WEIGHT_FORMAT = "+.3g"
SCORE_FORMAT = ".3f"
POOLINGS = ("mean", "cls", "first", "last")

DEFAULTS = probing.ProbeSettings()  # every fit default, in one place (probing.options)
MAX_LAMBDA = probing.options.MAX_LAMBDA
_DEFAULT_TOP_SHOWN = 10  # display only
_MAX_TOP_SHOWN = 100_000

__all__ = [
    "LinearProbeInterpreter",
    "ProbeFitOptions",
    "ProbeOptions",
    "ProbeState",
    "collect_pooled_activations",
    "fit_options",
    "label_fields",
]


@dataclasses.dataclass(frozen=True)
class ProbeOptions:
    """A parsed config: the fit's options plus display-only ones (never refit)."""

    fit: ProbeFitOptions
    mass: float  # 'Weight mass %'
    top_shown: int
    # neuron_use.USE_KEY: conductance + ablation of the listed neurons (default off)
    check_use: bool = neuron_use.DEFAULT_CHECK_USE


class LinearProbeInterpreter(dataset_level.DatasetInterpreter):
    """Which layers / neurons linearly encode a dataset label?

    `fit(model, dataset, config)` returns the cached `ProbeState`.
    """

    def __init__(
        self,
        batch_size: int = 32,
        held_out_fraction: float = DEFAULTS.held_out_fraction,
        seed: int = DEFAULTS.seed,
        device: str | None = None,
    ):
        """Args:
        batch_size: examples per activation-collection forward pass.
        held_out_fraction: share of examples used to score the probes.
        seed: seed of the train/held-out split and of the control labels.
        device: probe training device (None: CUDA when available).
        """
        super().__init__(batch_size)
        self._use = neuron_use.NeuronUse()
        if not 0.0 < float(held_out_fraction) < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}.")
        self._fraction = float(held_out_fraction)
        self._seed = int(seed)
        self._device = device
        self._preloaded: dict[tuple, ProbeState] = {}

    def preload(self, model: lit_model.Model, fit: ProbeFitOptions, state: ProbeState) -> None:
        """Serves `state` (e.g. a corpus fit from ``python -m lit_plugins probe``,
        `saved_results.load_probe_results`) whenever `model` is asked for `fit`'s
        options, on any dataset, instead of fitting on the dataset loaded in LIT."""
        raw = specs.unwrap(model)
        state.model = raw  # also keeps `raw` (and so its id) alive
        self._preloaded[(id(raw), fit)] = state

    # ---------------------------------------------------------------- LIT API
    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        if dataset is None or not specs.find_layer_activation_fields(model.output_spec()):
            return False
        words_ok = alignment.has_fast_tokenizer(model) and alignment.text_field(model)
        return any(
            probe_inputs.label_level(dataset.spec()[name]) == SENTENCE or words_ok
            for name in label_fields(dataset.spec())
        )

    def config_spec(self) -> lit_types.Spec:
        return {
            LABEL_FIELD_KEY: lit_types.TextSegment(default="", required=False),
            LAYER_KEY: lit_types.TextSegment(default=SWEEP, required=False),
            POOLING_KEY: lit_types.CategoryLabel(
                vocab=list(POOLINGS), default=DEFAULTS.pooling, required=False
            ),
            L1_KEY: lit_types.Scalar(
                min_val=0, max_val=0.1, default=DEFAULTS.lambda_l1, step=1e-4, required=False
            ),
            L2_KEY: lit_types.Scalar(
                min_val=0, max_val=0.1, default=DEFAULTS.lambda_l2, step=1e-4, required=False
            ),
            MASS_KEY: lit_types.Scalar(
                min_val=0, max_val=100, default=100 * DEFAULTS.top_mass, step=1, required=False
            ),
            CONTROL_KEY: lit_types.Boolean(default=DEFAULTS.control, required=False),
            TOP_SHOWN_KEY: lit_types.Scalar(
                min_val=1, max_val=100, default=_DEFAULT_TOP_SHOWN, step=1, required=False
            ),
            neuron_use.USE_KEY: lit_types.Boolean(
                default=neuron_use.DEFAULT_CHECK_USE, required=False
            ),
        }

    def meta_spec(self) -> lit_types.Spec:
        return {
            TOKEN_SALIENCE: lit_types.TokenSalience(autorun=False, signed=True),
            TOP_NEURONS: lit_types.TokenSalience(autorun=False, signed=True),
            LAYER_SWEEP: lit_types.TokenSalience(autorun=False, signed=True),
            neuron_use.USE_FIELD: lit_types.TokenSalience(autorun=False, signed=True),
        }

    def explain(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        state: ProbeState,
        opts: ProbeOptions,
        dataset: lit_dataset.Dataset | None = None,
    ) -> list[JsonDict]:
        """Token contributions, top neurons and the layer sweep of the fitted probe."""
        layer = state.best_layer
        probe = state.probe(layer)
        weight = probe.weight_.astype(np.float64)
        sweep = common.labelled_chips(_sweep_scores(state).items(), SCORE_FORMAT)
        results = []
        for ex, (tokens, hidden) in zip(inputs, dataset_level.layer_outputs(model, inputs, layer)):
            if state.level == SENTENCE:
                pooling = contributions.sentence_pooling_weights(hidden.shape[0], state.pooling)
                scores, row = contributions.sentence_contributions(
                    hidden, pooling, weight, probe.bias_, state.task_type == "regression"
                )
            else:
                _, pieces, _ = alignment.word_piece_weights(
                    model, ex, state.text_field, tokens, state.pooling
                )
                scores, rows = contributions.word_contributions(hidden, pieces, weight, probe.bias_)
                row = int(np.bincount(rows, minlength=weight.shape[0]).argmax())
            neurons = _top_neuron_indices(state, layer, row, opts)
            result = {
                TOKEN_SALIENCE: dtypes.TokenSalience(tokens, scores),
                TOP_NEURONS: _top_neurons(state, layer, row, neurons),
                LAYER_SWEEP: sweep,
            }
            if opts.check_use:
                result[neuron_use.USE_FIELD] = self._use.chips(
                    model, self.dataset_examples(dataset, "The neuron-use check"), layer, neurons
                )
            else:
                result[neuron_use.USE_FIELD] = neuron_use.off_chips()
            results.append(result)
        return results

    # ------------------------------------------------------------ public API
    def parse_config(
        self,
        model: lit_model.Model,
        dataset: lit_dataset.Dataset | None,
        config: JsonDict | None,
    ) -> ProbeOptions:
        """The config as ProbeOptions, or a ValueError naming what is accepted."""
        config = dict(config or {})
        known = list(dataset_level.layer_activation_fields(specs.unwrap(model)))
        layers = _layers(config.get(LAYER_KEY, SWEEP), known)
        settings = probing.ProbeSettings(
            label_field=str(config.get(LABEL_FIELD_KEY) or ""),
            layer=None if layers is None else layers[0],
            pooling=config.get(POOLING_KEY) or DEFAULTS.pooling,
            lambda_l1=common.parse_float(config, L1_KEY, DEFAULTS.lambda_l1, 0.0, MAX_LAMBDA),
            lambda_l2=common.parse_float(config, L2_KEY, DEFAULTS.lambda_l2, 0.0, MAX_LAMBDA),
            control=common.parse_bool(config, CONTROL_KEY, DEFAULTS.control),
            held_out_fraction=self._fraction,
            seed=self._seed,
        )
        return ProbeOptions(
            fit=fit_options(model, dataset, settings),
            mass=common.parse_float(config, MASS_KEY, 100 * DEFAULTS.top_mass, 0.0, 100.0),
            top_shown=common.parse_int(
                config, TOP_SHOWN_KEY, _DEFAULT_TOP_SHOWN, 1, _MAX_TOP_SHOWN
            ),
            check_use=common.parse_bool(config, neuron_use.USE_KEY, neuron_use.DEFAULT_CHECK_USE),
        )

    # -------------------------------------------------------------- fitting
    def _fit(
        self, model: lit_model.Model, dataset: lit_dataset.Dataset, opts: ProbeFitOptions
    ) -> ProbeState:
        examples = self.dataset_examples(
            dataset, "Linear probing (to train and score the probes on)"
        )
        raw = specs.unwrap(model)
        preloaded = self._preloaded.get((id(raw), opts))
        if preloaded is not None:
            return preloaded
        # The key holds `raw` itself (not its id, which a later model could reuse;
        # with a fit store it stands for the weights' digest) and the split's
        # settings, which are this interpreter's, not the config's.
        return self.cached_fit(
            (("model", raw), opts, ("split", self._fraction, self._seed)),
            examples,
            lambda: self._compute(model, examples, opts),
        )

    def _compute(
        self, model: lit_model.Model, examples: list[JsonDict], opts: ProbeFitOptions
    ) -> ProbeState:
        start = time.time()
        n = len(examples)
        if n < 2:
            raise ValueError(
                "Linear probing needs at least 2 examples (one to train on, one to score)."
            )
        labels = probe_inputs.collect_labels(examples, opts.label_field, opts.level, opts.task_type)
        logging.info(
            "Linear probe: %s, label %r (%s-level %s), layers %s, pooling %s, L1 %g, L2 %g, "
            "on %d examples.",
            model.description(),
            opts.label_field,
            opts.level,
            opts.task_type,
            "all" if opts.sweep else list(opts.layers),
            opts.pooling,
            opts.l1,
            opts.l2,
            n,
        )
        rows = probe_inputs.probe_rows(
            model,
            examples,
            labels,
            opts.level,
            opts.task_type,
            layers="all" if opts.sweep else list(opts.layers),
            pooling=opts.pooling,
            held_out_fraction=self._fraction,
            seed=self._seed,
            control=opts.control,
            text_field=opts.text_field,
            label_field=opts.label_field,
            batch_size=self._batch_size,
            log_name="Linear probe",
        )
        train, held, y = rows.train, rows.held_out, rows.y
        if opts.task_type == "classification" and np.unique(y[train]).size < 2:
            raise ValueError(
                "The training part of the split has only one class; "
                "add more labelled examples of every class."
            )

        def layer_sweep(targets: np.ndarray) -> probing.LayerSweep:
            X = rows.vectors
            return probing.LayerSweep(
                opts.task_type, lambda_l1=opts.l1, lambda_l2=opts.l2, device=self._device
            ).fit(
                {l: X[l][train] for l in opts.layers},
                targets[train],
                {l: X[l][held] for l in opts.layers},
                targets[held],
            )

        sweep = layer_sweep(y)
        control_scores = selectivity = None
        if opts.control:
            control_scores = dict(layer_sweep(rows.control).scores_)
            selectivity = {
                l: probing.selectivity(sweep.scores_[l], control_scores[l]) for l in opts.layers
            }
        state = ProbeState.of_sweep(
            opts,
            sweep,
            control_scores=control_scores,
            selectivity=selectivity,
            num_train=rows.num_train_examples,
            num_held_out=rows.num_held_out_examples,
            num_items=int(y.shape[0]),
            seconds=time.time() - start,
            model=specs.unwrap(model),
        )
        logging.info(
            "Linear probe: done in %.1f s; held-out %s per layer %s; best layer %d.",
            state.seconds,
            state.metric,
            {l: round(s, 4) for l, s in state.scores.items()},
            state.best_layer,
        )
        return state


# ------------------------------------------------------------------ helpers
def fit_options(
    model: lit_model.Model, dataset: lit_dataset.Dataset | None, settings: probing.ProbeSettings
) -> ProbeFitOptions:
    """What a fit of `settings` on `model` and `dataset` depends on: the label field (the
    first one when not given), its level and task, the layers, the pooling checked
    against the level. The interpreter and ``python -m lit_plugins probe`` both call it;
    a ValueError names what is accepted."""
    layer_fields = dataset_level.layer_activation_fields(specs.unwrap(model))
    ds_spec = dataset.spec() if dataset is not None else {}
    label = _label_field(ds_spec, settings.label_field or None)
    level = probe_inputs.label_level(probe_inputs.field_spec(ds_spec, label))
    text_field = None
    if level == TOKEN:
        text_field = alignment.text_field(model)
        if not alignment.has_fast_tokenizer(model) or not text_field:
            raise ValueError(
                f"Token-level label field {label!r} needs a model with a fast HF "
                "tokenizer (character offsets) and a text input field."
            )
    if settings.layer is not None and settings.layer not in layer_fields:
        raise ValueError(
            f"{LAYER_KEY!r} must be 'sweep' or a layer in {list(layer_fields)}, "
            f"got {settings.layer!r}."
        )
    choices = SENTENCE_POOLINGS if level == SENTENCE else TOKEN_POOLINGS
    if settings.pooling not in choices:
        raise ValueError(
            f"{POOLING_KEY!r} for the {level}-level label field {label!r} must be one of "
            f"{list(choices)}, got {settings.pooling!r}."
        )
    return ProbeFitOptions(
        label_field=label,
        level=level,
        task_type=probe_inputs.label_task(probe_inputs.field_spec(ds_spec, label)),
        text_field=text_field,
        layers=(settings.layer,) if settings.layer is not None else tuple(layer_fields),
        sweep=settings.layer is None,
        pooling=settings.pooling,
        l1=settings.lambda_l1,
        l2=settings.lambda_l2,
        control=settings.control,
    )


def _label_field(dataset_spec: lit_types.Spec, requested: Any) -> str:
    candidates = label_fields(dataset_spec)
    if not candidates:
        raise ValueError(
            "The dataset has no label field to probe: it needs a CategoryLabel, Scalar or "
            "SequenceTags field, or a SparseMultilabel field probed one label against the rest "
            f"(dataset fields: {list(dataset_spec)})."
        )
    label = str(requested or "").strip()
    if label and probe_inputs.split_choice(label)[0] not in candidates:
        raise ValueError(
            f"{LABEL_FIELD_KEY!r} must be one of {candidates} (or empty for "
            f"{candidates[0]!r}), got {label!r}."
        )
    # A multi-label field needs one label (one vs rest): 'field:label'.
    return probe_inputs.resolve_label_field(dataset_spec, label or candidates[0], LABEL_FIELD_KEY)


def _layers(value: Any, known: list[int]) -> list[int] | None:
    """None for a sweep over every layer, else the one requested layer."""
    if value is None or str(value).strip().lower() in ("", SWEEP):
        return None
    error = f"{LAYER_KEY!r} must be 'sweep' or a layer in {known}, got {value!r}."
    try:
        layer = common.parse_int(
            {LAYER_KEY: str(value).strip()}, LAYER_KEY, 0, min(known), max(known)
        )
    except ValueError:
        raise ValueError(error) from None
    if layer not in known:
        raise ValueError(error)
    return [layer]


def _sweep_scores(state: ProbeState) -> dict[str, float]:
    scores = {f"layer {l}": float(state.scores[l]) for l in state.layers}
    if state.selectivity is not None:
        for l in state.layers:
            scores[f"layer {l} selectivity"] = float(state.selectivity[l])
    return scores


def _top_neuron_indices(state: ProbeState, layer: int, row: int, opts: ProbeOptions) -> list[int]:
    """The neurons listed for probe class `row`: its top weight mass, at most 'Top neurons shown'."""
    probe = state.probe(layer)
    name = list(probe.class_to_idx_)[row]
    _, per_class = probing.get_top_neurons(probe, opts.mass / 100.0, probe.class_to_idx_)
    return [int(n) for n in per_class[name][: opts.top_shown]]


def _top_neurons(
    state: ProbeState, layer: int, row: int, neurons: list[int]
) -> dtypes.TokenSalience:
    weights = state.probe(layer).weight_[row]
    return common.labelled_chips(
        ((f"L{layer} n{n}", float(weights[n])) for n in neurons), WEIGHT_FORMAT
    )
