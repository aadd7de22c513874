"""Token contributions to a linear probe's output (LIT-free).

A probe is linear, ``logit_c = w_c · x + b_c``, and the vector it reads is a
weighted sum of token vectors, ``x = Σ_t a_t h_t`` (sentence pooling: mean,
a_t = 1/T; cls, a_0 = 1; word pooling: a_t over the word's pieces). So each
token's additive share of the logit is ``s_t = a_t (w_c · h_t)``, and the
shares sum exactly to ``logit_c − b_c``: a faithful decomposition, not an
approximation.
"""

from __future__ import annotations

import numpy as np

SENTENCE_POOLINGS = ("mean", "cls")


def sentence_pooling_weights(num_tokens: int, pooling: str) -> np.ndarray:
    """[T] weights a_t with pooled = Σ_t a_t h_t ('mean' or 'cls' = token 0)."""
    if pooling not in SENTENCE_POOLINGS:
        raise ValueError(f"pooling must be one of {SENTENCE_POOLINGS}, got {pooling!r}.")
    if pooling == "cls":
        weights = np.zeros(num_tokens)
        weights[0] = 1.0
        return weights
    return np.full(num_tokens, 1.0 / num_tokens)


def sentence_contributions(
    hidden: np.ndarray,
    pooling_weights: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    regression: bool = False,
) -> tuple[np.ndarray, int]:
    """Per-token shares of the predicted class's logit, and that class's row.

    Args:
      hidden: [T, H] token vectors.
      pooling_weights: [T] a_t (see `sentence_pooling_weights`).
      weight, bias: the probe's [C, H] weights and [C] biases.
      regression: explain the single output row instead of the argmax class.

    Returns:
      ([T] shares summing to logit_row − bias_row, row).
    """
    pooled = pooling_weights @ hidden
    row = 0 if regression else int(np.argmax(weight @ pooled + bias))
    return pooling_weights * (hidden @ weight[row]), row


def word_contributions(
    hidden: np.ndarray, piece_weights: np.ndarray, weight: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-token shares of each word's predicted-tag logit.

    Args:
      hidden: [T, H] token vectors.
      piece_weights: [num_words, T] each word's piece weights (rows disjoint:
        a token belongs to at most one word); tokens of no word score 0.
      weight, bias: the probe's [C, H] weights and [C] biases.

    Returns:
      ([T] shares; per word they sum to its logit minus bias,
       [num_words] predicted class rows).
    """
    if piece_weights.shape[0] == 0:
        return np.zeros(hidden.shape[0]), np.zeros(0, dtype=np.int64)
    word_vectors = piece_weights @ hidden
    rows = np.argmax(word_vectors @ weight.T + bias, axis=1)
    shares = (piece_weights * (hidden @ weight[rows].T).T).sum(axis=0)
    return shares, rows
