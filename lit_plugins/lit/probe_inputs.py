"""From a LIT model and dataset to the arrays a probe is trained on.

The linear-probe interpreter (and any command that probes a corpus) needs the
same three things: validated labels from a dataset field, one streamed pass
that keeps only pooled vectors per layer, and for token-level labels the
word ↔ piece alignment. Memory stays O(rows × H × layers), never
O(tokens × H × layers): each batch's token activations are pooled and dropped.

* Sentence level (`CategoryLabel` / `Scalar` field): one vector per example
  and layer, ``mean`` over all of its tokens (special tokens included: the
  model's ``layer_<i>/avg_emb``) or ``cls`` (token 0).
* Multi-label (`SparseMultilabel`: a list of labels per example): one label
  against the rest, chosen as ``field:label`` (e.g. ``label:food``); its
  classes are the label and ``not <label>``. A multi-label field named
  without a label is refused with a ValueError saying so.
* Token level (`SequenceTags` over whitespace words of the model's text
  field): one vector per word and layer, its ``first`` / ``last`` piece or the
  ``mean`` of its pieces; words cut off by truncation are dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins import probing
from lit_plugins.lit import alignment, dataset_level, specs
from lit_plugins.probing import contributions
from lit_plugins.probing import options as probe_options

JsonDict = specs.JsonDict
SENTENCE = "sentence"
TOKEN = "token"
CLASSIFICATION = "classification"
REGRESSION = "regression"
SENTENCE_POOLINGS = probe_options.SENTENCE_POOLINGS
TOKEN_POOLINGS = probe_options.TOKEN_POOLINGS
LABEL_TYPES = (
    lit_types.CategoryLabel,
    lit_types.Scalar,
    lit_types.SequenceTags,
    lit_types.SparseMultilabel,
)
# "field:label": one label of a multi-label field against the rest.
ONE_VS_REST = ":"
NOT_PREFIX = "not "


def split_choice(name: str) -> tuple[str, str | None]:
    """'label:food' -> ('label', 'food'); a plain field name -> (name, None)."""
    field, sep, label = str(name).partition(ONE_VS_REST)
    return (field, label) if sep and label else (str(name), None)


def resolve_label_field(dataset_spec: lit_types.Spec, name: str, setting: str) -> str:
    """`name` checked against a multi-label field: 'field:label' with a label of the
    field's vocab, or a ValueError saying how to choose one (`setting`: the option's
    name, for the message). Other fields are returned as they are."""
    field, label = split_choice(name)
    spec = (dataset_spec or {}).get(field)
    if not isinstance(spec, lit_types.SparseMultilabel):
        return name
    vocab = list(spec.vocab or [])
    example = f"{field}{ONE_VS_REST}{vocab[0] if vocab else '<label>'}"
    if label is None:
        raise ValueError(
            f"Label field {field!r} is multi-label (several labels per example): probe one "
            f"label against the rest by setting {setting!r} to '{field}{ONE_VS_REST}<label>', "
            f"e.g. {example!r}; labels: {vocab}."
        )
    if vocab and label not in vocab:
        raise ValueError(
            f"{label!r} is not a label of the multi-label field {field!r}; accepted: {vocab} "
            f"(as {setting!r} = {example!r})."
        )
    return f"{field}{ONE_VS_REST}{label}"


def field_spec(dataset_spec: lit_types.Spec, name: str) -> lit_types.LitType:
    """The spec of a label field, also when named 'field:label' (one vs rest)."""
    return dataset_spec[split_choice(name)[0] if name not in dataset_spec else name]


def label_fields(dataset_spec: lit_types.Spec) -> list[str]:
    """Probe-able label fields of a dataset spec, in spec order."""
    return [k for k, v in (dataset_spec or {}).items() if isinstance(v, LABEL_TYPES)]


def label_level(field: lit_types.LitType) -> str:
    """'token' for SequenceTags (one label per word), else 'sentence'."""
    return TOKEN if isinstance(field, lit_types.SequenceTags) else SENTENCE


def label_task(field: lit_types.LitType) -> str:
    return REGRESSION if isinstance(field, lit_types.Scalar) else CLASSIFICATION


def collect_labels(examples: Sequence[JsonDict], name: str, level: str, task_type: str):
    """Validated labels: an array [N] (sentence level) or a list of tag lists (token level).
    `name` 'field:label' (a multi-label field): the label or 'not <label>' per example."""
    field, chosen = split_choice(name)
    if chosen is not None and examples and name not in examples[0]:
        return _one_vs_rest(examples, field, chosen)
    values = []
    for i, ex in enumerate(examples):
        v = ex.get(name)
        empty_class = level == SENTENCE and task_type == CLASSIFICATION and v == ""
        if v is None or empty_class:
            raise ValueError(
                f"Example {i} has no value for label field {name!r}; "
                "every example needs a label to probe."
            )
        values.append(v)
    if level == TOKEN:
        return _tag_lists(values, name)
    if task_type == REGRESSION:
        return _scalars(values, name)
    y = np.asarray([str(v) for v in values])
    if np.unique(y).size < 2:
        raise ValueError(
            f"Label field {name!r} has only one class ({y[0]!r}); a probe needs at least 2 classes."
        )
    return y


def _one_vs_rest(examples: Sequence[JsonDict], field: str, label: str) -> np.ndarray:
    y = []
    for i, ex in enumerate(examples):
        v = ex.get(field)
        if v is None or isinstance(v, str) or not all(isinstance(l, str) for l in v):
            raise ValueError(
                f"Example {i}: multi-label field {field!r} must be a list of labels, got {v!r}."
            )
        y.append(label if label in v else NOT_PREFIX + label)
    y = np.asarray(y)
    if np.unique(y).size < 2:
        raise ValueError(
            f"Every example is {y[0]!r} for {field}{ONE_VS_REST}{label}; a probe needs examples "
            "with and without the label."
        )
    return y


def _tag_lists(values: list, name: str) -> list[list[str]]:
    tags = []
    for i, v in enumerate(values):
        if isinstance(v, str) or not all(isinstance(t, str) for t in v):
            raise ValueError(
                f"Example {i}: SequenceTags field {name!r} must be a list of strings, got {v!r}."
            )
        tags.append(list(v))
    distinct = {t for v in tags for t in v}
    if len(distinct) < 2:
        raise ValueError(
            f"Label field {name!r} has {len(distinct)} distinct tag(s); "
            "a probe needs at least 2 classes."
        )
    return tags


def _scalars(values: list, name: str) -> np.ndarray:
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
            raise ValueError(f"Example {i}: Scalar label field {name!r} is not finite ({v!r}).")
        out.append(f)
    y = np.asarray(out)
    if np.all(y == y[0]):
        raise ValueError(
            f"Label field {name!r} has the same value {y[0]} for every example; nothing to probe."
        )
    return y


def _requested_layers(
    model: lit_model.Model, layers: str | Sequence[int]
) -> tuple[dict[int, str], list[int], str | list[int]]:
    """(all activation fields, the wanted layers, what to ask the model for)."""
    fields = dataset_level.layer_activation_fields(specs.unwrap(model))
    wanted = list(fields) if layers == "all" else [int(l) for l in layers]
    return fields, wanted, ("all" if layers == "all" else wanted)


def collect_pooled_activations(
    model: lit_model.Model,
    examples: Sequence[JsonDict],
    layers: str | Sequence[int],
    pooling: str = "mean",
    batch_size: int = 32,
    log_name: str = "",
) -> dict[int, np.ndarray]:
    """One streamed pass: {layer: [N, H] pooled sentence vectors} ('all' = every layer)."""
    fields, wanted, request = _requested_layers(model, layers)
    chunks: dict[int, list[np.ndarray]] = {l: [] for l in wanted}
    for _, _, outputs in dataset_level.stream_predictions(
        model, examples, batch_size, request, log_name
    ):
        for out in outputs:
            for l in wanted:
                h = np.asarray(out[fields[l]], dtype=np.float32)
                a = contributions.sentence_pooling_weights(h.shape[0], pooling)
                chunks[l].append(a.astype(np.float32) @ h)
    return {l: np.stack(v) for l, v in chunks.items()}


@dataclasses.dataclass
class WordVectors:
    """Token-level probe rows: one per kept word, over all examples.

    Attributes:
      vectors: {layer: [num_words, H]}.
      tags: [num_words] the word's label.
      types: [num_words] the lower-cased word (for control tasks).
      example: [num_words] index of the example the word comes from (so a
        split by example keeps the words of one sentence together).
    """

    vectors: dict[int, np.ndarray]
    tags: np.ndarray
    types: np.ndarray
    example: np.ndarray

    def rows_of(self, example_indices: np.ndarray) -> np.ndarray:
        """Row indices of the words of the given examples."""
        return np.flatnonzero(np.isin(self.example, example_indices))


def collect_word_vectors(
    model: lit_model.Model,
    examples: Sequence[JsonDict],
    tags: Sequence[Sequence[str]],
    text_field: str,
    layers: str | Sequence[int],
    pooling: str = "first",
    batch_size: int = 32,
    log_name: str = "",
    label_field: str = "tags",
) -> WordVectors:
    """One streamed pass: word vectors per layer with their tags and word types."""
    fields, wanted, request = _requested_layers(model, layers)
    tokens_field = specs.find_tokens_field(specs.unwrap(model).output_spec(), fields[wanted[0]])
    xs: dict[int, list[np.ndarray]] = {l: [] for l in wanted}
    ys, types, origin = [], [], []
    for offset, batch, outputs in dataset_level.stream_predictions(
        model, examples, batch_size, request, log_name
    ):
        for j, (ex, out) in enumerate(zip(batch, outputs)):
            i = offset + j
            words, weights, kept = alignment.word_piece_weights(
                model, ex, text_field, out[tokens_field], pooling
            )
            if len(tags[i]) != len(words):
                raise ValueError(
                    f"Example {i}: {len(tags[i])} tags in {label_field!r} but {len(words)} "
                    f"whitespace-separated words in {text_field!r}."
                )
            weights = weights.astype(np.float32)
            for l in wanted:
                xs[l].append(weights @ np.asarray(out[fields[l]], dtype=np.float32))
            ys.extend(tags[i][w] for w in kept)
            types.extend(words[w].lower() for w in kept)
            origin.extend([i] * len(kept))
    if not ys:
        raise ValueError("No words survived tokenisation in any example.")
    return WordVectors(
        vectors={l: np.concatenate(v) for l, v in xs.items()},
        tags=np.asarray(ys),
        types=np.asarray(types),
        example=np.asarray(origin, dtype=np.int64),
    )


@dataclasses.dataclass
class ProbeRows:
    """A probe's training data: rows per layer, labels, and the split by example.

    Attributes:
      vectors: {layer: [rows, H]} (one row per example, or per word).
      y: [rows] labels.
      control: [rows] control-task labels, or None.
      train / held_out: row indices of the two parts.
      num_train_examples / num_held_out_examples: examples in each part.
    """

    vectors: dict[int, np.ndarray]
    y: np.ndarray
    control: np.ndarray | None
    train: np.ndarray
    held_out: np.ndarray
    num_train_examples: int
    num_held_out_examples: int


def probe_rows(
    model: lit_model.Model,
    examples: Sequence[JsonDict],
    labels,
    level: str,
    task_type: str,
    layers: str | Sequence[int],
    pooling: str,
    held_out_fraction: float,
    seed: int,
    control: bool = False,
    text_field: str | None = None,
    label_field: str = "label",
    batch_size: int = 32,
    log_name: str = "",
) -> ProbeRows:
    """Streams the examples once and returns the probe's rows, split by example.

    The split is `probing.train_held_out_split` over examples (stratified by
    class for sentence classification), so the words of one sentence never
    straddle it. Control labels (Hewitt & Liang) are drawn per word type at
    token level, per example at sentence level (regression: the targets
    permuted over examples).
    """
    n = len(examples)
    strata = labels if (level == SENTENCE and task_type == CLASSIFICATION) else None
    train_ex, held_ex = probing.train_held_out_split(n, held_out_fraction, seed, strata)
    sizes = dict(num_train_examples=int(train_ex.size), num_held_out_examples=int(held_ex.size))
    if level == SENTENCE:
        vectors = collect_pooled_activations(model, examples, layers, pooling, batch_size, log_name)
        control_labels = None
        if control and task_type == REGRESSION:
            control_labels = np.random.default_rng(seed).permutation(labels)
        elif control:
            control_labels = probing.make_control_labels(np.arange(n), labels, seed)
        return ProbeRows(vectors, labels, control_labels, train_ex, held_ex, **sizes)
    words = collect_word_vectors(
        model, examples, labels, text_field, layers, pooling, batch_size, log_name, label_field
    )
    train, held = words.rows_of(train_ex), words.rows_of(held_ex)
    for part, rows in (("train", train), ("held-out", held)):
        if rows.size == 0:
            raise ValueError(f"No words survived tokenisation in the {part} part.")
    control_labels = None
    if control:
        # Types of the train words first, then held-out: the order the
        # mapping draws its random labels in.
        order = np.concatenate([train, held])
        mapping = probing.control_label_mapping(words.types[order], words.tags[train], seed)
        control_labels = probing.apply_control_mapping(words.types, mapping)
    return ProbeRows(words.vectors, words.tags, control_labels, train, held, **sizes)
