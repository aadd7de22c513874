"""Linear probing of per-layer activations as a LIT interpreter.

Dalvi et al. (AAAI 2019) linear probes on the selected model's hidden states,
trained on the *whole dataset* loaded in LIT (a dataset-level interpreter,
like :mod:`txray_shift`). The math is the LIT-free :mod:`lit_plugins.probing`;
this module streams the dataset through the model once, caches one fit per
(model, dataset contents, label field, pooling, layers, lambdas, control
flag) and renders the fitted probe per selected example.

Fitting (first request for a cache key):

* The label field is a dataset field of type ``CategoryLabel`` (sentence
  classification), ``Scalar`` (sentence regression) or ``SequenceTags``
  (token level: one tag per *whitespace-separated word* of the model's text
  field).
* ONE streamed pass of ``model.predict(batch, activation_layers=...,
  gradients=False)`` collects every requested layer ('sweep' = all layers,
  0 = embedding output). Only pooled vectors are kept: one per sentence and
  layer (``mean`` over all of the example's tokens, special tokens included -
  the same vector as the model's ``layer_<i>/avg_emb`` - or ``cls`` = token
  0), or one per word and layer for token-level labels (the word's ``first``
  / ``last`` piece or the ``mean`` of its pieces).
* Examples are split deterministically 80/20 into train/held-out (a seeded
  permutation, stratified by class for sentence classification; token-level
  data is split by sentence so words of one sentence never straddle the
  split). One ``LinearProbe`` per layer (``LayerSweep``; elastic net with the
  configured L1/L2, NeuroX scaling) is trained on the train part and scored
  on the held-out part (accuracy, or Pearson r for regression). The best
  layer is the highest held-out score (ties: the earlier layer).
* 'Control task' also trains, per layer, a probe with identical settings on
  control labels and reports selectivity = real score - control score:
  token level, Hewitt & Liang (2019): every word type (lower-cased word) gets
  a fixed random label drawn from the label distribution; sentence level,
  there are no shared types to memorise, so each *example* gets an
  independently drawn random label (regression: the targets randomly
  permuted over examples). The sentence-level control is therefore a
  chance-level baseline for the probe on that layer, not a memorisation
  control.

Outputs per selected example (at the configured layer, or the best layer in
sweep mode):

* ``probe_token_salience`` (TokenSalience, signed): each token's additive
  contribution to the probe's output for its predicted class c (regression:
  the single output). The probe is linear, ``logit_c = w_c . x + b_c``, and
  the pooled vector is a weighted sum of token vectors ``x = sum_t a_t h_t``
  (mean: a_t = 1/T for every token; cls: a_0 = 1, else 0), so the token
  scores ``s_t = a_t * (w_c . h_t)`` sum exactly to ``logit_c - b_c``.
  Token level: each word has its own predicted tag c(word) and token t of
  that word scores ``a_t * (w_c(word) . h_t)`` with a_t its weight in the
  word vector (first/last: 1 on that piece; mean: 1/#pieces); pieces of no
  word (special tokens, truncated text) score 0. Per word the scores sum to
  that word's logit minus bias.
* ``top_neurons`` (FeatureSalience, signed): the predicted class's top
  neurons by |weight| - the ones holding 'Weight mass %' of that class's
  absolute weight mass (``get_top_neurons``) - at most 'Top neurons shown',
  keyed ``"L<layer> n<neuron>"`` and valued by the signed probe weight.
  Token level uses the example's most frequent predicted tag.
* ``layer_sweep`` (FeatureSalience): held-out score per probed layer,
  ``"layer <i>"``; with 'Control task' also ``"layer <i> selectivity"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import logging
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins import probing, specs
from lit_plugins.interpreters import common
from lit_plugins.interpreters.txray_shift import dataset_fingerprint
from lit_plugins.probing import representations

JsonDict = common.JsonDict

LABEL_FIELD_KEY = "Label field"
LAYER_KEY = "Layer"
POOLING_KEY = "Pooling"
L1_KEY = "L1"
L2_KEY = "L2"
MASS_KEY = "Weight mass %"
CONTROL_KEY = "Control task"
TOP_SHOWN_KEY = "Top neurons shown"

TOKEN_SALIENCE = "probe_token_salience"
TOP_NEURONS = "top_neurons"
LAYER_SWEEP = "layer_sweep"

SWEEP = "sweep"
SENTENCE = "sentence"
TOKEN = "token"
SENTENCE_POOLINGS = ("mean", "cls")
TOKEN_POOLINGS = ("first", "last", "mean")
POOLINGS = ("mean", "cls", "first", "last")

_DEFAULT_L1 = 1e-3
_DEFAULT_L2 = 1e-3
_DEFAULT_MASS = 50.0
_DEFAULT_TOP_SHOWN = 10
_MAX_LAMBDA = 1e6
_MAX_TOP_SHOWN = 100_000
_LOG_EVERY_S = 10.0
_PROBE_TYPES = (lit_types.CategoryLabel, lit_types.Scalar, lit_types.SequenceTags)


# ----------------------------------------------------------- fitted state
@dataclasses.dataclass
class ProbeState:
    """A fitted layer sweep; what `LinearProbeInterpreter.fit` returns.

    Attributes:
      label_field: the dataset field probed.
      level: 'sentence' or 'token'.
      task_type: 'classification' or 'regression'.
      pooling: 'mean'/'cls' (sentence) or 'first'/'last'/'mean' (token).
      layers: probed layer indices (all layers in sweep mode).
      sweep: the `probing.LayerSweep` (``sweep.probes_[layer]`` are the
        `probing.LinearProbe`s, trained on the train part).
      scores: {layer: held-out score} (accuracy, or Pearson r).
      best_layer: the layer the outputs use (the requested one, or the best).
      control_scores / selectivity: {layer: ...} with 'Control task', else None.
      metric: 'accuracy' or 'pearson'.
      num_train / num_held_out: examples in each part.
      num_items: probe rows in total (sentences, or words for token level).
      text_field: the model input field the words come from (token level).
      seconds: wall time of the fit.
    """

    label_field: str
    level: str
    task_type: str
    pooling: str
    layers: list
    sweep: Any
    scores: dict
    best_layer: int
    control_scores: dict | None
    selectivity: dict | None
    metric: str
    num_train: int
    num_held_out: int
    num_items: int
    text_field: str | None
    seconds: float
    model: Any = dataclasses.field(repr=False, default=None)

    def probe(self, layer: int | None = None) -> probing.LinearProbe:
        return self.sweep.probes_[self.best_layer if layer is None else layer]


# ------------------------------------------------------------- helpers
def label_fields(dataset_spec: lit_types.Spec) -> list[str]:
    """Probe-able label fields of a dataset spec, in spec order."""
    return [k for k, v in (dataset_spec or {}).items() if isinstance(v, _PROBE_TYPES)]


def _level(field: lit_types.LitType) -> str:
    return TOKEN if isinstance(field, lit_types.SequenceTags) else SENTENCE


def _text_field(raw: lit_model.Model) -> str | None:
    """The model input field its Tokens (hence the words) come from."""
    out_spec = raw.output_spec()
    layers = specs.find_layer_activation_fields(out_spec)
    if layers:
        try:
            tokens = specs.find_tokens_field(out_spec, next(iter(layers.values())))
            parent = getattr(out_spec[tokens], "parent", None)
            if parent:
                return parent
        except ValueError:
            pass
    texts = [k for k, v in raw.input_spec().items() if isinstance(v, lit_types.TextSegment)]
    return texts[0] if texts else None


def _has_fast_tokenizer(raw: lit_model.Model) -> bool:
    tok = getattr(raw, "tokenizer", None)
    return bool(getattr(tok, "is_fast", False))


def _word_piece_weights(
    raw: lit_model.Model, example: JsonDict, text_field: str, tokens: Sequence[str], pooling: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Maps the model's tokens to whitespace words of `text_field`.

    Returns (words, A [num_kept_words, T] piece weights as in
    `probing.word_level_activations`, kept word indices). Uses the model's
    fast tokenizer's character offsets; the tokens must be the ones the model
    returned (checked).
    """
    tok = raw.tokenizer
    text = example.get(text_field)
    if not isinstance(text, str):
        raise ValueError(
            f"Token-level probing needs the text field {text_field!r} as a string in every example."
        )
    if not text.strip():
        text = ""
    words = text.split()
    texts = [text]
    fields = getattr(raw, "text_fields", (text_field,))
    if len(fields) == 2:
        other = example.get(fields[1] if fields[0] == text_field else fields[0])
        texts.append(other if isinstance(other, str) and other.strip() else "")
    # The tokenizer's truncation settings are shared state: hold the model's
    # lock where it has one (HFSequenceClassifier.inference_lock).
    with getattr(raw, "inference_lock", None) or contextlib.nullcontext():
        enc = tok(
            *texts,
            truncation=True,
            max_length=getattr(raw, "max_length", None),
            return_offsets_mapping=True,
        )
    ids = enc["input_ids"]
    if [str(t) for t in tok.convert_ids_to_tokens(ids)] != [str(t) for t in tokens]:
        raise ValueError(
            "Could not align the model's tokens with its tokenizer's "
            "character offsets for token-level probing."
        )
    char_word = np.full(len(text), -1, dtype=np.int64)
    pos = 0
    for w, word in enumerate(words):
        start = text.index(word, pos)
        char_word[start : start + len(word)] = w
        pos = start + len(word)
    seq_ids = enc.sequence_ids(0)
    want_seq = 0 if fields[0] == text_field or len(fields) == 1 else 1
    word_ids = []
    for (start, end), sid in zip(enc["offset_mapping"], seq_ids):
        wid = None
        if sid == want_seq and end > start:
            hits = char_word[start:end]
            hits = hits[hits >= 0]
            if hits.size:
                wid = int(hits[0])
        word_ids.append(wid)
    # The core's matrix is what word_level_activations applies: the two never
    # disagree.
    W, kept = representations.piece_weights(word_ids, len(words), pooling)
    return words, W, kept


