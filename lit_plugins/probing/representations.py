"""From model activations to probing datasets, and per-layer probe sweeps.

* Sentence probes need one vector per sentence: `pool_sentence` averages the
  real (unmasked) tokens - padding must not dilute the mean - or takes CLS.
* Token probes label *words*, but models see sub-word pieces.  Given the
  tokenizer's word index per piece (HuggingFace `BatchEncoding.word_ids()`:
  None for special tokens), a word is represented by its first piece, its
  last piece, or the mean of its pieces (Durrani et al. / NeuroX convention).
* `LayerSweep` trains one probe per layer on activations gathered in a
  single forward pass ([num_layers + 1, N, H], index 0 = embedding output)
  and reports the dev score of each layer and the best layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lit_plugins.probing import _validation as val
from lit_plugins.probing import metrics as metrics_lib
from lit_plugins.probing import probes as probes_lib
from lit_plugins.util import distributed

STRATEGIES = ("first", "last", "mean")


# ---------------------------------------------------------------- sentences
def pool_sentence(
    activations: Any, mask: Any = None, mode: str = "mean", cls_index: int = 0
) -> np.ndarray:
    """Sentence vectors from token activations [..., T, H] -> [..., H].

    Args:
      activations: e.g. [B, T, H], or [L + 1, B, T, H] for all layers at once.
      mask: [..., T] (broadcast against the leading dims, e.g. [B, T] for
        [L + 1, B, T, H]); 1/True for real tokens, 0 for padding.  None means
        every position is real.
      mode: "mean" (masked mean over real tokens) or "cls" (the token at
        `cls_index`, e.g. BERT's [CLS]; use -1-style indices with care when
        sequences are right-padded).
    """
    acts = np.asarray(activations)
    if acts.ndim < 2 or acts.dtype.kind not in "biuf":
        raise ValueError(
            "activations must be numeric [..., T, H], got shape "
            f"{acts.shape} and dtype {acts.dtype}."
        )
    if mode == "cls":
        return acts[..., cls_index, :]
    if mode != "mean":
        raise ValueError(f"mode must be 'mean' or 'cls', got {mode!r}.")
    if mask is None:
        return acts.mean(axis=-2)
    m = np.asarray(mask).astype(acts.dtype if acts.dtype.kind == "f" else np.float64)
    if m.shape[-1] != acts.shape[-2]:
        raise ValueError(
            f"mask has {m.shape[-1]} positions but activations have {acts.shape[-2]} tokens."
        )
    counts = m.sum(axis=-1)
    if np.any(counts <= 0):
        raise ValueError("mask marks no real token for at least one sentence.")
    summed = np.einsum("...th,...t->...h", acts, np.broadcast_to(m, acts.shape[:-1]))
    return summed / counts[..., None]


# ------------------------------------------------------------------ tokens
def _word_id_array(word_ids: Sequence[int | None]) -> np.ndarray:
    """HF word_ids (None for special tokens) -> int array with -1 for None."""
    out = np.asarray([-1 if w is None else int(w) for w in word_ids], dtype=np.int64)
    if out.ndim != 1:
        raise ValueError("word_ids must be a flat list, one entry per token.")
    return out


def piece_weights(word_ids: Sequence[int | None], num_words: int | None, strategy: str):
    """Public form of the piece-weight matrix (HF word_ids, None = special)."""
    return _piece_weights(_word_id_array(word_ids), num_words, strategy)


def _piece_weights(wid: np.ndarray, num_words: int | None, strategy: str):
    """[num_kept_words, T] matrix picking/averaging each word's pieces.

    Returns the matrix and the indices of the words that have >= 1 piece
    (words cut off by truncation have none and are dropped).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
    real = np.where(wid >= 0)[0]
    if num_words is not None and real.size and wid[real].max() >= num_words:
        raise ValueError(
            f"word_ids refer to word {wid[real].max()} but only {num_words} word labels were given."
        )
    words = np.unique(wid[real])
    W = np.zeros((words.shape[0], wid.shape[0]))
    if words.shape[0] == 0:
        return W, words
    row_of = np.searchsorted(words, wid[real])
    if strategy == "mean":
        W[row_of, real] = 1.0
        W /= W.sum(axis=1, keepdims=True)
    else:
        # First (last) position of each word among the real tokens.
        order = real if strategy == "first" else real[::-1]
        rows = np.searchsorted(words, wid[order])
        _, first = np.unique(rows, return_index=True)
        W[rows[first], order[first]] = 1.0
    return W, words


