"""Shared fixtures: tiny random models (fast) and the fine-tuned MiniLM."""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))

import pytest
import tiny_models

from lit_plugins.models import HFSequenceClassifier

ARCHS = ("bert", "distilbert", "roberta")


@pytest.fixture(params=ARCHS)
def tiny_classifier(request):
    model, tokenizer = tiny_models.make(request.param)
    return HFSequenceClassifier(
        model=model, tokenizer=tokenizer, labels=["neg", "pos"], batch_size=4
    )


@pytest.fixture(scope="session")
def minilm_finetuned():
    """MiniLM-L6 fine-tuned on the bundled train split (cached on disk)."""
    from lit_plugins import demo_models

    return demo_models.finetuned_minilm(batch_size=32)


@pytest.fixture(scope="session")
def dev_examples():
    from lit_plugins.data import loaders

    return loaders.load_bundled_sentiment("dev").examples
