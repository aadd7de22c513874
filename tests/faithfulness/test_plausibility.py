"""Plausibility against human rationales (lit_plugins.faithfulness.plausibility):
hand-made rationales with the expected numbers worked out by hand, AUPRC against
sklearn's average precision and a hand-written one, bad input."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from lit_plugins.faithfulness import plausibility as plaus

# [CLS] t1 … t8 [SEP]; the special tokens score highest and must be ignored.
SCORES = np.array([9.0, 0.9, 0.8, -0.5, 0.1, 0.7, 0.2, 0.05, -0.1, 9.0])
SPECIAL = np.array([True] + [False] * 8 + [True])


def test_hand_made_example():
    # Rationale t1 t2 t3 t7: k = 4. Top-4 of the map: t1 (0.9), t2 (0.8), t5 (0.7),
    # t6 (0.2) -> 2 of 4 right: P = R = F1 = 1/2.
    # Spans: predicted [1, 3) and [5, 7), human [1, 4) and [7, 8).
    # IOU([1,3), [1,4)) = 2/3 ≥ 0.5: a match; [5,7) overlaps nothing -> 1 of 2
    # predicted spans and 1 of 2 human spans: IOU-F1 = 1/2.
    # AUPRC: ranking t1 T, t2 T, t5 F, t6 F, t4 F, t7 T, t8 F, t3 T -> precision at
    # each hit 1, 1, 3/6, 4/8 -> AP = (1 + 1 + 0.5 + 0.5) / 4 = 0.75.
    got = plaus.score(SCORES, [1, 2, 3, 7], SPECIAL)
    assert got.k == 4 and got.predicted_tokens == 4
    assert got.token_precision == pytest.approx(0.5)
    assert got.token_recall == pytest.approx(0.5)
    assert got.token_f1 == pytest.approx(0.5)
    assert (got.matched_spans, got.predicted_spans, got.rationale_spans) == (1, 2, 2)
    assert got.iou_f1 == pytest.approx(0.5)
    assert got.auprc == pytest.approx(0.75)
    # The same rationale as a boolean mask gives the same numbers.
    mask = np.zeros(10, bool)
    mask[[1, 2, 3, 7]] = True
    assert plaus.score(SCORES, mask, SPECIAL) == got


def test_iou_threshold_edge_and_perfect_spans():
    # Rationale t1 t2 t3 t6: top-4 = t1 t2 t5 t6 -> 3 of 4: F1 = 3/4.
    # Spans: [1,3) vs [1,4): IOU 2/3; [5,7) vs [6,7): IOU 1/2 (≥ 0.5 counts) -> 2/2.
    got = plaus.score(SCORES, [1, 2, 3, 6], SPECIAL)
    assert got.token_f1 == pytest.approx(0.75)
    assert got.iou_f1 == pytest.approx(1.0)
    # A stricter threshold drops the half-overlap: P = R = 1/2.
    strict = plaus.score(SCORES, [1, 2, 3, 6], SPECIAL, iou_threshold=0.6)
    assert strict.iou_f1 == pytest.approx(0.5)


def test_ties_only_positive_and_one_token():
    # A LIME-like map: the word "ab" is two tied pieces at 0.5. k = 1 takes both
    # (the tie group), whichever comes first: P = 1/2, R = 1, F1 = 2/3.
    scores = np.array([0.0, 0.5, 0.5, 0.2, 0.0])
    special = np.array([True, False, False, False, True])
    for evidence in ([1], [2]):
        got = plaus.score(scores, evidence, special)
        assert got.predicted_tokens == 2
        assert got.token_f1 == pytest.approx(2 / 3)
    # All-negative map: no positive token, no hard rationale -> F1 and IOU-F1 0;
    # AUPRC ranks the raw scores: evidence t2 (−0.1) ranks first -> AP 1.
    neg = np.array([0.0, -0.3, -0.1, -0.2, 0.0])
    got = plaus.score(neg, [2], special)
    assert (got.token_f1, got.iou_f1, got.predicted_tokens) == (0.0, 0.0, 0)
    assert got.auprc == pytest.approx(1.0)
    # Without only_positive the top-1 is t2 itself.
    assert plaus.score(neg, [2], special, only_positive=False).token_f1 == pytest.approx(1.0)
    # One-token text: the token is the rationale.
    one = plaus.score([0.0, 0.3, 0.0], [1], [True, False, True])
    assert one.metrics() == {"token_f1": 1.0, "iou_f1": 1.0, "auprc": 1.0}
    one_neg = plaus.score([0.0, -0.3, 0.0], [1], [True, False, True])
    assert one_neg.metrics() == {"token_f1": 0.0, "iou_f1": 0.0, "auprc": 1.0}


def hand_average_precision(labels, scores):
    """Σ over hits of precision at that rank / number of hits (distinct scores)."""
    order = np.argsort(-scores)
    hits = labels[order]
    precision_at = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float(np.sum(precision_at * hits) / hits.sum())


def test_auprc_matches_sklearn_and_hand_formula():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(3, 15))
        scores = rng.normal(size=n + 2)
        special = np.zeros(n + 2, bool)
        special[[0, -1]] = True
        labels = rng.random(n) < 0.4
        if not labels.any():
            labels[0] = True
        rationale = np.flatnonzero(labels) + 1
        got = plaus.score(scores, rationale, special).auprc
        assert got == pytest.approx(average_precision_score(labels, scores[1:-1]), abs=1e-12)
        assert got == pytest.approx(hand_average_precision(labels, scores[1:-1]), abs=1e-12)
        assert 0.0 < got <= 1.0


def test_dataset_empty_rationales_and_micro_iou():
    maps = [SCORES, SCORES, SCORES]
    rationales = [[1, 2, 3, 7], [], [1, 2, 3, 6]]
    specials = [SPECIAL] * 3
    results = plaus.score_dataset(maps, rationales, specials)
    assert results[1] is None
    assert results[0].iou_f1 == pytest.approx(0.5) and results[2].iou_f1 == pytest.approx(1.0)
    # Micro: matched 1 + 2 = 3 of 2 + 2 predicted spans and 2 + 2 human spans ->
    # P = R = 3/4, F1 = 3/4.
    assert plaus.micro_iou_f1(results) == pytest.approx(0.75)
    assert plaus.micro_iou_f1([None]) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match=r"indices \[12\] are outside"):
        plaus.score(SCORES, [1, 12], SPECIAL)
    with pytest.raises(ValueError, match="outside"):
        plaus.score(SCORES, [-1], SPECIAL)
    with pytest.raises(ValueError, match="special tokens"):
        plaus.score(SCORES, [0, 1], SPECIAL)
    with pytest.raises(ValueError, match="empty"):
        plaus.score(SCORES, [], SPECIAL)
    with pytest.raises(ValueError, match="mask of 3 values for 10"):
        plaus.score(SCORES, [True, False, True], SPECIAL)
    with pytest.raises(ValueError, match="integer token indices"):
        plaus.score(SCORES, [1.5], SPECIAL)
    with pytest.raises(ValueError, match="finite"):
        plaus.score([np.nan, 1.0], [1])
    with pytest.raises(ValueError, match=r"Example 1: .*outside"):
        plaus.score_dataset([SCORES, SCORES], [[1], [40]], [SPECIAL, SPECIAL])
