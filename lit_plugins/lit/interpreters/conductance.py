"""Layer and neuron conductance as LIT interpreters.

LIT glue only: config → `ConductanceOptions` → `models.hf_paths` (the
integrand on the HF model's tensors, dh/dα exact by forward-mode AD) →
`attribution.conductance` (quadrature, completeness) → LIT types.

* **Layer Conductance**: per-token conductance at one hidden layer (the
  token's share of F(input) − F(baseline) flowing through that layer), the
  layer's neurons with the largest total conductance for this example, and
  the completeness report (as IG's).
* **Neuron Conductance**: for the neurons the user names (`L6 n123, L6 n40`,
  the labels the probe and TX-Ray show), which input tokens drive the
  prediction through each of them: one map per neuron, keyed by its label,
  plus their totals and the path's completeness report. With no neurons
  named, the example's top neurons by layer conductance at *Layer* are used.

Both take IG's path settings (rule, steps, baseline, adaptive tolerance,
internal batch size, class to explain) under IG's config keys, except that
*Normalize* is off by default here (IG's is on, as in LIT): unnormalised, a
Layer Conductance map sums to F(input) − F(baseline) -- within the
completeness error the report shows -- and a neuron's map to its total
conductance; ticking *Normalize* rescales the map as LIT does IG's (then it
no longer sums to ΔF).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types
from lit_nlp.components.citrus import utils as citrus_utils

from lit_plugins.attribution import conductance as conductance_lib
from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.lit import specs
from lit_plugins.lit.interpreters import common
from lit_plugins.lit.interpreters import integrated_gradients as ig_interp

JsonDict = specs.JsonDict

LAYER_KEY = "Layer (0 = embedding output)"
TOP_KEY = "Top neurons shown"
NEURONS_KEY = "Neurons (e.g. L6 n123, L6 n40; empty = top by layer conductance)"
DEFAULT_NEURONS = 3  # with no neurons named
MAX_NEURONS = 16
TOKEN_FIELD = "token_conductance"
TOP_FIELD = "top_neurons"
NEURONS_FIELD = "neurons"
COMPLETENESS_KEY = ig_interp.COMPLETENESS_KEY
# IG's path settings, shared under the same keys (IG's layer target is ours).
_PATH_KEYS = tuple(
    k for k in ig_interp.IntegratedGradients().config_spec() if k != ig_interp.TARGET_LAYER_KEY
)
_LABEL_RE = re.compile(r"^L(\d+)\s*n(\d+)(?:\s*@\s*(\d+))?$", re.IGNORECASE)


def parse_neuron_labels(text: str) -> list[tuple[int, ...]]:
    """'L6 n123, L6 n40 @3' → [(6, 123), (6, 40, 3)] (layer, index[, token]).

    The labels the probe, TX-Ray and `conductance.Neuron.label` write; commas,
    semicolons or newlines separate them. Raises ValueError naming the form.
    """
    out = []
    for part in re.split(r"[,;\n]+", str(text or "")):
        part = part.strip()
        if not part:
            continue
        match = _LABEL_RE.match(part)
        if not match:
            raise ValueError(
                f"Cannot read neuron {part!r}: write 'L<layer> n<index>' (e.g. 'L6 n123'), "
                "optionally '@<token position>', separated by commas."
            )
        out.append(tuple(int(g) for g in match.groups() if g is not None))
    if len(out) > MAX_NEURONS:
        raise ValueError(f"At most {MAX_NEURONS} neurons per request, got {len(out)}.")
    return out


@dataclasses.dataclass(frozen=True)
class ConductanceOptions:
    """A parsed config: IG's path settings, the layer and the neurons."""

    path: ig_lib.IGOptions
    layer: int
    top: int
    neurons: tuple[tuple[int, ...], ...]  # NeuronConductance only; () = top by layer conductance

    def quadrature(self) -> dict:
        return self.path.quadrature()


