"""Fitted probes and layer sweeps to and from ``.npz`` (no pickles).

A saved sweep predicts exactly as the fitted one: every array `predict`
reads (``weight_``, ``bias_``, ``mean_``, ``scale_``, ``classes_``) and the
estimator parameters that define the model (task, penalties, L2 form,
standardisation) are stored; solver diagnostics are not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from lit_plugins.probing.probes import LinearProbe
from lit_plugins.probing.representations import LayerSweep

FORMAT = "lit_plugins.probing.sweep/1"


def save_sweep(path: str | os.PathLike, sweep: LayerSweep) -> None:
    """Writes a fitted `LayerSweep` (its probes, scores and best layer)."""
    np.savez_compressed(path, **sweep_arrays(sweep))


def sweep_arrays(sweep: LayerSweep) -> dict[str, np.ndarray]:
    """The arrays `save_sweep` writes (no object arrays: readable without pickle);
    the served app's store keeps a fitted probe as these too."""
    arrays = {
        "format": np.array(FORMAT),
        "task_type": np.array(sweep.task_type),
        "metric": np.array(sweep.metric),
        "layers": np.array([str(l) for l in sweep.layers_]),
        "scores": np.array([sweep.scores_[l] for l in sweep.layers_], dtype=np.float64),
        "best_layer": np.array(str(sweep.best_layer_)),
    }
    for l in sweep.layers_:
        probe = sweep.probes_[l]
        prefix = f"layer_{l}/"
        arrays[prefix + "weight"] = probe.weight_
        arrays[prefix + "bias"] = probe.bias_
        arrays[prefix + "mean"] = probe.mean_
        arrays[prefix + "scale"] = probe.scale_
        arrays[prefix + "params"] = np.array(
            [probe.lambda_l1, probe.lambda_l2, float(probe.standardize)], dtype=np.float64
        )
        arrays[prefix + "l2_form"] = np.array(probe.l2_form)
        if probe.classes_ is not None:
            arrays[prefix + "classes"] = np.asarray(probe.classes_).astype(str)
    return arrays


def load_sweep(path: str | os.PathLike) -> LayerSweep:
    """A `LayerSweep` read back from `save_sweep` (layers as ints when they were)."""
    with np.load(path, allow_pickle=False) as z:
        return sweep_from_arrays(z, str(path))


def sweep_from_arrays(z: Mapping[str, np.ndarray], where: str = "the arrays") -> LayerSweep:
    """The `LayerSweep` of `sweep_arrays`' arrays (`where` names them in errors)."""
    if "format" not in z or str(z["format"]) != FORMAT:
        raise ValueError(f"{where}: not a {FORMAT} file.")
    task_type = str(z["task_type"])
    names = [str(s) for s in z["layers"]]
    layers = [int(s) if s.lstrip("-").isdigit() else s for s in names]
    sweep = LayerSweep(task_type, metric=str(z["metric"]))
    sweep.layers_ = layers
    sweep.scores_ = {l: float(s) for l, s in zip(layers, z["scores"])}
    sweep.probes_ = {}
    for l, name in zip(layers, names):
        prefix = f"layer_{name}/"
        l1, l2, standardize = (float(v) for v in z[prefix + "params"])
        probe = LinearProbe(
            task_type, l1, l2, l2_form=str(z[prefix + "l2_form"]), standardize=bool(standardize)
        )
        probe.weight_ = z[prefix + "weight"]
        probe.bias_ = z[prefix + "bias"]
        probe.mean_ = z[prefix + "mean"]
        probe.scale_ = z[prefix + "scale"]
        probe.n_features_in_ = int(probe.weight_.shape[1])
        probe.classes_ = z.get(prefix + "classes", None)
        sweep.probes_[l] = probe
    best = str(z["best_layer"])
    sweep.best_layer_ = layers[names.index(best)]
    sweep.best_score_ = sweep.scores_[sweep.best_layer_]
    return sweep
