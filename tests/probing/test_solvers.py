"""The fast solvers vs the scipy L-BFGS-B reference, on the same objective.

The objective is evaluated here in numpy, in the form `probes.py` states it
(two rows for a binary probe, raw features), from the fitted `weight_` and
`bias_`: independent of the solvers' preconditioning and binary reduction.
"""

import functools

import numpy as np
import pytest
import torch

from lit_plugins.probing import LinearProbe
from lit_plugins.probing.losses import BINARY, Problem
from lit_plugins.probing.solvers import SOLVERS

TASKS = ("binary", "multiclass", "regression")
PENALTIES = {  # name: (lambda_l1, lambda_l2, l2_form)
    "l2_squared": (0.0, 0.01, "squared"),
    "l2_norm": (0.0, 0.05, "norm"),
    "l1": (0.01, 0.0, "squared"),
    "elastic_net": (0.01, 0.01, "squared"),
    "strong_l1": (0.05, 0.0, "squared"),  # zero weights in all three tasks
}
FAST = ("lbfgs", "owlqn", "fista", "auto")
# The exact optimum, to float64 precision.
EXACT = dict(dtype=torch.float64, early_stopping=False, tol=1e-12, max_iter=5000)


@functools.cache
def dataset(task):
    """Small, with unequal neuron scales and offsets (exercises preconditioning)."""
    rng = np.random.default_rng(TASKS.index(task))
    n, h = 300, 8
    X = rng.normal(size=(n, h)) * rng.uniform(0.2, 5.0, size=h) + rng.normal(size=h)
    Z = (X - X.mean(0)) / X.std(0)
    if task == "binary":
        y = (Z[:, 0] - Z[:, 3] + 0.7 * rng.normal(size=n) > 0).astype(int)
    elif task == "multiclass":
        y = np.argmax(Z[:, :3] + 0.7 * rng.normal(size=(n, 3)), axis=1)
    else:
        y = Z[:, :3] @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.5 * rng.normal(size=n)
    return X, y


def objective(W, b, X, y, task, l1, l2, l2_form):
    """The stated objective: mean loss + l1 sum|W| + l2 R2(W), in float64."""
    z = X @ W.T + b
    if task == "regression":
        loss = np.mean((z[:, 0] - y) ** 2)
    else:
        m = z.max(1, keepdims=True)
        lse = np.log(np.exp(z - m).sum(1)) + m[:, 0]
        loss = np.mean(lse - z[np.arange(len(y)), y])
    sq = np.sum(W * W)
    return loss + l1 * np.abs(W).sum() + l2 * (sq if l2_form == "squared" else np.sqrt(sq))


def fit(task, penalty, solver):
    l1, l2, form = PENALTIES[penalty]
    X, y = dataset(task)
    task_type = "regression" if task == "regression" else "classification"
    return LinearProbe(task_type, l1, l2, l2_form=form, solver=solver, **EXACT).fit(X, y)


@functools.cache
def reference(task, penalty):
    return fit(task, penalty, "scipy")


def stated_objective(probe, task, penalty):
    X, y = dataset(task)
    return objective(probe.weight_, probe.bias_, X, y, task, *PENALTIES[penalty])


def test_scipy_is_a_solver():
    assert "scipy" in SOLVERS


# L-BFGS needs a smooth objective: it is paired with the L1-free penalties only.
SOLVER_PENALTIES = [
    (solver, penalty)
    for solver in FAST
    for penalty in PENALTIES
    if penalty != "strong_l1" and not (solver == "lbfgs" and PENALTIES[penalty][0] > 0)
]


@pytest.mark.parametrize(("solver", "penalty"), SOLVER_PENALTIES)
@pytest.mark.parametrize("task", TASKS)
def test_fast_solvers_reach_the_reference_optimum(task, penalty, solver):
    ref = reference(task, penalty)
    probe = fit(task, penalty, solver)
    f_ref = stated_objective(ref, task, penalty)
    f = stated_objective(probe, task, penalty)
    assert abs(f - f_ref) <= 1e-6 * abs(f_ref)
    np.testing.assert_allclose(probe.weight_, ref.weight_, rtol=0, atol=1e-4)
    # A softmax is unchanged by adding one constant to every class's bias,
    # and the (unpenalised) bias is only determined up to that shift.
    centre = task == "multiclass"
    np.testing.assert_allclose(
        probe.bias_ - centre * probe.bias_.mean(), ref.bias_ - centre * ref.bias_.mean(), atol=1e-4
    )


