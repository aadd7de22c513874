"""Data-parallel probes: 2 gloo ranks fitting their row blocks = one process.

One spawned run (module fixture) starts 2 CPU processes in a real gloo
group; each fits every case on its contiguous block of the rows (301 rows:
151 + 150, so the blocks differ in size) and writes what it got to a file.
The tests compare the ranks with each other (bit-identical: every rank
takes the same steps) and with one process fitting all rows (equal up to
float32 round-off: the sums over rows are added in another order).
"""

import datetime
import os
import pickle
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as torch_mp

from lit_plugins.probing import losses
from lit_plugins.probing.probes import LinearProbe
from lit_plugins.probing.representations import LayerSweep
from lit_plugins.util import distributed

WORLD = 2
N, H, N_DEV, LAYERS = 301, 20, 101, 3
# float32 fits: max |W_ranks - W_one| <= RTOL * max |W_one| (round-off of the
# reordered row sums, carried through the solver); float64 cases: 1e-9.
RTOL = {torch.float32: 1e-4, torch.float64: 1e-9}


def _data(kind: str, n: int = N, seed: int = 0, layer: int = 0):
    """Synthetic activations [n, H] (uneven scales and offsets) and labels."""
    rng = np.random.default_rng([seed, layer])
    X = rng.normal(size=(n, H)) * rng.uniform(0.3, 4.0, size=H) + rng.normal(size=H)
    X = X.astype(np.float32)
    w = rng.normal(size=(4, H)) * (rng.uniform(size=(4, H)) < 0.3)
    if kind == "regression":
        return X, X @ w[0] + 0.5 * rng.normal(size=n)
    if kind == "binary":  # string labels
        return X, np.where(X @ w[0] + rng.normal(size=n) > 0, "pos", "neg")
    y = np.argmax(X @ w.T + rng.normal(size=(n, 4)), axis=1)
    # Class 3 only in rank 1's block (rows 151-300): rank 0 never sees it.
    y[:151][y[:151] == 3] = 0
    y[200:210] = 3
    return X, y


# name: (data, task, LinearProbe kwargs).  Unpenalised or L1 without ridge
# means early_stopping="auto" holds out 10% of the rows.
CASES = {
    "binary_lbfgs_es": ("binary", "classification", {}),
    "binary_lbfgs_ridge": ("binary", "classification", {"lambda_l2": 1e-3}),
    "binary_owlqn": ("binary", "classification", {"lambda_l1": 1e-3, "early_stopping": False}),
    "binary_owlqn_es": ("binary", "classification", {"lambda_l1": 1e-3}),
    "multi_lbfgs_es": ("multi", "classification", {}),
    "multi_lbfgs_es_f64": (
        "multi",
        "classification",
        {"dtype": torch.float64, "tol": 1e-8},
    ),
    "multi_owlqn": ("multi", "classification", {"lambda_l1": 1e-3, "lambda_l2": 1e-3}),
    "multi_owlqn_es": ("multi", "classification", {"lambda_l1": 1e-3}),
    "multi_lbfgs_norm_es_true": (
        "multi",
        "classification",
        {"lambda_l2": 1e-3, "l2_form": "norm", "early_stopping": True},
    ),
    "regression_lbfgs_es": ("regression", "regression", {}),
    "regression_owlqn": ("regression", "regression", {"lambda_l1": 1e-2, "early_stopping": False}),
    "regression_owlqn_es": ("regression", "regression", {"lambda_l1": 1e-2}),
    "regression_ridge_standardize": (
        "regression",
        "regression",
        {"lambda_l2": 1e-2, "standardize": True},
    ),
    "multi_fista": (
        "multi",
        "classification",
        {"solver": "fista", "lambda_l1": 1e-3, "early_stopping": False},
    ),
    "binary_fista_es": ("binary", "classification", {"solver": "fista", "lambda_l1": 1e-3}),
    "binary_scipy_f64": (
        "binary",
        "classification",
        {"solver": "scipy", "lambda_l1": 1e-3, "dtype": torch.float64, "early_stopping": False},
    ),
}
SWEEPS = {
    "classification": ("multi", {"metric": "accuracy"}),
    "regression": ("regression", {"metric": "spearman", "lambda_l1": 1e-2}),
}
ATTRS = ("weight_", "bias_", "mean_", "scale_", "classes_")
INFO = ("n_iter_", "best_iter_", "early_stopped_", "validation_loss_", "solver_")


