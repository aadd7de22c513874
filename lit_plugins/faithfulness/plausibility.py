"""Plausibility of token-salience maps: agreement with human rationales, as
ERASER (DeYoung et al. 2020) and ferret define it (LIT-free: numpy, sklearn).

A human rationale marks the evidence tokens of an example (a boolean mask over
its tokens, or their indices). For a signed salience map s over the same
tokens (special tokens included, as everywhere in `faithfulness`; they are
never candidates):

* **Token F1**: the map's hard rationale is its top-k tokens, k = the number
  of rationale tokens (ERASER's choice of k for soft scores, per example);
  precision, recall and F1 of that set against the rationale.
* **IOU-F1** (ERASER's partial match): the hard and the human rationales are
  cut into spans (maximal runs of consecutive marked tokens); a predicted span
  matches when its best token IOU with a human span is ≥ 0.5; precision =
  matched / predicted spans, recall = matched / human spans, F1 of the two.
* **AUPRC**: average precision of the scores ranking the tokens against the
  rationale mask (sklearn's ``average_precision_score``, as ERASER's
  ``score_soft_tokens``).

Choices, documented and tested:

* ``only_positive=True`` (ferret's default): tokens with s ≤ 0 are never in
  the hard rationale, so it may be shorter than k (an all-negative map has
  token F1 and IOU-F1 0). AUPRC ranks the raw signed scores (ERASER; ferret
  clips negatives to 0 first with ``only_pos``, which ties every negative
  token).
* **Ties**: as the erasure metrics, the top-k set is extended to every token
  tied with the k-th (ferret's argsort picks among equal scores by position);
  a map with ties may so predict more than k tokens.
* **AUPRC**: ferret integrates its precision-recall curve with the trapezoid
  rule (sklearn ``auc``); ERASER and this module use average precision (the
  step-wise sum, no interpolation).
* **Bad input**: rationale indices outside the example, a mask of the wrong
  length, or a rationale on a special token raise ValueError. An **empty
  rationale** makes every metric undefined: `score` raises, `score_dataset`
  returns None for that example and the summaries leave it out. A one-token
  text is well defined (the token is the rationale: F1 1 if it is predicted,
  AUPRC 1). Nothing returns NaN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as sk_metrics

METRICS = ("token_f1", "iou_f1", "auprc")
IOU_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class PlausibilityScores:
    """One map against one human rationale."""

    token_precision: float
    token_recall: float
    token_f1: float
    iou_f1: float
    auprc: float
    k: int  # rationale tokens
    predicted_tokens: int  # size of the map's hard rationale (≤ k unless ties)
    matched_spans: int  # predicted spans with IOU ≥ threshold
    predicted_spans: int
    rationale_spans: int

    def metrics(self) -> dict[str, float]:
        return {m: float(getattr(self, m)) for m in METRICS}


def rationale_mask(rationale, num_tokens: int, special: np.ndarray | None = None) -> np.ndarray:
    """A rationale as a boolean mask over `num_tokens` tokens.

    `rationale` is a boolean mask of length `num_tokens`, or a sequence of
    integer token indices (a 0/1 integer list is read as indices: pass
    booleans for a mask). Out-of-range indices, a mask of another length
    or a marked special token raise ValueError."""
    special = np.zeros(num_tokens, bool) if special is None else np.asarray(special, bool)
    values = np.asarray(rationale)
    if values.dtype == bool:
        mask = values.reshape(-1)
    elif values.size == 0 or np.issubdtype(values.dtype, np.integer):
        idx = values.astype(np.int64).reshape(-1)
        bad = idx[(idx < 0) | (idx >= num_tokens)]
        if bad.size:
            raise ValueError(
                f"Rationale token indices {sorted(set(bad.tolist()))} are outside the "
                f"example's {num_tokens} tokens (0..{num_tokens - 1})."
            )
        mask = np.zeros(num_tokens, bool)
        mask[idx] = True
    else:
        raise ValueError(
            "A rationale must be a boolean mask over the tokens or a list of integer "
            f"token indices, got dtype {values.dtype}."
        )
    if mask.shape != (num_tokens,):
        raise ValueError(f"Rationale mask of {mask.size} values for {num_tokens} tokens.")
    if (mask & special).any():
        raise ValueError(
            f"The rationale marks special tokens at {np.flatnonzero(mask & special).tolist()}; "
            "special tokens ([CLS], [SEP], …) cannot be evidence."
        )
    return mask


def top_k_mask(
    scores: np.ndarray, k: int, candidates: np.ndarray, only_positive: bool = True
) -> np.ndarray:
    """The map's hard rationale: the k highest-scoring candidate tokens,
    extended over ties with the k-th; with `only_positive` scores ≤ 0 never."""
    scores = np.asarray(scores, dtype=np.float64)
    out = np.zeros(scores.size, bool)
    cand = np.flatnonzero(candidates)
    if k <= 0 or cand.size == 0:
        return out
    values = scores[cand]
    kth = np.sort(values)[::-1][min(k, values.size) - 1]
    chosen = values >= kth
    if only_positive:
        chosen &= values > 0
    out[cand[chosen]] = True
    return out


def spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as half-open (start, end) intervals."""
    mask = np.asarray(mask, bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], mask, [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union else 0.0


def _f1(p: float, r: float) -> float:
    return 0.0 if p == 0 or r == 0 else 2 * p * r / (p + r)


def matched_spans(
    predicted: list[tuple[int, int]], truth: list[tuple[int, int]], threshold: float
) -> int:
    """Predicted spans whose best IOU with a human span is ≥ threshold (ERASER)."""
    return sum(max((_iou(p, t) for t in truth), default=0.0) >= threshold for p in predicted)


def score(
    scores,
    rationale,
    special: np.ndarray | None = None,
    only_positive: bool = True,
    iou_threshold: float = IOU_THRESHOLD,
) -> PlausibilityScores:
    """Token F1, IOU-F1 and AUPRC of one map against one rationale.

    Args:
      scores: signed salience over all tokens (special tokens included).
      rationale: mask or indices over the same tokens (see `rationale_mask`).
      special: True for tokens that are never candidates ([CLS], [SEP], …).
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError("Salience scores must be a non-empty vector of finite numbers.")
    special = np.zeros(values.size, bool) if special is None else np.asarray(special, bool)
    if special.shape != values.shape:
        raise ValueError(f"special-token mask of {special.size} values for {values.size} tokens.")
    truth = rationale_mask(rationale, values.size, special)
    k = int(truth.sum())
    if k == 0:
        raise ValueError(
            "The rationale is empty: plausibility is undefined for an example without "
            "evidence tokens (score_dataset leaves such examples out)."
        )
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}.")
    candidates = ~special
    predicted = top_k_mask(values, k, candidates, only_positive)
    tp = int((predicted & truth).sum())
    n_pred = int(predicted.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / k
    pred_spans, true_spans = spans(predicted), spans(truth)
    matched = matched_spans(pred_spans, true_spans, iou_threshold)
    span_p = matched / len(pred_spans) if pred_spans else 0.0
    span_r = matched / len(true_spans)
    cand = np.flatnonzero(candidates)
    labels = truth[cand]
    if labels.all():  # every candidate is evidence: any ranking is perfect
        auprc = 1.0
    else:
        auprc = float(sk_metrics.average_precision_score(labels, values[cand]))
    return PlausibilityScores(
        token_precision=precision,
        token_recall=recall,
        token_f1=_f1(precision, recall),
        iou_f1=_f1(span_p, span_r),
        auprc=auprc,
        k=k,
        predicted_tokens=n_pred,
        matched_spans=matched,
        predicted_spans=len(pred_spans),
        rationale_spans=len(true_spans),
    )


def score_dataset(
    maps: Sequence,
    rationales: Sequence,
    specials: Sequence | None = None,
    only_positive: bool = True,
    iou_threshold: float = IOU_THRESHOLD,
) -> list[PlausibilityScores | None]:
    """`score` per example; None where the rationale is empty (undefined)."""
    if len(maps) != len(rationales):
        raise ValueError(f"{len(maps)} maps for {len(rationales)} rationales.")
    if specials is not None and len(specials) != len(maps):
        raise ValueError(f"{len(specials)} special-token masks for {len(maps)} maps.")
    out: list[PlausibilityScores | None] = []
    for i, (values, rationale) in enumerate(zip(maps, rationales)):
        special = None if specials is None else specials[i]
        n = np.asarray(values).size
        sp = np.zeros(n, bool) if special is None else np.asarray(special, bool)
        try:
            if not rationale_mask(rationale, n, sp).any():
                out.append(None)
                continue
            out.append(score(values, rationale, sp, only_positive, iou_threshold))
        except ValueError as err:
            raise ValueError(f"Example {i}: {err}") from None
    return out


def micro_iou_f1(results: Sequence[PlausibilityScores | None]) -> float:
    """ERASER's micro-averaged IOU-F1 over a dataset: matched / predicted and
    matched / human spans summed over the examples (None entries skipped;
    0 when nothing is left)."""
    kept = [r for r in results if r is not None]
    matched = sum(r.matched_spans for r in kept)
    predicted = sum(r.predicted_spans for r in kept)
    truth = sum(r.rationale_spans for r in kept)
    if not predicted or not truth:
        return 0.0
    return _f1(matched / predicted, matched / truth)
