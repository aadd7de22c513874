"""`faithfulness.trust_result` on hand-built numbers: undefined correlations
left out of the means, verdicts by the threshold, the table's columns."""

import numpy as np
import pytest

from lit_plugins.faithfulness import plausibility, sanity
from lit_plugins.faithfulness.trust_result import RANDOM, TrustResult, TrustSettings


def _step(name, rho, rho_abs, defined):
    return sanity.StepCorrelation(
        name, np.array(rho, float), np.array(rho_abs, float), np.array(defined, bool)
    )


def _plaus(f1):
    return plausibility.PlausibilityScores(
        token_precision=f1,
        token_recall=f1,
        token_f1=f1,
        iou_f1=f1,
        auprc=f1,
        k=1,
        predicted_tokens=1,
        matched_spans=1,
        predicted_spans=1,
        rationale_spans=1,
    )


@pytest.fixture
def result():
    cascade = {
        "grad": [
            _step("head", [0.9, 0.5, 0.0], [0.9, 0.6, 0.0], [1, 1, 0]),
            _step("embeddings", [0.2, 0.4, 0.0], [0.1, 0.3, 0.0], [1, 1, 0]),
        ],
        RANDOM: [
            _step("head", [1, 1, 0], [1, 1, 0], [1, 1, 0]),
            _step("embeddings", [1, 1, 0], [1, 1, 0], [1, 1, 0]),
        ],
    }
    return TrustResult(
        methods=["grad", RANDOM],
        steps=["head", "embeddings"],
        cascade=cascade,
        independent=None,
        plausibility={
            "grad": [_plaus(1.0), None, _plaus(0.5)],
            RANDOM: [_plaus(0.0), None, _plaus(0.5)],
        },
        infidelity={"grad": np.array([1.0, 2.0, 3.0]), RANDOM: np.array([3.0, 3.0, 3.0])},
        sensitivity=None,
        rationale_notes=["", "no rationale in 'rationale'", ""],
        targets=["pos", "neg", "pos"],
        notes={},
        errors={},
        settings=TrustSettings(threshold=0.5),
    )


def test_means_leave_undefined_out_and_verdicts_follow_the_threshold(result):
    summary = result.summary().set_index(["method", "metric"])
    assert summary.loc[("grad", "rho_all"), "mean"] == pytest.approx(0.3)  # (0.2 + 0.4) / 2
    assert summary.loc[("grad", "rho_all"), "n"] == 2
    assert summary.loc[("grad", "rho_abs_all"), "mean"] == pytest.approx(0.2)
    assert summary.loc[("grad", "token_f1"), "mean"] == pytest.approx(0.75)
    assert summary.loc[("grad", "infidelity"), "mean"] == pytest.approx(2.0)
    assert summary.loc[("grad", "max_sensitivity"), "n"] == 0  # not computed: n/a
    assert result.verdicts() == {"grad": True, RANDOM: False}
    strict = TrustResult(**{**result.__dict__, "settings": TrustSettings(threshold=0.25)})
    assert strict.verdicts()["grad"] is False  # mean ρ 0.3 is not below 0.25


def test_table_and_curves(result):
    table = result.table()
    assert list(table.columns[:5]) == ["example", "method", "target", "rho head", "rho embeddings"]
    assert np.isnan(table.loc[(table.example == 2) & (table.method == "grad"), "rho_all"]).all()
    curves = result.curves().set_index(["method", "step"])
    assert curves.loc[("grad", "original"), "rho"] == 1.0
    assert curves.loc[("grad", "head"), "rho"] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="Independent randomization was not run"):
        result.curves(independent=True)
