"""Solvers for the probe objective of `losses.Problem`.

A probe is a small *convex* problem, so it is solved full batch with a
proper deterministic optimiser.  Optimiser choice (``solver="auto"``):

  * ``lambda_l1 == 0`` -> L-BFGS on the smooth objective.  Quasi-Newton
    converges in tens of full-batch iterations where first-order methods
    need hundreds.
  * ``lambda_l1 > 0`` -> OWL-QN (orthant-wise L-BFGS, Andrew & Gao 2007).
    L1 is not differentiable at 0, so plain L-BFGS neither converges properly
    nor produces exact zeros.  OWL-QN keeps the quasi-Newton speed and, by
    confining each step to an orthant and clipping sign changes to 0, gives
    *exactly* sparse weights - what neuron ranking wants.
  * ``solver="fista"`` (accelerated proximal gradient with soft-thresholding,
    backtracking and adaptive restart) is kept as a simple, provably
    convergent alternative for L1/elastic net; tests check both agree.
  * ``solver="scipy"``: the reference.  scipy's L-BFGS-B on the same
    objective (L1 through the split w = w+ - w-, w+/- >= 0), run to the limit
    of its precision: slow and obviously correct, what the tests check the
    fast solvers against.

L-BFGS and OWL-QN share one loop, `quasi_newton.solve_quasi_newton`.

Every solver starts from weights 0 and the given bias, takes full-batch
steps only, and may be given an early-stopping `monitor`
(`early_stopping.EarlyStopping`): it is called with every accepted iterate
and its logits, and when it says stop, its best iterate is the result.

Across ranks (a `Problem` with a distributed `Comm`) the solvers need no
change: every value they branch on (objective, gradient, curvature,
held-out loss, Lipschitz estimate) comes out of `Problem` already summed
over the ranks, and the rest is computed alike on every rank, so all ranks
take the same steps.  That holds for scipy's L-BFGS-B too (deterministic,
fed the same reduced values on every rank).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import torch

from lit_plugins.probing.early_stopping import EarlyStopping
from lit_plugins.probing.losses import Problem
from lit_plugins.probing.quasi_newton import solve_quasi_newton

SOLVERS = ("auto", "lbfgs", "owlqn", "fista", "scipy")
# Iteration caps when `max_iter` is not given.  scipy's is its own default:
# the reference runs to convergence.
DEFAULT_MAX_ITER = {"lbfgs": 100, "owlqn": 100, "fista": 300, "scipy": 15000}


def resolve_solver(solver: str, lambda_l1: float) -> str:
    """The solver "auto" stands for: OWL-QN with an L1 term, else L-BFGS."""
    if solver != "auto":
        return solver
    return "owlqn" if lambda_l1 > 0 else "lbfgs"


def solve(
    solver: str,
    problem: Problem,
    c0: torch.Tensor,
    max_iter: int,
    tol: float,
    history_size: int,
    monitor: EarlyStopping | None = None,
    start: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(V, c, n_iter): runs `solver` (not "auto") from V = 0, c = c0.

    `start` = (V, c, logits or None) starts from there instead (a warm start;
    L-BFGS/OWL-QN reuse the given logits instead of recomputing them).
    """
    LT0 = None
    if start is None:
        V = torch.zeros(c0.shape[0], problem.X.shape[1], dtype=c0.dtype, device=c0.device)
        c = c0.clone()
    else:
        V, c, LT0 = start[0].clone(), start[1].clone(), start[2]
    if solver == "fista":
        n_iter = solve_fista(problem, V, c, max_iter, tol, monitor)
    elif solver == "scipy":
        n_iter = solve_scipy(problem, V, c, max_iter, history_size, monitor)
    else:
        n_iter = solve_quasi_newton(problem, V, c, max_iter, tol, history_size, monitor, LT0)
    return V, c, n_iter


