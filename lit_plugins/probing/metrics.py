"""Probe evaluation metrics and NeuroX-style `evaluate_probe`.

Thin wrappers over scipy/sklearn so every metric has one obvious definition;
names follow `neurox.interpretation.metrics.compute_score`.  Differences from
NeuroX, chosen because NeuroX's behaviour there is an error or a surprise:
  * "f1" is *macro* F1 over the classes present in labels or predictions
    (NeuroX calls sklearn's default binary F1, which raises on multi-class
    data); `f1_per_class` gives each class's F1.
  * "pearson_and_spearman" returns a float (NeuroX returns a 1-tuple).
  * Correlations of a constant vector are undefined; we return 0.0 rather
    than NaN, so results stay JSON-serialisable for LIT's front end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

METRICS = (
    "accuracy",
    "f1",
    "accuracy_and_f1",
    "pearson",
    "spearman",
    "pearson_and_spearman",
    "matthews_corrcoef",
)


def _sklearn_metrics():
    # Imported on first use: scikit-learn's metrics cost ~75 MiB, which every corpus
    # process paid at import (tests/test_import_weight.py); only F1 and MCC need it.
    from sklearn import metrics  # pylint: disable=g-import-not-at-top

    return metrics


def _pair(preds, labels):
    preds = np.asarray(preds)
    labels = np.asarray(labels)
    if preds.shape[0] != labels.shape[0]:
        raise ValueError(
            f"Mismatched lengths: {preds.shape[0]} predictions vs {labels.shape[0]} labels."
        )
    if preds.shape[0] == 0:
        raise ValueError("Cannot score empty predictions.")
    return preds, labels


def accuracy(preds, labels) -> float:
    """Fraction of exact matches."""
    preds, labels = _pair(preds, labels)
    return float(np.mean(preds == labels))


def f1(preds, labels) -> float:
    """Macro-averaged F1 (each class counts equally, rare tags included)."""
    preds, labels = _pair(preds, labels)
    return float(_sklearn_metrics().f1_score(labels, preds, average="macro", zero_division=0))


def f1_per_class(preds, labels) -> dict:
    """{class: F1} for every class present in labels or predictions."""
    preds, labels = _pair(preds, labels)
    classes = np.unique(np.concatenate([labels, preds]))
    scores = _sklearn_metrics().f1_score(
        labels, preds, labels=classes, average=None, zero_division=0
    )
    return {_key(c): float(s) for c, s in zip(classes, scores)}


def accuracy_and_f1(preds, labels) -> float:
    """Mean of accuracy and macro F1 (GLUE's MRPC/QQP-style summary)."""
    return (accuracy(preds, labels) + f1(preds, labels)) / 2.0


def _correlation(fn, preds, labels) -> float:
    preds, labels = _pair(preds, labels)
    preds = preds.astype(np.float64)
    labels = labels.astype(np.float64)
    if preds.shape[0] < 2 or np.all(preds == preds[0]) or np.all(labels == labels[0]):
        return 0.0
    return float(fn(preds, labels)[0])


def pearson(preds, labels) -> float:
    """Pearson's r (linear correlation) for regression probes."""
    return _correlation(stats.pearsonr, preds, labels)


def spearman(preds, labels) -> float:
    """Spearman's rho (rank correlation) for regression probes."""
    return _correlation(stats.spearmanr, preds, labels)


def pearson_and_spearman(preds, labels) -> float:
    """Mean of Pearson and Spearman (GLUE STS-B summary)."""
    return (pearson(preds, labels) + spearman(preds, labels)) / 2.0


def matthews_corrcoef(preds, labels) -> float:
    """Matthews correlation (multi-class generalisation), chance-corrected."""
    preds, labels = _pair(preds, labels)
    return float(_sklearn_metrics().matthews_corrcoef(labels, preds))


_FUNCS = {
    "accuracy": accuracy,
    "f1": f1,
    "accuracy_and_f1": accuracy_and_f1,
    "pearson": pearson,
    "spearman": spearman,
    "pearson_and_spearman": pearson_and_spearman,
    "matthews_corrcoef": matthews_corrcoef,
}


def compute_score(preds, labels, metric: str) -> float:
    """Score by metric name (one of `METRICS`)."""
    if metric not in _FUNCS:
        raise ValueError(f"Unknown metric {metric!r}; expected one of {METRICS}.")
    return _FUNCS[metric](preds, labels)


def _key(c):
    return c.item() if hasattr(c, "item") else c


def evaluate_probe(
    probe: Any,
    X: Any,
    y: Any,
    idx_to_class: Mapping | None = None,
    return_predictions: bool = False,
    source_tokens: Sequence[Sequence[str]] | None = None,
    batch_size: int | None = None,
    metric: str = "accuracy",
):
    """Scores a fitted probe: overall and per class, like NeuroX.

    Args:
      probe: anything with `predict(X)` (e.g. a fitted `LinearProbe`).
      X: activations [N, H].  y: true labels [N].
      idx_to_class: optional {label in y: display name}.  If given, per-class
        keys are the names, as in NeuroX; otherwise, for classification, the
        class labels themselves (NeuroX omits per-class scores then).
      return_predictions: also return [(source_token, predicted_label,
        was_correct)] per example; source tokens come from flattening
        `source_tokens`, else the example index.
      batch_size: accepted for NeuroX compatibility; ignored.
      metric: one of `METRICS`.

    Returns:
      {"__OVERALL__": score, <class>: score, ...} (and predictions if asked).
      A class's score is the metric on the examples whose true label is that
      class (for "accuracy" that is the class's recall, NeuroX's definition),
      except for "f1", where it is the class's own one-vs-rest F1.  Classes
      with no examples in y score 0.0 (the value NeuroX intends).  Regression
      probes get only "__OVERALL__".
    """
    del batch_size
    preds = np.asarray(probe.predict(X))
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != preds.shape[0]:
        raise ValueError(
            f"y must be 1-D with one label per row of X ({preds.shape[0]}), got shape {y.shape}."
        )
    scores = {"__OVERALL__": compute_score(preds, y, metric)}

    is_classification = getattr(probe, "classes_", None) is not None
    if idx_to_class is not None:
        class_names = dict(idx_to_class.items())
    elif is_classification:
        labels = np.unique(np.concatenate([np.asarray(probe.classes_), y]))
        class_names = {_key(c): _key(c) for c in labels}
    else:
        class_names = {}

    per_class_f1 = f1_per_class(preds, y) if metric == "f1" else None
    for label, name in class_names.items():
        members = np.where(y == label)[0]
        if members.shape[0] == 0:
            scores[name] = 0.0
        elif per_class_f1 is not None:
            scores[name] = per_class_f1.get(label, 0.0)
        else:
            scores[name] = compute_score(preds[members], y[members], metric)

    if not return_predictions:
        return scores
    if source_tokens is not None:
        src = [t for sentence in source_tokens for t in sentence]
        if len(src) != preds.shape[0]:
            raise ValueError(
                f"source_tokens has {len(src)} tokens but there are {preds.shape[0]} examples."
            )
    else:
        src = list(range(preds.shape[0]))
    predictions = []
    for tok, p, t in zip(src, preds, y):
        key = (
            idx_to_class[_key(p)]
            if idx_to_class is not None and _key(p) in idx_to_class
            else _key(p)
        )
        predictions.append((tok, key, bool(p == t)))
    return scores, predictions
