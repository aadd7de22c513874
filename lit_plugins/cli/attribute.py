"""`attribute`: our salience methods over a whole dataset, one Parquet row per example.

The rows are computed by the same LIT interpreters the UI runs (same
defaults, same numbers), on the raw model outside LIT's prediction cache, in
batches, shard by shard (`shards.ShardPlan`: resumable, split over ranks).

Columns of every shard (one row per example; pandas/pyarrow read them):

* ``example``: the example's index in the dataset (0-based, global);
  the dataset's text fields and label (if any);
* ``prediction`` (the predicted class; for a multi-label head the
  highest-scoring label) and ``probabilities`` (list; multi-label: each
  label's sigmoid probability, in the head's order);
  ``target``: the class the scores explain (--class_to_explain, else the
  prediction);
* ``tokens``: the model's word pieces;
* per method M (see METHODS): ``M`` the per-token scores (aligned with
  ``tokens``); for IG and layer conductance also ``M_completeness_error``,
  ``M_delta_f`` (F(input) - F(baseline)), ``M_attribution_sum``,
  ``M_evaluations`` (model evaluations per example), ``M_converged``
  (error within the tolerance) and ``M_rule`` (the quadrature rule used: what
  the default ``auto`` rule chose); for layer conductance ``M_top_neurons`` /
  ``M_top_neuron_scores``, the example's most conductive neurons.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model

from lit_plugins.attribution import baselines as baselines_lib
from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.cli import shards
from lit_plugins.lit import specs
from lit_plugins.lit.interpreters import common, conductance, gradient_salience
from lit_plugins.lit.interpreters import integrated_gradients as ig_interp
from lit_plugins.util import distributed

JsonDict = specs.JsonDict

GRAD_NORM = "grad_norm"
GRAD_DOT_INPUT = "grad_dot_input"
INTEGRATED_GRADIENTS = "integrated_gradients"
LAYER_CONDUCTANCE = "layer_conductance"
METHODS = (GRAD_NORM, GRAD_DOT_INPUT, INTEGRATED_GRADIENTS, LAYER_CONDUCTANCE)
_PATH_METHODS = (INTEGRATED_GRADIENTS, LAYER_CONDUCTANCE)


@dataclasses.dataclass(frozen=True)
class AttributeOptions:
    """What the rows depend on (part of the run's configuration).

    `steps`, `rule`, `baseline`, `tolerance` and `max_steps` are the IG
    interpreter's options (tolerance 0: fixed steps), shared by layer
    conductance, with its defaults (`ig_lib.IGOptions`); `normalize` applies
    LIT's normalisation to IG and conductance (gradient norm is always
    normalised to sum 1, as in LIT).
    """

    methods: tuple[str, ...] = (GRAD_NORM, GRAD_DOT_INPUT, INTEGRATED_GRADIENTS)
    class_to_explain: str = ""
    normalize: bool = False
    steps: int = ig_lib.DEFAULTS.steps
    rule: str = ig_lib.DEFAULTS.rule
    baseline: str = ig_lib.DEFAULTS.baseline
    tolerance: float = ig_lib.DEFAULTS.tolerance or 0.0
    max_steps: int = ig_lib.DEFAULTS.max_steps
    conductance_layer: int = 3

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(
                f"--methods must be a non-empty subset of {list(METHODS)}, got {list(self.methods)}."
            )
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"--methods lists a method twice: {list(self.methods)}.")
        ig_lib.check_rule(self.rule)
        baselines_lib.check_baseline(self.baseline)
        if not 1 <= self.steps <= 4096 or not 2 <= self.max_steps <= 4096:
            raise ValueError("--ig_steps must be in [1, 4096] and --ig_max_steps in [2, 4096].")
        if not 0.0 <= self.tolerance <= 0.5:
            raise ValueError(f"--ig_tolerance must be in [0, 0.5], got {self.tolerance}.")


def _interpreters(opts: AttributeOptions) -> dict[str, tuple[object, JsonDict]]:
    """{method: (interpreter, its LIT config)} for the requested methods."""
    base = {common.CLASS_KEY: opts.class_to_explain}
    path = {
        **base,
        common.NORMALIZATION_KEY: opts.normalize,
        common.INTERPOLATION_KEY: opts.steps,
        ig_interp.RULE_KEY: opts.rule,
        ig_interp.BASELINE_KEY: opts.baseline,
        ig_interp.TOLERANCE_KEY: opts.tolerance,
        ig_interp.MAX_STEPS_KEY: opts.max_steps,
    }
    table = {
        GRAD_NORM: (gradient_salience.GradientNorm(), base),
        GRAD_DOT_INPUT: (gradient_salience.GradientDotInput(), base),
        INTEGRATED_GRADIENTS: (ig_interp.IntegratedGradients(), path),
        LAYER_CONDUCTANCE: (
            conductance.LayerConductance(),
            {**path, conductance.LAYER_KEY: opts.conductance_layer},
        ),
    }
    return {m: table[m] for m in opts.methods}


def check_model(model: lit_model.Model, opts: AttributeOptions) -> None:
    """A ValueError before any work when the model cannot give a method's scores."""
    for method, (interp, config) in _interpreters(opts).items():
        if not interp.is_compatible(model, None):
            raise ValueError(
                f"Method {method!r} needs fields this model does not expose "
                "(token gradients aligned to tokens; IG also token embeddings as input)."
            )
        if method == LAYER_CONDUCTANCE:
            interp.parse_config(config, specs.unwrap(model))  # the layer exists
    fields = specs.find_gradient_fields(specs.unwrap(model).output_spec())
    if opts.class_to_explain and fields:
        common.requested_class({common.CLASS_KEY: opts.class_to_explain}, model, fields[0])


