"""The one salience-method registry: display names, which interpreters are token-salience
maps of the model's prediction, and the methods built as we score and cluster them.

Used by the app's registration (the names in the UI, Salience Clustering's methods), by
Salience Faithfulness (which methods it scores) and by the faithfulness report, so the
three never disagree. LIME is always seeded (`LIME_SEED`): LIT's default LIME draws its
perturbations from an unseeded generator, so its maps and the scores of them would
change from one run to the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lit_nlp.api import components as lit_components
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types
from lit_nlp.components import gradient_maps, lime_explainer, salience_clustering

from lit_plugins.lit import dataset_level

# The leaf modules, not the package front (whose Salience Faithfulness uses this registry).
from lit_plugins.lit.interpreters.conductance import TOP_FIELD, NeuronConductance
from lit_plugins.lit.interpreters.gradient_salience import GradientDotInput, GradientNorm
from lit_plugins.lit.interpreters.integrated_gradients import COMPLETENESS_KEY, IntegratedGradients
from lit_plugins.lit.interpreters.precomputed import PrecomputedAttributions
from lit_plugins.lit.interpreters.tag_salience import TagSalience

# LIT's display names for its methods (as `lit_core.default_interpreters` names them).
LIT_GRAD_NORM = "Grad L2 Norm"
LIT_GRAD_DOT_INPUT = "Grad ⋅ Input"
LIT_INTEGRATED_GRADIENTS = "Integrated Gradients"
LIT_LIME = "LIME"
# Ours, as the UI lists them.
GRADIENT_NORM = "lit-plugins: Gradient Norm"
GRADIENT_DOT_INPUT = "lit-plugins: Gradient · Input"
INTEGRATED_GRADIENTS = "lit-plugins: Integrated Gradients"
LAYER_CONDUCTANCE = "lit-plugins: Layer Conductance"
NEURON_CONDUCTANCE = "lit-plugins: Neuron Conductance"
TXRAY_SHIFT = "lit-plugins: TX-Ray Neuron Shift"
LINEAR_PROBE = "lit-plugins: Linear Probe"
SALIENCE_FAITHFULNESS = "lit-plugins: Salience Faithfulness"
PRECOMPUTED_ATTRIBUTIONS = "lit-plugins: Precomputed attributions"
# LIT's own name: ours replaces LIT's default one in the UI's Salience Clustering module.
SALIENCE_CLUSTERING = "Salience Clustering"

LIME_SEED = 0
# TokenSalience-typed result fields that are reports (shown as chips), not salience maps.
REPORT_FIELDS = frozenset({COMPLETENESS_KEY, TOP_FIELD})


def lit_methods() -> dict[str, lit_components.Interpreter]:
    """LIT 1.3's four token-salience methods, by LIT's names (LIME seeded)."""
    return {
        LIT_GRAD_NORM: gradient_maps.GradientNorm(),
        LIT_GRAD_DOT_INPUT: gradient_maps.GradientDotInput(),
        LIT_INTEGRATED_GRADIENTS: gradient_maps.IntegratedGradients(),
        LIT_LIME: lime_explainer.LIME(seed=LIME_SEED),
    }


def default_methods() -> dict[str, lit_components.Interpreter]:
    """LIT's four methods and our three per-example ones (gradient norm, gradient · input,
    integrated gradients): what faithfulness scores when no app is given. Layer
    conductance is left out here for its cost (a path through one layer per example);
    an app that serves it gets it scored and clustered like the others."""
    return {
        **lit_methods(),
        GRADIENT_NORM: GradientNorm(),
        GRADIENT_DOT_INPUT: GradientDotInput(),
        INTEGRATED_GRADIENTS: IntegratedGradients(),
    }


def with_seeded_lime(
    interpreters: Mapping[str, lit_components.Interpreter],
) -> dict[str, lit_components.Interpreter]:
    """`interpreters` with LIT's unseeded LIME (as `lit_core.default_interpreters` builds
    it) replaced by the seeded one under the same name."""
    out = dict(interpreters)
    if isinstance(out.get(LIT_LIME), lime_explainer.LIME):
        out[LIT_LIME] = lime_explainer.LIME(seed=LIME_SEED)
    return out


def is_salience_method(interpreter: lit_components.Interpreter) -> bool:
    """Returns a token-salience map of the model's prediction: a TokenSalience field in its
    meta_spec that is not a report, and not a dataset-level interpreter (probe, TX-Ray:
    their maps explain a probe or neurons), neuron conductance (the flow through chosen
    neurons), a token classifier's tag salience (it explains one word's tag), the
    `attribute` command's precomputed maps (a lookup) or Salience Clustering. Salience Faithfulness is dataset-level."""
    if isinstance(
        interpreter,
        dataset_level.DatasetInterpreter
        | NeuronConductance
        | TagSalience
        | PrecomputedAttributions
        | salience_clustering.SalienceClustering,
    ):
        return False
    try:
        meta = interpreter.meta_spec()
    except Exception:  # a broken component is simply not offered
        return False
    return any(
        isinstance(v, lit_types.TokenSalience) and k not in REPORT_FIELDS for k, v in meta.items()
    )


def salience_methods(
    interpreters: Mapping[str, lit_components.Interpreter],
    model: lit_model.Model | None = None,
    dataset: Any = None,
) -> dict[str, lit_components.Interpreter]:
    """The token-salience methods among `interpreters` (that fit `model`, when given)."""
    found = {}
    for name, interp in interpreters.items():
        if not is_salience_method(interp):
            continue
        if model is not None:
            try:
                if not interp.is_compatible(model, dataset):
                    continue
            except Exception:  # incompatible if it cannot tell
                continue
        found[name] = interp
    return found


class SalienceMapsOnly(lit_components.Interpreter):
    """An interpreter's results without its report fields (e.g. IG's completeness chips),
    for Salience Clustering, which clusters every field a salience method returns as if
    it were a token salience map."""

    def __init__(self, inner: lit_components.Interpreter, drop: Sequence[str] = REPORT_FIELDS):
        self.inner = inner
        self.drop = frozenset(drop)

    def description(self) -> str:
        return self.inner.description()

    def is_compatible(self, model, dataset) -> bool:
        return self.inner.is_compatible(model, dataset)

    def config_spec(self):
        return self.inner.config_spec()

    def meta_spec(self):
        return {k: v for k, v in self.inner.meta_spec().items() if k not in self.drop}

    def run(self, inputs, model, dataset, model_outputs=None, config=None):
        results = self.inner.run(inputs, model, dataset, model_outputs, config)
        if results is None:
            return None
        return [{k: v for k, v in r.items() if k not in self.drop} for r in results]


def salience_mappers(
    interpreters: Mapping[str, lit_components.Interpreter] | None = None,
) -> dict[str, lit_components.Interpreter]:
    """The methods Salience Clustering offers: LIT's four (LIME seeded) and every salience
    method among `interpreters` (default: ours, `default_methods`), each without its
    report fields. Layer conductance, when the app serves it, is one of them."""
    found = with_seeded_lime({**default_methods(), **salience_methods(interpreters or {})})
    return {
        name: SalienceMapsOnly(interp) if REPORT_FIELDS & set(_meta_keys(interp)) else interp
        for name, interp in found.items()
    }


def _meta_keys(interpreter: lit_components.Interpreter) -> list[str]:
    try:
        return list(interpreter.meta_spec())
    except Exception:  # a broken component: clustered as it is, LIT reports its error
        return []
