"""Old import path (`from lit_plugins import registration`), kept for custom apps.

The same module object as `lit_plugins.app.registration`, so anything set on one is seen
through the other.
"""

import sys

from lit_plugins.app import registration as _registration

sys.modules[__name__] = _registration
