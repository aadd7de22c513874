"""Layer and neuron conductance along the integrated-gradients path.

LIT-free. Conductance (Dhamdhere, Yan & Sundararajan 2018, "How important is
a neuron?"; Captum's `LayerConductance` / `NeuronConductance`) splits the
integrated gradient of a score F along the straight path x(α) = b + α(x − b)
over the units h of a hidden layer:

  layer conductance of unit (t, j) = ∫₀¹ ∂F/∂h_tj(x(α)) · dh_tj/dα dα,

so summed over the hidden units of a token it is a per-token attribution,
summed over tokens a per-neuron one, and its total is ∫ dF/dα = F(x) − F(b)
(completeness, reported as a relative error like IG's). The integrand is
evaluated exactly: the path model (`models/hf_paths.py`) takes dh/dα by
forward-mode AD (a Jacobian-vector product with the tangent x − b), so the
quadrature error falls at the rule's own rate. Captum's `LayerConductance`
instead multiplies by finite differences h(α_{k+1}) − h(α_k) between
consecutive points, a first-order scheme whatever the rule.

  neuron conductance of input token i through a neuron n =
      ∫₀¹ Σ_{(t, j) ∈ n} ∂F/∂h_tj · ∂h_tj/∂x_i(x(α)) · (x_i − b_i) dα,

where a neuron is a hidden index j of one layer at one token position t, or,
when no token is given, at every position (the sum of the per-position
conductances: the flow through that feature wherever it fires). Summed over
input tokens it is the layer conductance of the neuron. Several neurons share
each forward pass along the path (one vector-Jacobian product each).

The path machinery (points, quadrature, point cache, adaptive refinement,
batching) is `integrated_gradients.integrate_paths`; this module only says
what the integrand is and how its parts are read back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from lit_plugins.attribution import integrated_gradients as ig_lib

DEFAULT_TOLERANCE = ig_lib.DEFAULT_TOLERANCE


class Neuron(NamedTuple):
    """A hidden unit: `index` of hidden_states[`layer`], at token position
    `token` (an index into the example's tokens) or at every position (None)."""

    layer: int
    index: int
    token: int | None = None

    @property
    def label(self) -> str:
        """'L3 n17' (the probe's and TX-Ray's labels), '@t' for a token."""
        return f"L{self.layer} n{self.index}" + ("" if self.token is None else f" @{self.token}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_neurons(
    neurons: Sequence[Any], num_layers: int, width: int, num_tokens: Sequence[int] | None = None
) -> list[Neuron]:
    """Validated neurons from (layer, index) or (layer, index, token) tuples.

    Raises ValueError naming the accepted ranges: layer in [0, num_layers],
    index in [0, width), token in [0, the shortest example's token count).
    """
    if isinstance(neurons, (str, bytes)) or not isinstance(neurons, Sequence) or not neurons:
        raise ValueError(
            "neurons must be a non-empty list of (layer, index) or (layer, index, token) tuples."
        )
    out = []
    shortest = None if num_tokens is None else min(num_tokens)
    for item in neurons:
        if not isinstance(item, Sequence) or len(item) not in (2, 3):
            raise ValueError(
                f"Each neuron must be (layer, index) or (layer, index, token), got {item!r}."
            )
        layer, index = item[0], item[1]
        token = item[2] if len(item) == 3 else None
        if not _is_int(layer) or not 0 <= layer <= num_layers:
            raise ValueError(
                f"Neuron {item!r}: layer must be in [0, {num_layers}] (0 = embedding output)."
            )
        if not _is_int(index) or not 0 <= index < width:
            raise ValueError(f"Neuron {item!r}: index must be in [0, {width}) (the layer's width).")
        if token is not None:
            if not _is_int(token) or token < 0 or (shortest is not None and token >= shortest):
                limit = "" if shortest is None else f" [0, {shortest})"
                raise ValueError(
                    f"Neuron {item!r}: token must be a position in every example's tokens{limit},"
                    " or omitted for all positions."
                )
            token = int(token)
        out.append(Neuron(int(layer), int(index), token))
    if len(set(out)) != len(out):
        raise ValueError(f"Neurons must be distinct, got {[n.label for n in out]}.")
    return out


@dataclasses.dataclass
class LayerConductanceResult:
    """One example's layer conductance."""

    conductance: np.ndarray  # [num_tokens, hidden]
    delta_f: float  # F(input) − F(baseline)
    completeness_error: float  # |Σ conductance − ΔF| / |ΔF|
    steps: int  # quadrature nodes of the final level
    evaluations: int  # distinct path points evaluated for this example
    converged: bool  # completeness_error <= tolerance
    tolerance: float = DEFAULT_TOLERANCE
    rule: str = ""  # the quadrature rule of the result (what `auto` chose)
    rule_note: str = ""  # why `auto` chose it

    @property
    def token_attributions(self) -> np.ndarray:
        """[num_tokens]: summed over the layer's neurons."""
        return self.conductance.sum(axis=1)

    @property
    def neuron_attributions(self) -> np.ndarray:
        """[hidden]: each neuron's total conductance, summed over tokens."""
        return self.conductance.sum(axis=0)


@dataclasses.dataclass
class NeuronConductanceResult:
    """One example's neuron conductance for K neurons."""

    attributions: np.ndarray  # [K, num_tokens]: input token i through neuron k
    neurons: list[Neuron]
    input_attributions: np.ndarray  # [num_tokens]: IG on the same nodes (all neurons)
    delta_f: float  # F(input) − F(baseline)
    # The path's quadrature error: |Σ input_attributions − ΔF| / |ΔF|. A single
    # neuron's conductance has no closed-form total to check against; the
    # integrated gradient on the same nodes does.
    completeness_error: float
    steps: int
    evaluations: int
    converged: bool
    tolerance: float = DEFAULT_TOLERANCE
    rule: str = ""
    rule_note: str = ""

    @property
    def neuron_totals(self) -> np.ndarray:
        """[K]: each neuron's conductance summed over input tokens (its layer
        conductance, summed over the neuron's positions)."""
        return self.attributions.sum(axis=1)


def _quadrature_args(rule, steps, tolerance, max_steps, batch_size, fixed_tolerance) -> dict:
    return dict(
        rule=rule,
        steps=steps,
        tolerance=tolerance,
        max_steps=max_steps,
        batch_size=batch_size,
        fixed_tolerance=fixed_tolerance,
    )


def layer_conductance(
    num_examples: int,
    path_fn: ig_lib.PathFn,
    rule: str = ig_lib.DEFAULTS.rule,
    steps: int = ig_lib.DEFAULTS.steps,
    tolerance: float | None = ig_lib.DEFAULTS.tolerance,
    max_steps: int = ig_lib.DEFAULTS.max_steps,
    batch_size: int = ig_lib.DEFAULTS.batch_size,
    fixed_tolerance: float = DEFAULT_TOLERANCE,
) -> list[LayerConductanceResult]:
    """Layer conductance for `num_examples` paths.

    Args:
      num_examples: paths to integrate.
      path_fn: (example, α) points → per point (F, integrand [tokens, hidden])
        with integrand_tj = ∂F/∂h_tj · dh_tj/dα, e.g.
        `hf_paths.make_layer_conductance_path_fn`.
      rule, steps, tolerance, max_steps, batch_size, fixed_tolerance: as
        `integrated_gradients.integrated_gradients` (all its rules, adaptive
        mode by completeness tolerance, at most `batch_size` points per call).
    """
    return [
        LayerConductanceResult(
            r.integral,
            r.delta_f,
            r.completeness_error,
            r.steps,
            r.evaluations,
            r.converged,
            r.tolerance,
            r.rule,
            r.rule_note,
        )
        for r in ig_lib.integrate_paths(
            num_examples,
            path_fn,
            **_quadrature_args(rule, steps, tolerance, max_steps, batch_size, fixed_tolerance),
        )
    ]


def neuron_conductance(
    num_examples: int,
    path_fn: ig_lib.PathFn,
    neurons: Sequence[Neuron],
    rule: str = ig_lib.DEFAULTS.rule,
    steps: int = ig_lib.DEFAULTS.steps,
    tolerance: float | None = ig_lib.DEFAULTS.tolerance,
    max_steps: int = ig_lib.DEFAULTS.max_steps,
    batch_size: int = ig_lib.DEFAULTS.batch_size,
    fixed_tolerance: float = DEFAULT_TOLERANCE,
) -> list[NeuronConductanceResult]:
    """Neuron conductance of K neurons for `num_examples` paths.

    Args:
      path_fn: points → per point (F, integrand [K + 1, tokens]): row k is
        neuron k's integrand per input token, the last row the integrated-
        gradients integrand ∇F · (x − b) per token (for the completeness
        report and adaptive mode), e.g. `hf_paths.make_neuron_conductance_path_fn`.
      neurons: the K neurons, in the rows' order (kept in the results).
      other arguments: as `layer_conductance`; the tolerance is judged on the
        path's completeness (see `NeuronConductanceResult.completeness_error`).
    """
    neurons = list(neurons)
    results = ig_lib.integrate_paths(
        num_examples,
        path_fn,
        **_quadrature_args(rule, steps, tolerance, max_steps, batch_size, fixed_tolerance),
        total=lambda integral: float(np.sum(integral[-1])),
    )
    out = []
    for r in results:
        if r.integral.shape[0] != len(neurons) + 1:
            raise ValueError(
                f"path_fn returned {r.integral.shape[0]} rows for {len(neurons)} neurons;"
                " expected one per neuron plus the integrated-gradients row."
            )
        out.append(
            NeuronConductanceResult(
                r.integral[:-1],
                neurons,
                r.integral[-1],
                r.delta_f,
                r.completeness_error,
                r.steps,
                r.evaluations,
                r.converged,
                r.tolerance,
                r.rule,
                r.rule_note,
            )
        )
    return out
