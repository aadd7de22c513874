"""LinearProbe: planted signals, closed forms, independent optimisers.

Expected values come from numpy lstsq, sklearn (Ridge, ElasticNet,
LogisticRegression) and scipy.optimize, or from how the data was built.
"""

import numpy as np
import pytest
import scipy.optimize
import torch
from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge

from lit_plugins.probing import (
    LinearProbe,
    get_neuron_ordering,
    train_linear_regression_probe,
    train_logistic_regression_probe,
)


def planted(n=3000, h=64, seed=0):
    """Binary label carried by neurons 3 and 17 only."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, h)).astype(np.float32)
    y = (X[:, 3] - 0.8 * X[:, 17] + 0.1 * rng.normal(size=n) > 0).astype(int)
    return X, y


def manual_predict(probe, X):
    return probe.classes_[np.argmax(X @ probe.weight_.T + probe.bias_, axis=1)]


@pytest.mark.parametrize("l1, l2", [(0, 0), (0, 1e-3), (1e-3, 0), (1e-3, 1e-3)])
def test_planted_signal_recovered(l1, l2):
    X, y = planted()
    Xte, yte = planted(seed=1)
    probe = LinearProbe(lambda_l1=l1, lambda_l2=l2).fit(X, y)
    assert probe.weight_.shape == (2, 64)  # binary keeps two rows
    assert np.mean(manual_predict(probe, Xte) == yte) >= 0.95
    np.testing.assert_array_equal(probe.predict(Xte), manual_predict(probe, Xte))
    ordering, _ = get_neuron_ordering(probe, probe.class_to_idx_)
    assert set(ordering[:2]) == {3, 17}


def test_multiclass_string_labels():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1500, 20))
    scores = np.stack([X[:, 0], X[:, 5], -X[:, 0] - X[:, 5]], axis=1)
    names = np.array(["noun", "verb", "adj"])
    y = names[np.argmax(scores, axis=1)]
    probe = LinearProbe().fit(X, y)
    assert list(probe.classes_) == ["adj", "noun", "verb"]
    assert probe.class_to_idx_ == {"adj": 0, "noun": 1, "verb": 2}
    assert np.mean(manual_predict(probe, X) == y) > 0.97
    p = probe.predict_proba(X[:10])
    logits = X[:10] @ probe.weight_.T.astype(np.float64) + probe.bias_
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(1, keepdims=True), atol=1e-6)


def _regression_data(seed=0, n=500, h=12):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, h)) * rng.uniform(0.1, 5, size=h) + rng.normal(size=h)
    w = rng.normal(size=h)
    y = X @ w + 0.7 + 0.1 * rng.normal(size=n)
    return X, y, w


def test_regression_matches_lstsq():
    X, y, w_true = _regression_data()
    A = np.c_[X, np.ones(len(X))]
    sol = np.linalg.lstsq(A, y, rcond=None)[0]
    probe = LinearProbe(
        "regression", dtype=torch.float64, early_stopping=False, tol=1e-10, max_iter=500
    ).fit(X, y)
    assert probe.weight_.shape == (1, X.shape[1])
    np.testing.assert_allclose(probe.weight_[0], sol[:-1], atol=1e-6)
    np.testing.assert_allclose(probe.bias_[0], sol[-1], atol=1e-6)
    np.testing.assert_allclose(probe.weight_[0], w_true, atol=0.05)
    # float32 with the default (fast) stopping rule is still close.
    p32 = train_linear_regression_probe(X, y)
    np.testing.assert_allclose(p32.weight_[0], sol[:-1], rtol=5e-3, atol=5e-3)


@pytest.mark.parametrize("standardize", [False, True])
def test_ridge_matches_sklearn(standardize):
    X, y, _ = _regression_data(seed=1)
    lam = 0.05
    probe = LinearProbe(
        "regression",
        0.0,
        lam,
        standardize=standardize,
        dtype=torch.float64,
        early_stopping=False,
        tol=1e-12,
        max_iter=500,
    ).fit(X, y)
    Xs = (X - X.mean(0)) / X.std(0) if standardize else X
    # mean squared error + lam * ||w||^2  ==  Ridge(alpha = N * lam).
    ridge = Ridge(alpha=len(X) * lam).fit(Xs, y)
    np.testing.assert_allclose(probe.weight_[0], ridge.coef_, atol=1e-6)
    np.testing.assert_allclose(probe.bias_[0], ridge.intercept_, atol=1e-6)
    np.testing.assert_allclose(probe.predict(X), ridge.predict(Xs), atol=1e-5)


@pytest.mark.parametrize("solver", ["owlqn", "fista"])
def test_elastic_net_matches_sklearn_and_is_sparse(solver):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 30)) * rng.uniform(0.2, 3, size=30)
    w_true = np.where(rng.random(30) < 0.2, rng.normal(size=30) * 2, 0.0)
    y = X @ w_true - 1.0 + 0.3 * rng.normal(size=400)
    l1, l2 = 0.2, 0.01
    probe = LinearProbe(
        "regression",
        l1,
        l2,
        solver=solver,
        dtype=torch.float64,
        early_stopping=False,
        tol=1e-12,
        max_iter=5000,
    ).fit(X, y)
    # Ours / 2 = 1/(2N)||r||^2 + (l1/2)|w|_1 + (l2/2)||w||^2, i.e. sklearn's
    # ElasticNet with alpha * l1_ratio = l1/2 and alpha * (1 - l1_ratio) = l2.
    alpha = l1 / 2 + l2
    enet = ElasticNet(alpha=alpha, l1_ratio=(l1 / 2) / alpha, tol=1e-12, max_iter=100000).fit(X, y)
    np.testing.assert_allclose(probe.weight_[0], enet.coef_, atol=1e-4)
    np.testing.assert_array_equal(probe.weight_[0] == 0, enet.coef_ == 0)
    assert np.mean(probe.weight_ == 0) > 0.2


def test_l2_classification_matches_sklearn_logistic():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 8))
    y = np.argmax(X[:, :3] + 0.5 * rng.normal(size=(600, 3)), axis=1)
    lam = 0.01
    probe = LinearProbe(
        lambda_l2=lam, dtype=torch.float64, early_stopping=False, tol=1e-10, max_iter=1000
    ).fit(X, y)
    # mean CE + lam ||W||^2  ==  C * sum CE + 1/2 ||W||^2 with C = 1/(2 N lam).
    ref = LogisticRegression(C=1 / (2 * len(X) * lam), tol=1e-12, max_iter=10000).fit(X, y)
    np.testing.assert_allclose(probe.weight_, ref.coef_, atol=1e-5)
    np.testing.assert_allclose(probe.bias_, ref.intercept_, atol=1e-5)


def _np_objective(params, X, y, C, l1, l2, l2_form):
    H = X.shape[1]
    W = params[: C * H].reshape(C, H)
    b = params[C * H :]
    z = X @ W.T + b
    z = z - z.max(1, keepdims=True)
    ce = -np.mean(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))
    sq = np.sum(W * W)
    pen = l2 * (sq if l2_form == "squared" else np.sqrt(sq))
    return ce + l1 * np.abs(W).sum() + pen


def test_neurox_norm_form_matches_scipy():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 5))
    y = np.argmax(X[:, :3] + 0.3 * rng.normal(size=(300, 3)), axis=1)
    lam = 0.05
    probe = LinearProbe(
        lambda_l2=lam,
        l2_form="norm",
        dtype=torch.float64,
        early_stopping=False,
        tol=1e-10,
        max_iter=1000,
    ).fit(X, y)
    x0 = np.full(3 * 5 + 3, 0.01)
    ref = scipy.optimize.minimize(
        _np_objective, x0, args=(X, y, 3, 0.0, lam, "norm"), method="BFGS", options={"gtol": 1e-9}
    )
    ours = np.concatenate([probe.weight_.ravel(), probe.bias_])
    f_ours = _np_objective(ours, X, y, 3, 0.0, lam, "norm")
    assert f_ours <= ref.fun + 1e-8
    np.testing.assert_allclose(probe.weight_, ref.x[:15].reshape(3, 5), atol=1e-3)


@pytest.mark.parametrize("solver", ["owlqn", "fista"])
def test_l1_classification_reaches_optimum_and_sparsity(solver):
    X, y = planted(n=1000, h=20)
    X = X.astype(np.float64)
    l1 = 0.01
    probe = LinearProbe(
        lambda_l1=l1,
        solver=solver,
        dtype=torch.float64,
        early_stopping=False,
        tol=1e-12,
        max_iter=5000,
    ).fit(X, y)
    W = probe.weight_
    assert np.mean(W == 0) > 0.5
    assert np.all(W[:, [3, 17]] != 0)
    # Optimality vs a generic derivative-free check: no random perturbation
    # of the parameters lowers the objective.
    p0 = np.concatenate([W.ravel(), probe.bias_])
    f0 = _np_objective(p0, X, y, 2, l1, 0.0, "squared")
    rng = np.random.default_rng(0)
    for _ in range(50):
        d = rng.normal(size=p0.shape) * 1e-3
        assert _np_objective(p0 + d, X, y, 2, l1, 0.0, "squared") >= f0 - 1e-9


def test_l1_solvers_agree_on_classification():
    X, y = planted(n=1500, h=30)
    kw = dict(
        lambda_l1=3e-3,
        lambda_l2=1e-3,
        dtype=torch.float64,
        early_stopping=False,
        tol=1e-10,
        max_iter=3000,
    )
    a = LinearProbe(solver="owlqn", **kw).fit(X, y)
    b = LinearProbe(solver="fista", **kw).fit(X, y)
    np.testing.assert_allclose(a.weight_, b.weight_, atol=1e-4)
    np.testing.assert_array_equal(a.weight_ == 0, b.weight_ == 0)


def test_more_l1_more_zeros():
    X, y = planted(n=1000)
    zeros = [np.mean(LinearProbe(lambda_l1=l1).fit(X, y).weight_ == 0) for l1 in (0.0, 1e-3, 1e-2)]
    assert zeros[0] == 0.0 and zeros[1] < zeros[2]
    assert zeros[2] > 0.8


@pytest.mark.parametrize("l1, solver", [(0.0, "auto"), (1e-3, "owlqn"), (1e-3, "fista")])
def test_deterministic(l1, solver):
    X, y = planted(n=800)
    a = LinearProbe(lambda_l1=l1, lambda_l2=1e-3, solver=solver).fit(X, y)
    b = LinearProbe(lambda_l1=l1, lambda_l2=1e-3, solver=solver).fit(X, y)
    np.testing.assert_array_equal(a.weight_, b.weight_)
    np.testing.assert_array_equal(a.bias_, b.bias_)


def test_standardize_equals_fit_on_standardized_features():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(400, 6)) * np.array([1, 10, 0.1, 3, 1, 50]) + 4
    y = ((X[:, 1] - 4) / 10 + (X[:, 2] - 4) * 10 > 0.3).astype(int)
    Xs = (X - X.mean(0)) / X.std(0)
    a = LinearProbe(
        lambda_l2=1e-2, standardize=True, dtype=torch.float64, early_stopping=False, tol=1e-10
    ).fit(X, y)
    b = LinearProbe(lambda_l2=1e-2, dtype=torch.float64, early_stopping=False, tol=1e-10).fit(Xs, y)
    np.testing.assert_allclose(a.weight_, b.weight_, atol=1e-6)
    np.testing.assert_array_equal(a.predict(X), b.predict(Xs))


def test_neurox_helper_ignores_sgd_args():
    X, y = planted(n=500)
    p = train_logistic_regression_probe(
        X, y, 0.0, 1e-3, num_epochs=10, batch_size=32, learning_rate=1e-3
    )
    assert isinstance(p, LinearProbe) and p.task_type == "classification"
    assert 0.9 < p.score(X, y) <= 1.0


def test_constant_neuron_gets_negligible_weight():
    X, y = planted(n=500, h=20)
    X[:, 5] = 3.0
    p = LinearProbe(lambda_l2=1e-3).fit(X, y)
    # Its optimal weight is 0 (the bias absorbs it); only round-off remains.
    assert np.all(np.abs(p.weight_[:, 5]) < 1e-4)
    assert np.all(np.abs(p.weight_[:, [3, 17]]) > 0.1)


@pytest.mark.parametrize(
    "X, y, task, match",
    [
        (np.ones((4, 3)), [1, 1, 1, 1], "classification", "only one"),
        (np.array([[1.0, np.nan], [0, 1]]), [0, 1], "classification", "NaN"),
        (np.array([[1.0, np.inf], [0, 1]]), [0, 1], "classification", "NaN"),
        (np.ones((4, 3)), [0, 1, 0], "classification", "Mismatched lengths"),
        (np.ones((0, 3)), [], "classification", "empty"),
        (np.ones((3, 0)), [0, 1, 0], "classification", "no neurons"),
        (np.ones(3), [0, 1, 0], "classification", "2-D"),
        (np.array([["a", "b"], ["c", "d"]]), [0, 1], "classification", "numeric"),
        (np.ones((3, 2)), ["a", "b", "c"], "regression", "numeric"),
        (np.ones((3, 2)), [0.5, 1.5, 0.2], "classification", "non-integral"),
        (np.ones((3, 2)), [None, 1, 0], "classification", "integers or"),
        (np.ones((3, 2)), [{"a": 1}, 1, 0], "classification", "integers or"),
        (np.ones((3, 2)), [0, np.nan, 1], "regression", "NaN"),
    ],
)
def test_bad_inputs(X, y, task, match):
    with pytest.raises(ValueError, match=match):
        LinearProbe(task).fit(X, y)


def test_bad_params_and_unfitted():
    X, y = planted(n=50, h=20)
    with pytest.raises(ValueError, match="lambda_l1"):
        LinearProbe(lambda_l1=-1).fit(X, y)
    with pytest.raises(ValueError, match="task_type"):
        LinearProbe("ranking").fit(X, y)
    with pytest.raises(ValueError, match="solver"):
        LinearProbe(solver="sgd").fit(X, y)
    with pytest.raises(ValueError, match="not fitted"):
        LinearProbe().predict(X)
    p = LinearProbe().fit(X, y)
    with pytest.raises(ValueError, match="neurons"):
        p.predict(X[:, :3])
    with pytest.raises(ValueError, match="classification"):
        LinearProbe("regression").fit(X, y.astype(float)).predict_proba(X)


# ---------------------------------------------------------------- binary
def test_binary_probe_matches_sklearn_logistic():
    """2 classes are solved as one logistic row; the 2-row optimum is its split.

    mean CE + lam (|w0|^2 + |w1|^2) with w1 = -w0 = w/2 is
    mean CE(w) + lam |w|^2 / 2, i.e. sklearn's C = 1 / (N lam).
    """
    rng = np.random.default_rng(8)
    X = rng.normal(size=(500, 10)) * rng.uniform(0.5, 4, size=10) + 2.0
    y = (X[:, 1] / 2 - X[:, 4] / 3 + rng.normal(size=500) > 0).astype(int)
    lam = 0.01
    probe = LinearProbe(lambda_l2=lam, dtype=torch.float64, early_stopping=False, tol=1e-11).fit(
        X, y
    )
    ref = LogisticRegression(C=1 / (len(X) * lam), tol=1e-12, max_iter=10000).fit(X, y)
    np.testing.assert_allclose(probe.weight_[1], ref.coef_[0] / 2, atol=1e-5)
    np.testing.assert_allclose(probe.weight_[0], -ref.coef_[0] / 2, atol=1e-5)
    np.testing.assert_allclose(probe.bias_[1] - probe.bias_[0], ref.intercept_[0], atol=1e-5)
    np.testing.assert_allclose(probe.predict_proba(X)[:, 1], ref.predict_proba(X)[:, 1], atol=1e-6)


@pytest.mark.parametrize("l1, l2", [(0.0, 0.05), (0.01, 0.05)])
def test_binary_norm_form_and_l1_reach_two_row_optimum(l1, l2):
    """The one-row solve minimises NeuroX's two-row objective (scipy check)."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] - X[:, 2] + 0.5 * rng.normal(size=300) > 0).astype(int)
    probe = LinearProbe(
        lambda_l1=l1,
        lambda_l2=l2,
        l2_form="norm",
        dtype=torch.float64,
        early_stopping=False,
        tol=1e-12,
        max_iter=2000,
    ).fit(X, y)
    ours = np.concatenate([probe.weight_.ravel(), probe.bias_])
    f_ours = _np_objective(ours, X, y, 2, l1, l2, "norm")
    ref = scipy.optimize.minimize(
        _np_objective,
        np.full(14, 0.01),
        args=(X, y, 2, l1, l2, "norm"),
        method="Powell",
        options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 200000},
    )
    assert f_ours <= ref.fun + 1e-9
    # ... and no random perturbation (symmetric or not) does better.
    rng = np.random.default_rng(0)
    for _ in range(50):
        d = rng.normal(size=ours.shape) * 1e-4
        assert _np_objective(ours + d, X, y, 2, l1, l2, "norm") >= f_ours - 1e-10


