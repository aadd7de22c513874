"""The one bootstrap (util.stats), checked against closed forms."""

import math

import numpy as np
import pytest

from lit_plugins.faithfulness import summary
from lit_plugins.txray import bootstrap as txray_bootstrap
from lit_plugins.util import stats


def test_percentile_interval_is_the_central_quantiles():
    reps = np.arange(1001, dtype=np.float64)[:, None] * np.array([1.0, -2.0])
    lo, hi = stats.percentile_interval(reps, 0.9)
    np.testing.assert_allclose(lo, [50.0, -1900.0])
    np.testing.assert_allclose(hi, [950.0, -100.0])


def test_mean_interval_matches_the_normal_approximation():
    # For n = 400 draws the bootstrap distribution of the mean is close to normal with
    # sd = s / sqrt(n) (s: the plug-in standard deviation), so the 95 % percentile
    # interval is mean ± 1.96 sd up to Monte-Carlo error (~3 % of sd at 4000 replicates).
    values = np.random.default_rng(1).exponential(size=400)
    sd = values.std() / math.sqrt(values.size)
    lo, hi = stats.bootstrap_mean_interval(values, 0.95, replicates=4000, seed=0)
    assert lo == pytest.approx(values.mean() - 1.96 * sd, abs=0.15 * sd)
    assert hi == pytest.approx(values.mean() + 1.96 * sd, abs=0.15 * sd)


def test_mean_interval_edge_cases_and_bad_levels():
    assert all(math.isnan(v) for v in stats.bootstrap_mean_interval([np.nan]))
    assert stats.bootstrap_mean_interval([2.5, 2.5, np.inf]) == (2.5, 2.5)
    for bad in (0, 1, "x", float("nan")):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            stats.bootstrap_mean_interval([1.0, 2.0], bad)


def test_one_bootstrap_for_txray_and_faithfulness():
    assert txray_bootstrap.percentile_interval is stats.percentile_interval
    assert txray_bootstrap.check_confidence is stats.check_confidence
    values = [0.1, 0.4, 0.35, 0.8, 0.05]
    s = summary.summarize(values, 0.9, 500, 3)
    assert (s["ci_low"], s["ci_high"]) == stats.bootstrap_mean_interval(values, 0.9, 500, 3)
