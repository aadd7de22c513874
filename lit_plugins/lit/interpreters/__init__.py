"""LIT interpreters (thin glue over the LIT-free math packages)."""

from lit_plugins.lit.interpreters.conductance import LayerConductance, NeuronConductance
from lit_plugins.lit.interpreters.faithfulness import SalienceFaithfulness
from lit_plugins.lit.interpreters.gradient_salience import GradientDotInput, GradientNorm
from lit_plugins.lit.interpreters.integrated_gradients import IntegratedGradients
from lit_plugins.lit.interpreters.linear_probe import LinearProbeInterpreter
from lit_plugins.lit.interpreters.precomputed import PrecomputedAttributions
from lit_plugins.lit.interpreters.txray_shift import TXRayNeuronShift

__all__ = [
    "GradientDotInput",
    "GradientNorm",
    "IntegratedGradients",
    "LayerConductance",
    "LinearProbeInterpreter",
    "NeuronConductance",
    "PrecomputedAttributions",
    "SalienceFaithfulness",
    "TXRayNeuronShift",
]
