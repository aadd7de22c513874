"""IntegratedGradients for LIT: a path that reaches the input, five
quadrature rules plus nested Clenshaw–Curtis and graded Gauss–Legendre, the
`auto` rule (default: plain or graded Gauss–Legendre per example, see
`attribution.integrated_gradients.integrate_paths`), adaptive steps to a
completeness tolerance, token baselines, batching, layer attribution.
Defaults: `attribution.integrated_gradients.IGOptions`.

Two ways to evaluate the path, same numbers:
- models that implement `integrated_gradients_path(...)` (our
  HFSequenceClassifier) are driven on their tensors: one batched
  forward+backward per chunk of path points; this also enables layer
  integrated gradients;
- any other LIT model with the fields LIT's own IG needs (TokenEmbeddings in
  and out, TokenGradients with grad_for and grad_target_field_key) is driven
  through `predict`, with interpolated embeddings and the target pinned.
"""

from __future__ import annotations

import re

import numpy as np
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types
from lit_nlp.components.citrus import utils as citrus_utils
from lit_nlp.lib import utils as lit_utils

from lit_plugins.attribution import baselines as baselines_lib
from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.lit import alignment, specs
from lit_plugins.lit.interpreters import common

JsonDict = specs.JsonDict

RULE_KEY = "Integration rule"
BASELINE_KEY = "Baseline"
KEEP_SPECIAL_KEY = "Keep special tokens in baseline"
TOLERANCE_KEY = "Completeness tolerance (0 = fixed steps)"
MAX_STEPS_KEY = "Max steps (adaptive)"
BATCH_KEY = "Internal batch size"
TARGET_LAYER_KEY = "Attribution target"
INPUT_TARGET = "input embeddings"
COMPLETENESS_KEY = "completeness"
_RULE_PREFIX = "rule: "
_LAYER_RE = re.compile(r"^\s*layer\s+(\d+)\s*$", re.IGNORECASE)


# A parsed config (see `IntegratedGradients.config_spec` for the keys); its
# defaults are the interpreter's.
IGOptions = ig_lib.IGOptions
_DEFAULTS = ig_lib.DEFAULTS


