"""Old import path (`from lit_plugins.interpreters import IntegratedGradients`), kept for
custom apps. The interpreters live in `lit_plugins.lit.interpreters`."""

from lit_plugins.lit.interpreters import *  # noqa: F403  (the same names, one list)
from lit_plugins.lit.interpreters import __all__  # noqa: F401