class _ConductanceBase(lit_components.Interpreter):
    """Config parsing and compatibility shared by the two interpreters."""

    def __init__(
        self,
        layer: int = 3,
        steps: int = ig_lib.DEFAULTS.steps,
        top: int = 10,
        autorun: bool = False,
        normalize: bool = False,
    ):
        # normalize=False: the maps keep their units (they sum to ΔF), see the docstring.
        self._ig = ig_interp.IntegratedGradients(autorun=autorun, steps=steps, normalize=normalize)
        self._layer = layer
        self._top = top
        self._autorun = autorun

    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        del dataset
        return specs.hf_classifier(model) is not None and self._ig.is_compatible(model, None)

    def config_spec(self) -> lit_types.Spec:
        spec = {k: v for k, v in self._ig.config_spec().items() if k in _PATH_KEYS}
        spec[LAYER_KEY] = lit_types.Scalar(
            required=False, min_val=0, max_val=48, default=self._layer, step=1
        )
        return spec

    def parse_config(self, config: JsonDict, raw=None) -> ConductanceOptions:
        """Validated options; a bad value raises ValueError naming what's accepted."""
        path = self._ig.parse_config({k: v for k, v in config.items() if k in _PATH_KEYS})
        high = getattr(raw, "num_layers", 48)
        return ConductanceOptions(
            path=path,
            layer=common.parse_int(config, LAYER_KEY, min(self._layer, high), 0, high),
            top=common.parse_int(config, TOP_KEY, self._top, 1, 100),
            neurons=tuple(parse_neuron_labels(config.get(NEURONS_KEY, ""))),
        )

    def _prepare(self, inputs, model, config):
        if not self.is_compatible(model, None):
            raise ValueError(
                "Conductance needs a classifier wrapped as HFSequenceClassifier "
                "(it runs the path through the HF model's layers)."
            )
        raw = specs.unwrap(model)
        options = self.parse_config(config or {}, raw)
        fields = self._ig.find_fields(model.input_spec(), model.output_spec())[0]
        target = common.requested_class(config or {}, model, fields)
        return raw, options, [target] * len(inputs)

    def _map(self, scores: np.ndarray, tokens, options: ConductanceOptions):
        if options.path.normalize and np.any(scores != 0):  # all-zero stays zero, not uniform
            scores = citrus_utils.normalize_scores(scores)
        return dtypes.TokenSalience(list(tokens), np.asarray(scores, dtype=np.float32))


def _completeness(res) -> dtypes.TokenSalience:
    """IG's completeness chips for a conductance result."""
    attributions = getattr(res, "token_attributions", None)
    if attributions is None:  # neuron conductance: the IG row on the same nodes
        attributions = res.input_attributions
    return ig_interp.completeness_salience(
        ig_lib.IGResult(
            attributions,
            res.delta_f,
            res.completeness_error,
            res.steps,
            res.evaluations,
            res.converged,
            res.tolerance,
            res.rule,
            res.rule_note,
        )
    )


def _top_neuron_chips(totals: np.ndarray, layer: int, k: int) -> dtypes.TokenSalience:
    order = np.argsort(-np.abs(totals), kind="stable")[:k]
    return common.labelled_chips(
        [(conductance_lib.Neuron(layer, int(j)).label, float(totals[j])) for j in order]
    )