# ------------------------------------------------------- early stopping
def _overfit_prone(seed, n=400, h=100):
    """Activation-like data whose optimum overfits a weak penalty.

    Like transformer activations, the neurons share low-rank correlated
    variation (16 directions, fixed across seeds); the label depends on 5 of
    them through a noisy threshold.
    """
    mix = np.random.default_rng(100).normal(size=(16, h))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, h)) + rng.normal(size=(n, 16)) @ mix
    y = (X[:, :5].sum(1) * 0.3 + rng.normal(size=n) > 0).astype(int)
    return X.astype(np.float32), y


def test_early_stopping_generalises_better_than_the_optimum():
    X, y = _overfit_prone(0)
    Xte, yte = _overfit_prone(1, n=4000)
    es = LinearProbe(lambda_l2=1e-4, l2_form="norm").fit(X, y)
    exact = LinearProbe(lambda_l2=1e-4, l2_form="norm", early_stopping=False).fit(X, y)
    assert es.early_stopped_ and es.best_iter_ < es.n_iter_ + 5
    assert exact.best_iter_ is None and exact.validation_loss_ is None
    assert es.score(Xte, yte) >= exact.score(Xte, yte) + 0.03
    # The held-out loss of the kept iteration is the trace's minimum.
    assert es.validation_loss_[es.best_iter_] == min(es.validation_loss_)


