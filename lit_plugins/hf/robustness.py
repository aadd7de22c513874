"""The model side of `faithfulness.robustness` on an HF classifier wrapper: the
examples' word embeddings as padded arrays, the explained class's probability
on per-token coefficient mixes b + α ⊙ (x − b) (infidelity's `forward_fn`), and
gradient maps on perturbed embeddings (max-sensitivity's `explain_fn`).

`clf` is our `HFSequenceClassifier` (anything with `model`, `tokenizer`,
`head`, `encode`, `labels`, `inference_lock`); forward passes hold its lock.
Probabilities are the wrapper's (softmax, or sigmoid per label for a
multi-label head), in float32 at least.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lit_plugins.attribution import baselines as baselines_lib
from lit_plugins.hf import heads

JsonDict = dict[str, Any]
GRADIENT_MAPS = ("gradient_dot_input", "gradient_norm")


@dataclasses.dataclass
class EmbeddedBatch:
    """Examples as the model reads them, padded.

    embeddings: word embeddings [N, T, d] (float64 copy for the metrics).
    token_mask: True for real tokens [N, T]; special: True for special tokens.
    positions: per example, the padded positions of its real tokens (to put a
      map over the real tokens into [N, T] and back).
    targets: the explained class per example (pinned `grad_class` or argmax).
    """

    embeddings: np.ndarray
    token_mask: np.ndarray
    special: np.ndarray
    positions: list[np.ndarray]
    targets: list[int]
    _x: torch.Tensor
    _base: torch.Tensor
    _kwargs: dict

    def padded(self, maps: Sequence[np.ndarray]) -> np.ndarray:
        """Maps over each example's real tokens as an [N, T] array (0 on padding)."""
        out = np.zeros(self.token_mask.shape)
        for i, (pos, values) in enumerate(zip(self.positions, maps)):
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            if values.size != pos.size:
                raise ValueError(
                    f"Example {i}: a map of {values.size} values for {pos.size} tokens."
                )
            out[i, pos] = values
        return out


def embed(clf, inputs: Sequence[JsonDict], baseline: str = "zero") -> EmbeddedBatch:
    """Encodes `inputs` once; `baseline` as in `attribution.baselines`."""
    if getattr(clf, "is_regression", False):
        raise ValueError("Robustness scores need a classifier (class probabilities).")
    batch = clf.encode(list(inputs))
    enc = batch["enc"]
    mask = enc["attention_mask"].bool()
    ids = enc["input_ids"]
    special = torch.tensor(
        np.isin(ids.cpu().numpy(), clf.tokenizer.all_special_ids), device=ids.device
    )
    x = batch["embs"]
    table = clf.model.get_input_embeddings().weight.detach()
    base = baselines_lib.baseline_embeddings(
        x, baseline, table, clf.tokenizer.pad_token_id, clf.tokenizer.mask_token_id
    )
    kwargs = heads.forward_kwargs(clf.head, enc)
    with clf.inference_lock, torch.no_grad():
        logits = clf.model(inputs_embeds=x, **kwargs).logits
    argmax = logits.argmax(-1).tolist()
    targets = [argmax[i] if t is None else int(t) for i, t in enumerate(batch["targets"])]
    return EmbeddedBatch(
        embeddings=heads.at_least_float32(x).double().cpu().numpy(),
        token_mask=mask.cpu().numpy(),
        special=(special & mask).cpu().numpy(),
        positions=[np.flatnonzero(m) for m in mask.cpu().numpy()],
        targets=targets,
        _x=x,
        _base=base,
        _kwargs=kwargs,
    )


def _probability(clf, batch: EmbeddedBatch, rows: torch.Tensor, x: torch.Tensor):
    kwargs = {k: v[rows] for k, v in batch._kwargs.items()}
    logits = clf.model(inputs_embeds=x, **kwargs).logits
    probs = heads.probabilities(clf.head, heads.at_least_float32(logits))
    t = torch.tensor([batch.targets[int(r)] for r in rows], device=probs.device)
    return probs.gather(1, t[:, None])[:, 0]


def forward_fn(clf, batch: EmbeddedBatch):
    """infidelity's forward_fn: (rows, α [R, T]) -> p_target(b + α ⊙ (x − b)) [R]."""

    def run(rows: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        r = torch.as_tensor(np.asarray(rows), device=batch._x.device)
        a = torch.as_tensor(alpha, dtype=batch._x.dtype, device=batch._x.device)[..., None]
        x, b = batch._x[r], batch._base[r]
        with clf.inference_lock, torch.no_grad():
            p = _probability(clf, batch, r, b + a * (x - b))
        return p.double().cpu().numpy()

    return run


def gradient_explain_fn(clf, batch: EmbeddedBatch, kind: str = "gradient_dot_input"):
    """max_sensitivity's explain_fn for a plain gradient map of the target
    probability: ∂p/∂e_t · e_t ("gradient_dot_input") or ‖∂p/∂e_t‖₂
    ("gradient_norm"), 0 on padding."""
    if kind not in GRADIENT_MAPS:
        raise ValueError(f"kind must be one of {list(GRADIENT_MAPS)}, got {kind!r}.")

    def run(rows: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        r = torch.as_tensor(np.asarray(rows), device=batch._x.device)
        x = torch.as_tensor(embeddings, dtype=batch._x.dtype, device=batch._x.device)
        with clf.inference_lock, torch.enable_grad():
            x = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(_probability(clf, batch, r, x).sum(), x)
        grad, x = heads.at_least_float32(grad), heads.at_least_float32(x.detach())
        values = (grad * x).sum(-1) if kind == "gradient_dot_input" else grad.norm(dim=-1)
        mask = torch.as_tensor(batch.token_mask[np.asarray(rows)], device=values.device)
        return (values * mask).double().cpu().numpy()

    return run