def _fit(X, y, task, kwargs, comm=None):
    probe = LinearProbe(task, device="cpu", comm=comm, **kwargs).fit(X, y)
    return {name: getattr(probe, name) for name in ATTRS + INFO}


def _sweep_data(kind):
    layers = [_data(kind, N + N_DEV, seed=1, layer=i) for i in range(LAYERS)]
    acts = np.stack([X for X, _ in layers])
    y = layers[0][1]  # one label vector, every layer's activations
    return acts[:, :N], y[:N], acts[:, N:], y[N:]


def _sweep(kind, task, kwargs, comm=None, train_block=slice(None), dev_block=slice(None)):
    tr, y_tr, dev, y_dev = _sweep_data(kind)
    sweep = LayerSweep(task, comm=comm, device="cpu", **kwargs).fit(
        tr[:, train_block], y_tr[train_block], dev[:, dev_block], y_dev[dev_block]
    )
    return {"scores": sweep.scores_, "best": sweep.best_layer_}


def _problem_quantities(comm, block, rows=None):
    """Loss, gradient, curvature and Lipschitz estimate of one float64 problem
    (with and without row weights), and the strided feature statistics."""
    X, y = _data("multi")
    X = torch.as_tensor(X[block], dtype=torch.float64)
    problem, c0 = losses.build_problem(X, y[block], 4, 0.0, 0.1, "squared", False, comm=comm)
    rng = np.random.default_rng(5)
    V = torch.as_tensor(rng.normal(size=(4, H)))
    dV = torch.as_tensor(rng.normal(size=(4, H)))
    weight = torch.as_tensor(rng.uniform(size=N))
    weight = (weight / weight.sum())[None, block]
    LT = problem.logits_t(V, c0)
    out = {"c0": c0.numpy(), "mean": problem.mean.numpy(), "scale": problem.scale.numpy()}
    for name, p in (("plain", problem), ("weighted", problem.with_row_weight(weight))):
        loss, GT = p.data_loss(LT, need_grad=True)
        gV, gc = p.param_grad(GT)
        cached, _ = p.data_loss(LT, need_grad=False, row_weight=weight)  # per-row shortcut
        out[name] = (float(loss), gV.numpy(), gc.numpy(), float(cached))
        out[name + "_curvature"] = p.curvature(LT, p.logits_t(dV, 0 * c0))
    out["lipschitz"] = problem.lipschitz_estimate(max_rows=64)
    for exact in (False, True):
        mean, scale = losses.feature_stats(X, exact, max_rows=64, comm=comm)
        out[f"stats_{exact}"] = (mean.numpy(), scale.numpy())
    return out


def _rank_results(comm):
    block = slice(*comm.block(N))
    dev_block = slice(*comm.block(N_DEV))
    out = {"block": (block.start, block.stop)}
    for name, (kind, task, kwargs) in CASES.items():
        X, y = _data(kind)
        out[name] = _fit(X[block], y[block], task, kwargs, comm)
    for task, (kind, kwargs) in SWEEPS.items():
        out["sweep_" + task] = _sweep(kind, task, kwargs, comm, block, dev_block)
    out["problem"] = _problem_quantities(comm, block)
    # A bad block on one rank raises on both (no rank left waiting).
    X, y = _data("binary")
    X = X[block].copy()
    if comm.rank == 1:
        X[3, 4] = np.nan
    try:
        LinearProbe(device="cpu", comm=comm).fit(X, y[block])
        out["bad_block"] = None
    except ValueError as e:
        out["bad_block"] = str(e)
    return out


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=120)
    )
    try:
        results = _rank_results(distributed.Comm(rank, WORLD))
    finally:
        dist.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(results, f)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Every rank's results (a list, rank order), from one spawned 2-process run."""
    out_dir = str(tmp_path_factory.mktemp("ranks"))
    torch_mp.spawn(_worker, args=(_free_port(), out_dir), nprocs=WORLD, join=True)
    results = []
    for rank in range(WORLD):
        with open(os.path.join(out_dir, f"rank{rank}.pkl"), "rb") as f:
            results.append(pickle.load(f))
    return results


