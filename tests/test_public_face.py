"""The package's public face and the old import paths a custom app uses keep working, and
the math packages import without LIT (the layers at run time, beside lint-imports)."""

import subprocess
import sys

import pytest


def test_old_import_paths_are_the_new_objects():
    import lit_plugins
    from lit_plugins import registration
    from lit_plugins.app import registration as app_registration
    from lit_plugins.data import loaders
    from lit_plugins.interpreters import IntegratedGradients, TXRayNeuronShift
    from lit_plugins.lit import interpreters
    from lit_plugins.lit.model import HFSequenceClassifier
    from lit_plugins.models import HFSequenceClassifier as OldPathClassifier

    assert registration is app_registration
    assert OldPathClassifier is HFSequenceClassifier is lit_plugins.HFSequenceClassifier
    assert IntegratedGradients is interpreters.IntegratedGradients
    assert TXRayNeuronShift is interpreters.TXRayNeuronShift
    assert lit_plugins.plugin_interpreters is registration.plugin_interpreters
    assert callable(loaders.load_bundled_sentiment)
    with pytest.raises(AttributeError):
        _ = lit_plugins.no_such_name


@pytest.mark.parametrize(
    "package",
    [
        "lit_plugins.util",
        "lit_plugins.attribution.integrated_gradients",
        "lit_plugins.faithfulness.summary",
        "lit_plugins.probing",
        "lit_plugins.txray",
        "lit_plugins.hf.classifier",
    ],
)
def test_lower_layers_import_without_lit(package):
    code = (
        f"import sys, {package}; "
        "bad = sorted(m for m in sys.modules if m.startswith('lit_nlp')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_module_imports_first():
    """Each module imports on its own, as the first of the package a process loads (an
    import cycle through a package front shows up here, whatever the import order of
    the other tests)."""
    code = """
import importlib, pkgutil, sys
import lit_plugins
names = sorted(m.name for m in pkgutil.walk_packages(lit_plugins.__path__, "lit_plugins."))
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "lit_plugins" or m.startswith("lit_plugins.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}: {e}")
print(len(names), "modules")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
