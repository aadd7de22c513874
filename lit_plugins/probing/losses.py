"""The linear-probe objective: data loss, penalties, proximal step, preconditioning.

The objective (stated in `probes.py`) is solved on a preconditioned copy of
the problem: features are centred and divided by their standard deviation
internally, and the penalty is re-weighted so that the optimum is *exactly*
the optimum of the problem as stated (a change of variables, not a change of
model).  Transformer activations have a few huge-magnitude "outlier"
dimensions; without this, the problem is badly conditioned and every
first-order step is tiny.  ``standardize=True`` instead changes the model:
the probe is defined on standardised features, so the penalty and `weight_`
are in standardised units (neuron weights become comparable across neurons
of different scale).

Binary classification is solved as ONE logistic-regression row on the logit
difference and split back into NeuroX's two rows (w1 = -w0 = d / 2), which
is the exact optimum of the two-row problem for any symmetric penalty: half
the work per iteration, same answer (`build_problem`, `stated_weights`).

Data parallel (a `distributed.Comm` with N ranks): each rank holds a
contiguous block of the rows (rank 0's first), and every sum over rows - the
data loss, its gradient, the curvature, the row count, the feature
statistics, the class prior / target mean, the Lipschitz estimate - is the
local sum passed through `comm.all_reduce_sum`.  Everything else (weights,
penalty, solver state) is replicated and computed identically on every
rank, so all ranks take the same solver steps and end with the one-process
solution up to the summation order's round-off.  With a world of one every
reduction is the identity.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lit_plugins.probing import _validation as val
from lit_plugins.util import distributed

BINARY = "binary"  # internal task: 2-class softmax solved as one logistic

# The two products with X of every solver iteration leave the plain BLAS
# (MKL) call on CPU when X is float32 with at least _ONEDNN_MIN_ENTRIES
# entries (small problems stay on the BLAS, where the per-call overheads
# below dominate):
#  * the forward product X W^T (W with at least _ONEDNN_MIN_ROWS rows) goes
#    through oneDNN.  MKL dispatches this tall-skinny shape ([N, H] x [H, C],
#    C ~ 10) to a slow path on AMD CPUs (measured 2x slower than oneDNN on an
#    AMD EPYC, where oneDNN picks its kernels by instruction set, not by CPU
#    vendor).  oneDNN reads the dense X in place (`mkldnn._linear_pointwise`,
#    the op torch.compile emits for linear layers); builds without that op
#    use a oneDNN copy of X made once per problem (~40 ms at 20,000 x 768);
#  * the gradient product G^T X (a reduction over the N rows) is split into
#    one row block per thread, multiplied as a batch (`torch.bmm`: one
#    single-threaded GEMM per block) and summed: MKL's own threading of this
#    shape gains little over one thread (AMD EPYC, 2 threads, 20,000 x 768,
#    12 classes: 13-17 ms, split 9-11 ms, one thread 20 ms; float64 gains
#    nothing from the split, so it stays on the BLAS).
_ONEDNN_MIN_ENTRIES = 1 << 22
_ONEDNN_MIN_ROWS = 4


class Problem:
    """The preconditioned objective, its gradient and proximal operator.

    Variables are V (= W * scale, per neuron) and c (the bias for centred
    features); the centred/scaled features Z = (X - mean) / scale are never
    materialised (that copy costs more than several solver iterations):
    Z V^T = X (V/scale)^T - mean.(V/scale).  Logits are kept transposed,
    [C, N], because the softmax over a short contiguous axis is ~10x faster.
    Gradients are written by hand, which avoids autograd graph construction on
    every line-search evaluation.
    """

    def __init__(
        self,
        X: torch.Tensor,
        targets: torch.Tensor,
        task_type: str,
        mean: torch.Tensor,
        scale: torch.Tensor,
        omega: torch.Tensor,
        lambda_l1: float,
        lambda_l2: float,
        l2_form: str,
        row_weight: torch.Tensor | None = None,
        forward_op=None,
        *,
        comm: distributed.Comm | None = None,
        rows: tuple[int, int] | None = None,
    ):
        """`comm`: the ranks holding the other row blocks (None: this process
        has all rows); `rows`: (rows on all ranks, global index of this
        rank's first row), gathered from the ranks when not given."""
        self.X = X
        self.comm = distributed.SINGLE if comm is None else comm
        self.n, self.row_offset = global_rows(self.comm, X.shape[0]) if rows is None else rows
        self.task_type = task_type
        self.targets = targets  # classification: labels [N]; regression: [1, N]
        self.neg_targets = -targets if task_type == BINARY else None
        self.mean = mean
        self.scale = scale
        self.inv_scale = 1.0 / scale
        self.omega = omega  # per-neuron penalty weight, [H]
        self.omega2 = omega * omega
        self.lambda_l1 = float(lambda_l1)
        self.lambda_l2 = float(lambda_l2)
        self.l2_form = l2_form
        self.row_weight = row_weight  # None: plain mean over all N rows (all ranks')
        # X W^T and G^T X: the BLAS or oneDNN (see _Forward), shared by `with_row_weight`.
        self.forward_op = _Forward(X) if forward_op is None else forward_op
        self._per_row = None  # (logits, per-row losses) of the last `data_loss`

    def with_row_weight(self, row_weight: torch.Tensor) -> Problem:
        """The same problem with the data loss weighted by `row_weight` [1, N]."""
        return Problem(
            self.X,
            self.targets,
            self.task_type,
            self.mean,
            self.scale,
            self.omega,
            self.lambda_l1,
            self.lambda_l2,
            self.l2_form,
            row_weight=row_weight,
            forward_op=self.forward_op,
            comm=self.comm,
            rows=(self.n, self.row_offset),
        )

    def logits_t(self, V, c):
        """Model outputs, transposed: [C, N].  Linear in (V, c)."""
        W = V * self.inv_scale
        b = torch.addmv(c, W, self.mean, alpha=-1.0)  # c - W mean
        return self.forward_op(W).T + b[:, None]

    def data_loss(self, LT, need_grad: bool, row_weight=None):
        """Mean loss from transposed logits; with need_grad also dLoss/dLT.

        `row_weight` ([1, N], summing to 1) replaces the plain mean, e.g. to
        leave out held-out rows (weight 0) or to score only them; default: the
        problem's own `row_weight`, or the plain mean when that is None.
        Across ranks: the loss is the global one (one reduction per call, on
        every path), dLoss/dLT covers this rank's rows (`param_grad` sums it).
        """
        w = self.row_weight if row_weight is None else row_weight
        total = self.comm.all_reduce_sum
        cached = self._per_row
        if not need_grad and cached is not None and cached[0] is LT:
            # The same logits again (the early-stopping monitor scoring the
            # held-out rows of the iterate just evaluated): reweight the
            # per-row losses instead of recomputing the softmax.
            per_row = cached[1]
            return (
                total(per_row.sum()) / self.n if w is None else total((per_row * w).sum())
            ), None
        if self.task_type == BINARY:  # targets are -1/+1, LT the logit of +1
            neg_margin = LT * self.neg_targets
            per_row = torch.nn.functional.softplus(neg_margin)
            self._per_row = (LT, per_row)
            loss = total(per_row.sum()) / self.n if w is None else total((per_row * w).sum())
            if not need_grad:
                return loss, None
            GT = torch.sigmoid(neg_margin).mul_(self.neg_targets)
            return loss, (GT.mul_(1.0 / self.n) if w is None else GT.mul_(w))
        if self.task_type == val.CLASSIFICATION:
            m = LT.amax(0, keepdim=True)
            e = torch.exp(LT - m)
            se = e.sum(0, keepdim=True)
            per_row = torch.log(se) + m - LT.gather(0, self.targets[None, :])
            self._per_row = (LT, per_row)
            loss = total(per_row.sum()) / self.n if w is None else total((per_row * w).sum())
            if not need_grad:
                return loss, None
            GT = e.div_(se)
            GT.scatter_add_(0, self.targets[None, :], torch.full_like(per_row, -1.0))
            return loss, (GT.mul_(1.0 / self.n) if w is None else GT.mul_(w))
        r = LT - self.targets
        if w is None:
            loss = total((r * r).sum()) / self.n
            return loss, (r.mul_(2.0 / self.n) if need_grad else None)
        loss = total((r * r * w).sum())
        return loss, (r.mul_(w).mul_(2.0) if need_grad else None)

    def curvature(self, LT, LT_d) -> float:
        """Second derivative of the training data loss along a direction d.

        `LT_d` are d's logits (`logits_t` is linear, so they are the change of
        the logits per unit step).  Exact for all three losses; used for the
        first quasi-Newton step, before any curvature pairs exist.
        """
        w = self.row_weight if self.row_weight is not None else 1.0 / self.n
        total = self.comm.all_reduce_sum
        if self.task_type == BINARY:
            p = torch.sigmoid(LT)
            return float(total((p * (1.0 - p) * LT_d * LT_d * w).sum()))
        if self.task_type == val.CLASSIFICATION:
            p = torch.softmax(LT, dim=0)
            pa = (p * LT_d).sum(0)
            return float(total((((p * LT_d * LT_d).sum(0) - pa * pa) * w).sum()))
        return float(total((2.0 * LT_d * LT_d * w).sum()))

    def param_grad(self, GT):
        """Chain rule from dLoss/dLT to (dV, dc) (summed over ranks: one reduction)."""
        gc = GT.sum(1)
        GX = self.forward_op.gradient(GT)
        if self.comm.distributed:  # GT X and gc in one message
            summed = self.comm.all_reduce_sum(torch.cat([GX, gc[:, None]], dim=1))
            GX, gc = summed[:, :-1], summed[:, -1]
        # (GT X - gc mean^T) / scale
        gV = torch.addr(GX, gc, self.mean, alpha=-1.0).mul_(self.inv_scale)
        return gV, gc

    def smooth_penalty(self, V, need_grad: bool):
        """The L2 term (squared or plain norm), as a float, and its gradient."""
        if self.lambda_l2 <= 0:
            return 0.0, None
        V_omega2 = V * self.omega2
        sq = float((V * V_omega2).sum())
        if self.l2_form == "squared":
            pen = self.lambda_l2 * sq
            grad = V_omega2.mul_(2.0 * self.lambda_l2) if need_grad else None
        else:
            norm = math.sqrt(sq)
            pen = self.lambda_l2 * norm
            grad = None
            if need_grad:  # at W = 0 this gives 0, a valid subgradient
                grad = V_omega2.mul_(self.lambda_l2 / max(norm, 1e-30))
        return pen, grad

    def l1(self, V):
        return self.lambda_l1 * (V.abs() * self.omega).sum()

    def prox_l1(self, V, step: float):
        """Soft-thresholding: the exact minimiser of L1 plus a quadratic."""
        thr = (step * self.lambda_l1) * self.omega
        return torch.sign(V) * torch.clamp(V.abs() - thr, min=0.0)

    def lipschitz_estimate(self, num_iter: int = 10, max_rows: int = 2048) -> float:
        """Estimate of the smooth part's curvature bound, by power iteration.

        Cross-entropy's Hessian is bounded by 1/2 * Z^T Z / N (softmax
        covariances have eigenvalues <= 1/2); squared error's is 2 * Z^T Z / N.
        Z is centred, so the bias block decouples.  A fixed strided row subsample
        and a fixed start vector keep it cheap and deterministic; an estimate is
        enough because FISTA backtracks when it is too optimistic.  Across
        ranks the subsample is the one-process one (every `stride`-th global
        row) and each product Z^T Z v is summed over the ranks.
        """
        stride = max(1, self.n // max_rows)
        first = (-self.row_offset) % stride  # this rank's first global multiple of stride
        Zs = (self.X[first::stride] - self.mean) * self.inv_scale
        num_rows = len(range(0, self.n, stride))  # = Zs.shape[0] in a world of one
        h = Zs.shape[1]
        v = torch.ones(h, dtype=Zs.dtype, device=Zs.device) / math.sqrt(h)
        lam = 0.0
        for _ in range(num_iter):
            w = self.comm.all_reduce_sum(Zs.T @ (Zs @ v)) / num_rows
            lam = float(torch.linalg.vector_norm(w))
            if lam == 0.0:
                break
            v = w / lam
        factor = {val.CLASSIFICATION: 0.5, BINARY: 0.25}.get(self.task_type, 2.0)
        L = factor * max(lam, 1.0)
        if self.lambda_l2 > 0 and self.l2_form == "squared":
            L += 2.0 * self.lambda_l2 * float(self.omega2.max())
        return L


def _gradient_blocks() -> int:
    """Row blocks of the split gradient product: one per thread."""
    return torch.get_num_threads()


class _Forward:
    """W -> X W^T and G^T -> G^T X, the products with X (see
    _ONEDNN_MIN_ENTRIES): the BLAS, or for big X on CPU oneDNN (forward,
    float32, W with >= _ONEDNN_MIN_ROWS rows) and a row-block split (gradient).
    One per X, shared by `with_row_weight`."""

    def __init__(self, X: torch.Tensor):
        self.X = X
        big = (
            X.device.type == "cpu"
            and X.dtype == torch.float32
            and X.dim() == 2
            and X.numel() >= _ONEDNN_MIN_ENTRIES
        )
        # oneDNN on the dense X ("dense"), on a oneDNN copy of X ("copy"), or none.
        self.onednn = "dense" if big and torch.backends.mkldnn.is_available() else None
        self.split_gradient = big
        self.X_onednn = None  # the "copy" mode's oneDNN copy of X
        self._X_rows = None  # X, contiguous (the big paths read it as row blocks)

    @property
    def use_onednn(self) -> bool:
        return self.onednn is not None

    def _rows(self) -> torch.Tensor:
        if self._X_rows is None:
            self._X_rows = self.X.contiguous()
        return self._X_rows

    def __call__(self, W: torch.Tensor) -> torch.Tensor:
        if self.onednn is not None and W.shape[0] >= _ONEDNN_MIN_ROWS:
            W = W.contiguous()
            if self.onednn == "dense":
                try:
                    return torch.ops.mkldnn._linear_pointwise(self._rows(), W, None, "none", [], "")
                except (RuntimeError, AttributeError, TypeError):  # no such op in this build
                    self.onednn = "copy"
            try:
                if self.X_onednn is None:
                    self.X_onednn = self._rows().to_mkldnn()
                return torch._C._nn.mkldnn_linear(self.X_onednn, W).to_dense()
            except RuntimeError:  # a build without oneDNN's linear: the BLAS
                self.onednn, self.X_onednn = None, None
        return self.X @ W.T

    def gradient(self, GT: torch.Tensor) -> torch.Tensor:
        """GT X ([C, N] x [N, H]): with the split, one row block per thread,
        batched, summed (the rows left over by the equal blocks added last)."""
        blocks = _gradient_blocks() if self.split_gradient else 1
        n = self.X.shape[0]
        k = n // blocks if blocks > 1 else 0
        if k == 0:
            return GT @ self.X
        X = self._rows()
        m = blocks * k
        parts = torch.bmm(
            GT[:, :m].unflatten(1, (blocks, k)).transpose(0, 1), X[:m].view(blocks, k, -1)
        )
        out = parts.sum(0)
        if m < n:
            out.addmm_(GT[:, m:], X[m:])
        return out


def global_rows(comm: distributed.Comm, n_local: int) -> tuple[int, int]:
    """(rows on all ranks, global index of this rank's first row).

    Blocks are contiguous in rank order; a world of one is (n_local, 0) with
    no communication.
    """
    if not comm.distributed:
        return int(n_local), 0
    sizes = comm.all_gather_object(int(n_local))
    return sum(sizes), sum(sizes[: comm.rank])


def feature_stats(
    X: torch.Tensor,
    exact: bool,
    max_rows: int = 2048,
    comm: distributed.Comm | None = None,
    rows: tuple[int, int] | None = None,
):
    """Per-neuron mean and std (constant neurons get scale 1).

    With exact=False they only precondition the solver (any positive scale
    and any centre give the same optimum), so they are computed cheaply: on a
    fixed strided subsample of at most `max_rows` rows and from the first two
    moments (torch's column-wise var_mean is ~10x slower than two reductions
    and, on a probe-sized matrix, costs as much as several solver iterations).
    exact=True (standardize=True) defines the model: full data, var_mean.

    `comm`, `rows` (see `Problem`): X is this rank's block of the rows; the
    statistics are those of all ranks' rows (the same strided subsample of
    the global rows as one process takes, or, exact, a two-pass mean and
    variance over all rows).
    """
    if comm is not None and comm.distributed:
        mean, var = _global_moments(X, exact, max_rows, comm, rows)
    elif exact:
        var, mean = torch.var_mean(X, dim=0, correction=0)
    else:
        if X.shape[0] > max_rows:
            X = X[:: X.shape[0] // max_rows]
        mean = X.mean(0)
        var = torch.clamp((X * X).mean(0) - mean * mean, min=0.0)
    scale = torch.sqrt(var)
    # A relative floor: for a (near-)constant neuron the moment difference is
    # round-off (~sqrt(eps) of its magnitude), not a scale.
    tiny = 0.0
    if not exact:
        tiny = 10 * math.sqrt(torch.finfo(X.dtype).eps) * torch.sqrt(mean * mean + var)
    scale = torch.where(scale > tiny, scale, torch.ones_like(scale))
    return mean, scale


def _global_moments(X, exact, max_rows, comm, rows):
    """`feature_stats`'s (mean, var) of the rows on all ranks (X: this rank's block)."""
    n, offset = global_rows(comm, X.shape[0]) if rows is None else rows
    if exact:  # two passes, as var_mean: sum, then centred squares
        mean = comm.all_reduce_sum(X.sum(0)) / n
        return mean, comm.all_reduce_sum(torch.square(X - mean).sum(0)) / n
    if n > max_rows:  # every stride-th GLOBAL row, as one process subsamples
        stride = n // max_rows
        X = X[(-offset) % stride :: stride]
        n = len(range(0, n, stride))
    moments = comm.all_reduce_sum(torch.stack([X.sum(0), (X * X).sum(0)])) / n
    mean = moments[0]
    return mean, torch.clamp(moments[1] - mean * mean, min=0.0)


def build_problem(
    X: torch.Tensor,
    y: np.ndarray,
    num_classes: int | None,
    lambda_l1: float,
    lambda_l2: float,
    l2_form: str,
    standardize: bool,
    comm: distributed.Comm | None = None,
    rows: tuple[int, int] | None = None,
) -> tuple[Problem, torch.Tensor]:
    """The preconditioned problem of a probe and the bias to start from.

    `y`: class indices 0..num_classes-1 (classification) or real targets
    (regression, num_classes None).  The starting bias is the log class prior
    (or the target mean), so the weights can start at zero.  `comm`, `rows`:
    X and y are this rank's block of the rows (see `Problem`); the prior and
    the target mean are then those of all ranks' rows.
    """
    device, dtype = X.device, X.dtype
    comm = distributed.SINGLE if comm is None else comm
    rows = global_rows(comm, X.shape[0]) if rows is None else rows
    n = rows[0]
    mean, scale = feature_stats(X, exact=standardize, comm=comm, rows=rows)
    if num_classes == 2:
        # A 2-class softmax probe only sees the logit difference d = w1 - w0,
        # and for any symmetric penalty the best split is w1 = -w0 = d / 2
        # (|w0| + |w1| = |d|, w0^2 + w1^2 = d^2 / 2): so solve the logistic
        # regression on d, one output row instead of two, and split it back.
        kind = BINARY
        targets = torch.as_tensor(2 * y - 1, device=device).to(dtype)[None, :]
        p1 = (
            float(np.mean(y))
            if not comm.distributed
            else float(comm.sum_array(np.array([y.sum()]))[0]) / n
        )
        c0 = torch.tensor([math.log(p1 / (1.0 - p1))], dtype=dtype, device=device)
        lambda_l2 *= 0.5 if l2_form == "squared" else math.sqrt(0.5)
    elif num_classes is not None:
        kind = val.CLASSIFICATION
        targets = torch.as_tensor(y, device=device, dtype=torch.long)
        prior = comm.all_reduce_sum(torch.bincount(targets, minlength=num_classes)).to(dtype)
        prior = prior / prior.sum()
        c0 = torch.log(prior) - torch.log(prior).mean()
    else:
        kind = val.REGRESSION
        targets = torch.as_tensor(y, device=device).to(dtype)[None, :]
        c0 = targets.mean(1) if not comm.distributed else comm.all_reduce_sum(targets.sum(1)) / n
    # Penalty weights per neuron.  standardize=False: the penalty is on the
    # raw weights W = V / scale, so omega = 1 / scale keeps the optimum of the
    # stated problem; standardize=True: the penalty is on V itself.
    omega = torch.ones_like(scale) if standardize else 1.0 / scale
    problem = Problem(
        X, targets, kind, mean, scale, omega, lambda_l1, lambda_l2, l2_form, comm=comm, rows=rows
    )
    return problem, c0


def stated_weights(
    problem: Problem, V: torch.Tensor, c: torch.Tensor, standardize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) of the problem as stated, from the solver's variables (V, c).

    A binary solve is split back into two rows (w1 = -w0 = d / 2); without
    `standardize` the preconditioning is undone (W = V / scale).
    """
    if problem.task_type == BINARY:
        V = torch.cat([-0.5 * V, 0.5 * V])
        c = torch.cat([-0.5 * c, 0.5 * c])
    if standardize:
        return V, c
    W = V / problem.scale
    return W, c - W @ problem.mean
