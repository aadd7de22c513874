"""Rank correlations of the randomization sanity check
(lit_plugins.faithfulness.sanity) against scipy.stats.spearmanr, neutral values
and the pass rule."""

import numpy as np
import pytest
from scipy import stats

from lit_plugins.faithfulness import sanity


def test_rank_correlation_matches_scipy_over_non_special_tokens():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(3, 12))
        a = rng.normal(size=n + 2)
        b = rng.normal(size=n + 2)
        b[1] = b[2]  # a tie: scipy's average ranks
        special = np.zeros(n + 2, bool)
        special[[0, -1]] = True
        a[0], b[0] = 100.0, -100.0  # special tokens must not count
        got = sanity.rank_correlation(a, b, special)
        assert got == pytest.approx(stats.spearmanr(a[1:-1], b[1:-1]).statistic, abs=1e-12)
        got_abs = sanity.rank_correlation(a, b, special, absolute=True)
        expected_abs = stats.spearmanr(np.abs(a[1:-1]), np.abs(b[1:-1])).statistic
        assert got_abs == pytest.approx(expected_abs, abs=1e-12)
    # Hand-checked: a sign flip reverses the ranks (−1), not their magnitudes (+1).
    a = np.array([0.1, 0.5, -0.9, 0.3])
    # Ranks of a: [2, 4, 1, 3]; against [1, 2, 3, 4]: Σd² = 1+4+4+1 = 10,
    # ρ = 1 − 6·10/(4·15) = 0.
    assert sanity.rank_correlation(a, [1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.0, abs=1e-12)
    assert sanity.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert sanity.rank_correlation(a, -a, absolute=True) == pytest.approx(1.0)


def test_neutral_values_never_nan():
    special = np.array([True, False, True])
    # One-token text: one removable token -> ρ undefined -> 0.
    assert sanity.rank_correlation([0.0, 0.7, 0.0], [1.0, -0.2, 1.0], special) == 0.0
    # Constant map (e.g. all zero): undefined -> 0 (scipy gives NaN).
    assert sanity.rank_correlation([0, 0, 0, 0], [1, 2, 3, 4]) == 0.0
    steps = sanity.step_correlations(
        [np.array([0.0, 0.7, 0.0]), np.array([0.0, 1.0, 2.0, 3.0, 0.0])],
        {"head": [np.array([0.0, 0.1, 0.0]), np.array([0.0, 3.0, 2.0, 1.0, 0.0])]},
        [special, np.array([True, False, False, False, True])],
    )
    (head,) = steps
    assert head.defined.tolist() == [False, True]
    assert head.spearman.tolist() == [0.0, -1.0]
    # The mean leaves the undefined one-token example out.
    assert head.mean() == pytest.approx(-1.0)
    assert not np.isnan(head.spearman_abs).any()
    only_one_token = sanity.step_correlations(
        [[0.0, 0.7, 0.0]], {"all": [[0.0, 0.1, 0.0]]}, [special]
    )
    assert only_one_token[0].mean() == 0.0
    assert sanity.passes(only_one_token) is None


def test_pass_rule_and_bad_input():
    maps = [np.array([0.3, 0.1, 0.5, 0.2]), np.array([1.0, 2.0, 3.0])]
    same = sanity.step_correlations(maps, {"head": maps, "embeddings": maps})
    assert [s.mean() for s in same] == [1.0, 1.0]
    assert sanity.passes(same) is False
    shuffled = [np.array([0.2, 0.5, 0.1, 0.3]), np.array([2.0, 3.0, 1.0])]
    # Ranks [3,1,4,2] vs [2,4,1,3]: Σd² = 20, ρ = 1 − 6·20/(4·15) = −1; ranks
    # [1,2,3] vs [2,3,1]: Σd² = 6, ρ = 1 − 6·6/(3·8) = −0.5 -> mean −0.75 (all
    # scores positive: the same for |scores|).
    changed = sanity.step_correlations(maps, {"head": maps, "embeddings": shuffled})
    assert changed[-1].mean() == pytest.approx(-0.75)
    assert changed[-1].mean(absolute=True) == pytest.approx(-0.75)
    assert sanity.passes(changed) is True
    assert sanity.passes(changed, threshold=-0.9) is False
    with pytest.raises(ValueError, match="3 and 2 tokens"):
        sanity.rank_correlation([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        sanity.rank_correlation([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="'head' has 1 maps for 2"):
        sanity.step_correlations(maps, {"head": maps[:1]})
    with pytest.raises(ValueError, match="No randomization step"):
        sanity.passes([])
