"""Integrated gradients along straight paths, fixed-step or adaptive.

LIT-free: the model enters only through `path_fn`, which maps a list of path
points (example index, α) to, per point, the target score F and the per-token
integrand ∇F(b + α(x − b)) · (x − b) summed over the hidden dimension. Only
those [num_tokens] vectors are kept, so memory does not grow with the hidden
size or the number of steps.

Completeness (Sundararajan et al. 2017): Σ_tokens IG = F(x) − F(b) exactly for
the true integral; the relative gap |Σ IG − ΔF| / |ΔF| measures the
quadrature error and is reported for every example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from lit_plugins.attribution import quadrature

# (example index, α) → (F value, per-token integrand [num_tokens]).
PathPoint = tuple[int, float]
PathFn = Callable[[list[PathPoint]], list[tuple[float, np.ndarray]]]

MAX_STEPS = 1024
# Fixed-step results are judged against this relative completeness error:
# `converged` is False above it (adaptive mode judges against its own target).
DEFAULT_TOLERANCE = 0.01
_ALPHA_DECIMALS = 12  # node identity for reuse across nested levels


@dataclasses.dataclass
class IGResult:
    """Per-example integrated-gradients output."""

    attributions: np.ndarray  # [num_tokens]
    delta_f: float  # F(input) − F(baseline)
    completeness_error: float  # |Σ attributions − ΔF| / |ΔF|
    steps: int  # quadrature nodes of the final level
    evaluations: int  # distinct path points evaluated for this example
    converged: bool  # completeness_error <= tolerance
    tolerance: float = DEFAULT_TOLERANCE  # adaptive target, or DEFAULT_TOLERANCE (fixed steps)


def relative_completeness_error(attributions: np.ndarray, delta_f: float) -> float:
    gap = abs(float(np.sum(attributions)) - delta_f)
    # A baseline that scores like the input leaves nothing to attribute;
    # report the absolute gap rather than dividing by ~0.
    return gap / abs(delta_f) if abs(delta_f) > 1e-12 else gap


class _PointCache:
    """Evaluates path points in batches of at most `batch_size`, once each."""

    def __init__(self, path_fn: PathFn, batch_size: int):
        self.path_fn = path_fn
        self.batch_size = batch_size
        self.values: dict[PathPoint, tuple[float, np.ndarray]] = {}

    @staticmethod
    def key(example: int, alpha: float) -> PathPoint:
        return (example, round(float(alpha), _ALPHA_DECIMALS))

    def ensure(self, points: Sequence[PathPoint]) -> None:
        todo = list(
            dict.fromkeys(self.key(i, a) for i, a in points if self.key(i, a) not in self.values)
        )
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            for point, value in zip(chunk, self.path_fn(chunk)):
                self.values[point] = value

    def get(self, example: int, alpha: float):
        return self.values[self.key(example, alpha)]

    def count(self, example: int) -> int:
        return sum(1 for i, _ in self.values if i == example)


def _integrate_level(cache: _PointCache, example: int, rule: str, steps: int):
    alphas, weights = quadrature.nodes_and_weights(rule, steps)
    terms = np.stack([cache.get(example, a)[1] for a in alphas])
    return weights @ terms


def integrated_gradients(
    num_examples: int,
    path_fn: PathFn,
    rule: str = "gausslegendre",
    steps: int = 32,
    tolerance: float | None = None,
    max_steps: int = 256,
    batch_size: int = 64,
    fixed_tolerance: float = DEFAULT_TOLERANCE,
) -> list[IGResult]:
    """Integrated gradients for `num_examples` paths.

    Args:
      num_examples: paths to integrate; path_fn is called with their indices.
      path_fn: see module docstring. Called with at most `batch_size` points.
      rule: one of quadrature.RULES.
      steps: fixed number of nodes; with `tolerance`, the starting level.
      tolerance: if set, adaptive mode: each example is refined (nested rules
        reuse all earlier points) until its relative completeness error is
        <= tolerance or the next level would exceed `max_steps`.
      max_steps: cap on nodes per example in adaptive mode.
      batch_size: the most path points per model call.
      fixed_tolerance: without `tolerance`, the relative completeness error a
        fixed-step result is judged against (its `converged` and `tolerance`).

    Returns:
      One IGResult per example; `converged` is True only when its completeness
      error is within the tolerance, in both modes.
    """
    quadrature.check_rule(rule)
    _check_int("steps", steps, quadrature.MIN_STEPS.get(rule, 1), MAX_STEPS)
    _check_int("max_steps", max_steps, steps, MAX_STEPS)
    _check_int("batch_size", batch_size, 1, 1 << 20)
    if tolerance is not None and not (0 < tolerance < 1):
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}.")
    if not (0 < fixed_tolerance < 1):
        raise ValueError(f"fixed_tolerance must be in (0, 1), got {fixed_tolerance!r}.")
    judge = fixed_tolerance if tolerance is None else tolerance
    cache = _PointCache(path_fn, batch_size)

    # Endpoints give F(b) and F(x); rules with end nodes reuse them.
    cache.ensure([(i, a) for i in range(num_examples) for a in (0.0, 1.0)])
    delta_f = [cache.get(i, 1.0)[0] - cache.get(i, 0.0)[0] for i in range(num_examples)]

    results: list[IGResult | None] = [None] * num_examples
    active = list(range(num_examples))
    level = steps
    while active:
        alphas, _ = quadrature.nodes_and_weights(rule, level)
        cache.ensure([(i, a) for i in active for a in alphas])
        still = []
        for i in active:
            attr = _integrate_level(cache, i, rule, level)
            err = relative_completeness_error(attr, delta_f[i])
            within = bool(err <= judge)
            next_level = quadrature.refine(rule, level)
            results[i] = IGResult(
                attr, delta_f[i], err, level, cache.count(i), converged=within, tolerance=judge
            )
            if tolerance is not None and not within and next_level <= max_steps:
                still.append(i)
        active = still
        level = quadrature.refine(rule, level)
    return results  # type: ignore[return-value]


def _check_int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}.")
