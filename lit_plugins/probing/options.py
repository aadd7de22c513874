"""What a user chooses for a linear-probe run, with every default in one place.

The Linear Probe interpreter builds these from LIT's config (its controls show these
defaults), and ``python -m lit_plugins probe`` from its flags (whose defaults are read
from here), so a corpus run and the UI never disagree about a default.
"""

from __future__ import annotations

import dataclasses

from lit_plugins.probing import contributions

MAX_LAMBDA = 1e6
SENTENCE_POOLINGS = contributions.SENTENCE_POOLINGS  # of a sentence's tokens
TOKEN_POOLINGS = ("first", "last", "mean")  # of a word's pieces


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
    """A probe run's settings (validated on construction; ValueError names the range).

    Attributes:
      label_field: the dataset field to probe ("" = the first label field).
      layer: one layer index to probe, or None to sweep every layer (the best is shown).
      pooling: sentence labels: 'mean' or 'cls' (`SENTENCE_POOLINGS`); token labels:
        'first', 'last', 'mean' of a word's pieces (`TOKEN_POOLINGS`); checked against
        the label's level when the label field is known.
      lambda_l1, lambda_l2: the L1 and squared-L2 penalties (Dalvi et al.'s elastic net).
      control: also fit a control task (Hewitt & Liang) and report selectivity.
      held_out_fraction: share of the examples the probes are scored on.
      seed: the train / held-out split's seed.
      top_mass: the listed top neurons hold this share of the weight mass (NeuroX's
        `get_top_neurons` percentage, as a fraction).
    """

    label_field: str = ""
    layer: int | None = None
    pooling: str = "mean"
    lambda_l1: float = 1e-3
    lambda_l2: float = 1e-3
    control: bool = False
    held_out_fraction: float = 0.2
    seed: int = 0
    top_mass: float = 0.5

    def __post_init__(self):
        for name in ("lambda_l1", "lambda_l2"):
            value = getattr(self, name)
            if not 0.0 <= value <= MAX_LAMBDA:
                raise ValueError(f"{name} must be in [0, {MAX_LAMBDA:g}], got {value}.")
        if not 0.0 < self.held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {self.held_out_fraction}.")
        if not 0.0 < self.top_mass <= 1.0:
            raise ValueError(f"top_mass must be in (0, 1], got {self.top_mass}.")
        if self.layer is not None and self.layer < 0:
            raise ValueError(f"layer must be >= 0 (0 = embedding output), got {self.layer}.")


DEFAULTS = ProbeSettings()
