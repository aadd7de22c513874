"""Per-token scores from gradients (LIT-free)."""

from __future__ import annotations

import numpy as np


def gradient_l2_norm(grads: np.ndarray) -> np.ndarray:
    """‖∂F/∂e_t‖₂ per token t; grads is [num_tokens, hidden]."""
    return np.linalg.norm(np.asarray(grads), axis=-1)


def gradient_dot_input(grads: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """∂F/∂e_t · e_t per token (first-order Taylor contribution)."""
    grads, embeddings = np.asarray(grads), np.asarray(embeddings)
    if grads.shape != embeddings.shape:
        raise ValueError(
            f"Gradients {grads.shape} and embeddings {embeddings.shape} must have the same shape."
        )
    return np.sum(grads * embeddings, axis=-1)


def normalize_within(scores: np.ndarray, normalize, include: np.ndarray | None) -> np.ndarray:
    """Applies `normalize` to the included tokens only; the rest become 0."""
    if include is None or include.all():
        return normalize(scores)
    out = np.zeros_like(scores)
    if include.any():
        out[include] = normalize(scores[include])
    return out
