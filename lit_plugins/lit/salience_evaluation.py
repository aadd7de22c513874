"""Which explanation to trust: faithfulness scores for LIT's token-salience
methods (LIT's own and ours), from Python.

    from lit_plugins.lit import salience_evaluation as faithfulness
    table = faithfulness.evaluate(model, dataset)            # one row per (example, method)
    faithfulness.summarize(table)                            # mean, median, 95 % CI per method × metric

`model` is an `HFSequenceClassifier` (or LIT's caching wrapper around one),
`dataset` a LIT dataset or a list of examples. `methods`: None (every method
of `default_methods()` that fits the model), names among them (or among the
`interpreters` given, e.g. an app's), or a {name: interpreter} mapping. The
random-salience baseline (`RANDOM`) is always scored too.

Each method runs as LIT runs it (its default config, on the model's outputs),
explaining the predicted class; its map is put on the model's word pieces
(piece-level maps as they are; word-level maps such as LIME's, one score per
whitespace word of a text field, give every piece of a word the word's
score) and scored by `attribution.faithfulness` (metrics, removal modes,
tie and edge-case rules: see there) in one batched pass per chunk of
examples. The table records the removal each number used.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tqdm
from lit_nlp.api import components as lit_components
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model

from lit_plugins.faithfulness import metrics as core
from lit_plugins.faithfulness import summary as faithfulness_summary
from lit_plugins.hf.perturb import PerturbationRunner
from lit_plugins.lit import alignment, specs
from lit_plugins.lit import methods as registry

JsonDict = specs.JsonDict
RANDOM = core.RANDOM
METRICS = core.METRICS
HIGHER_IS_BETTER = core.HIGHER_IS_BETTER

# The methods scored by default, their names and which are maps: the one registry.


def default_methods() -> dict[str, lit_components.Interpreter]:
    """The methods scored when none are named: `lit.methods.default_methods`."""
    return registry.default_methods()


def salience_methods(
    interpreters: Mapping[str, lit_components.Interpreter],
    model: lit_model.Model | None = None,
    dataset: Any = None,
) -> dict[str, lit_components.Interpreter]:
    """The salience maps among `interpreters`: `lit.methods.salience_methods`."""
    return registry.salience_methods(interpreters, model, dataset)


_PROGRESS_INTERVAL_S = 5.0


def resolve_methods(
    methods: Sequence[str] | Mapping[str, lit_components.Interpreter] | None,
    model: lit_model.Model,
    dataset: Any = None,
    interpreters: Mapping[str, lit_components.Interpreter] | None = None,
) -> dict[str, lit_components.Interpreter]:
    """{name: interpreter} to score; a name that is not served raises ValueError."""
    if isinstance(methods, Mapping):
        chosen = dict(methods)
    else:
        served = salience_methods(
            interpreters if interpreters is not None else default_methods(), model, dataset
        )
        if methods is None:
            chosen = served
        else:
            if isinstance(methods, str):
                methods = [methods]
            unknown = [m for m in methods if m not in served]
            if unknown:
                raise ValueError(
                    f"Salience method(s) {unknown} not served for this model; "
                    f"served: {sorted(served)}."
                )
            chosen = {m: served[m] for m in methods}
    if RANDOM in chosen:
        raise ValueError(f"{RANDOM!r} is the random baseline's name; rename that method.")
    return chosen


# ----------------------------------------------------- maps on the pieces --
def _token_salience(value) -> tuple[list[str], np.ndarray] | None:
    if isinstance(value, dtypes.TokenSalience):
        return [str(t) for t in value.tokens], np.asarray(value.salience, dtype=np.float64)
    if isinstance(value, Mapping) and "tokens" in value and "salience" in value:
        return [str(t) for t in value["tokens"]], np.asarray(value["salience"], np.float64)
    return None


def piece_salience(
    result: JsonDict | None,
    tokens: Sequence[str],
    example: JsonDict,
    model: lit_model.Model,
    method: str = "method",
) -> np.ndarray:
    """One method's result for one example as a map over the model's pieces.

    A TokenSalience over exactly `tokens` is used as it is; otherwise
    TokenSalience fields named after a text input field, over its whitespace
    words (LIME), give each piece its word's score (special tokens and pieces
    of fields without a map: 0). Anything else raises ValueError.
    """
    tokens = [str(t) for t in tokens]
    fields = {}
    for key, value in (result or {}).items():
        if key in registry.REPORT_FIELDS:
            continue
        parsed = _token_salience(value)
        if parsed is None:
            continue
        if parsed[0] == tokens:
            return parsed[1]
        fields[key] = parsed
    raw = specs.unwrap(model)
    text_fields = getattr(raw, "text_fields", None) or [alignment.text_field(raw)]
    out = np.zeros(len(tokens))
    used = False
    for field in text_fields:
        if field not in fields:
            continue
        words, values = fields[field]
        text = example.get(field)
        if not isinstance(text, str) or words != text.split():
            continue
        _, weights, kept = alignment.word_piece_weights(raw, example, field, tokens, "mean")
        for row, w in zip(weights, kept):
            out[np.asarray(row) > 0] = values[int(w)]
        used = True
    if not used:
        raise ValueError(
            f"{method}: its salience map does not align with the model's tokens "
            f"({len(tokens)} word pieces) or with a text field's words; fields returned: "
            f"{sorted((result or {}).keys())}."
        )
    return out


def run_methods(
    methods: Mapping[str, lit_components.Interpreter],
    inputs: Sequence[JsonDict],
    model: lit_model.Model,
    dataset: Any,
    tokens: Sequence[Sequence[str]],
    model_outputs: Sequence[JsonDict] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, list[np.ndarray]]:
    """{method: piece-level map per input}; each method runs once on all inputs
    with its default config (explaining the predicted class).

    A method that fails raises, or, when an `errors` dict is given, is left
    out and its error message recorded there.
    """
    inputs = list(inputs)
    if model_outputs is None:
        model_outputs = list(model.predict(inputs))
    maps = {}
    for name, interp in methods.items():
        try:
            results = interp.run(inputs, model, dataset, model_outputs=list(model_outputs))
            if results is None or len(results) != len(inputs):
                raise ValueError(f"{name} returned no salience for this model.")
            maps[name] = [
                piece_salience(r, t, ex, model, name) for r, t, ex in zip(results, tokens, inputs)
            ]
        except Exception as e:
            if errors is None:
                raise
            errors[name] = f"{type(e).__name__}: {e}"
    return maps


# --------------------------------------------------------------- evaluate --
@dataclasses.dataclass
class FaithfulnessResult:
    """`table`: one row per (example, method); `curves`: {method: {"deletion"
    / "insertion": [(x, y) per example]}}; `options`: what was used."""

    table: pd.DataFrame
    curves: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]]
    options: core.FaithfulnessOptions
    methods: list[str]

    def summary(self, level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        return summarize(self.table, level, n_boot, seed)

    def mean_curves(self, grid: np.ndarray | None = None) -> dict[str, dict[str, tuple]]:
        """{method: {"deletion" / "insertion": (grid, mean f)}}."""
        return {
            m: {kind: faithfulness_summary.mean_curve(c, grid) for kind, c in kinds.items()}
            for m, kinds in self.curves.items()
        }


def _examples(dataset) -> list[JsonDict]:
    examples = getattr(dataset, "examples", dataset)
    examples = list(examples) if examples is not None else []
    if not examples:
        raise ValueError("Faithfulness scoring needs at least one example.")
    return examples


def score_inputs(
    model: lit_model.Model,
    inputs: Sequence[JsonDict],
    methods: Mapping[str, lit_components.Interpreter],
    options_kw: Mapping[str, Any] | None = None,
    dataset: Any = None,
    model_outputs: Sequence[JsonDict] | None = None,
    errors: dict[str, str] | None = None,
) -> tuple[list[dict[str, core.ExampleScores]], list[list[str]], core.FaithfulnessOptions]:
    """Runs `methods` on `inputs` and scores them (with the random baseline):
    (per input {method: ExampleScores}, per input its tokens, the options).
    `errors`: as in `run_methods`."""
    runner = PerturbationRunner(specs.unwrap(model))
    examples, prob_fn = runner.encode(inputs)
    options = runner.options(**dict(options_kw or {}))
    tokens = [runner.tokens(e) for e in examples]
    maps = run_methods(methods, inputs, model, dataset, tokens, model_outputs, errors)
    return core.score(examples, maps, prob_fn, options), tokens, options


def evaluate_detailed(
    model: lit_model.Model,
    dataset,
    methods: Sequence[str] | Mapping[str, lit_components.Interpreter] | None = None,
    *,
    interpreters: Mapping[str, lit_components.Interpreter] | None = None,
    removal: str = "delete",
    percentages: Sequence[float] = core.DEFAULT_PERCENTAGES,
    only_positive: bool = True,
    seed: int = 0,
    chunk_size: int = 32,
    progress: bool | str = False,
) -> FaithfulnessResult:
    """`evaluate` with the deletion / insertion curves and the options."""
    examples = _examples(dataset)
    chosen = resolve_methods(methods, model, dataset, interpreters)
    runner = PerturbationRunner(specs.unwrap(model))  # checks the model before any method runs
    options_kw = dict(
        removal=removal,
        percentages=tuple(percentages),
        only_positive=bool(only_positive),
        seed=int(seed),
    )
    options = runner.options(**options_kw)  # validates before any method runs
    labels = runner.labels
    scores: list[dict[str, core.ExampleScores]] = []
    desc = progress if isinstance(progress, str) else "Salience faithfulness"
    with tqdm.tqdm(
        total=len(examples),
        desc=desc,
        unit="ex",
        file=sys.stderr,
        mininterval=_PROGRESS_INTERVAL_S,
        disable=not progress,
    ) as bar:
        for start in range(0, len(examples), max(1, int(chunk_size))):
            chunk = examples[start : start + chunk_size]
            scores += score_inputs(model, chunk, chosen, options_kw, dataset)[0]
            bar.update(len(chunk))
    return result_from_scores(scores, options, labels, [*chosen, RANDOM])


def result_from_scores(
    scores: Sequence[Mapping[str, core.ExampleScores]],
    options: core.FaithfulnessOptions,
    labels: Sequence[str] = (),
    methods: Sequence[str] | None = None,
) -> FaithfulnessResult:
    """A `FaithfulnessResult` from `attribution.faithfulness.score`'s output
    (one {method: ExampleScores} per example)."""
    rows, curves = [], {}
    for i, per_method in enumerate(scores):
        for name, s in per_method.items():
            rows.append(
                {
                    "example": i,
                    "method": name,
                    **s.metrics(),
                    "target": labels[s.target] if s.target < len(labels) else s.target,
                    "full_prob": s.full_prob,
                    "empty_prob": s.empty_prob,
                    "num_tokens": s.num_tokens,
                    "removal": s.removal,
                }
            )
            c = curves.setdefault(name, {"deletion": [], "insertion": []})
            c["deletion"].append(s.deletion_curve)
            c["insertion"].append(s.insertion_curve)
    table = pd.DataFrame(rows)
    table.attrs.update(
        removal=options.removal,
        percentages=list(options.percentages),
        only_positive=options.only_positive,
        seed=options.seed,
    )
    return FaithfulnessResult(table, curves, options, list(methods or curves))


def evaluate(
    model: lit_model.Model,
    dataset,
    methods: Sequence[str] | Mapping[str, lit_components.Interpreter] | None = None,
    **kw,
) -> pd.DataFrame:
    """Faithfulness of each method on each example, one row per (example,
    method): comprehensiveness, sufficiency, deletion_auc, insertion_auc,
    tau_loo, the explained class (`target`), f(x) (`full_prob`), f of the
    empty input (`empty_prob`), removable tokens (`num_tokens`) and the
    `removal` used. Keywords as `evaluate_detailed`."""
    return evaluate_detailed(model, dataset, methods, **kw).table


def summarize(
    table: pd.DataFrame, level: float = 0.95, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Per method × metric: mean, median, bootstrap `level` interval of the
    mean (ci_low, ci_high), n, and whether higher is better; methods in the
    table's order."""
    rows = []
    for method, group in table.groupby("method", sort=False):
        for metric in METRICS:
            stats = faithfulness_summary.summarize(group[metric].to_numpy(), level, n_boot, seed)
            rows.append(
                {
                    "method": method,
                    "metric": metric,
                    **stats,
                    "higher_is_better": HIGHER_IS_BETTER[metric],
                }
            )
    return pd.DataFrame(rows)


def ranking(summary: pd.DataFrame, metric: str = "comprehensiveness") -> pd.DataFrame:
    """Methods best first by the mean of `metric`, with all metrics'
    "mean [ci_low, ci_high]" as columns (a wide table for reports)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}.")
    wide = summary.pivot(index="method", columns="metric", values="mean")
    order = wide[metric].sort_values(ascending=not HIGHER_IS_BETTER[metric]).index
    out = pd.DataFrame(index=order)
    for m in METRICS:
        part = summary[summary.metric == m].set_index("method")
        out[m] = [
            f"{part.at[i, 'mean']:.3f} [{part.at[i, 'ci_low']:.3f}, {part.at[i, 'ci_high']:.3f}]"
            for i in order
        ]
    out.index.name = "method"
    return out.reset_index()
