"""Control tasks and selectivity (Hewitt & Liang, EMNLP 2019).

A probe's accuracy alone does not say whether the *representation* encodes a
property or whether the probe simply memorised word identities.  A control
task gives every word type a random but fixed label, drawn from the real
task's empirical label distribution; it can only be solved by memorising
types.  Selectivity = real accuracy - control accuracy: high selectivity means
the probe's success reflects the representation, not the probe's capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lit_plugins.probing import _validation as val
from lit_plugins.probing import probes as probes_lib


def _as_1d(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a flat sequence (one entry per token), got shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty.")
    return arr


def control_label_mapping(types: Any, labels: Any, seed: int) -> dict:
    """{word type: control label} for every distinct type in `types`.

    Each type independently gets a label sampled from the empirical
    distribution of `labels` (token frequencies, as in Hewitt & Liang).  Types
    are visited in sorted order and drawn with one vectorised call of a seeded
    `np.random.default_rng`, so the mapping depends only on the type
    vocabulary, the label distribution and the seed.
    """
    types = _as_1d(types, "types")
    labels = _as_1d(labels, "labels")
    classes, counts = np.unique(labels, return_counts=True)
    vocab = np.unique(types)
    rng = np.random.default_rng(seed)
    drawn = rng.choice(classes, size=vocab.shape[0], p=counts / counts.sum())
    return {_key(t): _key(c) for t, c in zip(vocab, drawn)}


def apply_control_mapping(tokens_or_types: Any, mapping: dict) -> np.ndarray:
    """Control label of each token via its type (KeyError-safe message)."""
    tokens = _as_1d(tokens_or_types, "tokens_or_types")
    try:
        return np.asarray([mapping[_key(t)] for t in tokens])
    except KeyError as e:
        raise ValueError(
            f"Word type {e.args[0]!r} has no control label; build "
            "the mapping over all splits' types."
        ) from None


def make_control_labels(
    tokens_or_types: Any, labels: Any, seed: int, vocabulary: Sequence | None = None
) -> np.ndarray:
    """Control-task labels for a token sequence.

    Args:
      tokens_or_types: word type of each token (strings or type ids), [N].
      labels: the real task's label of each token, [N]; only its empirical
        distribution is used.
      seed: RNG seed; the same seed gives the same type -> label assignment.
      vocabulary: optional extra types to include in the assignment (e.g. the
        dev split's tokens), so that splits share one mapping.  Adding types
        can change which label each type gets; pass the same vocabulary for
        every split.

    Returns:
      np.ndarray [N]: every occurrence of a type has the same control label.
    """
    tokens = _as_1d(tokens_or_types, "tokens_or_types")
    labels = _as_1d(labels, "labels")
    if tokens.shape[0] != labels.shape[0]:
        raise ValueError(
            f"Mismatched lengths: {tokens.shape[0]} tokens vs {labels.shape[0]} labels."
        )
    types = tokens if vocabulary is None else np.concatenate([tokens, np.asarray(list(vocabulary))])
    mapping = control_label_mapping(types, labels, seed)
    return apply_control_mapping(tokens, mapping)


def selectivity(real_acc: float, control_acc: float) -> float:
    """Real-task accuracy minus control-task accuracy (Hewitt & Liang)."""
    return float(real_acc) - float(control_acc)


def control_task_selectivity(
    X_train: Any,
    tokens_train: Any,
    y_train: Any,
    X_dev: Any,
    tokens_dev: Any,
    y_dev: Any,
    seed: int = 0,
    **probe_kwargs,
) -> dict:
    """Trains the real and the control probe with identical settings.

    The control mapping covers the types of both splits (drawn from the
    training label distribution), so dev types unseen in training still get a
    fixed label - as in Hewitt & Liang, where the mapping is over the whole
    vocabulary.  Both accuracies are on the dev split.

    Returns:
      {"real_accuracy", "control_accuracy", "selectivity",
       "real_probe", "control_probe", "control_train", "control_dev"}.
    """
    X_train = val.check_features(X_train, "X_train")
    X_dev = val.check_features(X_dev, "X_dev")
    tokens_train = _as_1d(tokens_train, "tokens_train")
    tokens_dev = _as_1d(tokens_dev, "tokens_dev")
    for name, toks, X in (
        ("tokens_train", tokens_train, X_train),
        ("tokens_dev", tokens_dev, X_dev),
    ):
        if toks.shape[0] != X.shape[0]:
            raise ValueError(
                f"Mismatched lengths: {name} has {toks.shape[0]} "
                f"tokens but the activations have {X.shape[0]} rows."
            )
    mapping = control_label_mapping(np.concatenate([tokens_train, tokens_dev]), y_train, seed)
    control_train = apply_control_mapping(tokens_train, mapping)
    control_dev = apply_control_mapping(tokens_dev, mapping)

    kwargs = dict(probe_kwargs)
    kwargs.setdefault("task_type", "classification")
    real = probes_lib.LinearProbe(**kwargs).fit(X_train, y_train)
    control = probes_lib.LinearProbe(**kwargs).fit(X_train, control_train)
    real_acc = real.score(X_dev, y_dev)
    control_acc = control.score(X_dev, control_dev)
    return {
        "real_accuracy": real_acc,
        "control_accuracy": control_acc,
        "selectivity": selectivity(real_acc, control_acc),
        "real_probe": real,
        "control_probe": control,
        "control_train": control_train,
        "control_dev": control_dev,
    }


def _key(v):
    return v.item() if hasattr(v, "item") else v