def attribute_rows(
    model: lit_model.Model,
    examples: Sequence[JsonDict],
    first_index: int,
    opts: AttributeOptions,
    columns: Sequence[str] = (),
) -> list[dict]:
    """One row per example (see the module docstring); `columns`: dataset fields to copy."""
    raw = specs.unwrap(model)
    outputs = list(raw.predict(list(examples)))
    probas_field = next(k for k, v in raw.output_spec().items() if k == "probas" or _is_preds(v))
    vocab = list(raw.output_spec()[probas_field].vocab or [])
    rows = []
    for i, (ex, out) in enumerate(zip(examples, outputs)):
        value = out[probas_field]
        if _is_scored_labels(raw.output_spec()[probas_field]):  # multi-label: (label, p)
            value = [p for _, p in value]
        probas = np.asarray(value, dtype=np.float64)
        prediction = vocab[int(probas.argmax())] if vocab else str(int(probas.argmax()))
        row = {"example": first_index + i}
        row.update({c: ex.get(c) for c in columns})
        row.update(
            prediction=prediction,
            probabilities=probas.tolist(),
            target=opts.class_to_explain or prediction,
            tokens=None,
        )
        rows.append(row)
    for method, (interp, config) in _interpreters(opts).items():
        given = None if method in _PATH_METHODS else outputs
        results = interp.run(list(examples), model, None, model_outputs=given, config=config)
        for row, result in zip(rows, results):
            _add_method(row, method, result)
    return rows


def _is_scored_labels(field) -> bool:
    from lit_nlp.api import types as lit_types  # pylint: disable=g-import-not-at-top

    return isinstance(field, lit_types.SparseMultilabelPreds)


def _is_preds(field) -> bool:
    from lit_nlp.api import types as lit_types  # pylint: disable=g-import-not-at-top

    return isinstance(field, (lit_types.MulticlassPreds, lit_types.RegressionScore))


def _add_method(row: dict, method: str, result: JsonDict) -> None:
    for key, value in result.items():
        if key == ig_interp.COMPLETENESS_KEY:
            report = ig_interp.completeness_dict(value)
            error = report.get("relative completeness error", np.nan)
            row[f"{method}_completeness_error"] = error
            row[f"{method}_delta_f"] = report.get("F(input) - F(baseline)", np.nan)
            row[f"{method}_attribution_sum"] = report.get("sum of attributions", np.nan)
            row[f"{method}_evaluations"] = int(report.get("path points", 0))
            row[f"{method}_converged"] = bool(report.get("within tolerance", -1.0) > 0)
            row[f"{method}_rule"] = ig_interp.completeness_rule(value)
        elif key == conductance.TOP_FIELD:
            chips = common.chips_dict(value)
            row[f"{method}_top_neurons"] = list(chips)
            row[f"{method}_top_neuron_scores"] = list(chips.values())
        elif isinstance(value, dtypes.TokenSalience):
            tokens = [str(t) for t in value.tokens]
            if row["tokens"] is None:
                row["tokens"] = tokens
            elif row["tokens"] != tokens:
                raise ValueError(f"{method}: tokens differ from the other methods' tokens.")
            row[method] = np.asarray(value.salience, dtype=np.float64).tolist()


def run(
    model: lit_model.Model,
    examples: Sequence[JsonDict],
    plan: shards.ShardPlan,
    opts: AttributeOptions,
    columns: Sequence[str] = (),
    batch_size: int = 32,
    comm: distributed.Comm = distributed.SINGLE,
) -> int:
    """Computes and writes this rank's pending shards; returns how many it wrote."""
    written = 0
    for k, start, stop, bar in plan.work("attribute", comm):
        rows = []
        for offset in range(start, stop, batch_size):
            batch = examples[offset : min(offset + batch_size, stop)]
            rows.extend(attribute_rows(model, batch, offset, opts, columns))
            bar.update(len(batch))
        frame = pd.DataFrame(rows)
        shards.atomic_write(plan.path(k), lambda tmp, f=frame: f.to_parquet(tmp, index=False))
        written += 1
    return written


def read(out_dir: str) -> pd.DataFrame:
    """All rows of a finished (or partial) run in `out_dir`, ordered by example."""
    manifest = shards.read_manifest(out_dir)
    if manifest is None:
        raise ValueError(f"{out_dir!r} holds no lit-plugins run ({shards.MANIFEST} is missing).")
    plan = shards.ShardPlan(
        out_dir, manifest["config"], manifest["num_items"], manifest["shard_size"], ".parquet"
    )
    frames = [pd.read_parquet(p) for p in plan.paths() if os.path.exists(p)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).sort_values("example", ignore_index=True)
