"""Salience maps computed by `python -m lit_plugins attribute`, shown in LIT
without recomputing them.

`PrecomputedAttributions` holds the rows of one or more `attribute` runs
(`saved_results.load_attribution_results`). For a selected example it finds
the row of the served model with the same text (all of the run's text fields)
and returns each method's per-token scores as LIT `TokenSalience` maps, with a
chip line saying where they come from (run directory, class explained, IG's
rule and completeness error). It is a lookup, not a method: Salience
Clustering and Salience Faithfulness leave it out (`methods.is_salience_method`).

Runs are read by `saved_results.load_attribution_results` (the file names of the
corpus commands live there). A run belongs to a served model when the run recorded the checkpoint digest
the model has on disk (`util.digest`), else when the run's model name is the
served model's name; `preload` refuses a run that matches no served model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.lit import specs
from lit_plugins.lit.interpreters import common
from lit_plugins.util import digest

JsonDict = specs.JsonDict
SOURCE_FIELD = "precomputed_source"
# The `attribute` command's methods: (row column, signed map).
METHODS = {
    "grad_norm": False,
    "grad_dot_input": True,
    "integrated_gradients": True,
    "layer_conductance": True,
}


@dataclasses.dataclass
class AttributionRun:
    """A (finished or partial) `attribute` run: its rows and what they depend on."""

    out_dir: str
    model: str  # the --models name the rows were computed for
    checkpoint: str  # that checkpoint's digest (util.digest), "" if not recorded
    text_fields: tuple[str, ...]
    num_items: int  # examples in the run's dataset
    rows: pd.DataFrame  # one row per computed example (cli/attribute.py's columns)


def served_checkpoint(model: lit_model.Model) -> str:
    """The digest of the checkpoint directory a served model was loaded from ("" if none)."""
    raw = specs.hf_classifier(model)
    path = getattr(raw, "name_or_path", "") if raw is not None else ""
    if not path:
        return ""
    found = digest.checkpoint_digest(path)["digest"]
    return found if found.startswith("sha256:") else ""


class PrecomputedAttributions(lit_components.Interpreter):
    """The `attribute` command's maps for the served models (module docstring)."""

    def __init__(self, models: Mapping[str, lit_model.Model]):
        self._models = dict(models)
        self._runs: dict[str, tuple[AttributionRun, dict[tuple, int]]] = {}  # model name ->

    def preload(self, run: AttributionRun) -> str:
        """Adds `run`'s rows for the served model they belong to; returns its name."""
        name = self._owner(run)
        index = {
            tuple(str(row[f]) for f in run.text_fields): i
            for i, row in run.rows[list(run.text_fields)].iterrows()
        }
        self._runs[name] = (run, index)
        return name

    def _owner(self, run: AttributionRun) -> str:
        if run.checkpoint:
            for name, model in self._models.items():
                if served_checkpoint(model) == run.checkpoint:
                    return name
        if run.model in self._models and not (
            run.checkpoint and served_checkpoint(self._models[run.model])
        ):
            return run.model
        raise ValueError(
            f"The attributions in {run.out_dir!r} were computed for model {run.model!r} "
            f"(checkpoint {run.checkpoint or 'not recorded'}); no served model "
            f"({', '.join(map(repr, self._models))}) has those weights. Serve that checkpoint, "
            "or rerun `python -m lit_plugins attribute` for the served one."
        )

    def _name_of(self, model: lit_model.Model) -> str | None:
        raw = specs.unwrap(model)
        for name, candidate in self._models.items():
            if candidate is model or specs.unwrap(candidate) is raw:
                return name
        return None

    # ---------------------------------------------------------------- LIT API
    def description(self) -> str:
        return (
            "Salience maps precomputed over the whole dataset by `python -m lit_plugins "
            "attribute` (gradient norm, gradient · input, integrated gradients, layer "
            "conductance), shown without recomputing them."
        )

    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        del dataset
        return self._name_of(model) in self._runs

    def meta_spec(self) -> lit_types.Spec:
        spec: lit_types.Spec = {
            m: lit_types.TokenSalience(autorun=True, signed=signed) for m, signed in METHODS.items()
        }
        spec[SOURCE_FIELD] = lit_types.TokenSalience(autorun=True, signed=False)
        return spec

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        del dataset, model_outputs, config
        name = self._name_of(model)
        if name not in self._runs:
            return None
        run, index = self._runs[name]
        return [self._result(run, index, ex) for ex in inputs]

    @staticmethod
    def _result(run: AttributionRun, index: dict[tuple, int], example: JsonDict) -> JsonDict:
        key = tuple(str(example.get(f, "")) for f in run.text_fields)
        i = index.get(key)
        if i is None:
            note = f"not in the precomputed run ({len(index)} of {run.num_items} examples)"
            return {SOURCE_FIELD: common.labelled_chips([(note, 0.0)], value_format=None)}
        row = run.rows.iloc[i]
        tokens = [str(t) for t in row["tokens"]]
        out: JsonDict = {}
        for method in METHODS:
            if method in row.index and row[method] is not None:
                scores = np.asarray(row[method], dtype=np.float64)
                if len(scores) == len(tokens):
                    out[method] = dtypes.TokenSalience(tokens, scores)
        chips = [(f"from {run.out_dir}", 0.0), (f"explains: {row.get('target', '?')}", 0.0)]
        for method in ("integrated_gradients", "layer_conductance"):
            error = row.get(f"{method}_completeness_error")
            if error is not None and not (isinstance(error, float) and np.isnan(error)):
                rule = row.get(f"{method}_rule", "")
                chips.append((f"{method}: completeness error {float(error):.2%} ({rule})", 0.0))
        out[SOURCE_FIELD] = common.labelled_chips(chips, value_format=None)
        return out
