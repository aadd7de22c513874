"""The command line's processes do not import what only the served app needs.

LIT's components core imports every LIT component (SHAP, UMAP, ...), ~90 MiB per
corpus process (a `probe` run's peak went from 764 to 896 MiB when `lit.multilabel`
imported it at module level); LIT's text metrics (sacrebleu, nltk, rouge) ~33 MiB;
scikit-learn's metrics ~75 MiB, which only `probe` (F1, MCC) and the served app use."""

import json
import subprocess
import sys

import pytest

APP_ONLY = (
    "lit_nlp.components.core",
    "lit_nlp.components.metrics",
    "shap",
    "umap",
    "sacrebleu",
    "lit_plugins.app",
    "lit_plugins.lit.multilabel_metrics",
)


def _imported(modules: str, watched: tuple[str, ...]) -> list[str]:
    code = f"import sys, {modules}; print([m for m in {watched!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_corpus_commands_do_not_import_what_only_the_app_needs():
    modules = "lit_plugins.cli.main, lit_plugins.cli.corpus, " + ", ".join(
        f"lit_plugins.cli.{c}" for c in ("attribute", "txray", "probe")
    )
    assert _imported(modules, APP_ONLY) == []


@pytest.mark.parametrize("command", ["attribute", "txray"])
def test_commands_without_a_classifier_metric_do_not_import_scikit_learn(command):
    modules = f"lit_plugins.cli.main, lit_plugins.cli.corpus, lit_plugins.cli.{command}"
    assert _imported(modules, ("sklearn",)) == []
