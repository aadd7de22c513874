"""Package fronts whose public names are imported when first read (PEP 562).

The root package and `lit.interpreters` are lazy so that importing one part (a math
package, one interpreter module) does not import every other part and what it needs
(LIT, scikit-learn, LIT's LIME; tests/test_import_weight.py)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`(__getattr__, __dir__)` for `package`, whose public `names` map to the module
    defining each: ``__getattr__, __dir__ = lazy.exports(__name__, _PUBLIC)``."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name]), name)

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
