"""The model and data flags shared by the demo server and the command line.

`./run demo` and ``python -m lit_plugins <command>`` take the same
``--models``, ``--dataset``, ``--text_fields``, ... (absl flags, defined once
here) and load them with the same functions, so a corpus run and the UI see
the same models and examples.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from absl import flags, logging

from lit_plugins.data import loaders
from lit_plugins.hf import kinds
from lit_plugins.lit import token_model
from lit_plugins.lit.model import HFSequenceClassifier
from lit_plugins.lit.token_model import HFTokenClassifier

MODELS = flags.DEFINE_list(
    "models",
    None,
    "Models as name:path_or_hub_name (comma separated). Default: the "
    "embedded fine-tuned and pre-trained MiniLM-L6.",
)
REFERENCE_MODEL = flags.DEFINE_string(
    "reference_model",
    None,
    "TX-Ray's reference: a checkpoint (path or name:path) loaded only to compare "
    "the served models with, e.g. the pre-trained model --models was fine-tuned "
    "from. Default: the pre-trained MiniLM in the default setup; with --models, "
    "none (TX-Ray then says what it needs instead of comparing a model with itself).",
)
LABELS = flags.DEFINE_list(
    "labels",
    None,
    "Class names in the head's output order (default: the "
    "checkpoint's id2label, or the dataset's labels).",
)
DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "A .csv/.tsv/.jsonl file, a datasets.save_to_disk "
    "directory, a HF dataset name, or a bundled set: sentiment-dev, "
    "restaurant-topics (multi-label). Default: the bundled sentiment dev split.",
)
SPLIT = flags.DEFINE_string("split", "validation", "Split of a HF dataset (name or saved dir).")
TEXT_FIELDS = flags.DEFINE_list(
    "text_fields",
    ["sentence=sentence"],
    "LIT field=source column; two entries for text pairs, e.g. "
    "premise=sentence1,hypothesis=sentence2.",
)
LABEL_COLUMN = flags.DEFINE_string("label_column", "label", "Label column ('' for none).")
LABEL_SEPARATOR = flags.DEFINE_string(
    "label_separator",
    "|",
    "For a multi-label model: how a CSV/TSV label cell separates its labels, e.g. "
    "food|service (an empty cell: no label; JSONL cells may be lists instead).",
)
THRESHOLD = flags.DEFINE_float(
    "threshold",
    0.5,
    "For a multi-label model: a label is predicted when its sigmoid probability is "
    "above this (LIT's multi-label metrics use it).",
)
TAGS_COLUMNS = flags.DEFINE_list(
    "tags_columns",
    [],
    "LIT field=source column of per-word tags (SequenceTags over the first text "
    "field's whitespace words: a JSON list or a space-separated string), for the "
    "token-level probe and TX-Ray's tag features, e.g. pos=upos.",
)
RATIONALE_COLUMN = flags.DEFINE_string(
    "rationale_column",
    None,
    "A column of human rationales over the first text field's whitespace words, "
    "shown as the 'rationale' field (Trust Checks' plausibility reads it): evidence "
    "words (text or a JSON list), word indices (a JSON list, 0-based) or a 0/1 mask "
    "(a list or a string such as '0 1 1 0'); an empty cell: none. The bundled "
    "sentiment-dev set has its own.",
)
MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Keep at most this many examples.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Examples per batch.")
MAX_LENGTH = flags.DEFINE_integer("max_length", 128, "Max tokens per input.")
DEVICE = flags.DEFINE_string("device", "auto", "auto, cpu, cuda or cuda:N.")
DTYPE = flags.DEFINE_enum(
    "dtype",
    "auto",
    ["auto", "float32", "bfloat16", "float16"],
    "Weights' dtype for prediction: auto = the checkpoint's (outputs, gradients and "
    "attribution sums are float32 whatever it is).",
)

DEFAULT_DATASET_NAME = "sentiment-dev"
MULTI_LABEL_DATASET_NAME = "restaurant-topics"
DEFAULT_MODEL = "minilm-finetuned"
DEFAULT_REFERENCE = "minilm-pretrained"


def _pairs(items) -> dict[str, str]:
    """['field=column', 'name'] -> {field: column, name: name}."""
    fields = {}
    for item in items or []:
        field, _, column = item.partition("=")
        fields[field] = column or field
    return fields


def text_fields() -> dict[str, str]:
    """{LIT field: source column} from --text_fields."""
    return _pairs(TEXT_FIELDS.value)


def name_and_path(spec: str) -> tuple[str, str]:
    """'name:path' -> (name, path); a bare path is named after its last directory."""
    name, sep, path = spec.partition(":")
    if not sep:
        name, path = os.path.basename(spec.rstrip("/")) or spec, spec
    return name, path


def model_kwargs(device: str | None = None) -> dict:
    """The wrapper arguments the flags give (batch size, max length, device, text fields)."""
    return dict(
        batch_size=BATCH_SIZE.value,
        max_length=MAX_LENGTH.value,
        device=device or DEVICE.value,
        text_fields=tuple(text_fields()),
        dtype=DTYPE.value,
    )


def load_models(device: str | None = None) -> dict[str, HFSequenceClassifier]:
    """--models as {name: model}; the embedded MiniLM pair without it."""
    kw = model_kwargs(device)
    if not MODELS.value:
        from lit_plugins.lit import demo_models  # needs the [demo] extra

        logging.info(
            "Loading the embedded MiniLM-L6 (fine-tuning it once on the "
            "bundled sentences if no cached checkpoint exists) ..."
        )
        return {
            DEFAULT_MODEL: demo_models.finetuned_minilm(**kw),
            DEFAULT_REFERENCE: demo_models.pretrained_minilm(**kw),
        }
    return {
        name: load_model(name, path, device)
        for name, path in (name_and_path(spec) for spec in MODELS.value)
    }


def load_model(name: str, path: str, device: str | None = None) -> HFSequenceClassifier:
    """One checkpoint (path or hub name) with the flags' labels, lengths and device."""
    logging.info("Loading model %r from %s", name, path)
    if kinds.checkpoint_kind(path) == kinds.TOKEN:  # other task heads: ValueError here
        return HFTokenClassifier(
            path, labels=LABELS.value, **token_model.token_kwargs(model_kwargs(device))
        )
    return HFSequenceClassifier(
        path, labels=LABELS.value, threshold=THRESHOLD.value, **model_kwargs(device)
    )


