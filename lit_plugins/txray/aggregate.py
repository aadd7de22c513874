"""Streaming aggregation of neuron activations over discrete input features.

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
batch is reduced to ``(neuron, feature, value)`` triples immediately.  Small,
fixed feature spaces (e.g. POS tags) accumulate in a dense ``float64``/``int64``
array; large or growing ones (tokens, words) as ``scipy.sparse`` CSR matrices
with a bounded buffer of pending COO triples that is coalesced periodically.
``storage="auto"`` picks dense only when ``num_features`` is given and
``num_neurons x num_features <= dense_max_cells``.

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
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

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
class FeatureVocab:
    """Bidirectional map between feature strings and dense integer ids.

    Share **one** instance between the two models that are compared so that
    feature ids align (or re-map later with :meth:`NeuronFeatureAggregator.remap_features`).

    Args:
      features: optional initial features (ids assigned in order; duplicates
        are ignored).
      unk: optional feature string used for unseen features once the vocab is
        frozen; if ``None`` unseen features raise ``KeyError`` when frozen.
    """

    def __init__(self, features: Iterable[str] = (), unk: str | None = None):
        self._id: dict[str, int] = {}
        self._names: list[str] = []
        self.frozen = False
        self.unk = unk
        if unk is not None:
            self.add(unk)
        for f in features:
            self.add(f)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, feature: str) -> bool:
        return feature in self._id

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __repr__(self) -> str:
        return f"FeatureVocab(size={len(self)}, frozen={self.frozen})"

    @property
    def names(self) -> list[str]:
        """Feature strings indexed by id (a copy)."""
        return list(self._names)

    def freeze(self) -> FeatureVocab:
        self.frozen = True
        return self

    def add(self, feature: str) -> int:
        """Returns the id of ``feature``, adding it unless the vocab is frozen."""
        fid = self._id.get(feature)
        if fid is not None:
            return fid
        if self.frozen:
            if self.unk is not None:
                return self._id[self.unk]
            raise KeyError(f"feature {feature!r} not in frozen FeatureVocab")
        fid = len(self._names)
        self._id[feature] = fid
        self._names.append(str(feature))
        return fid

    def id_of(self, feature: str) -> int:
        """Id of a known feature (``KeyError`` if unknown; never adds)."""
        return self._id[feature]

    def encode(self, features: Iterable[str]) -> np.ndarray:
        """Ids (``int64`` array) for a sequence of feature strings, adding new ones."""
        if not isinstance(features, (list, tuple)):
            features = list(features)
        ids = list(map(self._id.get, features))
        if None in ids:  # slow path only for the unseen features
            add = self.add
            for i in [j for j, x in enumerate(ids) if x is None]:
                ids[i] = add(features[i])
        return np.array(ids, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self._names[int(i)] for i in ids]

    def name(self, fid: int) -> str:
        return self._names[int(fid)]

    def to_list(self) -> list[str]:
        return list(self._names)

    @classmethod
    def from_list(cls, names: Sequence[str]) -> FeatureVocab:
        vocab = cls()
        for n in names:
            if n in vocab._id:
                raise ValueError(f"duplicate feature {n!r} in vocabulary list")
            vocab.add(n)
        return vocab


def merge_subwords(
    tokens: Sequence[str],
    continuation_prefix: str | None = "##",
    word_start_prefix: str | None = None,
    special_tokens: Iterable[str] = (),
) -> list[str]:
    """Maps every sub-word token position to its whole word.

    Returns a list as long as ``tokens``, where each position holds the merged
    word it belongs to, so ``FeatureVocab.encode(merge_subwords(toks))`` gives
    one whole-word feature id per token position (the activations stay per
    position).

    Two conventions are supported:

    * WordPiece (BERT/MiniLM): continuation pieces start with
      ``continuation_prefix`` (default ``"##"``), e.g.
      ``["un", "##believ", "##able"] -> ["unbelievable"] * 3``.
    * SentencePiece/BPE: pass ``continuation_prefix=None`` and
      ``word_start_prefix="\u2581"`` (or ``"\u0120"`` for GPT-2 BPE); a piece that
      does not start with it continues the previous word.

    Tokens in ``special_tokens`` (e.g. ``[CLS]``, ``[SEP]``, ``[PAD]``) are
    kept as their own feature and never merged.
    """
    if (continuation_prefix is None) == (word_start_prefix is None):
        raise ValueError("give exactly one of continuation_prefix or word_start_prefix")
    special = set(special_tokens)
    groups: list[list[int]] = []
    pieces: list[str] = []
    for i, tok in enumerate(tokens):
        tok = str(tok)
        if tok in special:
            groups.append([i])
            pieces.append(tok)
            continue
        if continuation_prefix is not None:
            cont = tok.startswith(continuation_prefix) and len(tok) > len(continuation_prefix)
            text = tok[len(continuation_prefix) :] if cont else tok
        else:
            cont = not tok.startswith(word_start_prefix)
            text = tok if cont else tok[len(word_start_prefix) :]
        prev_special = bool(groups) and str(tokens[groups[-1][-1]]) in special
        if cont and groups and not prev_special:
            groups[-1].append(i)
            pieces[-1] += text
        else:
            groups.append([i])
            pieces.append(text)
    out = [""] * len(tokens)
    for g, word in zip(groups, pieces):
        for i in g:
            out[i] = word
    return out


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


class NeuronFeatureAggregator:
    """Accumulates activation mass and counts per (neuron, feature).

    Args:
      num_neurons: layer width H.
      num_features: size of the feature id space if known (ids must then be
        ``< num_features``); ``None`` lets the space grow with the largest id seen.
      mode: ``"max1"`` (default, the paper's) or ``"all"`` — see module docstring.
      storage: ``"auto"`` (dense iff ``num_features`` is given and
        ``H x num_features <= dense_max_cells``, else sparse), ``"dense"``
        (grows by doubling if ``num_features`` is None) or ``"sparse"``.
      dense_max_cells: dense/sparse threshold for ``storage="auto"``.
      coalesce_every: in sparse storage, pending COO triples are merged into
        the CSR accumulators once more than ``max(coalesce_every, stored cells)``
        are buffered.

    Use :meth:`update` once per batch; feature ids ``< 0`` (and positions with
    ``mask == False``) are skipped, which is convenient for padding / special
    tokens.
    """

    def __init__(
        self,
        num_neurons: int,
        num_features: int | None = None,
        mode: str = "max1",
        storage: str = "auto",
        dense_max_cells: int = 1 << 18,
        coalesce_every: int = 1 << 18,
    ):
        if int(num_neurons) <= 0:
            raise ValueError(f"num_neurons must be positive, got {num_neurons}")
        if num_features is not None and int(num_features) <= 0:
            raise ValueError(f"num_features must be positive or None, got {num_features}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if storage not in ("auto", "dense", "sparse"):
            raise ValueError(f"storage must be 'auto', 'dense' or 'sparse', got {storage!r}")
        self.num_neurons = int(num_neurons)
        self.fixed_num_features = None if num_features is None else int(num_features)
        self.mode = mode
        self.storage_policy = storage
        self.dense_max_cells = int(dense_max_cells)
        self.coalesce_every = int(coalesce_every)
        self.num_tokens = 0  # token positions seen (after mask / negative-id filtering)
        self.num_credited = 0  # (position, neuron) credits recorded
        self._num_features = 0 if num_features is None else int(num_features)
        # dense state
        self._dense_mass: np.ndarray | None = None
        self._dense_count: np.ndarray | None = None
        # sparse state
        self._csr_mass: sp.csr_matrix | None = None
        self._csr_count: sp.csr_matrix | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_n = 0

        initial_cap = self._num_features if num_features is not None else 64
        if storage == "dense" or (
            storage == "auto"
            and num_features is not None
            and self.num_neurons * initial_cap <= self.dense_max_cells
        ):
            self._init_dense(initial_cap)
        else:
            self._init_sparse()

    # ----------------------------------------------------------------- state
    @property
    def is_sparse(self) -> bool:
        return self._dense_mass is None

    @property
    def num_features(self) -> int:
        """Current size of the feature id space (fixed, or 1 + largest id seen)."""
        return self._num_features

    def _init_dense(self, cap: int) -> None:
        cap = max(int(cap), 1)
        self._dense_mass = np.zeros((self.num_neurons, cap), dtype=np.float64)
        self._dense_count = np.zeros((self.num_neurons, cap), dtype=np.int64)

    def _init_sparse(self) -> None:
        self._dense_mass = self._dense_count = None
        self._csr_mass = sp.csr_matrix((self.num_neurons, self._num_features), dtype=np.float64)
        self._csr_count = sp.csr_matrix((self.num_neurons, self._num_features), dtype=np.int64)

    def _ensure_dense_capacity(self, needed: int) -> None:
        cap = self._dense_mass.shape[1]
        if needed <= cap:
            return
        new_cap = max(needed, 2 * cap)
        if self.fixed_num_features is not None:
            new_cap = max(needed, self.fixed_num_features)
        if self.storage_policy == "auto" and self.num_neurons * new_cap > self.dense_max_cells:
            self._dense_to_sparse()
            return
        mass = np.zeros((self.num_neurons, new_cap), dtype=np.float64)
        count = np.zeros((self.num_neurons, new_cap), dtype=np.int64)
        mass[:, :cap] = self._dense_mass
        count[:, :cap] = self._dense_count
        self._dense_mass, self._dense_count = mass, count

    def _dense_to_sparse(self) -> None:
        f = self._num_features
        mass = sp.csr_matrix(self._dense_mass[:, :f])
        count = sp.csr_matrix(self._dense_count[:, :f])
        self._init_sparse()
        self._csr_mass, self._csr_count = mass, count

    # ---------------------------------------------------------------- update
    def update(self, activations, feature_ids, mask=None) -> NeuronFeatureAggregator:
        """Adds one batch.

        Args:
          activations: ``[T, H]`` (or ``[..., H]``) float array / torch tensor.
          feature_ids: ``[T]`` (or ``[...]``, same leading shape) integer ids;
            negative ids are skipped.
          mask: optional bool array of the leading shape; False positions are skipped.

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
        if not np.issubdtype(acts.dtype, np.number) or np.issubdtype(
            acts.dtype, np.complexfloating
        ):
            raise ValueError(f"activations must be real numbers, got dtype {acts.dtype}")
        lead = acts.shape[:-1]
        if fids.shape != lead:
            raise ValueError(
                f"feature_ids shape {fids.shape} must equal the activations' leading shape {lead}"
            )
        if fids.size and not np.issubdtype(fids.dtype, np.integer):
            raise ValueError(f"feature_ids must be integers, got dtype {fids.dtype}")
        acts = acts.reshape(-1, self.num_neurons)
        fids = fids.reshape(-1).astype(np.int64, copy=False)
        is_float = np.issubdtype(acts.dtype, np.floating)
        if is_float and self.mode == "all" and not np.isfinite(acts).all():
            raise ValueError("activations contain NaN or infinite values")
        keep = None
        if fids.size and fids.min() < 0:
            keep = fids >= 0
        if mask is not None:
            m = _to_numpy(mask, "mask")
            if m.shape != lead:
                raise ValueError(f"mask shape {m.shape} must equal the leading shape {lead}")
            m = m.reshape(-1).astype(bool)
            keep = m if keep is None else (keep & m)
        if keep is not None and not keep.all():
            acts, fids = acts[keep], fids[keep]
        n_tok = fids.shape[0]
        if n_tok == 0:
            return self
        fmax = int(fids.max())
        if self.fixed_num_features is not None and fmax >= self.fixed_num_features:
            raise ValueError(
                f"feature id {fmax} out of range for num_features={self.fixed_num_features}"
            )

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
            rows = neuron[pos].astype(np.int64, copy=False)
            cols = fids[pos]
            vals = value[pos].astype(np.float64)
            cnts = None  # all ones
        else:  # "all": per-batch (feature x neuron) sums via a sparse one-hot product
            uniq, inv = np.unique(fids, return_inverse=True)
            onehot = sp.csr_matrix(
                (np.ones(n_tok), (inv.ravel(), np.arange(n_tok))), shape=(uniq.shape[0], n_tok)
            )
            positive = acts > 0
            S = onehot @ np.where(positive, acts, 0).astype(np.float64)  # [u, H] mass
            C = onehot @ positive.astype(np.float64)  # [u, H] counts (exact small ints)
            fi, rows = np.nonzero(C)
            vals = S[fi, rows]
            cnts = C[fi, rows].astype(np.int64)
            cols = uniq[fi]
            rows = rows.astype(np.int64, copy=False)

        n_new = int(rows.shape[0]) if cnts is None else int(cnts.sum())
        self.num_tokens += n_tok
        self.num_credited += n_new
        self._num_features = max(self._num_features, fmax + 1)
        if rows.shape[0] == 0:
            return self
        if not self.is_sparse:
            self._ensure_dense_capacity(self._num_features)
        if not self.is_sparse:
            cap = self._dense_mass.shape[1]
            flat = rows * cap + cols
            np.add.at(self._dense_mass.reshape(-1), flat, vals)
            np.add.at(self._dense_count.reshape(-1), flat, 1 if cnts is None else cnts)
        else:
            if cnts is None:
                cnts = np.ones(rows.shape[0], dtype=np.int64)
            self._pending.append((rows, cols, vals, cnts))
            self._pending_n += rows.shape[0]
            # amortised: merge when the buffer outgrows max(coalesce_every, stored
            # cells), so the buffer stays O(neurons x features) and each stored
            # cell is re-merged O(log) times.
            if self._pending_n > max(self.coalesce_every, self._csr_mass.nnz):
                self._coalesce()
        return self

    def update_many(self, batches: Iterable[tuple]) -> NeuronFeatureAggregator:
        """Calls :meth:`update` for each ``(activations, feature_ids[, mask])`` tuple."""
        for b in batches:
            self.update(*b)
        return self

    def _coalesce(self) -> None:
        if self.is_sparse:
            shape = (self.num_neurons, self._num_features)
            if self._csr_mass.shape != shape:
                self._csr_mass.resize(shape)
                self._csr_count.resize(shape)
            if self._pending:
                rows = np.concatenate([p[0] for p in self._pending])
                cols = np.concatenate([p[1] for p in self._pending])
                vals = np.concatenate([p[2] for p in self._pending])
                cnts = np.concatenate([p[3] for p in self._pending])
                self._pending, self._pending_n = [], 0
                # tocsr() sums duplicate (row, col) entries.
                m = sp.coo_matrix((vals, (rows, cols)), shape=shape).tocsr()
                c = sp.coo_matrix((cnts, (rows, cols)), shape=shape).tocsr()
                self._csr_mass = (self._csr_mass + m).tocsr()
                self._csr_count = (self._csr_count + c).tocsr()
                self._csr_mass.sum_duplicates()
                self._csr_count.sum_duplicates()

    # --------------------------------------------------------------- results
    def mass_matrix(self) -> sp.csr_matrix:
        """``[H, F]`` CSR matrix of activation mass (only positive entries stored)."""
        if self.is_sparse:
            self._coalesce()
            m = self._csr_mass.copy()
        else:
            m = sp.csr_matrix(self._dense_mass[:, : self._num_features])
        m.eliminate_zeros()
        return m

    def count_matrix(self) -> sp.csr_matrix:
        """``[H, F]`` CSR matrix of credited-position counts."""
        if self.is_sparse:
            self._coalesce()
            c = self._csr_count.copy()
        else:
            c = sp.csr_matrix(self._dense_count[:, : self._num_features])
        c.eliminate_zeros()
        return c

    def _csr_pair(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(mass, count) CSR matrices sharing one canonical sparsity pattern.

        Internal, no defensive copy in sparse storage: do not mutate.
        """
        if self.is_sparse:
            self._coalesce()
            m, c = self._csr_mass, self._csr_count
        else:
            f = self._num_features
            m = sp.csr_matrix(self._dense_mass[:, :f])
            c = sp.csr_matrix(self._dense_count[:, :f])
        if not m.has_canonical_format:
            m.sum_duplicates()
        if not c.has_canonical_format:
            c.sum_duplicates()
        if not (np.array_equal(m.indptr, c.indptr) and np.array_equal(m.indices, c.indices)):
            # cannot happen for data built by update(); be safe for from_coo() input
            m = m.copy()
            m.eliminate_zeros()
            c = sp.csr_matrix(
                (np.asarray(c[m.nonzero()]).ravel(), m.indices.copy(), m.indptr.copy()),
                shape=m.shape,
            )
        return m, c

    def neuron_mass(self) -> np.ndarray:
        """Total activation mass per neuron, ``float64 [H]``."""
        if self.is_sparse:
            return np.asarray(self.mass_matrix().sum(axis=1)).ravel()
        return self._dense_mass.sum(axis=1)

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
        m = self.mass_matrix().tocoo()
        c = self.count_matrix()
        counts = np.asarray(c[m.row, m.col]).ravel().astype(np.int64)
        order = np.lexsort((m.col, m.row))
        return (
            m.row[order].astype(np.int64),
            m.col[order].astype(np.int64),
            m.data[order],
            counts[order],
        )

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
        """Rebuilds an aggregator from its non-zero cells (see :meth:`to_coo`)."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        mass = np.asarray(mass, dtype=np.float64)
        count = np.asarray(count, dtype=np.int64)
        if not (rows.shape == cols.shape == mass.shape == count.shape):
            raise ValueError("rows, cols, mass and count must have equal shapes")
        if rows.size and (rows.min() < 0 or rows.max() >= num_neurons):
            raise ValueError("row index out of range")
        if cols.size and (cols.min() < 0 or cols.max() >= num_features):
            raise ValueError("column index out of range")
        if not np.isfinite(mass).all() or (mass < 0).any() or (count < 0).any():
            raise ValueError("mass must be finite and non-negative, counts non-negative")
        agg = cls(num_neurons, num_features=None, mode=mode, **kwargs)
        agg._num_features = int(num_features)
        shape = (agg.num_neurons, agg._num_features)
        m = sp.coo_matrix((mass, (rows, cols)), shape=shape).tocsr()
        c = sp.coo_matrix((count, (rows, cols)), shape=shape).tocsr()
        cells = agg.num_neurons * agg._num_features
        if agg.storage_policy == "dense" or (
            agg.storage_policy == "auto" and cells <= agg.dense_max_cells
        ):
            agg._init_dense(agg._num_features)
            agg._dense_mass[:] = m.toarray()
            agg._dense_count[:] = c.toarray()
        else:
            agg._init_sparse()
            agg._csr_mass, agg._csr_count = m, c
        agg.num_tokens = int(num_tokens)
        agg.num_credited = int(count.sum()) if num_credited is None else int(num_credited)
        return agg

    def remap_features(self, mapping, num_features: int) -> NeuronFeatureAggregator:
        """New aggregator whose feature ``f`` becomes ``mapping[f]`` (e.g. onto a union vocab)."""
        mapping = np.asarray(mapping, dtype=np.int64)
        if mapping.shape[0] < self._num_features:
            raise ValueError("mapping shorter than the current feature space")
        r, c, m, n = self.to_coo()
        return NeuronFeatureAggregator.from_coo(
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
        ``feature_names`` (unicode array, index = feature id) and
        ``meta_<key>`` strings.  No pickles.
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
