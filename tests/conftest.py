"""Shared fixtures: tiny random models (fast) and the fine-tuned MiniLM."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from tests.kit import tiny_models

ARCHS = ("bert", "distilbert", "roberta")

# The slow tier: tests that fine-tune or load the real MiniLM (the `minilm_finetuned`
# fixture, a few minutes the first time), or start servers, browsers or processes.
# `./run test -m "not slow"` leaves them out for a quick check while developing;
# CI runs everything.
SLOW_MODULES = frozenset(
    {
        "tests/app/test_browser_e2e.py",
        "tests/app/test_browser_large_dataset.py",
        "tests/app/test_browser_multilabel.py",
        "tests/app/test_browser_ner.py",
        "tests/app/test_concurrency.py",
        "tests/app/test_demo_server.py",
        "tests/app/test_readme_snippets.py",
        "tests/cli/test_corpus.py",
        "tests/cli/test_docs_commands.py",
        "tests/lit/test_lit_compatibility.py",
        "tests/probing/test_distributed_probe.py",
    }
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.nodeid.split("::")[0]
        if module in SLOW_MODULES or "minilm_finetuned" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


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
