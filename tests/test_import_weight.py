"""The command line's processes do not import what only the served app needs:
LIT's components core imports every LIT component (SHAP, UMAP, ...), which cost
each corpus process ~90 MiB (a `probe` run's peak went from 764 to 896 MiB when
`lit.multilabel` imported it at module level)."""

import subprocess
import sys

HEAVY = ("lit_nlp.components.core", "shap", "umap")


def test_corpus_commands_do_not_import_lits_component_core():
    code = (
        "import sys, lit_plugins.cli.corpus, lit_plugins.cli.main; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