class LayerConductance(_ConductanceBase):
    """Layer conductance (Dhamdhere et al. 2018) at one hidden layer: per
    token, the top neurons of the example, and completeness."""

    def description(self) -> str:
        return (
            "Layer conductance: how much of F(input) - F(baseline) flows through one hidden "
            "layer, per token and per neuron (exact path derivative, completeness reported). "
            "Unnormalised by default: the token map sums to F(input) - F(baseline)."
        )

    def config_spec(self) -> lit_types.Spec:
        spec = super().config_spec()
        spec[TOP_KEY] = lit_types.Scalar(
            required=False, min_val=1, max_val=100, default=self._top, step=1
        )
        return spec

    def meta_spec(self) -> lit_types.Spec:
        return {
            TOKEN_FIELD: lit_types.TokenSalience(autorun=self._autorun, signed=True),
            TOP_FIELD: lit_types.TokenSalience(autorun=self._autorun, signed=True),
            COMPLETENESS_KEY: lit_types.TokenSalience(autorun=self._autorun, signed=True),
        }

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        del dataset, model_outputs
        if not inputs:
            return []
        raw, options, targets = self._prepare(inputs, model, config)
        from lit_plugins.hf import paths as hf_paths

        results, tokens, _ = hf_paths.layer_conductance(
            raw,
            inputs,
            options.layer,
            options.path.baseline,
            options.path.keep_special,
            targets,
            **options.quadrature(),
        )
        return [
            {
                TOKEN_FIELD: self._map(res.token_attributions, toks, options),
                TOP_FIELD: _top_neuron_chips(res.neuron_attributions, options.layer, options.top),
                COMPLETENESS_KEY: _completeness(res),
            }
            for res, toks in zip(results, tokens)
        ]


class NeuronConductance(_ConductanceBase):
    """Neuron conductance (Captum's NeuronConductance): which input tokens
    drive the prediction through each named neuron."""

    def description(self) -> str:
        return (
            "Neuron conductance: which tokens drive the prediction through the neurons you name "
            "(e.g. 'L6 n123, L6 n40' as the probe and TX-Ray list them)."
        )

    def config_spec(self) -> lit_types.Spec:
        spec = super().config_spec()
        spec[NEURONS_KEY] = lit_types.TextSegment(required=False, default="")
        return spec

    def meta_spec(self) -> lit_types.Spec:
        # One map per neuron comes back under the neuron's label ('L6 n123');
        # LIT's Salience Maps module renders every TokenSalience it receives.
        return {
            NEURONS_FIELD: lit_types.TokenSalience(autorun=self._autorun, signed=True),
            COMPLETENESS_KEY: lit_types.TokenSalience(autorun=self._autorun, signed=True),
        }

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        del dataset, model_outputs
        if not inputs:
            return []
        raw, options, targets = self._prepare(inputs, model, config)
        from lit_plugins.hf import paths as hf_paths

        if options.neurons:  # the same neurons for every example: one batched path
            groups = [(list(range(len(inputs))), list(options.neurons))]
        else:  # each example's own top neurons at the layer
            layer_results, _, _ = hf_paths.layer_conductance(
                raw,
                inputs,
                options.layer,
                options.path.baseline,
                options.path.keep_special,
                targets,
                **options.quadrature(),
            )
            groups = []
            for i, lr in enumerate(layer_results):
                order = np.argsort(-np.abs(lr.neuron_attributions), kind="stable")
                groups.append(([i], [(options.layer, int(j)) for j in order[:DEFAULT_NEURONS]]))
        out: list[JsonDict] = [{} for _ in inputs]
        for rows, neurons in groups:
            results, tokens, _ = hf_paths.neuron_conductance(
                raw,
                [inputs[i] for i in rows],
                neurons,
                options.path.baseline,
                options.path.keep_special,
                [targets[i] for i in rows],
                **options.quadrature(),
            )
            for i, res, toks in zip(rows, results, tokens):
                out[i] = self._neuron_outputs(res, toks, options)
        return out

    def _neuron_outputs(self, res, toks, options: ConductanceOptions) -> JsonDict:
        result: JsonDict = {
            NEURONS_FIELD: common.labelled_chips(
                [(n.label, float(t)) for n, t in zip(res.neurons, res.neuron_totals)]
            ),
        }
        for neuron, row in zip(res.neurons, res.attributions):
            result[neuron.label] = self._map(row, toks, options)
        result[COMPLETENESS_KEY] = _completeness(res)
        return result