def test_early_stopping_refit_continues_on_all_rows_from_the_best_iterate():
    """Goodfellow et al. alg. 7.3: from the held-out run's best iterate, train
    on all rows until the held-out loss is down to the training loss there."""
    from lit_plugins.probing.early_stopping import held_out_rows as _held_out_rows

    X, y = _overfit_prone(2)
    kw = dict(lambda_l2=1e-4, l2_form="norm")
    es = LinearProbe(**kw).fit(X, y)
    assert es.early_stopped_
    assert es.best_iter_ >= 1
    assert 1 <= es.n_iter_ <= es.best_iter_
    # The held-out run's best iterate: the same run stopped there (no refit).
    best = LinearProbe(max_iter=es.best_iter_, **kw).fit(X, y)
    assert best.early_stopped_ is False
    held_out = _held_out_rows(y, len(y), 0.1, random_state=0)

    def loss(probe, rows):
        p = probe.predict_proba(X[rows])[np.arange(rows.sum()), y[rows]]
        return -np.mean(np.log(p))

    # At least one step on all rows, then on until the held-out loss is down
    # to the training loss at the best iterate (or best_iter_ steps).
    target = loss(best, ~held_out)
    if es.n_iter_ < es.best_iter_:
        assert loss(es, held_out) <= target * (1 + 1e-5)
    assert loss(es, np.ones(len(y), bool)) < loss(best, np.ones(len(y), bool))


