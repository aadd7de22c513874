"""Integrated gradients along straight paths, fixed-step or adaptive.

LIT-free: the model enters only through `path_fn`, which maps a list of path
points (example index, α) to, per point, the target score F and the per-token
integrand ∇F(b + α(x − b)) · (x − b) summed over the hidden dimension. Only
those [num_tokens] vectors are kept, so memory does not grow with the hidden
size or the number of steps.

`integrate_paths` is the one home of the path machinery (points, quadrature,
point cache, adaptive refinement) for integrands of any shape: IG here, layer
and neuron conductance in `conductance.py` ([tokens, hidden] and
[neurons + 1, tokens] integrands).

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
    return _relative_gap(float(np.sum(attributions)), delta_f)


def _relative_gap(total: float, delta_f: float) -> float:
    gap = abs(total - delta_f)
    # A baseline that scores like the input leaves nothing to attribute;
    # report the absolute gap rather than dividing by ~0.
    return gap / abs(delta_f) if abs(delta_f) > 1e-12 else gap


class _PointCache:
    """Evaluates path points in batches of at most `batch_size`, once each.

    `evict` drops an example's points that no later level can reuse (all but
    the endpoints for non-nested rules), so memory stays at one level even
    when an integrand is a [tokens, hidden] array (layer conductance).
    """

    def __init__(self, path_fn: PathFn, batch_size: int):
        self.path_fn = path_fn
        self.batch_size = batch_size
        self.values: dict[PathPoint, tuple[float, np.ndarray]] = {}
        self.evaluated: dict[int, int] = {}  # example -> distinct points evaluated

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
                self.evaluated[point[0]] = self.evaluated.get(point[0], 0) + 1

    def get(self, example: int, alpha: float):
        return self.values[self.key(example, alpha)]

    def count(self, example: int) -> int:
        return self.evaluated.get(example, 0)

    def evict(self, example: int, keep: Sequence[float] = (0.0, 1.0)) -> None:
        kept = {self.key(example, a) for a in keep}
        for point in [p for p in self.values if p[0] == example and p not in kept]:
            del self.values[point]


def _integrate_level(cache: _PointCache, example: int, rule: str, steps: int):
    alphas, weights = quadrature.nodes_and_weights(rule, steps)
    terms = np.stack([cache.get(example, a)[1] for a in alphas])
    # Σ_k w_k · integrand_k for integrands of any shape ([tokens], [tokens, hidden], …).
    return np.tensordot(weights, terms, axes=1)


@dataclasses.dataclass
class PathIntegral:
    """One example's path integral, whatever the integrand's shape."""

    integral: np.ndarray  # Σ_k w_k · integrand(α_k), the integrand's shape
    delta_f: float  # F(input) − F(baseline)
    completeness_error: float  # |total(integral) − ΔF| / |ΔF|
    steps: int  # quadrature nodes of the final level
    evaluations: int  # distinct path points evaluated for this example
    converged: bool  # completeness_error <= tolerance
    tolerance: float


def integrate_paths(
    num_examples: int,
    path_fn: PathFn,
    rule: str = "gausslegendre",
    steps: int = 32,
    tolerance: float | None = None,
    max_steps: int = 256,
    batch_size: int = 64,
    fixed_tolerance: float = DEFAULT_TOLERANCE,
    total: Callable[[np.ndarray], float] | None = None,
) -> list[PathIntegral]:
    """∫₀¹ integrand(α) dα along `num_examples` straight paths, with
    completeness judged on `total(integral)` vs F(input) − F(baseline).

    The one home of path points, quadrature, the point cache and adaptive
    refinement: integrated gradients and conductance (`conductance.py`) are
    thin layers over it. Arguments as `integrated_gradients`; `total` maps an
    example's integral to the number that completeness says equals ΔF
    (default: the sum of all its entries).
    """
    quadrature.check_rule(rule)
    _check_int("steps", steps, quadrature.MIN_STEPS.get(rule, 1), MAX_STEPS)
    _check_int("max_steps", max_steps, steps, MAX_STEPS)
    _check_int("batch_size", batch_size, 1, 1 << 20)
    if tolerance is not None and not (0 < tolerance < 1):
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}.")
    if not (0 < fixed_tolerance < 1):
        raise ValueError(f"fixed_tolerance must be in (0, 1), got {fixed_tolerance!r}.")
    total = total or (lambda integral: float(np.sum(integral)))
    judge = fixed_tolerance if tolerance is None else tolerance
    cache = _PointCache(path_fn, batch_size)

    # Endpoints give F(b) and F(x); rules with end nodes reuse them.
    cache.ensure([(i, a) for i in range(num_examples) for a in (0.0, 1.0)])
    delta_f = [cache.get(i, 1.0)[0] - cache.get(i, 0.0)[0] for i in range(num_examples)]

    results: list[PathIntegral | None] = [None] * num_examples
    active = list(range(num_examples))
    level = steps
    while active:
        alphas, _ = quadrature.nodes_and_weights(rule, level)
        cache.ensure([(i, a) for i in active for a in alphas])
        still = []
        for i in active:
            integral = _integrate_level(cache, i, rule, level)
            err = _relative_gap(total(integral), delta_f[i])
            within = bool(err <= judge)
            next_level = quadrature.refine(rule, level)
            results[i] = PathIntegral(
                integral, delta_f[i], err, level, cache.count(i), within, judge
            )
            if tolerance is not None and not within and next_level <= max_steps:
                still.append(i)
            if rule not in quadrature.NESTED:
                cache.evict(i)  # the next level shares no interior node with this one
        active = still
        level = quadrature.refine(rule, level)
    return results  # type: ignore[return-value]


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
    return [
        IGResult(
            r.integral,
            r.delta_f,
            r.completeness_error,
            r.steps,
            r.evaluations,
            converged=r.converged,
            tolerance=r.tolerance,
        )
        for r in integrate_paths(
            num_examples, path_fn, rule, steps, tolerance, max_steps, batch_size, fixed_tolerance
        )
    ]


def _check_int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}.")
