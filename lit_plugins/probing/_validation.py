"""Input checks shared by the probing modules.

Probes are usually trained on activations collected by other code (a LIT
model wrapper, a notebook); a silent shape or dtype mistake there turns into a
meaningless neuron ranking rather than a crash.  These helpers fail early with
messages that say what was wrong and what was expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASK_TYPES = (CLASSIFICATION, REGRESSION)


def check_task_type(task_type: str) -> str:
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}.")
    return task_type


def check_features(X: Any, name: str = "X") -> np.ndarray:
    """Returns X as a finite 2-D float array [num_examples, num_neurons]."""
    try:
        arr = np.asarray(X)
    except Exception as e:  # ragged nested lists etc.
        raise ValueError(f"{name} could not be converted to an array: {e}") from e
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric activations, got dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [num_examples, num_neurons], got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no examples (shape {arr.shape}).")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no neurons (shape {arr.shape}).")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); clean the "
            "activations (e.g. check for fp16 overflow) before probing."
        )
    return arr


def check_labels(y: Any, num_examples: int, task_type: str, name: str = "y") -> np.ndarray:
    """Validates labels for a task; returns a 1-D array.

    Classification labels may be integers or strings (any consistent, sortable
    type; `classes_` is their sorted unique set).  Float labels are accepted for
    classification only when every value is integral - a float with a fraction
    almost always means a regression target was passed by mistake.  Regression
    targets must be finite numbers.
    """
    try:
        arr = np.asarray(y)
    except Exception as e:
        raise ValueError(f"{name} could not be converted to an array: {e}") from e
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D [num_examples], got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no labels.")
    if arr.shape[0] != num_examples:
        raise ValueError(
            f"Mismatched lengths: X has {num_examples} examples but {name} has "
            f"{arr.shape[0]} labels."
        )

    if task_type == REGRESSION:
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"Regression targets {name} must be numeric, got dtype "
                f"{arr.dtype} (e.g. {arr[0]!r})."
            )
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"Regression targets {name} contain NaN or infinite values.")
        return arr

    kind = arr.dtype.kind
    if kind == "O":
        first_type = type(arr[0])
        ok_types = (str, int, np.integer, np.str_)
        if not all(
            isinstance(v, ok_types) and not isinstance(v, bool) and type(v) is first_type
            for v in arr
        ):
            raise ValueError(
                f"Class labels {name} must all be integers or all be strings; got "
                f"mixed or non-label values (e.g. {arr[0]!r})."
            )
        arr = arr.astype(str) if issubclass(first_type, str) else arr.astype(np.int64)
    elif kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(
                f"Class labels {name} are non-integral floats; use integer or string "
                "class labels (or task_type='regression' for real-valued targets)."
            )
        arr = arr.astype(np.int64)
    elif kind == "b":
        arr = arr.astype(np.int64)
    elif kind not in "iuUS":
        raise ValueError(f"Class labels {name} must be integers or strings, got dtype {arr.dtype}.")
    return arr


def check_weights(weights: Any) -> np.ndarray:
    """Absolute probe weights [num_classes, num_neurons] from several sources.

    Accepts a fitted `LinearProbe` (uses `weight_`), a NeuroX-style torch module
    (uses its first parameter, exactly as NeuroX does), a torch tensor or a
    numpy array.  The dtype is kept so cumulative-mass cut-offs are computed in
    the same precision NeuroX would use.
    """
    if hasattr(weights, "weight_"):
        w = weights.weight_
    elif hasattr(weights, "parameters") and callable(weights.parameters):
        w = next(iter(weights.parameters())).detach().cpu().numpy()
    elif hasattr(weights, "detach"):
        w = weights.detach().cpu().numpy()
    else:
        w = weights
    w = np.asarray(w)
    if w.dtype.kind not in "biuf":
        raise ValueError(f"Probe weights must be numeric, got dtype {w.dtype}.")
    if w.ndim != 2:
        raise ValueError(
            f"Probe weights must be 2-D [num_classes, num_neurons], got shape {w.shape}."
        )
    if w.shape[1] == 0:
        raise ValueError("Probe weights have no neurons.")
    if w.dtype.kind == "f" and not np.all(np.isfinite(w)):
        raise ValueError("Probe weights contain NaN or infinite values.")
    return np.abs(w)
