"""Old import path (`from lit_plugins.interpreters import IntegratedGradients`), kept for
custom apps. The interpreters live in `lit_plugins.lit.interpreters`."""

from lit_plugins.lit.interpreters import (
    GradientDotInput,
    GradientNorm,
    IntegratedGradients,
    LayerConductance,
    LinearProbeInterpreter,
    NeuronConductance,
    SalienceFaithfulness,
    TXRayNeuronShift,
)

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
