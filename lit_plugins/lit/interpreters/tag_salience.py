"""Why is word j tagged X: salience maps for a token classifier (`HFTokenClassifier`).

The target is one (word, tag) pair per example, chosen in the interpreter's config:
"Word to explain" (an index from 0, or the word itself; empty: the first word tagged
as an entity, else the first word) and "Tag to explain" (empty: the word's predicted
tag). F = the softmax probability of the tag at the word's first word piece, the
probability the model's tag is read from.

Three methods, each a row of LIT's Salience Maps module:

* gradient x input: ∇F · x per word piece (one forward and backward pass);
* integrated gradients: `attribution.integrated_gradients` on the path from a
  baseline to the input word embeddings, at its defaults (the `auto` rule, 64 nodes),
  with its completeness report (Σ attributions = F(x) − F(baseline)); "Attribution
  target" = 'layer N' integrates over hidden_states[N] instead (layer integrated
  gradients, same completeness);
* layer conductance: `hf.token_paths` at "Layer" (hidden_states index, 0 = the
  embedding output) on IG's input path: each word piece's share of F(x) − F(baseline)
  flowing through that layer (dh/dα exact, same completeness), and the layer's neurons
  with the largest total conductance (the labels Neuron Conductance and TX-Ray use).

Each result holds the map over the word pieces (special tokens included), the same
map summed over each word's pieces, and a chip row naming the target; integrated
gradients and conductance add the completeness chips of
`interpreters.integrated_gradients`, conductance its top neurons.
"""

from __future__ import annotations

import numpy as np
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.attribution import baselines as baselines_lib
from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.lit import specs
from lit_plugins.lit.interpreters import common
from lit_plugins.lit.interpreters.conductance import (
    LAYER_KEY,
    TOP_FIELD,
    TOP_KEY,
    _completeness,
    _top_neuron_chips,
)
from lit_plugins.lit.interpreters.integrated_gradients import (
    BASELINE_KEY,
    COMPLETENESS_KEY,
    INPUT_TARGET,
    RULE_KEY,
    TARGET_LAYER_KEY,
    completeness_salience,
)
from lit_plugins.lit.token_model import HFTokenClassifier

JsonDict = specs.JsonDict

WORD_KEY = "Word to explain"
TAG_KEY = "Tag to explain"
PIECES = "word_pieces"
WORDS = "words"
TARGET = "target"
GRADIENT_X_INPUT = "gradient_x_input"
INTEGRATED_GRADIENTS = "integrated_gradients"
LAYER_CONDUCTANCE = "layer_conductance"
METHODS = (GRADIENT_X_INPUT, INTEGRATED_GRADIENTS, LAYER_CONDUCTANCE)
NAMES = {
    GRADIENT_X_INPUT: "Tag salience: Gradient ⋅ Input",
    INTEGRATED_GRADIENTS: "Tag salience: Integrated Gradients",
    LAYER_CONDUCTANCE: "Tag salience: Layer Conductance",
}
DEFAULT_LAYER = 1  # every tagger has it (the config spec cannot see the model's depth)
DEFAULT_TOP = 10


