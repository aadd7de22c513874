"""util.lazy: a package front's names load on first read, and only then."""

import sys
import types

import pytest

from lit_plugins.util import lazy


@pytest.fixture
def front(monkeypatch):
    package = types.ModuleType("lazy_front_under_test")
    package.__getattr__, package.__dir__ = lazy.exports(
        package.__name__, {"sqrt": "math", "JSONDecoder": "json.decoder"}
    )
    monkeypatch.setitem(sys.modules, package.__name__, package)
    return package


def test_a_name_is_the_defining_modules_own(front):
    import json.decoder
    import math

    assert front.sqrt is math.sqrt
    assert front.JSONDecoder is json.decoder.JSONDecoder


def test_the_defining_module_is_imported_on_first_read_only(front, monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    package = types.ModuleType("lazy_front_colorsys")
    package.__getattr__, _ = lazy.exports(package.__name__, {"rgb_to_hsv": "colorsys"})
    assert "colorsys" not in sys.modules
    assert package.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules


def test_an_unknown_name_is_an_attribute_error_naming_the_package(front):
    with pytest.raises(AttributeError, match="'lazy_front_under_test' has no attribute 'cbrt'"):
        front.cbrt  # noqa: B018
    assert not hasattr(front, "floor")


def test_dir_lists_the_lazy_names_with_the_loaded_ones(front):
    assert {"sqrt", "JSONDecoder", "__name__"} <= set(dir(front))