def map_word_labels_to_subwords(
    word_labels: Sequence[Any],
    word_ids: Sequence[int | None],
    strategy: str = "first",
    ignore_label: Any = None,
) -> list:
    """Per-piece labels from word labels, for the chosen strategy.

    'first'/'last': the word's label on its first/last piece, `ignore_label`
    on its other pieces; 'mean': the label on every piece (all of them are
    averaged into the word's vector).  Special tokens get `ignore_label`.
    """
    wid = _word_id_array(word_ids)
    W, words = _piece_weights(wid, len(word_labels), strategy)
    out = [ignore_label] * wid.shape[0]
    rows, cols = np.nonzero(W)
    for r, c in zip(rows, cols):
        out[c] = word_labels[words[r]]
    return out


def word_level_activations(
    activations: Any,
    word_ids: Sequence[int | None],
    word_labels: Sequence[Any] | None = None,
    strategy: str = "first",
):
    """One vector per word from piece activations [..., T, H].

    Returns:
      (X [..., num_kept_words, H], labels [num_kept_words] or None,
       kept word indices).  Words without pieces (truncated) are dropped.
    """
    acts = np.asarray(activations)
    wid = _word_id_array(word_ids)
    if acts.ndim < 2 or acts.shape[-2] != wid.shape[0]:
        raise ValueError(
            f"word_ids has {wid.shape[0]} entries but activations "
            f"have shape {acts.shape} ([..., T, H] expected)."
        )
    W, words = _piece_weights(wid, None if word_labels is None else len(word_labels), strategy)
    X = np.einsum(
        "wt,...th->...wh", W.astype(acts.dtype if acts.dtype.kind == "f" else np.float64), acts
    )
    labels = None
    if word_labels is not None:
        labels = np.asarray([word_labels[w] for w in words])
    return X, labels, words


def token_dataset(
    activations_list: Sequence[Any],
    word_ids_list: Sequence[Sequence[int | None]],
    word_labels_list: Sequence[Sequence[Any]],
    strategy: str = "first",
):
    """Concatenates `word_level_activations` over sentences.

    Each activations entry is [..., T_i, H] (e.g. [L + 1, T_i, H]); the result
    is [..., total_words, H] plus the labels [total_words] - ready for
    `LinearProbe` or `LayerSweep`.
    """
    if not (len(activations_list) == len(word_ids_list) == len(word_labels_list)):
        raise ValueError(
            "activations_list, word_ids_list and word_labels_list "
            "must have one entry per sentence (got "
            f"{len(activations_list)}, {len(word_ids_list)}, "
            f"{len(word_labels_list)})."
        )
    if not activations_list:
        raise ValueError("No sentences given.")
    xs, ys = [], []
    for acts, wids, labs in zip(activations_list, word_ids_list, word_labels_list):
        X, y, _ = word_level_activations(acts, wids, labs, strategy)
        xs.append(X)
        ys.append(y)
    return np.concatenate(xs, axis=-2), np.concatenate(ys)


# ------------------------------------------------------------------ layers
def _as_layer_dict(activations: Any, name: str) -> dict:
    if isinstance(activations, Mapping):
        if not activations:
            raise ValueError(f"{name} has no layers.")
        return dict(activations)
    arr = np.asarray(activations)
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be a dict of [N, H] arrays or an array "
            f"[num_layers + 1, N, H], got shape {arr.shape}."
        )
    return {i: arr[i] for i in range(arr.shape[0])}