@pytest.mark.parametrize("solver", ["owlqn", "fista"])
def test_early_stopping_is_deterministic_and_seeded(solver):
    X, y = _overfit_prone(3)
    kw = dict(lambda_l1=1e-3, lambda_l2=1e-4, solver=solver, early_stopping=True)
    a = LinearProbe(**kw).fit(X, y)
    b = LinearProbe(**kw).fit(X, y)
    np.testing.assert_array_equal(a.weight_, b.weight_)
    assert a.validation_loss_ == b.validation_loss_
    c = LinearProbe(random_state=1, **kw).fit(X, y)
    assert c.validation_loss_ != a.validation_loss_  # another held-out split


def test_early_stopping_auto_needs_ten_held_out_rows_and_no_ridge():
    X, y = planted(n=94)
    assert LinearProbe().fit(X, y).best_iter_ is None  # round(9.4) rows: off
    X, y = planted(n=100)
    assert LinearProbe().fit(X, y).best_iter_ is not None
    for kw in (dict(lambda_l1=1e-3), dict(lambda_l2=1e-3, l2_form="norm")):
        assert LinearProbe(**kw).fit(X, y).best_iter_ is not None
    # A ridge term: a strongly convex, regularised objective is solved exactly.
    assert LinearProbe(lambda_l2=1e-3).fit(X, y).best_iter_ is None
    assert LinearProbe(lambda_l1=1e-3, lambda_l2=1e-3).fit(X, y).best_iter_ is None
    assert LinearProbe(early_stopping=True).fit(X[:30], y[:30]).best_iter_ is not None


