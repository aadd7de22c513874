"""Multi-label heads in LIT (``problem_type="multi_label_classification"``).

A multi-label head scores every label on its own: probability = sigmoid(logit), and
an example has every label whose probability is above the threshold (0.5 unless the
user sets another). In LIT 1.3 that is

* the gold labels: a `SparseMultilabel` input field (a list of label names; empty =
  no label);
* the prediction: a `SparseMultilabelPreds` field, every label with its probability
  in the head's order (LIT's "Multilabel Results" module shows them beside the gold
  labels; LIME reads them by label);
* the metrics: LIT's `MultilabelMetrics` (exact match, and precision, recall and F1
  averaged over examples), which counts a label as predicted when its score is above
  0.5; `lit.multilabel_metrics` holds the same component at the served model's own
  threshold (a module of its own: LIT's metrics and scikit-learn are for the served
  app, not for every process that wraps a model).

The gradient methods explain one label at a time, as for single-label heads: the
target is that label's *probability* (its sigmoid, as the single-label target is its
softmax probability), chosen with the ``grad_class`` input field or an interpreter's
"Class to explain"; by default the highest-scoring label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.lit import specs

DEFAULT_THRESHOLD = 0.5


def check_threshold(threshold: Any) -> float:
    """The threshold as a float in [0, 1], or a ValueError saying what is accepted."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(
            f"threshold must be a probability in [0, 1] (a label is predicted when its "
            f"sigmoid probability is above it), got {threshold!r}."
        )
    return value


def scored_labels(labels: Sequence[str], probs: np.ndarray) -> list[tuple[str, float]]:
    """A `SparseMultilabelPreds` value: every label with its probability, in the
    head's order."""
    return [(str(l), float(p)) for l, p in zip(labels, probs)]


def predicted(scored: Sequence[tuple[str, float]], threshold: float) -> list[str]:
    """The labels whose probability is above `threshold` (LIT's rule: strictly above)."""
    return [l for l, p in scored if p is not None and p > threshold]


def gold_spec(labels: Sequence[str]) -> lit_types.SparseMultilabel:
    return lit_types.SparseMultilabel(vocab=list(labels), required=False)


def preds_spec(labels: Sequence[str], parent: str) -> lit_types.SparseMultilabelPreds:
    return lit_types.SparseMultilabelPreds(vocab=list(labels), parent=parent)


def model_threshold(model: lit_model.Model) -> float:
    """The threshold of the model under LIT's wrappers (0.5 for other models)."""
    value = getattr(specs.unwrap(model), "threshold", DEFAULT_THRESHOLD)
    return check_threshold(DEFAULT_THRESHOLD if value is None else value)
