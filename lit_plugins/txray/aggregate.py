"""Streaming aggregation of neuron activations over discrete input features.

(Over 600 lines on purpose: `NeuronFeatureAggregator` is one streaming
algorithm whose dense and sparse storage must add in the same order to give
bit-identical sums; keeping both beside the update they serve is what makes
that checkable. The feature vocabulary lives in `features.py`.)

TX-Ray (Rethmeier, Saxena & Augenstein, UAI 2020) describes every neuron of a
layer by the input features (tokens, whole words, POS tags, ...) that activate
it.  This module turns a stream of ``[tokens x neurons]`` activation matrices
plus one feature id per token position into, per neuron x feature:

* the activation **mass** (sum of the credited activation values) and
* the **count** of credited token positions.

Crediting modes (``mode``):

``"max1"`` (the paper's setting)
    each token position credits only its single most active neuron (arg-max
    over the layer, ties -> lowest neuron index, as ``numpy.argmax``) with that
    activation value, and only if the value is ``> 0``.
``"all"``
    every neuron with a positive activation at that position is credited with
    its activation value.

Memory is O(neurons x distinct features), never O(tokens x neurons): each
batch is reduced to per-(neuron, feature) credits immediately.  Two storages:

* dense: feature-major ``[features, neurons]`` tables of mass and count,
  growing in blocks of features (no copy when the feature space grows);
* sparse: a canonical CSR pair (mass, count) with one shared pattern, plus a
  buffer of pending ``(neuron << 32 | feature, mass, count)`` cells merged
  (one stable sort, then in-order sums) once it outgrows
  ``max(coalesce_every, stored cells)``.

``storage="auto"`` uses sparse storage for max-1 crediting over a growing
feature space (about one credited neuron per position: a sparse table), and
dense otherwise while ``num_neurons x num_features <= dense_max_cells``; "all"
crediting fills nearly every cell of a seen feature (about half the layer is
positive at each position), where a dense table is both smaller and faster,
so its default has no such limit.  Both storages add every cell's credits in
batch order, so they give bit-identical sums.

NaN or ``+inf`` activations raise ``ValueError``; ``-inf`` is accepted (it can
never be credited).

Counts are always exact.  Masses are ``float64`` sums; a different batching
changes only the summation order (differences at the level of float64
rounding, i.e. ~1e-16 relative), and is bit-exact whenever the partial sums are
exactly representable (e.g. dyadic activations as in the test-suite).

No LIT import here: this module is plain numpy/scipy (torch tensors are
accepted as input and converted).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from lit_plugins.txray.bootstrap import UnitCells
from lit_plugins.txray.features import FeatureVocab, merge_subwords

__all__ = [
    "MODES",
    "FeatureScore",
    "FeatureVocab",
    "NeuronDistributions",
    "NeuronFeatureAggregator",
    "merge_subwords",
]

MODES = ("max1", "all")
_NPZ_FORMAT = "lit_plugins.txray.aggregation/1"


# --------------------------------------------------------------------------- #
# Feature vocabulary
# --------------------------------------------------------------------------- #
# --------------------------------------------------------------------------- #
# Result records
# --------------------------------------------------------------------------- #
@dataclasses.dataclass(frozen=True)
class FeatureScore:
    """One feature of one neuron: id, optional name, probability, mass, count."""

    feature: int
    name: str | None
    prob: float
    mass: float
    count: int


@dataclasses.dataclass(frozen=True)
class NeuronDistributions:
    """Per-neuron feature distributions.

    ``probs``: ``[num_neurons, num_features]`` (CSR matrix, or dense ndarray if
    requested); each active row sums to 1, inactive rows are all zero.
    ``active``: bool ``[num_neurons]``, False for neurons never credited.
    """

    probs: sp.csr_matrix | np.ndarray
    active: np.ndarray


# --------------------------------------------------------------------------- #
# Aggregator
# --------------------------------------------------------------------------- #
def _to_numpy(x, name: str) -> np.ndarray:
    """Converts numpy / torch / list input to a numpy array without copying if possible."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, no torch import
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype == object:
        raise ValueError(f"{name} must be numeric, got object array")
    return arr


_KEY_SHIFT = 32  # sparse cell key = neuron << 32 | feature
_MAX_FEATURE_ID = (1 << 31) - 1
_BLOCK_CELLS = 1 << 18  # cells per dense block while the feature space grows
# storage="auto" dense/sparse threshold (cells) per mode when none is given:
# max-1 fills ~1 neuron per feature, so its table is sparse; "all" credits
# every positive activation (about half the layer per position), so nearly
# every (neuron, feature) cell of a seen feature is filled and a dense table
# is both smaller (16 B per cell vs 24 B per stored cell plus the pending
# buffer) and faster: no threshold.
_DEFAULT_DENSE_MAX_CELLS = {"max1": 1 << 18, "all": None}


