"""LIT's multi-label metrics at the served model's threshold.

LIT's `MultilabelMetrics` counts a label as predicted when its score is above 0.5,
whatever the model's threshold (`lit.multilabel`). `ThresholdMultilabelMetrics` is
the same component reading the served model's threshold, and `plugin_metrics()`
puts it in LIT's place. Only the served app imports this module: LIT's metrics
(sacrebleu, nltk, rouge) and scikit-learn cost ~110 MiB that a corpus process
does not need (tests/test_import_weight.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lit_nlp.api import types as lit_types
from lit_nlp.components import metrics as lit_metrics
from sklearn import metrics as sk_metrics
from sklearn import preprocessing as sk_preprocessing

from lit_plugins.lit.multilabel import (
    DEFAULT_THRESHOLD,
    check_threshold,
    model_threshold,
    predicted,
)

THRESHOLD_KEY = "threshold"  # a metric's per-field config entry
METRICS_NAME = "multilabel"  # LIT's name for its multi-label metrics


def multilabel_scores(
    gold: Sequence[Sequence[str]],
    preds: Sequence[Sequence[tuple[str, float]]],
    vocab: Sequence[str],
    threshold: float,
) -> dict[str, float]:
    """LIT's multi-label metrics (exact match; precision, recall, F1 averaged over
    examples) with `threshold` in place of its fixed 0.5."""
    binarizer = sk_preprocessing.MultiLabelBinarizer(classes=list(vocab))
    binarizer.fit([list(vocab)])
    v_true = binarizer.transform([list(g) for g in gold])
    v_pred = binarizer.transform([predicted(p, threshold) for p in preds])
    return {
        "exactmatch": sk_metrics.accuracy_score(v_true, v_pred),
        "precision": sk_metrics.precision_score(v_true, v_pred, average="samples", zero_division=0),
        "recall": sk_metrics.recall_score(v_true, v_pred, average="samples", zero_division=0),
        "f1": sk_metrics.f1_score(v_true, v_pred, average="samples", zero_division=0),
    }


class ThresholdMultilabelMetrics(lit_metrics.MultilabelMetrics):
    """LIT's multi-label metrics at the served model's threshold (LIT's own count a
    label as predicted above 0.5 whatever the model says). Same fields, same
    formulas; examples with no gold and no predicted label count 0 in precision,
    recall and F1, as in scikit-learn's default."""

    def run(self, inputs, model, dataset, model_outputs=None, config=None):
        threshold = model_threshold(model)
        config = dict(config or {})
        for name, field in model.output_spec().items():
            if isinstance(field, lit_types.SparseMultilabelPreds):
                config[name] = {**(config.get(name) or {}), THRESHOLD_KEY: threshold}
        return super().run(inputs, model, dataset, model_outputs, config)

    def compute(self, labels, preds, label_spec, pred_spec, config=None, indices=None, metas=None):
        if not labels or not preds:
            return {}
        if len(labels) != len(preds):
            raise ValueError(
                f"Must have exactly as many labels as predictions; got {len(labels)} labels "
                f"and {len(preds)} predictions."
            )
        if not isinstance(label_spec, lit_types.SparseMultilabel) or not isinstance(
            pred_spec, lit_types.SparseMultilabelPreds
        ):
            raise TypeError("Multi-label metrics need SparseMultilabel gold labels and preds.")
        vocab = list(pred_spec.vocab or label_spec.vocab or [])
        if not vocab:
            vocab = sorted({l for g in labels for l in g} | {l for p in preds for l, _ in p})
        threshold = check_threshold((config or {}).get(THRESHOLD_KEY, DEFAULT_THRESHOLD))
        return multilabel_scores(labels, preds, vocab, threshold)


def plugin_metrics() -> dict[str, Any]:
    """LIT 1.3's default metrics with the multi-label ones at the model's threshold
    (for `dev_server.Server(..., metrics=...)`)."""
    # Imported here: LIT's components core imports every LIT component (SHAP,
    # UMAP, ...), ~200 MiB that every corpus process paid when it was imported
    # with this module (tests/test_import_weight.py).
    from lit_nlp.components import core as lit_core  # pylint: disable=g-import-not-at-top

    found = dict(lit_core.default_metrics())
    found[METRICS_NAME] = ThresholdMultilabelMetrics()
    return found
