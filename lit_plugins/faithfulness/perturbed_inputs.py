"""The perturbed inputs of the faithfulness metrics (`faithfulness.metrics`): an
example as token ids, which of its tokens are present, how a removal is rendered as
model input, and the batched evaluation of the distinct perturbations (LIT-free: numpy).

* `TokenizedExample`: the word-piece ids of one example, its special-token mask and
  the class explained.
* `Row`: one perturbed input as `prob_fn` (`ProbFn`) runs it.
* `render`: the `Row` for an example with only the `present` tokens, by `removal`
  (`REMOVALS`: ``"delete"`` drops the pieces, ``"mask"`` replaces them by the mask
  token, ``"pad"`` by the pad token with attention masked out).
* `PerturbationPlan`: the distinct perturbations (example, tokens present), each
  evaluated once.
* `evaluate_rows`: `prob_fn` over the rows, sorted by length, in chunks of at most
  `batch_size` rows and `max_batch_tokens` tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

REMOVALS = ("delete", "mask", "pad")


@dataclasses.dataclass(frozen=True)
class TokenizedExample:
    """One example as the model sees it.

    input_ids: the word-piece ids, special tokens included.
    special: True for tokens that are never removed ([CLS], [SEP], ...).
    target: the class whose probability is f; None = the model's argmax on x.
    """

    input_ids: np.ndarray
    special: np.ndarray
    target: int | None = None


@dataclasses.dataclass(frozen=True)
class Row:
    """One perturbed input for `prob_fn`.

    example: index of the example in the scoring call.
    input_ids: the ids to run (shorter than the example's for "delete").
    attention: 1 for tokens to attend to, 0 for pad-removed ones.
    positions: each id's position in the example's original ids (for segment
      ids of text pairs).
    """

    example: int
    input_ids: np.ndarray
    attention: np.ndarray
    positions: np.ndarray


# rows -> class probabilities [len(rows), num_classes]
ProbFn = Callable[[Sequence[Row]], np.ndarray]


def check_removal(removal: str, mask_id: int | None = None, pad_id: int | None = None) -> str:
    if removal not in REMOVALS:
        raise ValueError(f"removal must be one of {list(REMOVALS)}, got {removal!r}.")
    if removal == "mask" and mask_id is None:
        raise ValueError("removal='mask' needs the mask token's id (the tokenizer has none).")
    if removal == "pad" and pad_id is None:
        raise ValueError("removal='pad' needs the pad token's id (the tokenizer has none).")
    return removal


class PerturbationPlan:
    """Distinct perturbations (example, tokens present), evaluated once."""

    def __init__(self):
        self.index: dict[tuple[int, bytes], int] = {}
        self.masks: list[tuple[int, np.ndarray]] = []

    def add(self, example: int, present: np.ndarray) -> int:
        key = (example, np.packbits(present).tobytes() + bytes([present.size % 8]))
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.masks)
            self.masks.append((example, present))
        return found


def render(
    example_index: int,
    ids: np.ndarray,
    present: np.ndarray,
    removal: str,
    mask_id: int | None = None,
    pad_id: int | None = None,
) -> Row:
    """The model input for `ids` with only the `present` tokens, by `removal`."""
    if removal == "delete":
        positions = np.flatnonzero(present)
        return Row(example_index, ids[positions], np.ones(positions.size, np.int64), positions)
    positions = np.arange(ids.size)
    if removal == "mask":
        return Row(
            example_index,
            np.where(present, ids, mask_id),
            np.ones(ids.size, np.int64),
            positions,
        )
    return Row(example_index, np.where(present, ids, pad_id), present.astype(np.int64), positions)


def evaluate_rows(
    rows: Sequence[Row], prob_fn: ProbFn, batch_size: int = 32, max_batch_tokens: int = 16384
) -> np.ndarray:
    """prob_fn over `rows`, sorted by length and chunked; probabilities in
    the rows' order [len(rows), num_classes]."""
    if not rows:
        return np.zeros((0, 0))
    lengths = np.array([r.input_ids.size for r in rows])
    order = np.argsort(lengths, kind="stable")
    out: np.ndarray | None = None
    start = 0
    while start < len(order):
        stop = start + 1
        while (
            stop < len(order)
            and stop - start < batch_size
            and (stop - start + 1) * max(1, lengths[order[stop]]) <= max_batch_tokens
        ):
            stop += 1
        chunk = order[start:stop]
        probs = np.asarray(prob_fn([rows[i] for i in chunk]), dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != len(chunk):
            raise ValueError(
                f"prob_fn returned shape {probs.shape} for {len(chunk)} rows; "
                "expected [rows, num_classes]."
            )
        if not np.all(np.isfinite(probs)):
            raise ValueError("prob_fn returned NaN or infinite probabilities.")
        if out is None:
            out = np.empty((len(rows), probs.shape[1]))
        out[chunk] = probs
        start = stop
    return out


def check_example(i: int, ex: TokenizedExample) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ex.input_ids, dtype=np.int64).reshape(-1)
    special = np.asarray(ex.special, dtype=bool).reshape(-1)
    if ids.size == 0:
        raise ValueError(f"Example {i} has no tokens.")
    if special.shape != ids.shape:
        raise ValueError(
            f"Example {i}: special-token mask of {special.size} values for {ids.size} tokens."
        )
    return ids, special
