"""LIT interpreters (thin glue over the LIT-free math packages), one per module.

Lazy, as the package root: a command that needs one interpreter module (`attribute`
imports the gradient ones) does not import the others and what they need (Salience
Faithfulness: LIT's LIME and scikit-learn; tests/test_import_weight.py)."""

from lit_plugins.util import lazy

_PUBLIC = {
    name: f"{__name__}.{module}"
    for name, module in {
        "GradientDotInput": "gradient_salience",
        "GradientNorm": "gradient_salience",
        "IntegratedGradients": "integrated_gradients",
        "LayerConductance": "conductance",
        "LinearProbeInterpreter": "linear_probe",
        "NeuronConductance": "conductance",
        "PrecomputedAttributions": "precomputed",
        "SalienceFaithfulness": "faithfulness",
        "TXRayNeuronShift": "txray_shift",
    }.items()
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy.exports(__name__, _PUBLIC)
