"""LIT interpreters (thin glue over the LIT-free math packages)."""
from lit_plugins.interpreters.gradient_salience import GradientDotInput
from lit_plugins.interpreters.gradient_salience import GradientNorm
from lit_plugins.interpreters.integrated_gradients import IntegratedGradients

__all__ = ["GradientNorm", "GradientDotInput", "IntegratedGradients"]
