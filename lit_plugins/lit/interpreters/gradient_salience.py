"""GradientNorm and GradientDotInput: LIT-identical defaults, more options.

With default config both give exactly LIT 1.3's gradient_maps numbers on the
same model outputs. Options: leave special tokens out of the normalisation,
and explain another class than the predicted one (the Salience Maps module's
"Class to explain" dropdown, or the 'Class to explain' text in this method's
settings, e.g. one label of a multi-label head; needs the model's gradient
target input field).
"""

from __future__ import annotations

import numpy as np
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types
from lit_nlp.components.citrus import utils as citrus_utils

from lit_plugins.attribution import salience
from lit_plugins.lit import alignment, specs
from lit_plugins.lit.interpreters import common

JsonDict = specs.JsonDict


def _l2_normalize(scores: np.ndarray) -> np.ndarray:
    return scores / np.sum(scores)


class _GradientSalience(lit_components.Interpreter):
    """Shared run loop; subclasses define the per-token score."""

    needs_embeddings = False
    signed = False

    def __init__(self, autorun: bool = True):
        self._autorun = autorun

    def find_fields(
        self, output_spec: lit_types.Spec, input_spec: lit_types.Spec | None = None
    ) -> list[specs.GradientFields]:
        del input_spec  # only output fields are needed
        return specs.find_gradient_fields(output_spec, need_embeddings=self.needs_embeddings)

    def scores(self, output: JsonDict, fields: specs.GradientFields) -> np.ndarray:
        """Raw per-token scores; defined by each subclass."""
        del output, fields
        return np.zeros(0)

    @staticmethod
    def normalize(scores: np.ndarray) -> np.ndarray:
        return scores

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        del dataset
        config = config or {}
        exclude_special = common.parse_bool(config, common.EXCLUDE_SPECIAL_KEY, False)
        all_fields = self.find_fields(model.output_spec())
        if not all_fields:
            return None
        results = [{} for _ in inputs]
        for fields in all_fields:
            target = common.requested_class(config, model, fields)
            outputs = common.outputs_for_target(inputs, model, model_outputs, fields, target)
            for result, output in zip(results, outputs):
                tokens = list(output[fields.tokens])
                include = ~alignment.special_token_mask(model, tokens) if exclude_special else None
                values = salience.normalize_within(
                    self.scores(output, fields), self.normalize, include
                )
                result[fields.gradients] = dtypes.TokenSalience(tokens, values)
        return results

    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        del dataset
        return bool(self.find_fields(model.output_spec()))

    def config_spec(self) -> lit_types.Spec:
        return {
            # Empty: the input's `grad_class`, else the predicted (highest-scoring) class.
            common.CLASS_KEY: lit_types.TextSegment(required=False, default=""),
            common.TARGET_INFO_KEY: lit_types.SalienceTargetInfo(required=False),
            common.EXCLUDE_SPECIAL_KEY: lit_types.Boolean(required=False, default=False),
        }

    def meta_spec(self) -> lit_types.Spec:
        return {"saliency": lit_types.TokenSalience(autorun=self._autorun, signed=self.signed)}


class GradientNorm(_GradientSalience):
    """‖gradient‖₂ per token, normalised to sum to 1 (unsigned)."""

    def scores(self, output, fields):
        return salience.gradient_l2_norm(output[fields.gradients])

    normalize = staticmethod(_l2_normalize)


class GradientDotInput(_GradientSalience):
    """gradient · input embedding per token, |·| normalised to sum 1 (signed)."""

    needs_embeddings = True
    signed = True

    def scores(self, output, fields):
        return salience.gradient_dot_input(output[fields.gradients], output[fields.embeddings])

    normalize = staticmethod(citrus_utils.normalize_scores)