class IntegratedGradients(lit_components.Interpreter):
    """Integrated gradients (Sundararajan et al., 2017) with reported
    completeness. Results: one TokenSalience per gradient field, plus
    'completeness' (see `completeness_salience`)."""

    def __init__(
        self,
        autorun: bool = False,
        steps: int = _DEFAULTS.steps,
        rule: str = _DEFAULTS.rule,
        baseline: str = _DEFAULTS.baseline,
        normalize: bool = _DEFAULTS.normalize,
        batch_size: int = _DEFAULTS.batch_size,
    ):
        self._autorun = autorun
        self._steps = steps
        self._rule = ig_lib.check_rule(rule)
        self._baseline = baselines_lib.check_baseline(baseline)
        self._normalize = normalize
        self._batch_size = batch_size

    # ------------------------------------------------------------- LIT API
    def find_fields(
        self, input_spec: lit_types.Spec, output_spec: lit_types.Spec
    ) -> list[specs.GradientFields]:
        return specs.find_gradient_fields(output_spec, input_spec, need_embeddings_input=True)

    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        del dataset
        return bool(self.find_fields(model.input_spec(), model.output_spec()))

    def config_spec(self) -> lit_types.Spec:
        return {
            common.CLASS_KEY: lit_types.TextSegment(required=False, default=""),
            common.NORMALIZATION_KEY: lit_types.Boolean(required=False, default=self._normalize),
            common.INTERPOLATION_KEY: lit_types.Scalar(
                required=False, min_val=1, max_val=ig_lib.MAX_STEPS, default=self._steps, step=1
            ),
            RULE_KEY: lit_types.CategoryLabel(
                required=False, vocab=list(ig_lib.RULE_CHOICES), default=self._rule
            ),
            BASELINE_KEY: lit_types.CategoryLabel(
                required=False, vocab=list(baselines_lib.BASELINES), default=self._baseline
            ),
            KEEP_SPECIAL_KEY: lit_types.Boolean(required=False, default=_DEFAULTS.keep_special),
            TOLERANCE_KEY: lit_types.Scalar(
                required=False, min_val=0, max_val=0.5, default=_DEFAULTS.tolerance or 0, step=0.001
            ),
            MAX_STEPS_KEY: lit_types.Scalar(
                required=False,
                min_val=2,
                max_val=ig_lib.MAX_STEPS,
                default=_DEFAULTS.max_steps,
                step=1,
            ),
            BATCH_KEY: lit_types.Scalar(
                required=False, min_val=1, max_val=4096, default=self._batch_size, step=1
            ),
            TARGET_LAYER_KEY: lit_types.TextSegment(required=False, default=INPUT_TARGET),
            common.TARGET_INFO_KEY: lit_types.SalienceTargetInfo(required=False),
        }

    def meta_spec(self) -> lit_types.Spec:
        return {
            "saliency": lit_types.TokenSalience(autorun=self._autorun, signed=True),
            COMPLETENESS_KEY: lit_types.TokenSalience(autorun=self._autorun, signed=True),
        }

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        del dataset
        options = self.parse_config(config or {})
        all_fields = self.find_fields(model.input_spec(), model.output_spec())
        if not all_fields or not inputs:
            return None if not all_fields else []
        target = common.requested_class(config or {}, model, all_fields[0])
        raw = specs.hf_classifier(model)
        if raw is not None and len(all_fields) == 1:
            path_fn, tokens, _ = raw.integrated_gradients_path(
                inputs,
                options.baseline,
                options.keep_special,
                options.layer,
                [target] * len(inputs),
            )
            token_fields = [[(all_fields[0], len(t))] for t in tokens]
            tokens = [[t] for t in tokens]
        else:
            if options.layer is not None:
                raise ValueError(
                    f"{TARGET_LAYER_KEY!r} 'layer N' needs a model with "
                    "integrated_gradients_path (e.g. HFSequenceClassifier); this "
                    f"model supports only {INPUT_TARGET!r}."
                )
            if model_outputs is None:
                model_outputs = list(model.predict(inputs))
            path_fn, tokens = _lit_path_fn(
                model, inputs, model_outputs, all_fields, options, target
            )
            token_fields = [[(f, len(t)) for f, t in zip(all_fields, toks)] for toks in tokens]

        ig = ig_lib.integrated_gradients(len(inputs), path_fn, **options.quadrature())
        results = []
        for res, toks, layout in zip(ig, tokens, token_fields):
            scores = res.attributions
            if options.normalize:
                scores = citrus_utils.normalize_scores(scores)
            out, start = {}, 0
            for (fields, length), field_tokens in zip(layout, toks):
                out[fields.gradients] = dtypes.TokenSalience(
                    list(field_tokens), scores[start : start + length].astype(np.float32)
                )
                start += length
            out[COMPLETENESS_KEY] = completeness_salience(res)
            results.append(out)
        return results

    # -------------------------------------------------------------- config
    def parse_config(self, config: JsonDict) -> IGOptions:
        """Validated options; a bad value raises ValueError naming what's
        accepted."""
        rule = common.parse_choice(config, RULE_KEY, self._rule, ig_lib.RULE_CHOICES)
        steps = common.parse_int(
            config, common.INTERPOLATION_KEY, self._steps, ig_lib.min_steps(rule), ig_lib.MAX_STEPS
        )
        tolerance = common.parse_float(config, TOLERANCE_KEY, _DEFAULTS.tolerance or 0.0, 0.0, 0.5)
        max_steps = common.parse_int(
            config, MAX_STEPS_KEY, max(_DEFAULTS.max_steps, steps), steps, ig_lib.MAX_STEPS
        )
        layer_text = str(config.get(TARGET_LAYER_KEY, INPUT_TARGET) or INPUT_TARGET).strip()
        if layer_text.lower() == INPUT_TARGET:
            layer = None
        elif match := _LAYER_RE.match(layer_text):
            layer = int(match.group(1))
        else:
            raise ValueError(
                f"{TARGET_LAYER_KEY!r} must be {INPUT_TARGET!r} or "
                f"'layer N' (N = 0 for the embedding output), got "
                f"{layer_text!r}."
            )
        return IGOptions(
            rule=rule,
            steps=steps,
            tolerance=tolerance if tolerance > 0 else None,
            max_steps=max_steps,
            batch_size=common.parse_int(config, BATCH_KEY, self._batch_size, 1, 4096),
            baseline=common.parse_choice(
                config, BASELINE_KEY, self._baseline, baselines_lib.BASELINES
            ),
            keep_special=common.parse_bool(config, KEEP_SPECIAL_KEY, _DEFAULTS.keep_special),
            normalize=common.parse_bool(config, common.NORMALIZATION_KEY, self._normalize),
            layer=layer,
        )


