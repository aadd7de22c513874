"""What a user chooses for a TX-Ray comparison, with every default in one place.

The TX-Ray interpreter builds these from LIT's config (its controls show these
defaults), and ``python -m lit_plugins txray`` from its flags (whose defaults are read
from here), so a corpus run and the UI never disagree about a default.
"""

from __future__ import annotations

import dataclasses

from lit_plugins.txray import bootstrap
from lit_plugins.txray.aggregate import MODES

FEATURES = ("tokens", "words", "tags")
MAX_TOP_K = 100_000
MAX_SEED = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class TXRaySettings:
    """A TX-Ray run's settings (validated on construction; ValueError names the range).

    Attributes:
      layer: the layer compared (0 = embedding output); None = the last layer both
        models have.
      mode: 'max1' (each token credits its most active neuron) or 'all'.
      features: 'tokens' (word pieces), 'words' (pieces merged) or 'tags' (a
        SequenceTags field, `tags_field`).
      tags_field: the tags field when features == 'tags'.
      normalize: divide each distance by the union length (the original code).
      replicates: bootstrap replicates over sentences (0: no intervals).
      seed: the bootstrap's seed.
      confidence: the level of the intervals the ranking uses.
      top_k: most / least shifted neurons shown.
    """

    layer: int | None = None
    mode: str = "max1"
    features: str = "tokens"
    tags_field: str = ""
    normalize: bool = False
    replicates: int = bootstrap.DEFAULT_REPLICATES
    seed: int = 0
    confidence: float = bootstrap.DEFAULT_CONFIDENCE
    top_k: int = 10

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}.")
        if self.features not in FEATURES:
            raise ValueError(f"features must be one of {list(FEATURES)}, got {self.features!r}.")
        if self.layer is not None and self.layer < 0:
            raise ValueError(f"layer must be >= 0 (0 = embedding output), got {self.layer}.")
        bootstrap.check_replicates(self.replicates)
        bootstrap.check_confidence(self.confidence)
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be in [0, {MAX_SEED}], got {self.seed}.")
        if not 1 <= self.top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be in [1, {MAX_TOP_K}], got {self.top_k}.")


DEFAULTS = TXRaySettings()
