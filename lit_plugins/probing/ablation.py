"""Neuron ablation: retrain a probe on a neuron subset (Dalvi et al. 2019).

If the top-ranked neurons really carry the property, a probe retrained on
only the top-k neurons should score far above one retrained on k random
neurons.  This is the standard sanity check of a neuron ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lit_plugins.probing import _validation as val
from lit_plugins.probing import neurons as neurons_lib
from lit_plugins.probing import probes as probes_lib


def filter_activations(X: Any, neurons: Sequence[int]) -> np.ndarray:
    """Keeps only the given neuron columns (NeuroX `ablation` name)."""
    X = np.asarray(X)
    idx = np.asarray(list(neurons), dtype=np.int64)
    if idx.ndim != 1 or idx.shape[0] == 0:
        raise ValueError("neurons must be a non-empty list of column indices.")
    if idx.min() < 0 or idx.max() >= X.shape[-1]:
        raise ValueError(
            f"neuron indices must be in [0, {X.shape[-1]}), got range [{idx.min()}, {idx.max()}]."
        )
    return X[..., idx]


def random_neurons(num_neurons: int, k: int, seed: int) -> np.ndarray:
    """k distinct neurons uniformly at random (seeded), sorted."""
    if not 1 <= k <= num_neurons:
        raise ValueError(f"k must be in [1, {num_neurons}], got {k}.")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_neurons, size=k, replace=False))


def top_vs_random_ablation(
    X_train: Any,
    y_train: Any,
    X_dev: Any,
    y_dev: Any,
    k: int,
    seed: int = 0,
    ordering: Sequence[int] | None = None,
    probe: probes_lib.LinearProbe | None = None,
    **probe_kwargs,
) -> dict:
    """Dev accuracy of probes retrained on the top-k vs k random neurons.

    Args:
      X_train, y_train, X_dev, y_dev: activations [N, H] and labels.
      k: number of neurons to keep.
      seed: seeds the random-neuron draw.
      ordering: a neuron ranking (most important first).  If None, it is
        `get_neuron_ordering` of `probe`, or of a probe trained here on all
        neurons with `probe_kwargs`.
      probe: an already fitted full probe (saves a training run).
      probe_kwargs: `LinearProbe` settings, used for every probe trained here
        (e.g. lambda_l1/lambda_l2 for the ranking probe).

    Returns:
      {"k", "top_neurons", "random_neurons", "top_accuracy",
       "random_accuracy", "full_accuracy" (None if no full probe was used)}.
    """
    X_train = val.check_features(X_train, "X_train")
    X_dev = val.check_features(X_dev, "X_dev")
    if X_dev.shape[1] != X_train.shape[1]:
        raise ValueError(f"X_dev has {X_dev.shape[1]} neurons, X_train {X_train.shape[1]}.")
    num_neurons = X_train.shape[1]
    if not 1 <= k <= num_neurons:
        raise ValueError(f"k must be in [1, {num_neurons}], got {k}.")
    kwargs = dict(probe_kwargs)
    kwargs.setdefault("task_type", "classification")

    full_accuracy = None
    if ordering is None:
        if probe is None:
            probe = probes_lib.LinearProbe(**kwargs).fit(X_train, y_train)
        ordering, _ = neurons_lib.get_neuron_ordering(probe, probe.class_to_idx_)
    if probe is not None:
        full_accuracy = probe.score(X_dev, y_dev)
    ordering = list(ordering)
    if len(ordering) < k:
        raise ValueError(
            f"The ordering ranks only {len(ordering)} neurons (neurons with zero "
            f"weight for every class are unranked), fewer than k={k}."
        )
    top = np.asarray(ordering[:k], dtype=np.int64)
    rand = random_neurons(num_neurons, k, seed)

    def retrain(idx):
        p = probes_lib.LinearProbe(**kwargs).fit(filter_activations(X_train, idx), y_train)
        return p.score(filter_activations(X_dev, idx), y_dev)

    return {
        "k": k,
        "top_neurons": top,
        "random_neurons": rand,
        "top_accuracy": retrain(top),
        "random_accuracy": retrain(rand),
        "full_accuracy": full_accuracy,
    }
