"""One call to put our components into a custom LIT app."""

from __future__ import annotations

from collections.abc import Mapping

from lit_nlp.api import components as lit_components
from lit_nlp.api import model as lit_model
from lit_nlp.components import core as lit_core

from lit_plugins import interpreters as ours
from lit_plugins.models.hf_classifier import HFSequenceClassifier

# Display names in the LIT UI (LIT's own use 'Grad L2 Norm', 'Grad ⋅ Input',
# 'Integrated Gradients'; ours are marked so both can be shown side by side).
GRADIENT_NORM = "lit-plugins: Gradient Norm"
GRADIENT_DOT_INPUT = "lit-plugins: Gradient · Input"
INTEGRATED_GRADIENTS = "lit-plugins: Integrated Gradients"
TXRAY_SHIFT = "lit-plugins: TX-Ray Neuron Shift"
LINEAR_PROBE = "lit-plugins: Linear Probe"


def plugin_interpreters(
    models: Mapping[str, lit_model.Model] | None = None,
    include_lit_defaults: bool = False,
    reference_model: str | None = None,
) -> dict[str, lit_components.Interpreter]:
    """Our interpreters, ready for `dev_server.Server(..., interpreters=...)`.

    Args:
      models: the app's models, the same objects given to the Server (TX-Ray
        compares the selected model against one of them; without models it is
        left out).
      include_lit_defaults: also include LIT's default interpreters (what a
        Server gets when no `interpreters` argument is given).
      reference_model: TX-Ray's default reference (e.g. the pre-trained model
        when comparing it with a fine-tuned one); default: the first model.
    """
    found = {
        GRADIENT_NORM: ours.GradientNorm(),
        GRADIENT_DOT_INPUT: ours.GradientDotInput(),
        INTEGRATED_GRADIENTS: ours.IntegratedGradients(),
        LINEAR_PROBE: ours.LinearProbeInterpreter(),
    }
    if models:  # model-comparison interpreters need the app's models
        found[TXRAY_SHIFT] = ours.TXRayNeuronShift(models, default_reference=reference_model)
    if include_lit_defaults:
        return {**lit_core.default_interpreters(dict(models or {})), **found}
    return found


def wrap_model(model, tokenizer, **kw) -> HFSequenceClassifier:
    """Wraps in-memory `transformers` model + tokenizer objects for LIT."""
    return HFSequenceClassifier(model=model, tokenizer=tokenizer, **kw)


def safe_model_loader(allowed_roots, **model_kw):
    """A LIT model loader for the UI's "load model" dialog that accepts only
    local checkpoint directories under `allowed_roots` (never hub names, never
    remote code), so a UI user cannot make the server fetch or run code.

    Use as `model_loaders={"HFSequenceClassifier": safe_model_loader([...])}`.
    """
    import os  # pylint: disable=g-import-not-at-top

    roots = [os.path.realpath(r) for r in allowed_roots]

    def load_checkpoint(
        model_name_or_path: str, batch_size: int = 16, max_length: int = 128
    ) -> HFSequenceClassifier:
        path = os.path.realpath(str(model_name_or_path))
        inside = any(os.path.commonpath([path, r]) == r for r in roots)
        if not inside or not os.path.isdir(path):
            raise ValueError(
                f"{model_name_or_path!r} is not an allowed checkpoint directory; "
                f"the server operator allows directories under: {roots}."
            )
        return HFSequenceClassifier(path, batch_size=batch_size, max_length=max_length, **model_kw)

    return load_checkpoint, HFSequenceClassifier.init_spec()