def load_reference(
    models: dict, device: str | None = None
) -> tuple[str, HFSequenceClassifier] | None:
    """--reference_model as (name, model), or None."""
    if not REFERENCE_MODEL.value:
        return None
    name, path = name_and_path(REFERENCE_MODEL.value)
    if name in models:
        name = f"{name} (reference)"
    logging.info("Loading TX-Ray's reference model %r from %s", name, path)
    return name, HFSequenceClassifier(path, **model_kwargs(device))


def load_dataset(models: dict | None = None) -> dict[str, loaders.RecordsDataset]:
    """--dataset as {name: dataset}; the bundled dev split without it.

    The class names come from --labels, else from the first model's head
    (`models`), else from the data.
    """
    first = next(iter(models.values())) if models else None
    if isinstance(first, HFTokenClassifier):
        return tagged_dataset(first)
    if not DATASET.value or DATASET.value == DEFAULT_DATASET_NAME:
        return {
            DEFAULT_DATASET_NAME: loaders.load_bundled_sentiment(
                "dev", max_examples=MAX_EXAMPLES.value
            )
        }
    multi_label = isinstance(first, HFSequenceClassifier) and first.is_multi_label
    if DATASET.value == MULTI_LABEL_DATASET_NAME:
        labels = LABELS.value or (first.labels if multi_label else loaders.RESTAURANT_LABELS)
        return {
            MULTI_LABEL_DATASET_NAME: loaders.load_bundled_restaurant(
                max_examples=MAX_EXAMPLES.value, labels=labels
            )
        }
    kw = dict(
        label_column=LABEL_COLUMN.value or None,
        max_examples=MAX_EXAMPLES.value,
        tags_columns=_pairs(TAGS_COLUMNS.value),
        rationale_column=RATIONALE_COLUMN.value or None,
    )
    if first is not None and first.is_regression:
        kw["is_regression"] = True
    elif LABELS.value or (first is not None and first.labels):
        kw["labels"] = LABELS.value or first.labels
    if multi_label:
        kw.update(multi_label=True, label_separator=LABEL_SEPARATOR.value)
    path = DATASET.value
    name = os.path.basename(path.rstrip("/")) or path
    if os.path.isfile(path):
        return {name: loaders.load_table(path, text_fields(), **kw)}
    return {name: loaders.load_hf_dataset(path, SPLIT.value, text_fields(), **kw)}


def tagged_dataset(model: HFTokenClassifier) -> dict:
    """For a token classifier: --dataset as a CoNLL-style file (one 'word TAG' per line,
    sentences separated by blank lines), or the bundled NER sentences without it; with
    the model's own tags as a field (`token_model.MODEL_TAGS`, for the token-level
    probe)."""
    from lit_plugins.data import conll  # pylint: disable=g-import-not-at-top

    kw = dict(
        text_field=model.text_field,
        tags_field=model.tags_field,
        labels=model.labels,
        max_examples=MAX_EXAMPLES.value,
    )
    if not DATASET.value or DATASET.value == conll.NER_DATASET_NAME:
        name, data = conll.NER_DATASET_NAME, conll.load_bundled_ner(**kw)
    else:
        path = DATASET.value
        name, data = os.path.basename(path.rstrip("/")) or path, conll.load_conll(path, **kw)
    return {name: token_model.with_model_tags(data, model)}


def flag_values(names: Sequence[str]) -> dict:
    """{flag: value} of the named flags (what a run's configuration records)."""
    return {name: flags.FLAGS[name].value for name in names}


MODEL_DATA_FLAGS = (
    "models",
    "reference_model",
    "labels",
    "dataset",
    "split",
    "text_fields",
    "label_column",
    "tags_columns",
    "rationale_column",
    "max_examples",
    "max_length",
    "dtype",
)
# What the report commands (faithfulness, trust-report) read: one model (--model,
# or the first of --models), a labelled dataset, and how to run the model.
REPORT_FLAGS = (
    "model",
    "models",
    "labels",
    "dataset",
    "split",
    "text_fields",
    "label_column",
    "max_examples",
    "max_length",
    "batch_size",
    "device",
)
