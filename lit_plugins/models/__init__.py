"""Old import path (`from lit_plugins.models import HFSequenceClassifier`), kept for custom apps.

The wrapper lives in `lit_plugins.lit.model`, the device helper in `lit_plugins.util.devices`.
"""

from lit_plugins.lit.model import HFSequenceClassifier
from lit_plugins.util.devices import pick_device

__all__ = ["HFSequenceClassifier", "pick_device"]
