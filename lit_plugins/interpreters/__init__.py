"""LIT interpreters (thin glue over the LIT-free math packages)."""

from lit_plugins.interpreters.conductance import LayerConductance, NeuronConductance
from lit_plugins.interpreters.faithfulness import SalienceFaithfulness
from lit_plugins.interpreters.gradient_salience import GradientDotInput, GradientNorm
from lit_plugins.interpreters.integrated_gradients import IntegratedGradients
from lit_plugins.interpreters.linear_probe import LinearProbeInterpreter
from lit_plugins.interpreters.txray_shift import TXRayNeuronShift

__all__ = [
    "GradientDotInput",
    "GradientNorm",
    "IntegratedGradients",
    "LayerConductance",
    "LinearProbeInterpreter",
    "NeuronConductance",
    "SalienceFaithfulness",
    "TXRayNeuronShift",
]