def solve_fista(
    problem: Problem,
    V: torch.Tensor,
    c: torch.Tensor,
    max_iter: int,
    tol: float,
    monitor: EarlyStopping | None = None,
) -> int:
    """FISTA with backtracking and adaptive restart; returns #iterations.

    Beck & Teboulle (2009) accelerated proximal gradient on
    smooth(V, c) + L1(V).  The step starts at 1/L from `lipschitz_estimate`,
    is halved whenever the quadratic upper bound fails, and may grow by 10% per
    iteration because the global bound is pessimistic once the softmax
    saturates.  Momentum is reset when it points against the last step
    (O'Donoghue & Candes 2015 gradient restart).  Because the logits are linear
    in the parameters, the extrapolated point's logits are extrapolated too, so
    an iteration costs one forward and one gradient matmul.  Stops when the
    objective changes by less than `tol` (relative) 3 iterations in a row, or
    when `monitor` says so (see `solve_quasi_newton`).
    """
    step = 1.0 / problem.lipschitz_estimate()
    x_V, x_c = V.detach().clone(), c.detach().clone()
    x_LT = problem.logits_t(x_V, x_c)
    if monitor is not None:
        monitor(x_V, x_c, x_LT)
    y_V, y_c, y_LT = x_V, x_c, x_LT
    t = 1.0
    prev_obj = float("inf")
    n_small = 0
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (`it` is reported after the loop)
        f_y, GT = problem.data_loss(y_LT, need_grad=True)
        gV, gc = problem.param_grad(GT)
        pen_y, gpen = problem.smooth_penalty(y_V, need_grad=True)
        if gpen is not None:
            gV = gV + gpen
        f_y = float(f_y + pen_y)
        step *= 1.1
        for _ in range(60):
            new_V = problem.prox_l1(y_V - step * gV, step)
            new_c = y_c - step * gc
            new_LT = problem.logits_t(new_V, new_c)
            f_new, _ = problem.data_loss(new_LT, need_grad=False)
            f_new = float(f_new + problem.smooth_penalty(new_V, False)[0])
            dV = new_V - y_V
            dc = new_c - y_c
            lin = float((gV * dV).sum() + (gc * dc).sum())
            quad = float((dV * dV).sum() + (dc * dc).sum()) / (2.0 * step)
            if f_new <= f_y + lin + quad + 1e-7 * abs(f_y):
                break
            step *= 0.5
        obj = f_new + float(problem.l1(new_V))
        # Gradient-based restart: momentum direction disagrees with progress.
        if float((dV * (new_V - x_V)).sum() + (dc * (new_c - x_c)).sum()) < 0:
            t = 1.0
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        beta = (t - 1.0) / t_next
        y_V = new_V + beta * (new_V - x_V)
        y_c = new_c + beta * (new_c - x_c)
        y_LT = new_LT + beta * (new_LT - x_LT)
        x_V, x_c, x_LT, t = new_V, new_c, new_LT, t_next
        if monitor is not None and monitor(x_V, x_c, x_LT):
            break
        if abs(prev_obj - obj) <= tol * max(1.0, abs(obj)):
            n_small += 1
            if n_small >= 3:
                break
        else:
            n_small = 0
        prev_obj = obj
    if monitor is not None:
        x_V, x_c = monitor.best
    with torch.no_grad():
        V.copy_(x_V)
        c.copy_(x_c)
    return it


class _Stop(Exception):
    """Raised in scipy's callback when the monitor says stop."""


def solve_scipy(
    problem: Problem,
    V: torch.Tensor,
    c: torch.Tensor,
    max_iter: int,
    history_size: int = 10,
    monitor: EarlyStopping | None = None,
) -> int:
    """The reference: scipy's L-BFGS-B on the same objective; returns #iterations.

    Nothing probe-specific: scipy's own line search and stopping rules, float64
    parameters, the objective and gradient from `problem` (data loss,
    `param_grad`, `smooth_penalty`).  L1 is made smooth *exactly* by the
    standard split V = P - M with bounds P, M >= 0 and the linear penalty
    lambda_l1 * sum(omega * (P + M)) (at the optimum one of P, M is 0 per
    entry); the bias is unbounded and unpenalised.  It runs until scipy can
    make no relative progress (ftol = machine epsilon, projected gradient
    1e-12) or `max_iter`: there is no `tol`.  Each iteration costs several
    evaluations and a host round trip, so it is for checking, not for speed.
    """
    C, H = V.shape
    n_w = C * H
    dtype, device = V.dtype, V.device
    has_l1 = problem.lambda_l1 > 0
    lam = (problem.lambda_l1 * problem.omega).repeat(C).double().cpu().numpy()

    def unpack(z: np.ndarray):
        """(V, c) as fresh tensors (never views of scipy's buffers)."""
        zt = torch.tensor(z, dtype=dtype, device=device)
        Vz = zt[:n_w] - zt[n_w : 2 * n_w] if has_l1 else zt[:n_w]
        return Vz.reshape(C, H), zt[-C:]

    def fun(z: np.ndarray):
        Vz, cz = unpack(z)
        loss, GT = problem.data_loss(problem.logits_t(Vz, cz), need_grad=True)
        pen, gpen = problem.smooth_penalty(Vz, need_grad=True)
        gV, gc = problem.param_grad(GT)
        if gpen is not None:
            gV = gV + gpen
        f = float(loss) + pen
        gV = gV.reshape(-1).double().cpu().numpy()
        gc = gc.double().cpu().numpy()
        if not has_l1:
            return f, np.concatenate([gV, gc])
        f += float(lam @ (z[:n_w] + z[n_w : 2 * n_w]))
        return f, np.concatenate([gV + lam, lam - gV, gc])

    n_iter = 0

    def callback(z: np.ndarray):
        nonlocal n_iter
        n_iter += 1
        if monitor is not None:
            Vz, cz = unpack(z)
            if monitor(Vz, cz, problem.logits_t(Vz, cz)):
                raise _Stop

    V0 = V.detach().reshape(-1).double().cpu().numpy()
    c0 = c.detach().double().cpu().numpy()
    if has_l1:
        z0 = np.concatenate([np.maximum(V0, 0.0), np.maximum(-V0, 0.0), c0])
        bounds = [(0.0, None)] * (2 * n_w) + [(None, None)] * C
    else:
        z0, bounds = np.concatenate([V0, c0]), None
    if monitor is not None:
        Vz, cz = unpack(z0)
        monitor(Vz, cz, problem.logits_t(Vz, cz))
    options = dict(
        maxiter=max_iter,
        maxfun=max(15000, 20 * max_iter),
        maxcor=history_size,
        ftol=np.finfo(np.float64).eps,
        gtol=1e-12,
    )
    try:
        result = scipy.optimize.minimize(
            fun, z0, jac=True, method="L-BFGS-B", bounds=bounds, callback=callback, options=options
        )
    except _Stop:
        result = None
    Vx, cx = unpack(result.x) if monitor is None else monitor.best
    with torch.no_grad():
        V.copy_(Vx)
        c.copy_(cx)
    return n_iter