COMPLETENESS_ITEMS = (
    "relative completeness error",
    "F(input) - F(baseline)",
    "sum of attributions",
    "path points",
    "quadrature nodes",
    "rule",
    "tolerance",
    "within tolerance",
)


def completeness_salience(res: ig_lib.IGResult) -> dtypes.TokenSalience:
    """The completeness report as labelled chips next to the salience map.

    `common.labelled_chips` (a TokenSalience: see there why not a
    FeatureSalience). `salience[i]` is the number for COMPLETENESS_ITEMS[i];
    the chip text shows it too.

    The error is judged against `res.tolerance` (the adaptive target, or
    ig_lib.DEFAULT_TOLERANCE = 1 % with fixed steps). "within tolerance" is
    +1 when the error is within it; above it, it is negative and as large as
    the largest other value, so LIT, which scales a map's chip colours by its
    largest |value|, shows that chip at full strength in the negative colour,
    and the chip and the error's chip say "above tolerance".

    The "rule" chip names the quadrature rule that gave the result and, under
    the `auto` rule, why (e.g. "rule: gausslegendre_graded (auto: F moved 40%
    of ΔF by α = 0.00035, stiff at the baseline)"); its value is 0 (no
    colour): `completeness_rule` reads the name back.
    """
    tol = res.tolerance
    values = [
        res.completeness_error,
        res.delta_f,
        float(np.sum(res.attributions)),
        float(res.evaluations),
        float(res.steps),
        0.0,
        tol,
    ]
    within = bool(res.converged and res.completeness_error <= tol)
    flag = 1.0 if within else -max(1.0, *(abs(v) for v in values if np.isfinite(v)))
    labels = [
        f"completeness error {res.completeness_error:.3%}"
        + ("" if within else f" > {tol:.2%} tolerance"),
        f"F(input) - F(baseline) = {res.delta_f:.4g}",
        f"sum of attributions = {values[2]:.4g}",
        f"{res.evaluations} path points",
        f"{res.steps} quadrature nodes",
        f"{_RULE_PREFIX}{res.rule or '?'}" + (f" ({res.rule_note})" if res.rule_note else ""),
        f"tolerance {tol:.2%}",
        "within tolerance" if within else "ABOVE TOLERANCE: not converged",
    ]
    return common.labelled_chips(zip(labels, [*values, flag]), value_format=None)


def completeness_dict(salience: dtypes.TokenSalience) -> dict[str, float]:
    """{item: value} from a result's 'completeness' entry (the "rule" chip's
    value is 0: `completeness_rule` gives its name)."""
    return common.chips_dict(salience, COMPLETENESS_ITEMS)


def completeness_rule(salience) -> str:
    """The quadrature rule named by a result's 'completeness' entry (a
    TokenSalience or its JSON dict)."""
    tokens = salience["tokens"] if isinstance(salience, dict) else salience.tokens
    text = str(tokens[COMPLETENESS_ITEMS.index("rule")])
    return text.removeprefix(_RULE_PREFIX).split(" (", 1)[0]


