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
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from lit_plugins.txray.bootstrap import UnitCells
from lit_plugins.txray.features import FeatureVocab, merge_subwords
from lit_plugins.txray.storage import MAX_FEATURE_ID, CellStorage

__all__ = [
    "MODES",
    "FeatureScore",
    "FeatureVocab",
    "NeuronDistributions",
    "NeuronFeatureAggregator",
    "merge_subwords",
]

MODES = ("max1", "all")


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


# storage="auto" dense/sparse threshold (cells) per mode when none is given:
# max-1 fills ~1 neuron per feature, so its table is sparse; "all" credits
# every positive activation (about half the layer per position), so nearly
# every (neuron, feature) cell of a seen feature is filled and a dense table
# is both smaller (16 B per cell vs 24 B per stored cell plus the pending
# buffer) and faster: no threshold.
_DEFAULT_DENSE_MAX_CELLS = {"max1": 1 << 18, "all": None}


class NeuronFeatureAggregator(CellStorage):
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
        if num_features is not None and int(num_features) > MAX_FEATURE_ID + 1:
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
        if fmax > MAX_FEATURE_ID:
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
