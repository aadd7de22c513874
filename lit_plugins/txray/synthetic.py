"""Synthetic activations with planted neuron shifts (demo, tests, benchmark).

Generative model (one layer of ``num_neurons`` neurons, a Zipf-distributed
vocabulary of ``vocab_size`` features):

* every feature ``f`` has an *owner* neuron ``owner_a[f]`` in model A (random,
  so each neuron owns ~vocab_size/num_neurons features) and a bump height
  ``U(2, 4)``;
* a token with feature ``f`` gets Gaussian noise (``noise`` std) on all
  neurons plus ``bump * (1 + 0.1 N(0,1))`` on its owner, so under max-1 the
  owner is (almost always) the credited neuron;
* model B re-uses the same noise plus ``finetune_noise`` extra noise, with
  ownership changed only for *planted* neurons:

  - ``swaps``: pairs ``(p, q)`` exchange all their features (in B, ``p``'s
    support is disjoint from its A support: Hellinger distance ~ 1);
  - ``specialise``: pairs ``(s, g)``: ``s`` hands half of its features to
    ``g`` (``s`` gets shorter = specialisation, ``g`` longer = generalisation).

All other neurons are *untouched* (distance ~ 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

__all__ = ["SyntheticBatch", "SyntheticTXRay"]


@dataclasses.dataclass
class SyntheticBatch:
    feature_ids: np.ndarray  # [T] int64
    acts_a: np.ndarray  # [T, H] float32
    acts_b: np.ndarray  # [T, H] float32


class SyntheticTXRay:
    """Seeded synthetic two-model activation generator with planted shifts."""

    def __init__(
        self,
        num_neurons: int = 384,
        vocab_size: int = 3000,
        num_swaps: int = 2,
        num_specialise: int = 2,
        noise: float = 0.25,
        finetune_noise: float = 0.02,
        zipf_exponent: float = 1.07,
        seed: int = 0,
    ):
        if num_neurons < 2 * (num_swaps + num_specialise) + 1:
            raise ValueError("too few neurons for the requested planted shifts")
        rng = np.random.default_rng(seed)
        self.num_neurons = int(num_neurons)
        self.vocab_size = int(vocab_size)
        self.noise = float(noise)
        self.finetune_noise = float(finetune_noise)
        self.seed = int(seed)
        ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
        p = 1.0 / (ranks + 2.7) ** zipf_exponent
        self.feature_probs = p / p.sum()
        self.bump = rng.uniform(2.0, 4.0, size=vocab_size)
        # every neuron owns at least one feature when vocab_size >= num_neurons
        owner = (
            rng.permutation(np.arange(vocab_size) % num_neurons)
            if vocab_size >= num_neurons
            else rng.integers(0, num_neurons, size=vocab_size)
        )
        self.owner_a = owner.astype(np.int64)
        self.owner_b = self.owner_a.copy()
        planted = rng.choice(num_neurons, size=2 * (num_swaps + num_specialise), replace=False)
        self.swaps = [(int(planted[2 * i]), int(planted[2 * i + 1])) for i in range(num_swaps)]
        off = 2 * num_swaps
        self.specialise = [
            (int(planted[off + 2 * i]), int(planted[off + 2 * i + 1]))
            for i in range(num_specialise)
        ]
        for p_, q_ in self.swaps:
            fp, fq = self.owner_a == p_, self.owner_a == q_
            self.owner_b[fp], self.owner_b[fq] = q_, p_
        for s_, g_ in self.specialise:
            fs = np.flatnonzero(self.owner_a == s_)
            self.owner_b[fs[: len(fs) // 2]] = g_
        self.planted = np.sort(planted.astype(np.int64))
        self.untouched = np.setdiff1d(np.arange(num_neurons), self.planted)
        self._rng = np.random.default_rng(seed + 1)
        self.feature_names = [f"w{i}" for i in range(vocab_size)]

    def batch(self, num_tokens: int, rng: np.random.Generator | None = None) -> SyntheticBatch:
        rng = self._rng if rng is None else rng
        H = self.num_neurons
        fids = rng.choice(self.vocab_size, size=num_tokens, p=self.feature_probs).astype(np.int64)
        base = rng.standard_normal((num_tokens, H), dtype=np.float32) * np.float32(self.noise)
        height = (self.bump[fids] * (1.0 + 0.1 * rng.standard_normal(num_tokens))).astype(
            np.float32
        )
        rows = np.arange(num_tokens)
        a = base.copy()
        a[rows, self.owner_a[fids]] += height
        b = base
        b += rng.standard_normal((num_tokens, H), dtype=np.float32) * np.float32(
            self.finetune_noise
        )
        b[rows, self.owner_b[fids]] += height * np.float32(1.0 + self.finetune_noise)
        return SyntheticBatch(fids, a, b)

    def batches(self, num_tokens: int, batch_tokens: int = 640) -> Iterator[SyntheticBatch]:
        """Yields batches totalling ``num_tokens`` positions (never all at once)."""
        done = 0
        while done < num_tokens:
            n = min(batch_tokens, num_tokens - done)
            yield self.batch(n)
            done += n
