"""Hellinger distances between per-neuron feature distributions.

One-vector and row-wise forms for any caller, and the O(nnz) per-row sums over the
union of two canonical CSR patterns that `txray.shift.compute_shift` runs on.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

INV_SQRT2 = 1.0 / np.sqrt(2.0)


def _check_vec(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if (a < 0).any():
        raise ValueError(f"{name} has negative entries")
    return a


def hellinger(p, q, normalize: bool = False) -> float:
    """Hellinger distance ``(1/sqrt 2) ||sqrt p - sqrt q||_2`` of two 1-D vectors.

    ``p`` and ``q`` are non-negative and indexed by the same features (zeros
    for features absent from one of them).  With ``normalize=True`` each is
    first divided by its sum.  For probability vectors the result lies in
    ``[0, 1]`` and equals 1 iff the supports are disjoint.
    """
    a, b = _check_vec(p, "p"), _check_vec(q, "q")
    if a.shape != b.shape:
        raise ValueError(f"p and q must have the same length, got {a.shape[0]} and {b.shape[0]}")
    if normalize:
        sa, sb = a.sum(), b.sum()
        if sa <= 0 or sb <= 0:
            raise ValueError("cannot normalise an all-zero vector")
        a, b = a / sa, b / sb
    d = np.sqrt(a) - np.sqrt(b)
    return float(np.sqrt(np.dot(d, d)) * INV_SQRT2)


def hellinger_rows(P, Q) -> np.ndarray:
    """Row-wise Hellinger distances of two ``[N, F]`` non-negative matrices.

    Accepts dense arrays or ``scipy.sparse`` matrices (sparse stays sparse:
    cost O(nnz)).  Rows are used as given (normalise them beforehand).
    """
    if P.shape != Q.shape:
        raise ValueError(f"shape mismatch: {P.shape} vs {Q.shape}")
    if sp.issparse(P) or sp.issparse(Q):
        P, Q = sp.csr_matrix(P), sp.csr_matrix(Q)
        if (P.data < 0).any() or (Q.data < 0).any():
            raise ValueError("negative entries")
        D = (P.sqrt() - Q.sqrt()).tocsr()
        sq = np.asarray(D.multiply(D).sum(axis=1)).ravel()
    else:
        P, Q = np.asarray(P, dtype=np.float64), np.asarray(Q, dtype=np.float64)
        if (P < 0).any() or (Q < 0).any():
            raise ValueError("negative entries")
        D = np.sqrt(P) - np.sqrt(Q)
        sq = np.einsum("ij,ij->i", D, D)
    return np.sqrt(sq) * INV_SQRT2


def with_shape(m: sp.csr_matrix, data: np.ndarray, shape) -> sp.csr_matrix:
    """CSR with ``m``'s pattern, values ``data`` and (column-padded) ``shape``; no copy."""
    out = sp.csr_matrix((data, m.indices, m.indptr), shape=shape, copy=False)
    out.has_sorted_indices = True
    return out


def sq_and_union(Ma, sa, Mb, sb, shape):
    """Per row: sum over the union of features of (sa - sb)^2, and the union size.

    ``sa``/``sb`` are per-cell values on the canonical CSR patterns of
    ``Ma``/``Mb``.  Linear merges of the two sorted patterns (scipy's
    canonical CSR binops), O(nnz).  The sums add the squared differences of
    each row in feature order; cells where ``sa == sb`` exactly add 0.
    """
    H = shape[0]
    D = with_shape(Ma, sa, shape) - with_shape(Mb, sb, shape)
    rows = np.repeat(np.arange(H, dtype=np.int64), np.diff(D.indptr))
    sq = np.bincount(rows, weights=D.data * D.data, minlength=H)
    del D, rows
    common = with_shape(Ma, np.ones(Ma.nnz), shape).multiply(with_shape(Mb, np.ones(Mb.nnz), shape))
    union = np.diff(Ma.indptr) + np.diff(Mb.indptr) - np.diff(sp.csr_matrix(common).indptr)
    return sq, union.astype(np.int64)