class LayerSweep:
    """One probe per layer; dev score per layer; the best layer.

    Usage:
      sweep = LayerSweep(lambda_l1=1e-3).fit(acts_train, y_train,
                                             acts_dev, y_dev)
      sweep.scores_  # {layer: dev score}
      sweep.best_layer_

    `acts_*` are arrays [num_layers + 1, N, H] (layer 0 = embedding output,
    all from one forward pass) or dicts {layer name: [N, H]}.  Layers are
    probed in order with identical settings; ties in the dev score go to the
    lowest (earliest) layer.

    With a distributed `comm`, every rank passes its contiguous block of the
    train rows and of the dev rows; the probes are the one-process probes
    (see `probes.LinearProbe`) and the dev scores are computed from all
    ranks' dev predictions (one gather after the last layer), so every rank
    reports the one-process `scores_` and `best_layer_`.
    """

    def __init__(
        self,
        task_type: str = "classification",
        metric: str | None = None,
        *,
        comm: distributed.Comm | None = None,
        **probe_kwargs,
    ):
        """Args:
        task_type: "classification" or "regression".
        metric: a `metrics.METRICS` name; default "accuracy" for
          classification and "pearson" for regression.
        comm: None (one process) or the `distributed.Comm` whose ranks each
          hold a block of the rows; passed to every probe.
        probe_kwargs: passed to every `LinearProbe`.
        """
        self.task_type = val.check_task_type(task_type)
        self.metric = metric or ("accuracy" if task_type == "classification" else "pearson")
        if self.metric not in metrics_lib.METRICS:
            raise ValueError(
                f"Unknown metric {self.metric!r}; expected one of {metrics_lib.METRICS}."
            )
        self.comm = comm
        self.probe_kwargs = probe_kwargs

    def fit(
        self, train_activations: Any, y_train: Any, dev_activations: Any, y_dev: Any
    ) -> LayerSweep:
        train = _as_layer_dict(train_activations, "train_activations")
        dev = _as_layer_dict(dev_activations, "dev_activations")
        if set(train) != set(dev):
            raise ValueError(
                f"train and dev activations have different layers: "
                f"{sorted(map(str, train))} vs "
                f"{sorted(map(str, dev))}."
            )
        self.layers_ = list(train)
        self.probes_ = {}
        self.scores_ = {}
        comm = distributed.SINGLE if self.comm is None else self.comm
        if comm.distributed:  # dev checks up front, on every rank at once
            dev, _ = probes_lib.gather_checked(comm, lambda: (self._check_dev(dev, y_dev), None))
        local = {}  # distributed: this rank's (dev predictions, dev labels) per layer
        for layer in self.layers_:
            probe = probes_lib.LinearProbe(self.task_type, comm=self.comm, **self.probe_kwargs)
            probe.fit(train[layer], y_train)
            preds = probe.predict(val.check_features(dev[layer], "dev_activations"))
            y_dev_arr = val.check_labels(y_dev, preds.shape[0], self.task_type, "y_dev")
            self.probes_[layer] = probe
            if comm.distributed:
                local[layer] = (preds, y_dev_arr)
            else:
                self.scores_[layer] = metrics_lib.compute_score(preds, y_dev_arr, self.metric)
        if comm.distributed:  # score all ranks' dev rows, in the global row order
            ranks = comm.all_gather_object(local)
            for layer in self.layers_:
                preds = np.concatenate([r[layer][0] for r in ranks])
                labels = np.concatenate([r[layer][1] for r in ranks])
                self.scores_[layer] = metrics_lib.compute_score(preds, labels, self.metric)
        self.best_layer_ = max(
            self.layers_, key=lambda k: (self.scores_[k], -self.layers_.index(k))
        )
        self.best_score_ = self.scores_[self.best_layer_]
        return self

    def _check_dev(self, dev: dict, y_dev: Any) -> dict:
        """The dev layers as checked arrays (labels checked against each layer's rows)."""
        checked = {}
        for layer, acts in dev.items():
            checked[layer] = val.check_features(acts, "dev_activations")
            val.check_labels(y_dev, checked[layer].shape[0], self.task_type, "y_dev")
        return checked