# Shared with TX-Ray's tag features: one word↔piece alignment for both.
word_piece_weights = _word_piece_weights


def _sentence_weights(num_tokens: int, pooling: str) -> np.ndarray:
    """[T] weights a_t with pooled = sum_t a_t h_t."""
    if pooling == "cls":
        a = np.zeros(num_tokens)
        a[0] = 1.0
        return a
    return np.full(num_tokens, 1.0 / num_tokens)


def collect_pooled_activations(
    model: lit_model.Model,
    examples: Sequence[JsonDict],
    layers: str | Sequence[int],
    pooling: str = "mean",
    batch_size: int = 32,
    log_name: str = "",
) -> dict[int, np.ndarray]:
    """One streamed pass: {layer: [N, H] pooled sentence vectors}.

    Token activations of a batch are pooled and dropped before the next batch,
    so memory is O(N * H * layers), never O(tokens * H * layers).
    """
    raw = specs.unwrap(model)
    fields = specs.find_layer_activation_fields(raw.output_spec())
    wanted = list(fields) if layers == "all" else [int(l) for l in layers]
    chunks = {l: [] for l in wanted}
    n = len(examples)
    start = last = time.time()
    for lo in range(0, n, batch_size):
        batch = list(examples[lo : lo + batch_size])
        outs = raw.predict(
            batch, activation_layers="all" if layers == "all" else wanted, gradients=False
        )
        for out in outs:
            for l in wanted:
                h = np.asarray(out[fields[l]], dtype=np.float32)
                a = _sentence_weights(h.shape[0], pooling).astype(np.float32)
                chunks[l].append(a @ h)
        now = time.time()
        if log_name and now - last >= _LOG_EVERY_S:
            last = now
            logging.info(
                "%s: %d / %d examples (%.0f s).", log_name, min(lo + len(batch), n), n, now - start
            )
    return {l: np.stack(v) for l, v in chunks.items()}


