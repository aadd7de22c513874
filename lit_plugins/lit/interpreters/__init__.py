"""LIT interpreters (thin glue over the LIT-free math packages), one per module.

Lazy, as the package root: a command that needs one interpreter module (`attribute`
imports the gradient ones) does not import the others and what they need (Salience
Faithfulness: LIT's LIME and scikit-learn; tests/test_import_weight.py)."""

import importlib

_PUBLIC = {
    "GradientDotInput": "gradient_salience",
    "GradientNorm": "gradient_salience",
    "IntegratedGradients": "integrated_gradients",
    "LayerConductance": "conductance",
    "LinearProbeInterpreter": "linear_probe",
    "NeuronConductance": "conductance",
    "PrecomputedAttributions": "precomputed",
    "SalienceFaithfulness": "faithfulness",
    "TXRayNeuronShift": "txray_shift",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