@pytest.mark.parametrize("task", TASKS)
def test_reference_l1_split_gives_the_exact_zeros(task):
    """The w+ - w- split is exact: L-BFGS-B's bounds give OWL-QN's and FISTA's zeros."""
    ref = reference(task, "strong_l1")
    zeros = ref.weight_ == 0
    assert np.any(zeros) and not np.all(zeros)
    for solver in ("owlqn", "fista"):
        np.testing.assert_array_equal(fit(task, "strong_l1", solver).weight_ == 0, zeros)


@pytest.mark.parametrize("task", TASKS)
def test_reference_is_a_minimum(task):
    """No small random perturbation of the reference lowers the objective."""
    ref = reference(task, "elastic_net")
    X, y = dataset(task)
    f0 = stated_objective(ref, task, "elastic_net")
    rng = np.random.default_rng(0)
    for _ in range(30):
        dW = rng.normal(size=ref.weight_.shape) * 1e-4
        db = rng.normal(size=ref.bias_.shape) * 1e-4
        f = objective(ref.weight_ + dW, ref.bias_ + db, X, y, task, *PENALTIES["elastic_net"])
        assert f >= f0 - 1e-12


def test_scipy_solver_with_early_stopping():
    """The monitor works through scipy's callback: best iterate kept, seeded."""
    X, y = dataset("multiclass")
    kw = dict(lambda_l2=1e-4, l2_form="norm", solver="scipy", early_stopping=True)
    a = LinearProbe(**kw).fit(X, y)
    b = LinearProbe(**kw).fit(X, y)
    assert a.solver_ == "scipy" and a.best_iter_ is not None
    assert a.validation_loss_[a.best_iter_] == min(a.validation_loss_)
    np.testing.assert_array_equal(a.weight_, b.weight_)


@pytest.mark.parametrize("kind", [BINARY, "classification", "regression"])
@pytest.mark.parametrize("l2_form", ["squared", "norm"])
def test_problem_gradient_matches_autograd(kind, l2_form):
    """The hand-written gradient every solver (the reference too) relies on."""
    rng = np.random.default_rng(11)
    n, h = 40, 6
    X = torch.as_tensor(rng.normal(size=(n, h)) * 3 + 1)
    rows = 3 if kind == "classification" else 1
    if kind == "classification":
        targets = torch.as_tensor(rng.integers(0, 3, size=n))
    elif kind == BINARY:
        targets = torch.as_tensor(rng.choice([-1.0, 1.0], size=n))[None]
    else:
        targets = torch.as_tensor(rng.normal(size=n))[None]
    mean = torch.as_tensor(rng.normal(size=h))
    scale = torch.as_tensor(rng.uniform(0.5, 2, size=h))
    omega = 1.0 / scale
    prob = Problem(X, targets, kind, mean, scale, omega, 0.0, 0.3, l2_form)
    V = torch.as_tensor(rng.normal(size=(rows, h))).requires_grad_()
    c = torch.as_tensor(rng.normal(size=rows)).requires_grad_()
    sq = (V * V * prob.omega2).sum()
    penalty = 0.3 * (sq if l2_form == "squared" else torch.sqrt(sq))
    total = prob.data_loss(prob.logits_t(V, c), need_grad=False)[0] + penalty
    gV_auto, gc_auto = torch.autograd.grad(total, (V, c))
    with torch.no_grad():
        LT = prob.logits_t(V, c)
        loss, GT = prob.data_loss(LT, need_grad=True)
        gV, gc = prob.param_grad(GT)
        pen, gpen = prob.smooth_penalty(V.clone(), need_grad=True)
    np.testing.assert_allclose(float(loss) + pen, float(total.detach()), rtol=1e-12)
    np.testing.assert_allclose(gV + gpen, gV_auto, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gc, gc_auto, rtol=1e-10, atol=1e-12)