class TagSalience(lit_components.Interpreter):
    """Salience of one word's tag over the input word pieces (see the module docstring)."""

    def __init__(self, method: str = INTEGRATED_GRADIENTS):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        self.method = method

    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        del dataset
        return isinstance(specs.unwrap(model), HFTokenClassifier)

    def config_spec(self) -> lit_types.Spec:
        spec = {
            WORD_KEY: lit_types.TextSegment(required=False, default=""),
            TAG_KEY: lit_types.TextSegment(required=False, default=""),
        }
        if self.method != GRADIENT_X_INPUT:
            defaults = ig_lib.DEFAULTS
            spec[common.INTERPOLATION_KEY] = lit_types.Scalar(
                required=False, min_val=1, max_val=ig_lib.MAX_STEPS, default=defaults.steps, step=1
            )
            spec[RULE_KEY] = lit_types.CategoryLabel(
                required=False, vocab=list(ig_lib.RULE_CHOICES), default=defaults.rule
            )
            spec[BASELINE_KEY] = lit_types.CategoryLabel(
                required=False, vocab=list(baselines_lib.BASELINES), default=defaults.baseline
            )
        if self.method == INTEGRATED_GRADIENTS:
            spec[TARGET_LAYER_KEY] = lit_types.TextSegment(required=False, default=INPUT_TARGET)
        if self.method == LAYER_CONDUCTANCE:
            spec[LAYER_KEY] = lit_types.Scalar(
                required=False, min_val=0, max_val=48, default=DEFAULT_LAYER, step=1
            )
            spec[TOP_KEY] = lit_types.Scalar(
                required=False, min_val=1, max_val=100, default=DEFAULT_TOP, step=1
            )
        return spec

    def meta_spec(self) -> lit_types.Spec:
        spec = {
            TARGET: lit_types.TokenSalience(autorun=False, signed=True),
            WORDS: lit_types.TokenSalience(autorun=False, signed=True),
            PIECES: lit_types.TokenSalience(autorun=False, signed=True),
        }
        if self.method == LAYER_CONDUCTANCE:
            spec[TOP_FIELD] = lit_types.TokenSalience(autorun=False, signed=True)
        if self.method != GRADIENT_X_INPUT:
            spec[COMPLETENESS_KEY] = lit_types.TokenSalience(autorun=False, signed=True)
        return spec

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        del dataset, model_outputs
        raw = specs.unwrap(model)
        if not isinstance(raw, HFTokenClassifier):
            return None
        if not inputs:
            return []
        config = config or {}
        word = str(config.get(WORD_KEY, "") or "").strip() or None
        tag = str(config.get(TAG_KEY, "") or "").strip() or None
        targets = [(word, tag)] * len(inputs)
        if self.method == GRADIENT_X_INPUT:
            found = raw.gradient_x_input(inputs, targets)
            return [_result(raw, r, r["salience"], r["f"]) for r in found]
        rule = common.parse_choice(config, RULE_KEY, ig_lib.DEFAULTS.rule, ig_lib.RULE_CHOICES)
        options = ig_lib.IGOptions(
            rule=rule,
            steps=common.parse_int(
                config,
                common.INTERPOLATION_KEY,
                ig_lib.DEFAULTS.steps,
                ig_lib.min_steps(rule),
                ig_lib.MAX_STEPS,
            ),
            baseline=common.parse_choice(
                config, BASELINE_KEY, ig_lib.DEFAULTS.baseline, baselines_lib.BASELINES
            ),
            layer=None if self.method == LAYER_CONDUCTANCE else _layer(config),
        )
        if self.method == LAYER_CONDUCTANCE:
            return _conductance(raw, inputs, targets, options, config)
        results = []
        for r in raw.integrated_gradients(inputs, targets, options):
            res = r["result"]
            out = _result(raw, r, res.attributions, None)
            out[COMPLETENESS_KEY] = completeness_salience(res)
            results.append(out)
        return results


def _conductance(raw, inputs, targets, options: ig_lib.IGOptions, config: JsonDict):
    """Layer conductance results: the piece and word maps, top neurons, completeness."""
    from lit_plugins.hf import token_paths

    layer = common.parse_int(config, LAYER_KEY, DEFAULT_LAYER, 0, raw.num_layers)
    top = common.parse_int(config, TOP_KEY, DEFAULT_TOP, 1, 100)
    results = []
    for r in token_paths.layer_conductance(raw, inputs, layer, targets, options):
        res = r["result"]
        out = _result(raw, r, res.token_attributions, None)
        out[TOP_FIELD] = _top_neuron_chips(res.neuron_attributions, layer, top)
        out[COMPLETENESS_KEY] = _completeness(res)
        results.append(out)
    return results


def _result(raw: HFTokenClassifier, found: JsonDict, values, f: float | None) -> JsonDict:
    """The piece map, the word map (each word's pieces summed) and the target chips."""
    values = np.asarray(values, dtype=np.float64)
    word, tag = found["target"]
    words = found["words"]
    per_word = np.zeros(len(words))
    for k, wid in enumerate(found["word_ids"]):
        if wid is not None:  # special tokens belong to no word
            per_word[wid] += values[k]
    label = f"why word {word} {words[word]!r} is tagged {raw.labels[tag]}"
    chips = [(label, 0.0)]
    if f is not None:
        chips.append((f"F = p({raw.labels[tag]}) = {f:.4g}", f))
    return {
        TARGET: common.labelled_chips(chips, value_format=None),
        WORDS: dtypes.TokenSalience(list(words), np.asarray(per_word, dtype=np.float32)),
        PIECES: dtypes.TokenSalience(list(found["tokens"]), values.astype(np.float32)),
    }


def _layer(config: JsonDict) -> int | None:
    """None for the input embeddings, else the N of 'layer N' (layer integrated
    gradients on hidden_states[N], 0 = the embedding output)."""
    text = str(config.get(TARGET_LAYER_KEY, INPUT_TARGET) or INPUT_TARGET).strip().lower()
    if text == INPUT_TARGET:
        return None
    number = text.removeprefix("layer").strip()
    if not number.isdigit():
        raise ValueError(
            f"{TARGET_LAYER_KEY!r} must be {INPUT_TARGET!r} or 'layer N' (N = 0 for the "
            f"embedding output), got {config.get(TARGET_LAYER_KEY)!r}."
        )
    return int(number)


def interpreters() -> dict[str, TagSalience]:
    """{display name: interpreter} for the three methods."""
    return {NAMES[m]: TagSalience(m) for m in METHODS}