def _lit_path_fn(
    model: lit_model.Model,
    inputs: list[JsonDict],
    outputs: list[JsonDict],
    all_fields: list[specs.GradientFields],
    options: IGOptions,
    target: str | None,
):
    """Integrand through LIT's predict, for any model with LIT IG's fields."""
    output_spec = model.output_spec()
    raw = specs.unwrap(model)
    score_field = _score_field(output_spec)
    target_key = all_fields[0].target
    vocab = common.target_vocab(model, target_key)
    pad_or_mask = None
    if options.baseline != "zero":
        pad_or_mask = _token_embedding(model, options.baseline)
    xs, bs, tokens, targets = [], [], [], []
    for out in outputs:
        x = [np.asarray(out[f.embeddings], dtype=np.float32) for f in all_fields]
        toks = [list(out[f.tokens]) for f in all_fields]
        b = []
        for xi, ti in zip(x, toks):
            bi = (
                np.zeros_like(xi)
                if pad_or_mask is None
                else np.broadcast_to(pad_or_mask, xi.shape).copy()
            )
            if options.keep_special:
                keep = alignment.special_token_mask(model, ti)
                bi[keep] = xi[keep]
            b.append(bi)
        xs.append(x)
        bs.append(b)
        tokens.append(toks)
        targets.append(
            target if target is not None else (out.get(target_key) if target_key else None)
        )

    def path_fn(points):
        batch = []
        for i, alpha in points:
            updates = {
                f.embeddings: (bs[i][k] + alpha * (xs[i][k] - bs[i][k])).astype(np.float32)
                for k, f in enumerate(all_fields)
            }
            if target_key is not None:
                updates[target_key] = targets[i]
            batch.append(lit_utils.make_modified_input(inputs[i], updates, "IG"))
        values = []
        for (i, _), o in zip(points, raw.predict(batch)):
            integrand = np.concatenate(
                [
                    np.sum(np.asarray(o[f.gradients], np.float64) * (xs[i][k] - bs[i][k]), axis=-1)
                    for k, f in enumerate(all_fields)
                ]
            )
            values.append((_score(o, score_field, vocab, targets[i]), integrand))
        return values

    return path_fn, tokens


_SCORE_TYPES = (
    lit_types.MulticlassPreds,
    lit_types.SparseMultilabelPreds,
    lit_types.RegressionScore,
)


def _score_field(output_spec: lit_types.Spec) -> str:
    for name, field in output_spec.items():
        if isinstance(field, _SCORE_TYPES):
            return name
    raise ValueError(
        "Integrated gradients needs a MulticlassPreds, SparseMultilabelPreds or "
        "RegressionScore output to measure completeness."
    )


def _score(output: JsonDict, field: str, vocab, target) -> float:
    value = output[field]
    if np.ndim(value) == 0:
        return float(value)
    if len(value) and isinstance(value[0], (list, tuple)):  # SparseMultilabelPreds pairs
        scores = dict(value)
        return float(max(scores.values()) if target is None else scores[target])
    if vocab is None or target is None:
        return float(np.max(value))
    return float(np.asarray(value)[list(vocab).index(target)])


def _token_embedding(model: lit_model.Model, kind: str) -> np.ndarray:
    try:
        vocab, table = model.get_embedding_table()
    except NotImplementedError:
        raise ValueError(
            f"Baseline {kind!r} needs the model's embedding table "
            "(get_embedding_table); use 'zero'."
        ) from None
    names = {"pad": ("[PAD]", "<pad>"), "mask": ("[MASK]", "<mask>")}[kind]
    for name in names:
        if name in vocab:
            return np.asarray(table[list(vocab).index(name)], dtype=np.float32)
    raise ValueError(
        f"The model's vocabulary has no {kind} token ({' or '.join(names)}); use another baseline."
    )
