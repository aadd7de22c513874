"""What a linear-probe fit is, for the LIT interpreter, the corpus command and saved
results alike: the options a fit depends on (the cache key; the parsed config around
them is the interpreter's `ProbeOptions`), and the fitted state (`ProbeState`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from lit_plugins import probing


@dataclasses.dataclass(frozen=True)
class ProbeFitOptions:
    """What a fit depends on (hashable: part of the cache key)."""

    label_field: str
    level: str  # 'sentence' or 'token'
    task_type: str  # 'classification' or 'regression'
    text_field: str | None  # the model input field the words come from (token level)
    layers: tuple[int, ...]
    sweep: bool  # all layers, best one shown; else the one requested layer
    pooling: str
    l1: float
    l2: float
    control: bool


@dataclasses.dataclass
class ProbeState:
    """A fitted layer sweep; what `LinearProbeInterpreter.fit` returns.

    Attributes:
      label_field: the dataset field probed.
      level: 'sentence' or 'token'.
      task_type: 'classification' or 'regression'.
      pooling: 'mean'/'cls' (sentence) or 'first'/'last'/'mean' (token).
      layers: probed layer indices (all layers in sweep mode).
      sweep: the `probing.LayerSweep` (``sweep.probes_[layer]`` are the
        `probing.LinearProbe`s, trained on the train part).
      scores: {layer: held-out score} (accuracy, or Pearson r).
      best_layer: the layer the outputs use (the requested one, or the best).
      control_scores / selectivity: {layer: ...} with 'Control task', else None.
      metric: 'accuracy' or 'pearson'.
      num_train / num_held_out: examples in each part.
      num_items: probe rows in total (sentences, or words for token level).
      text_field: the model input field the words come from (token level).
      seconds: wall time of the fit.
    """

    label_field: str
    level: str
    task_type: str
    pooling: str
    layers: list
    sweep: Any
    scores: dict
    best_layer: int
    control_scores: dict | None
    selectivity: dict | None
    metric: str
    num_train: int
    num_held_out: int
    num_items: int
    text_field: str | None
    seconds: float
    model: Any = dataclasses.field(repr=False, default=None)

    def probe(self, layer: int | None = None) -> probing.LinearProbe:
        return self.sweep.probes_[self.best_layer if layer is None else layer]

    @classmethod
    def of_sweep(
        cls, fit: ProbeFitOptions, sweep: Any, best_layer: int | None = None, **sizes
    ) -> ProbeState:
        """The state of a fitted `sweep` for `fit`'s options; `sizes`: the
        remaining fields (num_train, num_held_out, num_items, seconds, ...).
        `best_layer` defaults to the sweep's best (sweep mode) or the one layer."""
        if best_layer is None:
            best_layer = sweep.best_layer_ if fit.sweep else fit.layers[0]
        return cls(
            label_field=fit.label_field,
            level=fit.level,
            task_type=fit.task_type,
            pooling=fit.pooling,
            layers=list(fit.layers),
            sweep=sweep,
            scores=dict(sweep.scores_),
            best_layer=best_layer,
            metric=sweep.metric,
            text_field=fit.text_field,
            **{"control_scores": None, "selectivity": None, **sizes},
        )
