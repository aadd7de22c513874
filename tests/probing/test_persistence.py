"""A saved layer sweep predicts exactly as the fitted one."""

import numpy as np
import pytest

from lit_plugins import probing
from lit_plugins.probing import persistence


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("standardize", [False, True])
def test_round_trip(tmp_path, task, standardize):
    rng = np.random.default_rng(0)
    X = {l: rng.normal(size=(80, 6)) for l in (0, 1, 2)}
    if task == "classification":
        y = np.array(["neg", "pos", "mid"])[rng.integers(0, 3, 80)]
    else:
        y = X[1][:, 0] + 0.1 * rng.normal(size=80)
    sweep = probing.LayerSweep(task, lambda_l2=1e-3, standardize=standardize).fit(
        {l: x[:60] for l, x in X.items()}, y[:60], {l: x[60:] for l, x in X.items()}, y[60:]
    )
    path = tmp_path / "sweep.npz"
    persistence.save_sweep(path, sweep)
    loaded = persistence.load_sweep(path)
    assert loaded.layers_ == sweep.layers_ and loaded.best_layer_ == sweep.best_layer_
    assert loaded.scores_ == sweep.scores_
    for l in sweep.layers_:
        np.testing.assert_array_equal(
            loaded.probes_[l].predict(X[l]), sweep.probes_[l].predict(X[l])
        )
        np.testing.assert_array_equal(
            loaded.probes_[l].decision_function(X[l]), sweep.probes_[l].decision_function(X[l])
        )
    if task == "classification":
        assert loaded.probes_[0].class_to_idx_ == sweep.probes_[0].class_to_idx_


def test_other_files_are_refused(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.zeros(2))
    with pytest.raises(ValueError, match=r"not a lit_plugins\.probing\.sweep/1 file"):
        persistence.load_sweep(path)