def test_held_out_rows_are_stratified_and_sized():
    from lit_plugins.probing.early_stopping import held_out_rows as _held_out_rows

    y = np.array([0] * 50 + [1] * 30 + [2] * 5 + [3])
    mask = _held_out_rows(y, len(y), 0.1, random_state=0)
    # round(8.6) = 9 rows: floor shares 5 + 3, the spare one to the largest
    # remainder (class 2, 0.5); the single-example class keeps its row.
    assert [int(mask[y == k].sum()) for k in range(4)] == [5, 3, 1, 0]
    regression = _held_out_rows(None, 200, 0.25, random_state=0)
    assert int(regression.sum()) == 50
    # Many small classes: the total stays ~10%, every class keeps a row.
    pairs = np.repeat(np.arange(100), 2)
    mask = _held_out_rows(pairs, 200, 0.1, random_state=0)
    assert int(mask.sum()) == 20
    assert all(mask[pairs == k].sum() < 2 for k in range(100))
    # 4 balanced classes of 25: round(2.5) per class would give 8; the total
    # is round(10.0) = 10.
    assert int(_held_out_rows(np.repeat(np.arange(4), 25), 100, 0.1, random_state=0).sum()) == 10
    assert not _held_out_rows(np.arange(3), 3, 0.1, random_state=0).any()


