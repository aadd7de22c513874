"""LIT model wrappers for HuggingFace classifiers."""

from lit_plugins.models.hf_classifier import HFSequenceClassifier, pick_device

__all__ = ["HFSequenceClassifier", "pick_device"]