class NeuronFeatureAggregator:
    """Accumulates activation mass and counts per (neuron, feature).

    Args:
      num_neurons: layer width H.
      num_features: size of the feature id space if known (ids must then be
        ``< num_features``); ``None`` lets the space grow with the largest id seen
        (ids must be ``< 2**31``).
      mode: ``"max1"`` (default, the paper's) or ``"all"`` — see module docstring.
      storage: ``"auto"``, ``"dense"`` (grows in blocks of features if
        ``num_features`` is None) or ``"sparse"``.  ``"auto"`` is dense while
        ``H x num_features <= dense_max_cells`` and switches to sparse once
        a growing feature space exceeds it; in ``"max1"`` mode it starts
        sparse when ``num_features`` is not given.
      dense_max_cells: dense/sparse threshold for ``storage="auto"``; default
        ``2**18`` cells in ``"max1"`` mode and no limit in ``"all"`` mode
        (there, nearly every cell of a seen feature is filled, so a dense
        table is smaller than a sparse one).
      coalesce_every: in sparse storage, pending cells are merged into the CSR
        accumulators once more than ``max(coalesce_every, stored cells)`` are
        buffered.
      record_units: also keep every credit per *unit* (sentence), given per
        position as ``update(..., units=...)``: the table the bootstrap over
        sentences resamples (:mod:`lit_plugins.txray.bootstrap`; saved with
        the aggregation).  Off by default: the plain path is unchanged.
      unit_max_cells: memory bound of that table (see ``bootstrap.UnitCells``).

    Use :meth:`update` once per batch; feature ids ``< 0`` (and positions with
    ``mask == False``) are skipped, which is convenient for padding / special
    tokens.

    Storage: dense tables are feature-major blocks ``[features, H]`` (mass
    ``float64``; counts ``float64`` too, exact below ``2**53``, returned as
    ``int64``); sparse storage is a canonical CSR pair with one shared
    pattern plus a buffer of pending ``(neuron << 32 | feature, mass, count)``
    cells.  Both add every cell's contributions in batch order, so dense and
    sparse storage give bit-identical sums.
    """

    def __init__(
        self,
        num_neurons: int,
        num_features: int | None = None,
        mode: str = "max1",
        storage: str = "auto",
        dense_max_cells: int | None = None,
        coalesce_every: int = 1 << 18,
        record_units: bool = False,
        unit_max_cells: int = 1 << 21,
    ):
        if int(num_neurons) <= 0:
            raise ValueError(f"num_neurons must be positive, got {num_neurons}")
        if num_features is not None and int(num_features) <= 0:
            raise ValueError(f"num_features must be positive or None, got {num_features}")
        if num_features is not None and int(num_features) > _MAX_FEATURE_ID + 1:
            raise ValueError(f"num_features must be <= 2**31, got {num_features}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if storage not in ("auto", "dense", "sparse"):
            raise ValueError(f"storage must be 'auto', 'dense' or 'sparse', got {storage!r}")
        self.num_neurons = int(num_neurons)
        self.fixed_num_features = None if num_features is None else int(num_features)
        self.mode = mode
        self.storage_policy = storage
        if dense_max_cells is None:
            dense_max_cells = _DEFAULT_DENSE_MAX_CELLS[mode]
        self.dense_max_cells = None if dense_max_cells is None else int(dense_max_cells)
        self.coalesce_every = int(coalesce_every)
        self.num_tokens = 0  # token positions seen (after mask / negative-id filtering)
        self.num_credited = 0  # (position, neuron) credits recorded
        self._num_features = 0 if num_features is None else int(num_features)
        # dense state: feature-major blocks, block k holds features [k*R, (k+1)*R)
        self._blocks: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._block_rows = 0
        # sparse state: canonical CSR pair sharing one pattern + pending cells
        self._csr_mass: sp.csr_matrix | None = None
        self._csr_count: sp.csr_matrix | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._pending_n = 0
        self.units: UnitCells | None = UnitCells(unit_max_cells) if record_units else None

        if storage == "dense" or (
            storage == "auto"
            and (num_features is not None or mode == "all")
            and self._dense_fits(max(self._num_features, 1))
        ):
            self._init_dense()
        else:
            self._init_sparse()

    # ----------------------------------------------------------------- state
    @property
    def is_sparse(self) -> bool:
        return self._blocks is None

    @property
    def num_features(self) -> int:
        """Current size of the feature id space (fixed, or 1 + largest id seen)."""
        return self._num_features

    def _dense_fits(self, num_features: int) -> bool:
        limit = self.dense_max_cells
        return limit is None or self.num_neurons * num_features <= limit

    def _init_dense(self) -> None:
        self._csr_mass = self._csr_count = None
        self._pending, self._pending_n = [], 0
        self._blocks = []
        if self.fixed_num_features is not None:
            self._block_rows = self.fixed_num_features  # one block, exactly sized
        else:
            self._block_rows = max(1, _BLOCK_CELLS // self.num_neurons)
        self._ensure_dense_capacity(self._num_features)

    def _init_sparse(self) -> None:
        self._blocks = None
        shape = (self.num_neurons, self._num_features)
        self._csr_mass = sp.csr_matrix(shape, dtype=np.float64)
        self._csr_count = sp.csr_matrix(shape, dtype=np.int64)
        self._pending, self._pending_n = [], 0

    def _ensure_dense_capacity(self, needed: int) -> None:
        """Allocates dense blocks up to feature ``needed - 1`` (or switches to sparse)."""
        R = self._block_rows
        if len(self._blocks) * R >= needed:
            return
        if self.storage_policy == "auto" and not self._dense_fits(needed):
            self._dense_to_sparse()
            return
        H = self.num_neurons
        while len(self._blocks) * R < needed:
            self._blocks.append((np.zeros((R, H)), np.zeros((R, H))))

    def _dense_to_sparse(self) -> None:
        m, c = self._dense_csr()
        self._init_sparse()
        self._csr_mass, self._csr_count = m, c

    def _dense_csr(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Canonical ``[H, F]`` (mass, count) CSR pair of the dense blocks (cells with mass > 0).

        Two passes: count the cells per neuron, then fill the CSR arrays block by
        block, so only one block's index temporaries exist at a time.
        """
        H, F, R = self.num_neurons, self._num_features, self._block_rows
        views = [
            (k * R, m[: min(R, F - k * R)], c[: min(R, F - k * R)])
            for k, (m, c) in enumerate(self._blocks)
            if k * R < F
        ]
        per_block = [np.count_nonzero(m > 0, axis=0) for _, m, _ in views]  # [H] each
        indptr = np.zeros(H + 1, dtype=np.int64)
        np.cumsum(np.sum(per_block, axis=0) if views else np.zeros(H, np.int64), out=indptr[1:])
        nnz = int(indptr[-1])
        idx_dtype = np.int32 if nnz < 2**31 else np.int64
        indices = np.empty(nnz, dtype=idx_dtype)
        mass = np.empty(nnz)
        count = np.empty(nnz, dtype=np.int64)
        before = indptr[:-1].copy()  # where the block's run of each neuron starts
        for (lo, m, c), cnt in zip(views, per_block):
            mt, ct = m.T, c.T  # [H, r] views
            n, f = np.nonzero(mt > 0)  # logical (C) order of the view: by neuron, feature
            if len(views) == 1:
                dest = slice(None)
            else:
                dest = before[n] + (np.arange(n.shape[0]) - (np.cumsum(cnt) - cnt)[n])
            indices[dest], mass[dest], count[dest] = f + lo, mt[n, f], ct[n, f]
            before += cnt
            del n, f, dest
        indptr = indptr.astype(idx_dtype)
        m = sp.csr_matrix((mass, indices, indptr), shape=(H, F))
        c = sp.csr_matrix((count, indices, indptr), shape=(H, F))
        m.has_sorted_indices = c.has_sorted_indices = True
        return m, c

    # ---------------------------------------------------------------- update
    def update(self, activations, feature_ids, mask=None, units=None) -> NeuronFeatureAggregator:
        """Adds one batch.

        Args:
          activations: ``[T, H]`` (or ``[..., H]``) float array / torch tensor.
          feature_ids: ``[T]`` (or ``[...]``, same leading shape) integer ids;
            negative ids are skipped.
          mask: optional bool array of the leading shape; False positions are skipped.
          units: per position, the non-negative index of its sentence (unit of
            the bootstrap); required with ``record_units=True``, else ignored.

        Raises:
          ValueError: wrong shapes, non-finite activations, non-integer or
            out-of-range feature ids.
        """
        acts = _to_numpy(activations, "activations")
        fids = _to_numpy(feature_ids, "feature_ids")
        if acts.ndim < 1 or acts.shape[-1] != self.num_neurons:
            raise ValueError(
                f"activations must have trailing dimension {self.num_neurons} (num_neurons), "
                f"got shape {acts.shape}"
            )
        if acts.dtype.kind not in "fiu":
            raise ValueError(f"activations must be real numbers, got dtype {acts.dtype}")
        lead = acts.shape[:-1]
        if fids.shape != lead:
            raise ValueError(
                f"feature_ids shape {fids.shape} must equal the activations' leading shape {lead}"
            )
        if fids.size and fids.dtype.kind not in "iu":
            raise ValueError(f"feature_ids must be integers, got dtype {fids.dtype}")
        H = self.num_neurons
        acts = acts.reshape(-1, H)
        fids = fids.reshape(-1).astype(np.int64, copy=False)
        if self.units is not None:
            units = _check_units(units, lead)
        is_float = acts.dtype.kind == "f"
        if is_float and self.mode == "all" and not np.isfinite(acts).all():
            raise ValueError("activations contain NaN or infinite values")
        if fids.size == 0:
            return self
        fmin, fmax = int(fids.min()), int(fids.max())
        keep = fids >= 0 if fmin < 0 else None
        if mask is not None:
            m = _to_numpy(mask, "mask")
            if m.shape != lead:
                raise ValueError(f"mask shape {m.shape} must equal the leading shape {lead}")
            m = m.reshape(-1).astype(bool)
            keep = m if keep is None else (keep & m)
        if keep is not None and not keep.all():
            acts, fids = acts[keep], fids[keep]
            if self.units is not None:
                units = units[keep]
            if fids.size == 0:
                return self
            fmax = int(fids.max())
        n_tok = fids.shape[0]
        if self.fixed_num_features is not None and fmax >= self.fixed_num_features:
            raise ValueError(
                f"feature id {fmax} out of range for num_features={self.fixed_num_features}"
            )
        if fmax > _MAX_FEATURE_ID:
            raise ValueError(f"feature id {fmax} out of range (ids must be < 2**31)")

        if self.mode == "max1":
            # one credit per position: (argmax neuron, feature, value) triples
            neuron = np.argmax(acts, axis=1)
            value = acts[np.arange(n_tok), neuron]
            # argmax propagates NaN (a NaN is selected as the maximum), so checking
            # the selected values catches any NaN or +inf in the batch without a
            # second pass over [T, H]; -inf can never be credited and is allowed.
            if is_float and not np.isfinite(value).all():
                raise ValueError("activations contain NaN or infinite values")
            pos = value > 0
            if self.units is not None:
                self.units.seen(units)
            if not pos.all():
                neuron, fids, value = neuron[pos], fids[pos], value[pos]
                if self.units is not None:
                    units = units[pos]
            n_new = int(neuron.shape[0])
            self._record(n_tok, n_new, fmax)
            if n_new:
                self._add_cells(neuron, fids, value, None)  # float64 when summed
                if self.units is not None:
                    self.units.add(units, neuron, fids, value.astype(np.float64))
        else:  # "all": per-batch (feature x neuron) sums via a sparse one-hot product
            uniq, inv = np.unique(fids, return_inverse=True)
            onehot = sp.csr_matrix(
                (np.ones(n_tok), inv.ravel(), np.arange(n_tok + 1)), shape=(n_tok, uniq.shape[0])
            ).T.tocsr()  # [u, T], rows in position order
            positive = acts > 0
            S = onehot @ np.maximum(acts, 0, dtype=np.float64)  # [u, H] mass
            C = onehot @ positive.astype(np.float64)  # [u, H] counts (exact small ints)
            n_new = int(np.count_nonzero(positive))
            self._record(n_tok, n_new, fmax)
            if n_new:
                self._add_rows(uniq, S, C)
            if self.units is not None:
                self.units.seen(units)
                self._record_units_all(acts, fids, units, positive, fmax + 1)
        return self

    def _record_units_all(self, acts, fids, units, positive, width: int) -> None:
        """'all' mode: per (unit, feature) sums of the batch into the unit table."""
        pair = units * width + fids
        up, inv = np.unique(pair, return_inverse=True)
        n_tok = fids.shape[0]
        onehot = sp.csr_matrix(
            (np.ones(n_tok), inv.ravel(), np.arange(n_tok + 1)), shape=(n_tok, up.shape[0])
        ).T.tocsr()
        S = onehot @ np.maximum(acts, 0, dtype=np.float64)
        C = onehot @ positive.astype(np.float64)
        r, n = np.nonzero(C)
        self.units.add(up[r] // width, n, up[r] % width, S[r, n], C[r, n])

    def _record(self, n_tok: int, n_new: int, fmax: int) -> None:
        self.num_tokens += n_tok
        self.num_credited += n_new
        self._num_features = max(self._num_features, fmax + 1)
        if not self.is_sparse:
            self._ensure_dense_capacity(self._num_features)

    def _block_slices(self, feats_sorted: np.ndarray):
        """(block, lo, hi) for runs of sorted feature ids falling in each dense block."""
        R = self._block_rows
        if len(self._blocks) == 1 or int(feats_sorted[-1]) < R:
            yield self._blocks[0], 0, 0, feats_sorted.shape[0]
            return
        k0, k1 = int(feats_sorted[0]) // R, int(feats_sorted[-1]) // R
        bounds = np.searchsorted(feats_sorted, np.arange(k0, k1 + 2) * R)
        for k in range(k0, k1 + 1):
            lo, hi = int(bounds[k - k0]), int(bounds[k - k0 + 1])
            if hi > lo:
                yield self._blocks[k], k * R, lo, hi

    def _add_rows(self, uniq: np.ndarray, S: np.ndarray, C: np.ndarray) -> None:
        """Adds per-feature rows ``S``/``C`` ``[u, H]`` for sorted unique feature ids."""
        if not self.is_sparse:
            for (m, c), base, lo, hi in self._block_slices(uniq):
                idx = uniq[lo:hi] - base
                m[idx] += S[lo:hi]
                c[idx] += C[lo:hi]
            return
        fi, neuron = np.nonzero(C)
        self._add_cells(neuron, uniq[fi], S[fi, neuron], C[fi, neuron])

    def _add_cells(self, neuron, feats, vals, cnts) -> None:
        """Adds credits to cells (neuron, feature); ``cnts=None`` means one each."""
        if not self.is_sparse:
            H = self.num_neurons
            if len(self._blocks) == 1 or int(feats.max()) < self._block_rows:
                m, c = self._blocks[0]
                flat = feats * H + neuron
                np.add.at(m.reshape(-1), flat, vals)
                np.add.at(c.reshape(-1), flat, 1.0 if cnts is None else cnts)
                return
            order = np.argsort(feats, kind="stable")
            feats, neuron, vals = feats[order], neuron[order], vals[order]
            cnts = None if cnts is None else cnts[order]
            for (m, c), base, lo, hi in self._block_slices(feats):
                flat = (feats[lo:hi] - base) * H + neuron[lo:hi]
                np.add.at(m.reshape(-1), flat, vals[lo:hi])
                np.add.at(c.reshape(-1), flat, 1.0 if cnts is None else cnts[lo:hi])
            return
        keys = (neuron.astype(np.int64) << _KEY_SHIFT) | feats
        self._pending.append((keys, vals, cnts))
        self._pending_n += keys.shape[0]
        # amortised: merge when the buffer outgrows max(coalesce_every, stored
        # cells), so the buffer stays O(neurons x features) and each stored
        # cell is re-merged O(log) times.
        if self._pending_n > max(self.coalesce_every, self._csr_mass.nnz):
            self._coalesce()

    def update_many(self, batches: Iterable[tuple]) -> NeuronFeatureAggregator:
        """Calls :meth:`update` for each ``(activations, feature_ids[, mask])`` tuple."""
        for b in batches:
            self.update(*b)
        return self

    def coalesce(self) -> NeuronFeatureAggregator:
        """Merges the buffered cells of sparse storage into its CSR accumulators.

        Results do this themselves; call it to end a stream with the final
        state in place (a no-op for dense storage).
        """
        self._coalesce()
        return self

    def _coalesce(self) -> None:
        """Merges the pending cells into the CSR pair (sparse storage)."""
        if not self.is_sparse:
            return
        shape = (self.num_neurons, self._num_features)
        m, c = self._csr_mass, self._csr_count
        if not self._pending:
            if m.shape != shape:  # the feature space grew: same cells, more columns
                self._csr_mass = sp.csr_matrix((m.data, m.indices, m.indptr), shape=shape)
                self._csr_count = sp.csr_matrix((c.data, c.indices, c.indptr), shape=shape)
            return
        rows = np.repeat(np.arange(shape[0], dtype=np.int64), np.diff(m.indptr))
        keys = [(rows << _KEY_SHIFT) | m.indices, *(p[0] for p in self._pending)]
        vals = [m.data, *(p[1] for p in self._pending)]
        cnts = [c.data.astype(np.float64)]
        cnts += [np.ones(p[0].shape[0]) if p[2] is None else p[2] for p in self._pending]
        self._pending, self._pending_n = [], 0
        del rows, m, c
        keys = np.concatenate(keys)
        order = _stable_key_order(keys, shape)
        keys = keys[order]
        first = np.empty(keys.shape[0], dtype=bool)
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        ukeys = keys[first]
        group = np.cumsum(first) - 1
        del keys, first
        # The order is stable, and bincount adds in it: per cell the stored sum
        # first, then the batches in order -- the order of the dense tables'
        # in-place additions, so both storages give bit-identical sums.
        n = ukeys.shape[0]
        mass = np.bincount(group, weights=np.concatenate(vals)[order], minlength=n)
        del vals
        count = np.bincount(group, weights=np.concatenate(cnts)[order], minlength=n)
        del cnts, group, order
        self._csr_mass, self._csr_count = _csr_from_keys(ukeys, mass, count, shape)

    # --------------------------------------------------------------- results
    def _csr_pair(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(mass, count) canonical CSR matrices ``[H, F]`` sharing one pattern:
        the cells with mass > 0.

        Internal, no defensive copy in sparse storage: do not mutate.
        """
        if not self.is_sparse:
            return self._dense_csr()
        self._coalesce()
        m, c = self._csr_mass, self._csr_count
        if m.nnz and not (m.data > 0).all():  # only from_coo() input can hold zero mass
            keep = m.data > 0
            rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
            keys = (rows[keep] << _KEY_SHIFT) | m.indices[keep]
            return _csr_from_keys(keys, m.data[keep], c.data[keep], m.shape)
        return m, c

    def mass_matrix(self) -> sp.csr_matrix:
        """``[H, F]`` CSR matrix of activation mass (only positive entries stored)."""
        m, _ = self._csr_pair()
        return m.copy() if self.is_sparse else m

    def count_matrix(self) -> sp.csr_matrix:
        """``[H, F]`` CSR matrix of credited-position counts."""
        _, c = self._csr_pair()
        return c.copy() if self.is_sparse else c

    def neuron_mass(self) -> np.ndarray:
        """Total activation mass per neuron, ``float64 [H]``."""
        if self.is_sparse:
            return np.asarray(self._csr_pair()[0].sum(axis=1)).ravel()
        total = np.zeros(self.num_neurons)
        for m, _ in self._blocks:
            total += m.sum(axis=0)
        return total

    def active(self) -> np.ndarray:
        """Bool ``[H]``: neuron was credited with positive mass at least once."""
        return self.neuron_mass() > 0

    def _check_nonempty(self) -> None:
        if self.num_credited == 0:
            raise ValueError(
                "no activations recorded: the aggregator is empty or no neuron was ever active"
            )

    def distributions(self, dense: bool = False) -> NeuronDistributions:
        """Mass normalised per neuron to sum 1 (inactive neurons: zero rows, flagged)."""
        self._check_nonempty()
        m = self.mass_matrix()
        tot = np.asarray(m.sum(axis=1)).ravel()
        active = tot > 0
        inv = np.zeros_like(tot)
        inv[active] = 1.0 / tot[active]
        p = sp.diags(inv).dot(m).tocsr()
        return NeuronDistributions(p.toarray() if dense else p, active)

    def lengths(self) -> np.ndarray:
        """Number of distinct features with mass > 0 per neuron, ``int64 [H]``."""
        return self.mass_matrix().getnnz(axis=1).astype(np.int64)

    def mass_activation(self) -> np.ndarray:
        """Share of the layer's total activation mass per neuron (sums to 1)."""
        self._check_nonempty()
        mass = self.neuron_mass()
        return mass / mass.sum()

    def top_features(
        self, neuron: int, k: int = 10, names: Sequence[str] | FeatureVocab | None = None
    ) -> list[FeatureScore]:
        """The ``k`` features with the largest mass for ``neuron`` (ties: lower id first)."""
        if not 0 <= int(neuron) < self.num_neurons:
            raise ValueError(f"neuron {neuron} out of range [0, {self.num_neurons})")
        m = self.mass_matrix()
        c = self.count_matrix()
        return _top_of_row(m, c, int(neuron), k, names)

    # ---------------------------------------------------------- persistence
    def to_coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, cols, mass, count)`` of all non-zero cells, sorted by (row, col)."""
        m, c = self._csr_pair()
        rows = np.repeat(np.arange(self.num_neurons, dtype=np.int64), np.diff(m.indptr))
        return rows, m.indices.astype(np.int64), m.data.copy(), c.data.astype(np.int64)

    @classmethod
    def from_coo(
        cls,
        num_neurons: int,
        num_features: int,
        rows,
        cols,
        mass,
        count,
        mode: str = "max1",
        num_tokens: int = 0,
        num_credited: int | None = None,
        **kwargs,
    ) -> NeuronFeatureAggregator:
        """Rebuilds an aggregator from its non-zero cells (see :meth:`to_coo`);
        repeated cells are summed."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        mass = np.asarray(mass, dtype=np.float64)
        count = np.asarray(count, dtype=np.int64)
        if not (rows.shape == cols.shape == mass.shape == count.shape) or rows.ndim != 1:
            raise ValueError("rows, cols, mass and count must be 1-D with equal shapes")
        if rows.size and (rows.min() < 0 or rows.max() >= num_neurons):
            raise ValueError("row index out of range")
        if cols.size and (cols.min() < 0 or cols.max() >= num_features):
            raise ValueError("column index out of range")
        if not np.isfinite(mass).all() or (mass < 0).any() or (count < 0).any():
            raise ValueError("mass must be finite and non-negative, counts non-negative")
        if int(num_features) > _MAX_FEATURE_ID + 1:
            raise ValueError(f"num_features must be <= 2**31, got {num_features}")
        agg = cls(num_neurons, num_features=None, mode=mode, **kwargs)
        if agg.storage_policy == "auto" and agg.is_sparse and agg._dense_fits(int(num_features)):
            agg._init_dense()  # a known feature space that fits: dense, as in __init__
        agg._num_features = int(num_features)
        if not agg.is_sparse:
            agg._ensure_dense_capacity(agg._num_features)
        if rows.size:
            agg._add_cells(rows, cols, mass, count.astype(np.float64))
            agg._coalesce()
        agg.num_tokens = int(num_tokens)
        agg.num_credited = int(count.sum()) if num_credited is None else int(num_credited)
        return agg

    def remap_features(self, mapping, num_features: int) -> NeuronFeatureAggregator:
        """New aggregator whose feature ``f`` becomes ``mapping[f]`` (e.g. onto a
        union vocab), with its per-sentence table if it records one."""
        mapping = np.asarray(mapping, dtype=np.int64)
        if mapping.shape[0] < self._num_features:
            raise ValueError("mapping shorter than the current feature space")
        r, c, m, n = self.to_coo()
        out = NeuronFeatureAggregator.from_coo(
            self.num_neurons,
            num_features,
            r,
            mapping[c],
            m,
            n,
            mode=self.mode,
            num_tokens=self.num_tokens,
            num_credited=self.num_credited,
        )
        if self.units is not None:  # the per-sentence table, renumbered alike
            out.units = self.units.renumbered(mapping)
        return out

    def save(
        self,
        path: str | os.PathLike,
        feature_names: Sequence[str] | FeatureVocab | None = None,
        **metadata: str,
    ) -> None:
        """Writes a compressed ``.npz`` (format ``lit_plugins.txray.aggregation/1``).

        Keys: ``format``, ``mode``, ``num_neurons``, ``num_features``,
        ``num_tokens``, ``num_credited``, ``rows``, ``cols``, ``mass``,
        ``count`` (the non-zero cells, int64/float64), optional
        ``feature_names`` (unicode array, index = feature id), ``units_*``
        (the per-sentence table of an aggregator that records units, for the
        bootstrap: ``bootstrap.UnitCells.state``) and ``meta_<key>``
        strings.  No pickles.
        """
        r, c, m, n = self.to_coo()
        arrays = dict(
            format=np.array(_NPZ_FORMAT),
            mode=np.array(self.mode),
            num_neurons=np.array(self.num_neurons, dtype=np.int64),
            num_features=np.array(self._num_features, dtype=np.int64),
            num_tokens=np.array(self.num_tokens, dtype=np.int64),
            num_credited=np.array(self.num_credited, dtype=np.int64),
            rows=r,
            cols=c,
            mass=m,
            count=n,
        )
        if feature_names is not None:
            names = list(feature_names)
            if len(names) < self._num_features:
                raise ValueError(f"{len(names)} feature names for {self._num_features} features")
            arrays["feature_names"] = np.array(names, dtype=str)
        if self.units is not None:
            arrays.update({f"units_{k}": v for k, v in self.units.state().items()})
        for k, v in metadata.items():
            arrays[f"meta_{k}"] = np.array(str(v))
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(
        cls, path: str | os.PathLike
    ) -> tuple[NeuronFeatureAggregator, list[str] | None, dict]:
        """Reads a file written by :meth:`save`; returns ``(aggregator, feature_names|None, metadata)``."""
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z or str(z["format"]) != _NPZ_FORMAT:
                raise ValueError(f"{path}: not a {_NPZ_FORMAT} file")
            agg = cls.from_coo(
                int(z["num_neurons"]),
                int(z["num_features"]),
                z["rows"],
                z["cols"],
                z["mass"],
                z["count"],
                mode=str(z["mode"]),
                num_tokens=int(z["num_tokens"]),
                num_credited=int(z["num_credited"]),
            )
            if "units_keys" in z:
                agg.units = UnitCells.from_state(
                    {k[6:]: z[k] for k in z.files if k.startswith("units_")}
                )
            names = [str(s) for s in z["feature_names"]] if "feature_names" in z else None
            meta = {k[5:]: str(z[k]) for k in z.files if k.startswith("meta_")}
        return agg, names, meta

    def __repr__(self) -> str:
        return (
            f"NeuronFeatureAggregator(num_neurons={self.num_neurons}, num_features={self._num_features}, "
            f"mode={self.mode!r}, storage={'sparse' if self.is_sparse else 'dense'}, "
            f"num_tokens={self.num_tokens})"
        )


def _top_of_row(
    mass: sp.csr_matrix,
    count: sp.csr_matrix | None,
    row: int,
    k: int,
    names: Sequence[str] | FeatureVocab | None,
    probs: sp.csr_matrix | None = None,
) -> list[FeatureScore]:
    """Top-k features of one CSR row by mass (ties: lower feature id first)."""
    start, end = mass.indptr[row], mass.indptr[row + 1]
    cols = mass.indices[start:end]
    vals = mass.data[start:end]
    keep = vals > 0
    cols, vals = cols[keep], vals[keep]
    if cols.size == 0 or k <= 0:
        return []
    total = vals.sum()
    order = np.lexsort((cols, -vals))[:k]
    out = []
    for j in order:
        f = int(cols[j])
        cnt = int(count[row, f]) if count is not None else 0
        prob = float(probs[row, f]) if probs is not None else float(vals[j] / total)
        nm = None
        if names is not None:
            nm = names.name(f) if isinstance(names, FeatureVocab) else str(names[f])
        out.append(FeatureScore(f, nm, prob, float(vals[j]), cnt))
    return out


def _check_units(units, lead) -> np.ndarray:
    """Per-position unit (sentence) indices, flattened, or ValueError."""
    if units is None:
        raise ValueError("this aggregator records units (record_units=True): pass units=")
    u = _to_numpy(units, "units")
    if u.shape != lead:
        raise ValueError(f"units shape {u.shape} must equal the activations' leading shape {lead}")
    if u.size and (u.dtype.kind not in "iu" or int(u.min()) < 0):
        raise ValueError("units must be non-negative integers (sentence indices)")
    return u.reshape(-1).astype(np.int64, copy=False)


def _stable_key_order(keys: np.ndarray, shape) -> np.ndarray:
    """Stable argsort of ``neuron << 32 | feature`` keys.

    Two stable 16-bit (radix) sorts when both fit in 16 bits, else one
    comparison sort.
    """
    if shape[0] <= 1 << 16 and shape[1] <= 1 << 16:
        order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
        return order[np.argsort((keys[order] >> _KEY_SHIFT).astype(np.uint16), kind="stable")]
    return np.argsort(keys, kind="stable")


def _csr_from_keys(keys, mass, count, shape) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """CSR (mass, count) pair from sorted unique ``neuron << 32 | feature`` keys."""
    H = shape[0]
    rows = keys >> _KEY_SHIFT
    idx_dtype = np.int32 if keys.shape[0] < 2**31 else np.int64
    indices = (keys & ((1 << _KEY_SHIFT) - 1)).astype(idx_dtype)
    indptr = np.zeros(H + 1, dtype=idx_dtype)
    np.cumsum(np.bincount(rows, minlength=H), out=indptr[1:])
    m = sp.csr_matrix((mass, indices, indptr), shape=shape)
    c = sp.csr_matrix((count.astype(np.int64), indices, indptr), shape=shape)
    m.has_sorted_indices = c.has_sorted_indices = True
    return m, c