def _split(
    n: int, seed: int, fraction: float, strata: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/held-out indices (sorted)."""
    rng = np.random.default_rng(seed)
    if strata is None:
        perm = rng.permutation(n)
        n_dev = min(n - 1, max(1, round(fraction * n)))
        dev = perm[:n_dev]
    else:
        dev = []
        for c in np.unique(strata):
            idx = np.flatnonzero(strata == c)
            perm = rng.permutation(idx)
            dev.extend(perm[: round(fraction * idx.size)].tolist())
        if not dev:  # tiny data: still hold out one example
            dev = [int(rng.permutation(n)[0])]
        dev = np.asarray(dev)
    mask = np.zeros(n, dtype=bool)
    mask[dev] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


# --------------------------------------------------------- interpreter
class LinearProbeInterpreter(lit_components.Interpreter):
    """Which layers / neurons linearly encode a dataset label?"""

    def __init__(
        self,
        batch_size: int = 32,
        held_out_fraction: float = 0.2,
        seed: int = 0,
        device: str | None = None,
    ):
        """Args:
        batch_size: examples per activation-collection forward pass.
        held_out_fraction: share of examples used to score the probes.
        seed: seed of the train/held-out split and of the control labels.
        device: probe training device (None: CUDA when available).
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if not 0.0 < float(held_out_fraction) < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}.")
        self._batch_size = int(batch_size)
        self._fraction = float(held_out_fraction)
        self._seed = int(seed)
        self._device = device
        self._cache = common.FitOnceCache()

    # ---------------------------------------------------------------- LIT API
    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        if dataset is None:
            return False
        if not specs.find_layer_activation_fields(model.output_spec()):
            return False
        raw = specs.unwrap(model)
        for name in label_fields(dataset.spec()):
            field = dataset.spec()[name]
            if _level(field) == SENTENCE:
                return True
            if _has_fast_tokenizer(raw) and _text_field(raw):
                return True
        return False

    def config_spec(self) -> lit_types.Spec:
        return {
            LABEL_FIELD_KEY: lit_types.TextSegment(default="", required=False),
            LAYER_KEY: lit_types.TextSegment(default=SWEEP, required=False),
            POOLING_KEY: lit_types.CategoryLabel(
                vocab=list(POOLINGS), default="mean", required=False
            ),
            L1_KEY: lit_types.Scalar(
                min_val=0, max_val=0.1, default=_DEFAULT_L1, step=1e-4, required=False
            ),
            L2_KEY: lit_types.Scalar(
                min_val=0, max_val=0.1, default=_DEFAULT_L2, step=1e-4, required=False
            ),
            MASS_KEY: lit_types.Scalar(
                min_val=0, max_val=100, default=_DEFAULT_MASS, step=1, required=False
            ),
            CONTROL_KEY: lit_types.Boolean(default=False, required=False),
            TOP_SHOWN_KEY: lit_types.Scalar(
                min_val=1, max_val=100, default=_DEFAULT_TOP_SHOWN, step=1, required=False
            ),
        }

    def meta_spec(self) -> lit_types.Spec:
        return {
            TOKEN_SALIENCE: lit_types.TokenSalience(autorun=False, signed=True),
            TOP_NEURONS: lit_types.FeatureSalience(autorun=False, signed=True),
            LAYER_SWEEP: lit_types.FeatureSalience(autorun=False, signed=True),
        }

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        del model_outputs  # activations need a dedicated predict call
        opts = self._parse_config(model, dataset, config)
        state = self._fit(model, dataset, opts)
        if not inputs:
            return []
        layer = state.best_layer
        probe = state.probe(layer)
        sweep_out = {f"layer {l}": float(state.scores[l]) for l in state.layers}
        if state.selectivity is not None:
            for l in state.layers:
                sweep_out[f"layer {l} selectivity"] = float(state.selectivity[l])
        sweep_fs = dtypes.FeatureSalience(sweep_out)

        raw = specs.unwrap(model)
        act_field = specs.find_layer_activation_fields(raw.output_spec())[layer]
        tokens_field = specs.find_tokens_field(raw.output_spec(), act_field)
        outs = list(raw.predict(list(inputs), activation_layers=[layer], gradients=False))
        W = probe.weight_.astype(np.float64)
        results = []
        for ex, out in zip(inputs, outs):
            tokens = [str(t) for t in out[tokens_field]]
            h = np.asarray(out[act_field], dtype=np.float64)
            if state.level == SENTENCE:
                a = _sentence_weights(h.shape[0], state.pooling)
                pooled = a @ h
                row = (
                    0
                    if state.task_type == "regression"
                    else int(np.argmax(W @ pooled + probe.bias_))
                )
                scores = a * (h @ W[row])
            else:
                _, A, _ = _word_piece_weights(raw, ex, state.text_field, tokens, state.pooling)
                scores = np.zeros(h.shape[0])
                if A.shape[0]:
                    word_vecs = A @ h
                    preds = np.argmax(word_vecs @ W.T + probe.bias_, axis=1)
                    # Each token belongs to at most one word (A's rows are disjoint).
                    scores = (A * (h @ W[preds].T).T).sum(axis=0)
                    row = int(np.bincount(preds, minlength=W.shape[0]).argmax())
                else:
                    row = 0
            results.append(
                {
                    TOKEN_SALIENCE: dtypes.TokenSalience(tokens, scores),
                    TOP_NEURONS: self._top_neurons(state, layer, row, opts),
                    LAYER_SWEEP: sweep_fs,
                }
            )
        return results

    # ------------------------------------------------------------ public API
    @property
    def fit_count(self) -> int:
        """How many fits ran (cache misses); for tests and monitoring."""
        return self._cache.fit_count

    def fit(
        self,
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        config: JsonDict | None = None,
    ) -> ProbeState:
        """The (cached) fitted ProbeState of `model` on `dataset`."""
        return self._fit(model, dataset, self._parse_config(model, dataset, config))

    # -------------------------------------------------------------- helpers
    @staticmethod
    def _top_neurons(
        state: ProbeState, layer: int, row: int, opts: dict[str, Any]
    ) -> dtypes.FeatureSalience:
        probe = state.probe(layer)
        w = probe.weight_[row]
        name = list(probe.class_to_idx_)[row]
        _, per_class = probing.get_top_neurons(probe, opts["mass"] / 100.0, probe.class_to_idx_)
        chosen = per_class[name][: opts["top_shown"]]
        return dtypes.FeatureSalience({f"L{layer} n{int(n)}": float(w[n]) for n in chosen})

    def _parse_config(
        self,
        model: lit_model.Model,
        dataset: lit_dataset.Dataset | None,
        config: JsonDict | None,
    ) -> dict[str, Any]:
        config = dict(config or {})
        raw = specs.unwrap(model)
        layer_fields = specs.find_layer_activation_fields(raw.output_spec())
        if not layer_fields:
            raise ValueError(
                "The selected model exposes no per-layer token "
                "activations (layer_<i>/token_activations)."
            )
        ds_spec = dataset.spec() if dataset is not None else {}
        candidates = label_fields(ds_spec)
        label = str(config.get(LABEL_FIELD_KEY, "") or "").strip()
        if not candidates:
            raise ValueError(
                "The dataset has no label field to probe: it needs a CategoryLabel, "
                "Scalar or SequenceTags field (dataset fields: "
                f"{list(ds_spec)})."
            )
        if not label:
            label = candidates[0]
        elif label not in candidates:
            raise ValueError(
                f"{LABEL_FIELD_KEY!r} must be one of {candidates} (or "
                f"empty for {candidates[0]!r}), got {label!r}."
            )
        field = ds_spec[label]
        level = _level(field)
        text_field = None
        if level == TOKEN:
            text_field = _text_field(raw)
            if not _has_fast_tokenizer(raw) or not text_field:
                raise ValueError(
                    f"Token-level label field {label!r} needs a model "
                    "with a fast HF tokenizer (character offsets) and a "
                    "text input field."
                )
        task_type = "regression" if isinstance(field, lit_types.Scalar) else "classification"

        layer_value = config.get(LAYER_KEY, SWEEP)
        if layer_value is None or str(layer_value).strip().lower() in ("", SWEEP):
            layers = list(layer_fields)
            mode = SWEEP
        else:
            known = list(layer_fields)
            try:
                layer = common.parse_int(
                    {LAYER_KEY: str(layer_value).strip()}, LAYER_KEY, 0, min(known), max(known)
                )
            except ValueError:
                raise ValueError(
                    f"{LAYER_KEY!r} must be 'sweep' or a layer in {known}, got {layer_value!r}."
                ) from None
            if layer not in layer_fields:
                raise ValueError(
                    f"{LAYER_KEY!r} must be 'sweep' or a layer in {known}, got {layer_value!r}."
                )
            layers = [layer]
            mode = layer

        choices = SENTENCE_POOLINGS if level == SENTENCE else TOKEN_POOLINGS
        pooling = config.get(POOLING_KEY, "mean")
        if pooling in (None, ""):
            pooling = "mean"
        if pooling not in choices:
            raise ValueError(
                f"{POOLING_KEY!r} for the {level}-level label field "
                f"{label!r} must be one of {list(choices)}, got "
                f"{pooling!r}."
            )
        return dict(
            label_field=label,
            level=level,
            task_type=task_type,
            text_field=text_field,
            layers=layers,
            mode=mode,
            pooling=pooling,
            l1=common.parse_float(config, L1_KEY, _DEFAULT_L1, 0.0, _MAX_LAMBDA),
            l2=common.parse_float(config, L2_KEY, _DEFAULT_L2, 0.0, _MAX_LAMBDA),
            mass=common.parse_float(config, MASS_KEY, _DEFAULT_MASS, 0.0, 100.0),
            control=common.parse_bool(config, CONTROL_KEY, False),
            top_shown=common.parse_int(
                config, TOP_SHOWN_KEY, _DEFAULT_TOP_SHOWN, 1, _MAX_TOP_SHOWN
            ),
        )

    def _fit(
        self, model: lit_model.Model, dataset: lit_dataset.Dataset, opts: dict[str, Any]
    ) -> ProbeState:
        examples = list(dataset.examples) if dataset is not None else []
        if not examples:
            raise ValueError(
                "Linear probing needs a non-empty dataset to train and score the probes on."
            )
        raw = specs.unwrap(model)
        # The cached state holds `raw`, so its id cannot be reused while cached.
        key = (
            id(raw),
            dataset_fingerprint(examples),
            opts["label_field"],
            opts["pooling"],
            tuple(opts["layers"]),
            opts["l1"],
            opts["l2"],
            opts["control"],
        )
        return self._cache.get_or_fit(key, lambda: self._compute(model, examples, opts))

    def _labels(self, examples: list[JsonDict], opts: dict[str, Any]):
        """Validated labels: np.array [N] (sentence) or list of lists (token)."""
        name = opts["label_field"]
        values = []
        for i, ex in enumerate(examples):
            v = ex.get(name)
            if v is None or (
                isinstance(v, str)
                and opts["level"] == SENTENCE
                and opts["task_type"] == "classification"
                and v == ""
            ):
                raise ValueError(
                    f"Example {i} has no value for label field "
                    f"{name!r}; every example needs a label to probe."
                )
            values.append(v)
        if opts["level"] == TOKEN:
            tags = []
            for i, v in enumerate(values):
                if isinstance(v, str) or not all(isinstance(t, str) for t in v):
                    raise ValueError(
                        f"Example {i}: SequenceTags field {name!r} must be "
                        f"a list of strings, got {v!r}."
                    )
                tags.append(list(v))
            distinct = {t for v in tags for t in v}
            if len(distinct) < 2:
                raise ValueError(
                    f"Label field {name!r} has {len(distinct)} distinct "
                    "tag(s); a probe needs at least 2 classes."
                )
            return tags
        if opts["task_type"] == "regression":
            out = []
            for i, v in enumerate(values):
                try:
                    if isinstance(v, bool):
                        raise TypeError
                    f = float(v)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"Example {i}: Scalar label field {name!r} must be numeric, got {v!r}."
                    ) from None
                if not np.isfinite(f):
                    raise ValueError(
                        f"Example {i}: Scalar label field {name!r} is not finite ({v!r})."
                    )
                out.append(f)
            y = np.asarray(out)
            if np.all(y == y[0]):
                raise ValueError(
                    f"Label field {name!r} has the same value {y[0]} "
                    "for every example; nothing to probe."
                )
            return y
        y = np.asarray([str(v) for v in values])
        if np.unique(y).size < 2:
            raise ValueError(
                f"Label field {name!r} has only one class "
                f"({y[0]!r}); a probe needs at least 2 classes."
            )
        return y

    def _compute(
        self, model: lit_model.Model, examples: list[JsonDict], opts: dict[str, Any]
    ) -> ProbeState:
        start = time.time()
        raw = specs.unwrap(model)
        n = len(examples)
        if n < 2:
            raise ValueError(
                "Linear probing needs at least 2 examples (one to train on, one to score)."
            )
        labels = self._labels(examples, opts)
        level, task_type = opts["level"], opts["task_type"]
        layers = opts["layers"]
        logging.info(
            "Linear probe: %s, label %r (%s-level %s), layers %s, "
            "pooling %s, L1 %g, L2 %g, on %d examples.",
            model.description(),
            opts["label_field"],
            level,
            task_type,
            "all" if opts["mode"] == SWEEP else layers,
            opts["pooling"],
            opts["l1"],
            opts["l2"],
            n,
        )
        strata = labels if (level == SENTENCE and task_type == "classification") else None
        train_idx, dev_idx = _split(n, self._seed, self._fraction, strata)
        request = "all" if opts["mode"] == SWEEP else layers

        if level == SENTENCE:
            acts = collect_pooled_activations(
                model, examples, request, opts["pooling"], self._batch_size, log_name="Linear probe"
            )
            X_tr = {l: acts[l][train_idx] for l in layers}
            X_dev = {l: acts[l][dev_idx] for l in layers}
            y_tr, y_dev = labels[train_idx], labels[dev_idx]
            if opts["control"]:
                if task_type == "regression":
                    control = np.random.default_rng(self._seed).permutation(labels)
                else:
                    control = probing.make_control_labels(np.arange(n), labels, self._seed)
                c_tr, c_dev = control[train_idx], control[dev_idx]
        else:
            X_tr, X_dev, y_tr, y_dev, t_tr, t_dev = self._collect_words(
                raw, examples, labels, request, layers, opts, train_idx
            )
            if opts["control"]:
                mapping = probing.control_label_mapping(
                    np.concatenate([t_tr, t_dev]), y_tr, self._seed
                )
                c_tr = probing.apply_control_mapping(t_tr, mapping)
                c_dev = probing.apply_control_mapping(t_dev, mapping)

        if task_type == "classification" and np.unique(y_tr).size < 2:
            raise ValueError(
                "The training part of the split has only one class; "
                "add more labelled examples of every class."
            )
        kwargs = dict(lambda_l1=opts["l1"], lambda_l2=opts["l2"], device=self._device)
        sweep = probing.LayerSweep(task_type, **kwargs).fit(X_tr, y_tr, X_dev, y_dev)
        control_scores = selectivity = None
        if opts["control"]:
            ctrl = probing.LayerSweep(task_type, **kwargs).fit(X_tr, c_tr, X_dev, c_dev)
            control_scores = dict(ctrl.scores_)
            selectivity = {
                l: probing.selectivity(sweep.scores_[l], control_scores[l]) for l in layers
            }
        best = sweep.best_layer_ if opts["mode"] == SWEEP else layers[0]
        state = ProbeState(
            label_field=opts["label_field"],
            level=level,
            task_type=task_type,
            pooling=opts["pooling"],
            layers=list(layers),
            sweep=sweep,
            scores=dict(sweep.scores_),
            best_layer=best,
            control_scores=control_scores,
            selectivity=selectivity,
            metric=sweep.metric,
            num_train=int(train_idx.size),
            num_held_out=int(dev_idx.size),
            num_items=int(len(y_tr) + len(y_dev)),
            text_field=opts["text_field"],
            seconds=time.time() - start,
            model=raw,
        )
        logging.info(
            "Linear probe: done in %.1f s; held-out %s per layer %s; best layer %d.",
            state.seconds,
            state.metric,
            {l: round(s, 4) for l, s in state.scores.items()},
            best,
        )
        return state

    def _collect_words(self, raw, examples, tags, request, layers, opts, train_idx):
        """One pass; word vectors per layer, labels and word types, by split."""
        fields = specs.find_layer_activation_fields(raw.output_spec())
        tokens_field = specs.find_tokens_field(raw.output_spec(), fields[layers[0]])
        in_train = np.zeros(len(examples), dtype=bool)
        in_train[train_idx] = True
        parts = {True: ({l: [] for l in layers}, [], []), False: ({l: [] for l in layers}, [], [])}
        n = len(examples)
        start = last = time.time()
        for lo in range(0, n, self._batch_size):
            batch = examples[lo : lo + self._batch_size]
            outs = raw.predict(batch, activation_layers=request, gradients=False)
            for j, (ex, out) in enumerate(zip(batch, outs)):
                i = lo + j
                words, A, kept = _word_piece_weights(
                    raw, ex, opts["text_field"], out[tokens_field], opts["pooling"]
                )
                if len(tags[i]) != len(words):
                    raise ValueError(
                        f"Example {i}: {len(tags[i])} tags in {opts['label_field']!r} "
                        f"but {len(words)} whitespace-separated words in "
                        f"{opts['text_field']!r}."
                    )
                xs, ys, ts = parts[bool(in_train[i])]
                for l in layers:
                    xs[l].append(
                        A.astype(np.float32) @ np.asarray(out[fields[l]], dtype=np.float32)
                    )
                ys.extend(tags[i][w] for w in kept)
                ts.extend(words[w].lower() for w in kept)
            now = time.time()
            if now - last >= _LOG_EVERY_S:
                last = now
                logging.info(
                    "Linear probe: %d / %d examples (%.0f s).",
                    min(lo + len(batch), n),
                    n,
                    now - start,
                )
        out = []
        for split in (True, False):
            xs, ys, ts = parts[split]
            if not ys:
                raise ValueError(
                    "No words survived tokenisation in the "
                    f"{'train' if split else 'held-out'} part."
                )
            out.append(({l: np.concatenate(xs[l]) for l in layers}, np.asarray(ys), np.asarray(ts)))
        (X_tr, y_tr, t_tr), (X_dev, y_dev, t_dev) = out
        return X_tr, X_dev, y_tr, y_dev, t_tr, t_dev
