"""Where a `NeuronFeatureAggregator` keeps its (neuron, feature) cells, and their file format.

Dense blocks of mass and count while the feature space is small (appending a block as
new features arrive), sparse cells keyed ``neuron << KEY_SHIFT | feature`` beyond, both
read as CSR matrices; the ``.npz`` format with feature names, metadata and the bootstrap's
per-sentence table. `CellStorage` is the aggregator's storage half (a mixin: the
aggregation rules are in `txray.aggregate`, the tables here).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from lit_plugins.txray.bootstrap import UnitCells
from lit_plugins.txray.features import FeatureVocab

KEY_SHIFT = 32  # sparse cell key = neuron << 32 | feature
MAX_FEATURE_ID = (1 << 31) - 1
BLOCK_CELLS = 1 << 18  # cells per dense block while the feature space grows
NPZ_FORMAT = "lit_plugins.txray.aggregation/1"


class CellStorage:
    """The cell tables of `NeuronFeatureAggregator` and their conversions (see the module)."""

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
            self._block_rows = max(1, BLOCK_CELLS // self.num_neurons)
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
        keys = (neuron.astype(np.int64) << KEY_SHIFT) | feats
        self._pending.append((keys, vals, cnts))
        self._pending_n += keys.shape[0]
        # amortised: merge when the buffer outgrows max(coalesce_every, stored
        # cells), so the buffer stays O(neurons x features) and each stored
        # cell is re-merged O(log) times.
        if self._pending_n > max(self.coalesce_every, self._csr_mass.nnz):
            self._coalesce()

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
        keys = [(rows << KEY_SHIFT) | m.indices, *(p[0] for p in self._pending)]
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
            keys = (rows[keep] << KEY_SHIFT) | m.indices[keep]
            return _csr_from_keys(keys, m.data[keep], c.data[keep], m.shape)
        return m, c

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
    ) -> CellStorage:
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
        if int(num_features) > MAX_FEATURE_ID + 1:
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

    def remap_features(self, mapping, num_features: int) -> CellStorage:
        """New aggregator whose feature ``f`` becomes ``mapping[f]`` (e.g. onto a
        union vocab), with its per-sentence table if it records one."""
        mapping = np.asarray(mapping, dtype=np.int64)
        if mapping.shape[0] < self._num_features:
            raise ValueError("mapping shorter than the current feature space")
        r, c, m, n = self.to_coo()
        out = type(self).from_coo(
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
            format=np.array(NPZ_FORMAT),
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
    def load(cls, path: str | os.PathLike) -> tuple[CellStorage, list[str] | None, dict]:
        """Reads a file written by :meth:`save`; returns ``(aggregator, feature_names|None, metadata)``."""
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z or str(z["format"]) != NPZ_FORMAT:
                raise ValueError(f"{path}: not a {NPZ_FORMAT} file")
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


def _stable_key_order(keys: np.ndarray, shape) -> np.ndarray:
    """Stable argsort of ``neuron << 32 | feature`` keys.

    Two stable 16-bit (radix) sorts when both fit in 16 bits, else one
    comparison sort.
    """
    if shape[0] <= 1 << 16 and shape[1] <= 1 << 16:
        order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
        return order[np.argsort((keys[order] >> KEY_SHIFT).astype(np.uint16), kind="stable")]
    return np.argsort(keys, kind="stable")


def _csr_from_keys(keys, mass, count, shape) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """CSR (mass, count) pair from sorted unique ``neuron << 32 | feature`` keys."""
    H = shape[0]
    rows = keys >> KEY_SHIFT
    idx_dtype = np.int32 if keys.shape[0] < 2**31 else np.int64
    indices = (keys & ((1 << KEY_SHIFT) - 1)).astype(idx_dtype)
    indptr = np.zeros(H + 1, dtype=idx_dtype)
    np.cumsum(np.bincount(rows, minlength=H), out=indptr[1:])
    m = sp.csr_matrix((mass, indices, indptr), shape=shape)
    c = sp.csr_matrix((count.astype(np.int64), indices, indptr), shape=shape)
    m.has_sorted_indices = c.has_sorted_indices = True
    return m, c
