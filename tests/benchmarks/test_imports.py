"""Every benchmark's imports of the package resolve, the ones inside functions
too: a benchmark is run by hand, hours apart, so a moved module would otherwise
be found only when someone next runs it (two were, after the layout move)."""

import ast
import importlib
import pathlib

import pytest

BENCHMARKS = sorted(pathlib.Path(__file__).parent.glob("bench_*.py"))


def _imported_names(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            ("lit_plugins", "tests")
        ):
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(("lit_plugins", "tests")):
                    yield alias.name, None


def _resolves(module: str, name: str | None) -> bool:
    mod = importlib.import_module(module)
    if name is None or hasattr(mod, name):
        return True
    try:
        importlib.import_module(f"{module}.{name}")
    except ModuleNotFoundError:
        return False
    return True


def test_there_are_benchmarks():
    assert len(BENCHMARKS) >= 10


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_every_import_of_the_package_resolves(path):
    missing = [
        f"{module}.{name}" if name else module
        for module, name in _imported_names(path)
        if not _resolves(module, name)
    ]
    assert not missing, f"{path.name} imports what does not exist: {missing}"
