"""Shared fixtures: tiny random models (fast) and the fine-tuned MiniLM."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from tests.kit import tiny_models

ARCHS = ("bert", "distilbert", "roberta")


@pytest.fixture(params=ARCHS)
def tiny_classifier(request):
    return tiny_models.classifier(request.param, labels=["neg", "pos"], batch_size=4)


@pytest.fixture(scope="session")
def minilm_finetuned():
    """MiniLM-L6 fine-tuned on the bundled train split (cached on disk)."""
    from lit_plugins.lit import demo_models

    return demo_models.finetuned_minilm(batch_size=32)


@pytest.fixture(scope="session")
def dev_examples():
    from lit_plugins.data import loaders

    return loaders.load_bundled_sentiment("dev").examples
