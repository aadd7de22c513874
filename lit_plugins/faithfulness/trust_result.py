"""What the trust checks of salience maps use and give, LIT-free (numpy, pandas):
`TrustSettings` and `TrustResult` (per method and example: the randomization
sanity check's correlations, plausibility, infidelity, max-sensitivity), with
the tables, summaries with bootstrap intervals, curves and verdicts that the
Trust Checks interpreter and the ``trust-report`` command show.
`lit_plugins.lit.trust_evaluation.evaluate` computes a `TrustResult` on a LIT
model; see docs/trust-checks.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from lit_plugins.faithfulness import metrics as core
from lit_plugins.faithfulness import plausibility, sanity
from lit_plugins.faithfulness import summary as summary_lib

RANDOM = core.RANDOM
# The summary metrics: column -> label (arrows: which way is better).
METRICS = {
    "rho_all": "ρ all randomized ↓",
    "rho_abs_all": "|ρ| all randomized ↓",
    "token_f1": "token F1 ↑",
    "iou_f1": "IOU-F1 ↑",
    "auprc": "AUPRC ↑",
    "infidelity": "infidelity ↓",
    "max_sensitivity": "max-sensitivity ↓",
}
LOWER_IS_BETTER = {"rho_all", "rho_abs_all", "infidelity", "max_sensitivity"}


@dataclasses.dataclass(frozen=True)
class TrustSettings:
    """What the checks use; every field is part of a result's identity."""

    seed: int = 0
    threshold: float = sanity.DEFAULT_THRESHOLD
    rationale_field: str = "rationale"
    infidelity_samples: int = 16
    sensitivity_samples: int = 8
    sensitivity_radius: float = 0.02
    independent: bool = False

    def __post_init__(self):
        checks = [
            ("seed", 0 <= self.seed <= 2**31 - 1, "an integer in [0, 2^31)"),
            ("threshold", -1 <= self.threshold <= 1, "a number in [-1, 1]"),
            ("infidelity_samples", 0 <= self.infidelity_samples <= 4096, "0 (off) to 4096"),
            ("sensitivity_samples", 0 <= self.sensitivity_samples <= 4096, "0 (off) to 4096"),
            ("sensitivity_radius", 0 < self.sensitivity_radius < np.inf, "a number > 0"),
        ]
        for name, ok, accepted in checks:
            if not ok:
                raise ValueError(f"{name} must be {accepted}, got {getattr(self, name)!r}.")
        if not str(self.rationale_field).strip():
            raise ValueError("rationale_field must name an example field, got an empty name.")


@dataclasses.dataclass
class TrustResult:
    """Per method (with `RANDOM` last) and per example: the checks' numbers.

    cascade / independent: {method: [StepCorrelation per step]} (independent:
    None unless asked); plausibility: {method: [scores or None per example]};
    infidelity / sensitivity: {method: values [N]} (None: off; sensitivity
    leaves out methods that do not read embeddings, see `notes`);
    rationale_notes: per example, why it has no plausibility ("" if it has);
    notes: {method: why a check is missing}; errors: {method: message} of
    methods that failed and were left out.
    """

    methods: list[str]
    steps: list[str]
    cascade: dict[str, list[sanity.StepCorrelation]]
    independent: dict[str, list[sanity.StepCorrelation]] | None
    plausibility: dict[str, list[plausibility.PlausibilityScores | None]]
    infidelity: dict[str, np.ndarray] | None
    sensitivity: dict[str, np.ndarray] | None
    rationale_notes: list[str]
    targets: list[str]
    notes: dict[str, str]
    errors: dict[str, str]
    settings: TrustSettings

    @property
    def num_examples(self) -> int:
        return len(self.targets)

    def values(self, method: str, metric: str) -> np.ndarray:
        """`metric` (a `METRICS` key) of `method` per example; NaN where undefined."""
        n = self.num_examples
        if metric in ("rho_all", "rho_abs_all"):
            last = self.cascade[method][-1]
            values = last.spearman_abs if metric == "rho_abs_all" else last.spearman
            return np.where(last.defined, values, np.nan)
        if metric in plausibility.METRICS:
            return np.array(
                [np.nan if r is None else r.metrics()[metric] for r in self.plausibility[method]]
            )
        source = self.infidelity if metric == "infidelity" else self.sensitivity
        if source is None or method not in source:
            return np.full(n, np.nan)
        return np.asarray(source[method], dtype=np.float64)

    def verdicts(self) -> dict[str, bool | None]:
        """{method: passes the sanity check (None: nothing to judge)}."""
        return {m: sanity.passes(self.cascade[m], self.settings.threshold) for m in self.methods}

    def table(self) -> pd.DataFrame:
        """One row per (example, method): ρ after every cascading step (and
        alone, ``rho_only <step>``, when independent randomization ran; 0, the
        neutral value, where `defined` is False), the `METRICS` (NaN where
        undefined: left out of the summaries), and the explained class."""
        rows = []
        for i in range(self.num_examples):
            for m in self.methods:
                row: dict[str, Any] = {"example": i, "method": m, "target": self.targets[i]}
                for step in self.cascade[m]:
                    row[f"rho {step.step}"] = float(step.spearman[i])
                if self.independent is not None:
                    for step in self.independent[m]:
                        row[f"rho_only {step.step}"] = float(step.spearman[i])
                row["defined"] = bool(self.cascade[m][-1].defined[i])
                for metric in METRICS:
                    row[metric] = float(self.values(m, metric)[i])
                rows.append(row)
        return pd.DataFrame(rows)

    def summary(self, level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Per method × metric: mean, median, bootstrap interval, n (undefined
        values left out), and whether lower is better."""
        rows = []
        for m in self.methods:
            for metric in METRICS:
                stats = summary_lib.summarize(self.values(m, metric), level, n_boot, seed)
                rows.append(
                    {
                        "method": m,
                        "metric": metric,
                        **stats,
                        "lower_is_better": metric in LOWER_IS_BETTER,
                    }
                )
        return pd.DataFrame(rows)

    def curves(self, independent: bool = False) -> pd.DataFrame:
        """Mean ρ (signed and of |scores|) per method and step, over the
        examples where it is defined; ``original`` (ρ = 1) first for cascades."""
        source = self.independent if independent else self.cascade
        if source is None:
            raise ValueError("Independent randomization was not run (settings.independent).")
        rows = []
        for m in self.methods:
            if not independent:
                rows.append({"method": m, "step": "original", "rho": 1.0, "rho_abs": 1.0})
            for step in source[m]:
                rows.append(
                    {
                        "method": m,
                        "step": step.step,
                        "rho": step.mean(),
                        "rho_abs": step.mean(absolute=True),
                    }
                )
        return pd.DataFrame(rows)