def test_early_stopping_edge_cases():
    X = np.random.default_rng(0).normal(size=(100, 5))
    # 100 single-example classes: "auto" quietly solves exactly ...
    probe = LinearProbe().fit(X, np.arange(100))
    assert probe.best_iter_ is None
    # ... while an explicit request explains why it cannot.
    with pytest.raises(ValueError, match="held-out rows"):
        LinearProbe(early_stopping=True).fit(X, np.arange(100))
    with pytest.raises(ValueError, match="held-out rows"):
        LinearProbe("regression", early_stopping=True).fit(X[:2], [0.0, 1.0])
    with pytest.raises(ValueError, match="history_size"):
        LinearProbe(history_size=0).fit(X, np.arange(100) % 2)


def test_early_stopping_at_the_start_returns_the_prior_only_probe():
    """No step lowered the held-out loss: nothing learnable is kept."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 150)).astype(np.float32)
    y = rng.integers(0, 4, size=200)  # labels unrelated to X
    probe = LinearProbe(early_stopping=True).fit(X, y)
    assert probe.best_iter_ == 0 and probe.validation_loss_[1] > probe.validation_loss_[0]
    assert probe.early_stopped_ and probe.n_iter_ == 0
    np.testing.assert_array_equal(probe.weight_, 0.0)
    prior = np.bincount(y, minlength=4) / len(y)
    np.testing.assert_allclose(probe.predict_proba(X[:1])[0], prior, rtol=1e-5)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(early_stopping="yes"), "early_stopping"),
        (dict(early_stopping=True, validation_fraction=1.5), "validation_fraction"),
        (dict(early_stopping=True, n_iter_no_change=0), "n_iter_no_change"),
        (dict(solver="lbfgs", lambda_l1=1e-3), "smooth objective"),
    ],
)
def test_bad_early_stopping_and_solver_params(kw, match):
    X, y = planted(n=200)
    with pytest.raises(ValueError, match=match):
        LinearProbe(**kw).fit(X, y)


# ------------------------------------------------------------ internals
@pytest.mark.parametrize("kind", ["binary", "classification", "regression"])
def test_curvature_along_a_direction_matches_finite_differences(kind):
    """The exact first step uses d^2/dt^2 loss(LT + t LT_d); check it."""
    from lit_plugins.probing.losses import Problem as _Problem

    rng = np.random.default_rng(10)
    n, h = 50, 7
    X = torch.as_tensor(rng.normal(size=(n, h)))
    rows = 3 if kind == "classification" else 1
    if kind == "classification":
        targets = torch.as_tensor(rng.integers(0, 3, size=n))
    elif kind == "binary":
        targets = torch.as_tensor(rng.choice([-1.0, 1.0], size=n))[None]
    else:
        targets = torch.as_tensor(rng.normal(size=n))[None]
    one = torch.ones(h, dtype=X.dtype)
    prob = _Problem(X, targets, kind, torch.zeros(h, dtype=X.dtype), one, one, 0.0, 0.0, "squared")
    V = torch.as_tensor(rng.normal(size=(rows, h)))
    c = torch.as_tensor(rng.normal(size=rows))
    dV = torch.as_tensor(rng.normal(size=(rows, h)))
    LT, LT_d = prob.logits_t(V, c), prob.logits_t(dV, 0 * c)
    eps = 1e-4
    f = [float(prob.data_loss(LT + t * LT_d, need_grad=False)[0]) for t in (-eps, 0.0, eps)]
    fd = (f[0] - 2 * f[1] + f[2]) / eps**2
    np.testing.assert_allclose(prob.curvature(LT, LT_d), fd, rtol=1e-5)


def test_early_stopping_plateau_keeps_the_best_train_part_iterate():
    """A penalty that regularises enough: no overfitting, so no refit."""
    from lit_plugins.probing.early_stopping import held_out_rows as _held_out_rows

    X, y = _overfit_prone(4)
    es = LinearProbe(lambda_l2=0.2, early_stopping=True).fit(X, y)
    assert es.early_stopped_ is False
    held_out = _held_out_rows(y, len(y), 0.1, random_state=0)
    # The kept weights are the iterate with the lowest held-out loss ...
    p = es.predict_proba(X[held_out])[np.arange(held_out.sum()), y[held_out]]
    np.testing.assert_allclose(-np.mean(np.log(p)), min(es.validation_loss_), rtol=1e-5)
    # ... and, on a plateau, close to the train part's exact optimum.
    exact = LinearProbe(lambda_l2=0.2, early_stopping=False, tol=1e-8, dtype=torch.float64).fit(
        X[~held_out], y[~held_out]
    )
    np.testing.assert_allclose(es.weight_, exact.weight_, atol=0.05)
    assert np.mean(es.predict(X) == exact.predict(X)) > 0.98


def test_lbfgs_memory_product_equals_the_two_loop_recursion():
    """The compact product vs Nocedal & Wright's alg. 7.4, written out."""
    from lit_plugins.probing.quasi_newton import LBFGSMemory as _LBFGSMemory

    rng = np.random.default_rng(12)
    d, size = 40, 5
    memory, pairs = _LBFGSMemory(size), []
    for _ in range(8):  # more pairs than the memory keeps
        s = torch.as_tensor(rng.normal(size=d))
        y = s * torch.as_tensor(rng.uniform(0.5, 2.0, size=d))  # s.y > 0
        memory.push(s, y, float(s @ y), float(y @ y))
        pairs = ([*pairs, (s, y)])[-size:]
        q = torch.as_tensor(rng.normal(size=d))
        ref = q.clone()
        alphas = []
        for s_i, y_i in reversed(pairs):
            a = float(s_i @ ref) / float(y_i @ s_i)
            alphas.append(a)
            ref -= a * y_i
        s_k, y_k = pairs[-1]
        ref *= float(s_k @ y_k) / float(y_k @ y_k)
        for (s_i, y_i), a in zip(pairs, reversed(alphas)):
            ref += (a - float(y_i @ ref) / float(y_i @ s_i)) * s_i
        assert len(memory) == len(pairs)
        np.testing.assert_allclose(memory.product(q), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("onednn_mode", ["dense", "copy"])
def test_onednn_forward_product_gives_the_blas_fit(monkeypatch, onednn_mode):
    """Big float32 CPU problems take X W^T from oneDNN (MKL's tall-skinny
    sgemm is slow on AMD) and G^T X as one row block per thread (MKL threads
    that shape poorly); the fit must not depend on which path did it.  7
    blocks of 600 rows leave 5 rows over (added last); "copy" is the path of
    builds without oneDNN's op on dense X."""
    from lit_plugins.probing import losses as _losses

    rng = np.random.default_rng(4)
    y = rng.integers(0, 5, size=600)
    X = (rng.normal(size=(600, 40)) + rng.normal(size=(5, 40))[y]).astype(np.float32)
    blas = LinearProbe(lambda_l1=1e-3, lambda_l2=1e-3, l2_form="norm").fit(X, y)
    monkeypatch.setattr(_losses, "_ONEDNN_MIN_ENTRIES", 0)
    monkeypatch.setattr(_losses, "_gradient_blocks", lambda: 7)
    fwd = _losses._Forward(torch.as_tensor(X))
    assert fwd.split_gradient
    if fwd.use_onednn:
        fwd.onednn = onednn_mode
    W = torch.as_tensor(np.random.default_rng(0).normal(size=(5, 40)).astype(np.float32))
    np.testing.assert_allclose(fwd(W).numpy(), X @ W.numpy().T, rtol=1e-5, atol=1e-4)
    assert fwd.use_onednn == torch.backends.mkldnn.is_available()
    if fwd.use_onednn:
        assert fwd.onednn == onednn_mode  # no fallback taken
    GT = torch.as_tensor(np.random.default_rng(1).normal(size=(600, 5)).astype(np.float32)).T
    np.testing.assert_allclose(fwd.gradient(GT).numpy(), GT.numpy() @ X, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(
        fwd.gradient(GT.contiguous()).numpy(), GT.numpy() @ X, rtol=1e-5, atol=1e-4
    )
    if onednn_mode == "copy":
        monkeypatch.setattr(_losses._Forward, "__init__", _forced_copy_init(_losses))
    onednn = LinearProbe(lambda_l1=1e-3, lambda_l2=1e-3, l2_form="norm").fit(X, y)
    np.testing.assert_allclose(onednn.weight_, blas.weight_, atol=1e-4)
    assert onednn.score(X, y) == blas.score(X, y)


def _forced_copy_init(losses_module):
    init = losses_module._Forward.__init__

    def forced(self, X):
        init(self, X)
        if self.onednn is not None:
            self.onednn = "copy"

    return forced
