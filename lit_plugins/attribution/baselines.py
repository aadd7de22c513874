"""Baselines for integrated gradients in word-embedding space."""

from __future__ import annotations

import torch

BASELINES = ("zero", "pad", "mask")


def check_baseline(name: str) -> str:
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}; accepted: {', '.join(BASELINES)}.")
    return name


def baseline_embeddings(
    embeddings: torch.Tensor,
    kind: str,
    table: torch.Tensor | None = None,
    pad_id: int | None = None,
    mask_id: int | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Baseline of the same shape as `embeddings` ([..., T, d]).

    Args:
      embeddings: the input's word embeddings.
      kind: 'zero' (all-zero vectors), 'pad' or 'mask' (every position gets the
        [PAD] / [MASK] token's embedding row from `table`).
      table: the model's word-embedding matrix (for 'pad'/'mask').
      pad_id, mask_id: token ids of [PAD] and [MASK].
      keep: optional bool mask [..., T]; True positions keep the input's own
        embedding (e.g. [CLS]/[SEP]), so they get no attribution.
    """
    check_baseline(kind)
    if kind == "zero":
        base = torch.zeros_like(embeddings)
    else:
        token_id = pad_id if kind == "pad" else mask_id
        if token_id is None or table is None:
            raise ValueError(
                f"Baseline {kind!r} needs a tokenizer with a {kind} token; use 'zero' instead."
            )
        base = table[token_id].to(embeddings).expand_as(embeddings).clone()
    if keep is not None:
        base = torch.where(keep[..., None], embeddings, base)
    return base
