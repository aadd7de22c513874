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

The default rule, `auto` (see `integrate_paths`), picks plain Gauss–Legendre
or `gausslegendre_graded` per example from one look at the path (F at plain
Gauss–Legendre's first node vs F at the baseline) and falls back to the other
rule when the first misses the tolerance. `IGOptions` holds every default of
IG's settings, for the LIT interpreters and the command line alike.
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
# `auto`: per example, plain Gauss–Legendre, or the graded rule where the path
# is stiff at the baseline; then the other one if the first misses the tolerance.
AUTO = "auto"
PLAIN = "gausslegendre"
GRADED = "gausslegendre_graded"
RULE_CHOICES = (AUTO, *quadrature.RULES)
# `auto` calls a path stiff at the baseline when F has moved by more than this
# share of |ΔF| before plain Gauss–Legendre's first node (α₁ = 3.5e-4 at 64
# nodes). Measured shares at the zero baseline: smooth paths 0.01–1.1 %
# (fine-tuned MiniLM, 20 dev sentences), 0.01–0.4 % (tiny BERT-likes, GPT-2),
# 0.3–7 % (tiny Qwen2, where plain nodes are still within 1e-5); stiff ones
# 42–46 % (DeBERTa-v3 style), 65–110 % (Llama), 120–230 % (ModernBERT).
STIFF_SHARE = 0.1
# Fixed-step results are judged against this relative completeness error:
# `converged` is False above it (adaptive mode judges against its own target).
DEFAULT_TOLERANCE = 0.01
_ALPHA_DECIMALS = 12  # node identity for reuse across nested levels


@dataclasses.dataclass(frozen=True)
class IGOptions:
    """Integrated gradients' settings with their defaults, the one home of
    both: the LIT interpreters (IG, layer and neuron conductance) and the
    command line's --ig_* flags read them from here.

    Defaults: 64 nodes of the `auto` rule (plain Gauss–Legendre, or graded
    Gauss–Legendre where the zero-baseline path is stiff at α → 0, e.g.
    ModernBERT, DeBERTa-v3, Llama; see `integrate_paths`), zero baseline,
    fixed steps judged against a 1 % completeness tolerance.
    """

    rule: str = AUTO  # RULE_CHOICES
    steps: int = 64  # path points (fixed mode) or the first level (adaptive)
    tolerance: float | None = None  # relative completeness error target; None = fixed steps
    max_steps: int = 256  # adaptive mode's cap, and `auto`'s when an example misses the tolerance
    batch_size: int = 64  # path points per forward+backward chunk
    baseline: str = "zero"  # baselines.BASELINES
    keep_special: bool = False  # special tokens keep their input embedding in the baseline
    normalize: bool = True  # LIT's normalisation of the scores (IG; conductance: off)
    layer: int | None = None  # None = input embeddings, else layer IG on that layer's states

    def quadrature(self) -> dict:
        """The keyword arguments of `integrate_paths` and the path functions."""
        return dict(
            rule=self.rule,
            steps=self.steps,
            tolerance=self.tolerance,
            max_steps=self.max_steps,
            batch_size=self.batch_size,
        )


DEFAULTS = IGOptions()


def check_rule(rule: str) -> str:
    """`rule` if it is one of RULE_CHOICES (the quadrature rules or `auto`)."""
    if rule not in RULE_CHOICES:
        raise ValueError(
            f"Unknown integration rule {rule!r}; accepted: {', '.join(quadrature.RULES)}, "
            f"or {AUTO!r} (plain or graded Gauss–Legendre per example)."
        )
    return rule


def min_steps(rule: str) -> int:
    """The fewest nodes `rule` accepts (`auto`: plain Gauss–Legendre's; below
    the graded rule's minimum, `auto` uses plain Gauss–Legendre only)."""
    return quadrature.MIN_STEPS.get(PLAIN if rule == AUTO else check_rule(rule), 1)


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
    rule: str = ""  # the quadrature rule of the result (what `auto` chose)
    rule_note: str = ""  # why `auto` chose it ("" for a rule asked for by name)


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
    rule: str = ""  # the quadrature rule of this result (what `auto` chose)
    rule_note: str = ""  # why `auto` chose it ("" for a rule asked for by name)


def integrate_paths(
    num_examples: int,
    path_fn: PathFn,
    rule: str = DEFAULTS.rule,
    steps: int = DEFAULTS.steps,
    tolerance: float | None = DEFAULTS.tolerance,
    max_steps: int = DEFAULTS.max_steps,
    batch_size: int = DEFAULTS.batch_size,
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

    rule `auto`, per example: F at plain Gauss–Legendre's first node α₁
    (~3.5e-4 for 64 nodes) is compared with F at the baseline. On a smooth
    path F has moved by ~α₁·F'(0), typically 1e-4 to 1e-2 of ΔF; if it has
    moved by more than STIFF_SHARE of |ΔF| (`stiff_at_baseline`), the plain
    nodes, none below α₁, cannot resolve where F changes and the graded rule
    (α = t³, nodes down to ~4e-11) is used, else plain Gauss–Legendre. Either way, an example whose
    result misses the tolerance is integrated again with the other rule and
    keeps the result with the smaller completeness error; one that still
    misses it is refined with the better rule (twice the nodes, and again, up
    to `max_steps`) and keeps the finer result if it is better. The probe point is
    one of plain Gauss–Legendre's nodes, so a smooth path costs what plain
    Gauss–Legendre costs (steps + 2 points), a stiff one a point more.
    """
    check_rule(rule)
    _check_int("steps", steps, min_steps(rule), MAX_STEPS)
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

    def run(examples: list[int], level_rule: str) -> dict[int, PathIntegral]:
        return _integrate(
            cache, examples, level_rule, steps, tolerance, max_steps, judge, total, delta_f
        )

    everyone = list(range(num_examples))
    if rule != AUTO:
        named = run(everyone, rule)
        return [dataclasses.replace(named[i], rule=rule) for i in everyone]

    # auto: one look at the path, then the chosen rule, then the other where it misses.
    first_node = float(quadrature.nodes_and_weights(PLAIN, steps)[0].min())
    cache.ensure([(i, first_node) for i in everyone])
    moved = [abs(cache.get(i, first_node)[0] - cache.get(i, 0.0)[0]) for i in everyone]
    graded_ok = steps >= quadrature.MIN_STEPS.get(GRADED, 1)
    stiff = [graded_ok and stiff_at_baseline(m, d) for m, d in zip(moved, delta_f)]
    first_rule = {i: GRADED if stiff[i] else PLAIN for i in everyone}
    results: dict[int, PathIntegral] = {}
    for chosen in (PLAIN, GRADED):
        results.update(run([i for i in everyone if first_rule[i] == chosen], chosen))
    for i in everyone:
        share = moved[i] / max(abs(delta_f[i]), 1e-12)
        why = (
            f"auto: stiff at the baseline, F moved {share:.1%} of ΔF by α = {first_node:.2g}"
            if stiff[i]
            else f"auto: smooth at the baseline, F moved {share:.2%} of ΔF by α = {first_node:.2g}"
        )
        results[i] = dataclasses.replace(results[i], rule=first_rule[i], rule_note=why)
    missed = [i for i in everyone if not results[i].converged and graded_ok]
    for chosen in (PLAIN, GRADED):
        retry = [i for i in missed if first_rule[i] != chosen]
        for i, second in run(retry, chosen).items():
            first = results[i]
            note = (
                f"auto: {first.rule} missed the tolerance ({first.completeness_error:.2%}), "
                f"{chosen} gave {second.completeness_error:.2%}; the smaller error is kept"
            )
            keep = second if second.completeness_error < first.completeness_error else first
            results[i] = dataclasses.replace(keep, rule=keep.rule, rule_note=note)
    # Neither rule met the tolerance at `steps`: the better one is refined
    # (doubling, up to max_steps) for those examples only, so a path with a
    # sharp feature (seen: 3.7 % at 64 plain nodes, 2e-6 at 128) does not
    # leave the default off while smooth paths keep the cost of `steps`.
    for chosen in (PLAIN, GRADED):
        still = [i for i in everyone if not results[i].converged and results[i].rule == chosen]
        start = quadrature.refine(chosen, steps)
        if not still or start > max_steps:
            continue
        refined = _integrate(cache, still, chosen, start, judge, max_steps, judge, total, delta_f)
        for i, finer in refined.items():
            coarse = results[i]
            if finer.completeness_error >= coarse.completeness_error:
                continue
            note = (
                f"{coarse.rule_note}; refined to {finer.steps} {chosen} nodes: "
                f"{coarse.completeness_error:.2%} -> {finer.completeness_error:.2%}"
            )
            results[i] = dataclasses.replace(finer, rule=chosen, rule_note=note)
    # Every point evaluated for the example counts: probe and both rules' nodes.
    return [dataclasses.replace(results[i], evaluations=cache.count(i)) for i in everyone]


def stiff_at_baseline(moved: float, delta_f: float) -> bool:
    """Whether F changed by more than STIFF_SHARE·|ΔF| between the baseline
    and plain Gauss–Legendre's first node (`moved` = |F(α₁) − F(0)|): a change
    the plain nodes cannot see, since none lies below α₁."""
    return moved > STIFF_SHARE * max(abs(delta_f), 1e-12)


def _integrate(
    cache: _PointCache,
    examples: list[int],
    rule: str,
    steps: int,
    tolerance: float | None,
    max_steps: int,
    judge: float,
    total: Callable[[np.ndarray], float],
    delta_f: list[float],
) -> dict[int, PathIntegral]:
    """One quadrature rule on `examples`: `steps` nodes, refined while
    adaptive (`tolerance`) and above it, up to `max_steps`."""
    results: dict[int, PathIntegral] = {}
    active = list(examples)
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
                integral, delta_f[i], err, level, cache.count(i), within, judge, rule
            )
            if tolerance is not None and not within and next_level <= max_steps:
                still.append(i)
            if rule not in quadrature.NESTED:
                cache.evict(i)  # the next level shares no interior node with this one
        active = still
        level = quadrature.refine(rule, level)
    return results


def integrated_gradients(
    num_examples: int,
    path_fn: PathFn,
    rule: str = DEFAULTS.rule,
    steps: int = DEFAULTS.steps,
    tolerance: float | None = DEFAULTS.tolerance,
    max_steps: int = DEFAULTS.max_steps,
    batch_size: int = DEFAULTS.batch_size,
    fixed_tolerance: float = DEFAULT_TOLERANCE,
) -> list[IGResult]:
    """Integrated gradients for `num_examples` paths.

    Args:
      num_examples: paths to integrate; path_fn is called with their indices.
      path_fn: see module docstring. Called with at most `batch_size` points.
      rule: one of RULE_CHOICES: a quadrature rule (quadrature.RULES) or
        `auto` (see `integrate_paths`).
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
      error is within the tolerance, in both modes; `rule` says which
      quadrature rule gave it (and `rule_note` why, under `auto`).
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
            rule=r.rule,
            rule_note=r.rule_note,
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
