"""The model-parameter randomization test (Adebayo et al. 2018, *Sanity Checks
for Saliency Maps*) on token-salience maps, LIT-free (numpy, scipy).

Given each example's map from the trained model and from models whose weights
were randomized (`lit_plugins.hf.randomization`: cascading from the top layer
down to the embeddings, or one layer at a time), the test measures how much of
the map survives: Spearman's rank correlation between the original and the
randomized map over the example's removable tokens (special tokens left out),
of the signed scores and of their absolute values (Adebayo et al. report both:
a map may keep its magnitudes and flip its signs).

A map that explains the model must change when the model is destroyed: its
rank correlation with the fully randomized model's map falls towards 0. A map
computed from the input alone (token length, position, a seeded random map)
keeps correlation 1 and **fails**. `passes` states the rule: after the last
cascading step (every parameter randomized), the mean over examples of both
correlations must stay below `threshold` (0.5 by default; Adebayo et al. judge
the curves by eye).

Neutral value: where Spearman's ρ is undefined (fewer than two removable
tokens, e.g. a one-token text, or a constant map) it is 0, "no rank agreement",
as τ-LOO in `metrics` (scipy returns NaN); such examples are counted as
`undefined` and left out of the means, so one-token texts neither pass nor
fail a method. A step where every example is undefined has mean 0 and
`passes` gives None (nothing to judge).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

DEFAULT_THRESHOLD = 0.5


def _kept(original, randomized, special) -> tuple[np.ndarray, np.ndarray]:
    """The two maps over the non-special tokens, checked."""
    a = np.asarray(original, dtype=np.float64).reshape(-1)
    b = np.asarray(randomized, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"Maps of {a.size} and {b.size} tokens cannot be compared.")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("Salience maps have NaN or infinite values.")
    if special is None:
        return a, b
    keep = ~np.asarray(special, dtype=bool).reshape(-1)
    if keep.shape != a.shape:
        raise ValueError(f"special-token mask of {keep.size} values for {a.size} tokens.")
    return a[keep], b[keep]


def _defined(a: np.ndarray, b: np.ndarray) -> bool:
    return a.size >= 2 and not np.all(a == a[0]) and not np.all(b == b[0])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if not _defined(a, b):
        return 0.0
    rho = stats.spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def rank_correlation(original, randomized, special=None, absolute: bool = False) -> float:
    """Spearman's ρ between two maps over the non-special tokens (|scores| if
    `absolute`); 0 where undefined (see the module docstring)."""
    a, b = _kept(original, randomized, special)
    return _spearman(np.abs(a), np.abs(b)) if absolute else _spearman(a, b)


@dataclasses.dataclass(frozen=True)
class StepCorrelation:
    """One randomization step, over the examples."""

    step: str
    spearman: np.ndarray  # per example, signed scores (0 where undefined)
    spearman_abs: np.ndarray  # per example, |scores|
    defined: np.ndarray  # per example: both correlations defined

    def mean(self, absolute: bool = False) -> float:
        values = self.spearman_abs if absolute else self.spearman
        kept = values[self.defined]
        return float(kept.mean()) if kept.size else 0.0


def step_correlations(
    original: Sequence,
    randomized: Mapping[str, Sequence],
    specials: Sequence | None = None,
) -> list[StepCorrelation]:
    """Per step (in `randomized`'s order), each example's correlations.

    Args:
      original: one map per example from the trained model.
      randomized: {step name: one map per example from the randomized model}.
      specials: per example, True for tokens left out ([CLS], [SEP], …).
    """
    n = len(original)
    if specials is not None and len(specials) != n:
        raise ValueError(f"{len(specials)} special-token masks for {n} maps.")
    out = []
    for step, maps in randomized.items():
        if len(maps) != n:
            raise ValueError(f"Step {step!r} has {len(maps)} maps for {n} examples.")
        signed, absolute, defined = [], [], []
        for i, (a, b) in enumerate(zip(original, maps)):
            try:
                a, b = _kept(a, b, None if specials is None else specials[i])
            except ValueError as err:
                raise ValueError(f"Step {step!r}, example {i}: {err}") from None
            signed.append(_spearman(a, b))
            absolute.append(_spearman(np.abs(a), np.abs(b)))
            defined.append(_defined(a, b) and _defined(np.abs(a), np.abs(b)))
        out.append(
            StepCorrelation(
                str(step), np.array(signed), np.array(absolute), np.array(defined, bool)
            )
        )
    return out


def passes(cascade: Sequence[StepCorrelation], threshold: float = DEFAULT_THRESHOLD) -> bool | None:
    """True if, after the last cascading step, the mean correlation of the
    scores and of their absolute values are both below `threshold`; None when
    no example of that step has a defined correlation (nothing to judge)."""
    if not cascade:
        raise ValueError("No randomization step to judge.")
    last = cascade[-1]
    if not last.defined.any():
        return None
    return bool(last.mean() < threshold and last.mean(absolute=True) < threshold)
