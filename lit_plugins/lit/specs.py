"""The one place that reads LIT specs for the fields our interpreters need.

LIT 1.3 repeats the "is this TokenGradients field aligned to a Tokens field,
and does its grad_for point at TokenEmbeddings?" check in three classes; every
interpreter in this package asks `find_gradient_fields` instead.

Per-layer token activations (for the probe and TX-Ray) are ordinary
`TokenEmbeddings` output fields named ``layer_<i>/token_activations`` (i = 0 is
the embedding output, i = L the last layer) and declared ``required=False``:
a model returns them only when asked with
``predict(inputs, activation_layers=[...])``, so the served predict stays
small. We use only standard LIT types because LIT's front end refuses to
revive unknown type names.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.hf.classifier import HFClassifier

Spec = lit_types.Spec
# One LIT example or model output: field name -> value.
JsonDict = dict[str, Any]

LAYER_ACTIVATIONS_TEMPLATE = "layer_{}/token_activations"
_LAYER_ACTIVATIONS_RE = re.compile(r"^layer_(\d+)/token_activations$")


@dataclasses.dataclass(frozen=True)
class GradientFields:
    """Names of one aligned group of fields in a model's specs."""

    gradients: str  # TokenGradients output field
    tokens: str  # Tokens output field the gradients are aligned to
    embeddings: str | None = None  # TokenEmbeddings the gradients are for
    target: str | None = None  # field that pins the gradient's target class


def find_gradient_fields(
    output_spec: Spec,
    input_spec: Spec | None = None,
    *,
    need_embeddings: bool = False,
    need_embeddings_input: bool = False,
) -> list[GradientFields]:
    """Finds TokenGradients fields aligned to Tokens, with what else is asked.

    Args:
      output_spec: the model's output spec.
      input_spec: the model's input spec (needed for `need_embeddings_input`).
      need_embeddings: the gradients' `grad_for` must be a TokenEmbeddings
        output (GradientDotInput).
      need_embeddings_input: additionally that embeddings field must be accepted
        as input and `grad_target_field_key` must be an input field
        (integrated gradients feeds interpolated embeddings back).

    Returns:
      One GradientFields per usable TokenGradients field, in spec order.
    """
    need_embeddings = need_embeddings or need_embeddings_input
    found = []
    for name, field in output_spec.items():
        if not isinstance(field, lit_types.TokenGradients):
            continue
        if not isinstance(output_spec.get(field.align), lit_types.Tokens):
            continue
        embeddings = field.grad_for
        has_embeddings = isinstance(output_spec.get(embeddings), lit_types.TokenEmbeddings)
        if need_embeddings and not has_embeddings:
            continue
        target = field.grad_target_field_key
        if need_embeddings_input:
            spec_in = input_spec or {}
            if not isinstance(spec_in.get(embeddings), lit_types.TokenEmbeddings):
                continue
            if target is not None and target not in spec_in:
                continue
        found.append(
            GradientFields(
                gradients=name,
                tokens=field.align,
                embeddings=embeddings if has_embeddings else None,
                target=target,
            )
        )
    return found


def find_layer_activation_fields(output_spec: Spec) -> dict[int, str]:
    """Maps layer index → name of its per-token activation field."""
    layers = {}
    for name, field in output_spec.items():
        match = _LAYER_ACTIVATIONS_RE.match(name)
        if match and isinstance(field, lit_types.TokenEmbeddings):
            layers[int(match.group(1))] = name
    return dict(sorted(layers.items()))


def find_tokens_field(output_spec: Spec, activation_field: str) -> str:
    """The Tokens field a per-layer activation field is aligned to."""
    align = getattr(output_spec[activation_field], "align", None)
    if isinstance(output_spec.get(align), lit_types.Tokens):
        return align
    tokens = [k for k, v in output_spec.items() if isinstance(v, lit_types.Tokens)]
    if not tokens:
        raise ValueError(f"No Tokens field aligned to {activation_field!r}.")
    return tokens[0]


def unwrap(model: lit_model.Model) -> lit_model.Model:
    """The innermost model under LIT's wrappers (e.g. CachingModelWrapper).

    Interpreters call the raw model for path points and activation requests so
    that thousands of synthetic inputs do not fill LIT's prediction cache.
    """
    while isinstance(model, lit_model.ModelWrapper):
        model = model.wrapped
    return model


def hf_classifier(model: lit_model.Model) -> HFClassifier | None:
    """The HuggingFace sequence classifier under LIT's wrappers, or None for any
    other model: the one test of "can this interpreter run the path, the layers or
    the perturbations through the HF model itself?" (else it goes through LIT's
    `predict`, or says what it needs)."""
    raw = unwrap(model)
    return raw if isinstance(raw, HFClassifier) else None
