"""LIT model wrappers for HuggingFace classifiers."""

from lit_plugins.devices import pick_device
from lit_plugins.models.hf_classifier import HFSequenceClassifier

__all__ = ["HFSequenceClassifier", "pick_device"]