def _assert_close(got, want, rtol, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    assert err <= rtol * scale, f"{what}: max |diff| {err:.3g} > {rtol} * {scale:.3g}"


def test_blocks_are_contiguous_and_uneven(ranks):
    assert [r["block"] for r in ranks] == [(0, 151), (151, 301)]
    _, y = _data("multi")
    assert 3 not in y[:151] and 3 in y[151:]  # a class rank 0 never sees


@pytest.mark.parametrize("name", list(CASES))
def test_ranks_fit_the_one_process_probe(ranks, name):
    kind, task, kwargs = CASES[name]
    X, y = _data(kind)
    one = _fit(X, y, task, kwargs)
    first = ranks[0][name]
    for rank in ranks[1:]:  # every rank: the same probe, bit for bit
        for attr in ATTRS + INFO:
            assert pickle.dumps(rank[name][attr]) == pickle.dumps(first[attr]), attr
    rtol = RTOL[kwargs.get("dtype", torch.float32)]
    for attr in ("weight_", "bias_", "mean_", "scale_"):
        _assert_close(first[attr], one[attr], rtol, f"{name}.{attr}")
    if task == "classification":
        np.testing.assert_array_equal(first["classes_"], one["classes_"])
    assert first["solver_"] == one["solver_"]
    assert first["n_iter_"] == one["n_iter_"]
    assert first["best_iter_"] == one["best_iter_"]
    assert first["early_stopped_"] == one["early_stopped_"]
    assert (first["validation_loss_"] is None) == (one["validation_loss_"] is None)
    assert (one["validation_loss_"] is not None) == ("_es" in name)
    if first["validation_loss_"] is not None:
        _assert_close(first["validation_loss_"], one["validation_loss_"], rtol, name)
    if name.startswith("multi"):
        assert first["weight_"].shape == (4, H)


def test_cases_cover_early_stopping_refit_and_plateau(ranks):
    """Both early-stopping outcomes (refit after overfitting, kept best) occur."""
    outcomes = {ranks[0][name]["early_stopped_"] for name in CASES}
    assert {True, False} <= outcomes


@pytest.mark.parametrize("task", list(SWEEPS))
def test_layer_sweep_scores_are_global(ranks, task):
    kind, kwargs = SWEEPS[task]
    one = _sweep(kind, task, kwargs)
    for rank in ranks:
        assert rank["sweep_" + task]["best"] == one["best"]
        assert rank["sweep_" + task]["scores"] == pytest.approx(one["scores"], abs=1e-6)


def test_problem_sums_are_reduced_over_ranks(ranks):
    """float64: the reduced loss, gradients, curvature, prior, Lipschitz
    estimate and strided/exact feature statistics equal one process's."""
    one = _problem_quantities(distributed.SINGLE, slice(None))
    for rank in ranks:
        got = rank["problem"]
        for key, want in one.items():
            _assert_close(_flat(got[key]), _flat(want), 1e-12, key)


def _flat(value):
    """A number, an array or a tuple of them, as one 1-D array."""
    parts = value if isinstance(value, tuple) else (value,)
    return np.concatenate([np.ravel(np.asarray(p, dtype=np.float64)) for p in parts])


def test_a_bad_block_on_one_rank_raises_on_every_rank(ranks):
    assert "NaN" in ranks[1]["bad_block"]
    assert ranks[0]["bad_block"].startswith("Rank 1 of 2 rejected its data")


def test_comm_of_two_needs_a_process_group():
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="process group"):
        distributed.Comm(rank=0, world_size=2)
