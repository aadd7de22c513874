r"""LIT demo server for lit-plugins.

Offline default (no flags): MiniLM-L6 fine-tuned on the bundled movie-review
sentences (trained once, cached under ~/.cache/lit_plugins) next to the
untouched pre-trained MiniLM, on the bundled dev split, with our interpreters
beside LIT's defaults.

Your own model and data:
  ./run demo --models=mine:/path/to/checkpoint --labels=negative,positive \
      --dataset=/path/to/reviews.csv --text_fields=sentence=review \
      --label_column=stars --max_examples=500
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from absl import app, flags, logging

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lit_nlp import (
    dev_server,
    server_flags,
)

from lit_plugins import registration
from lit_plugins.data import loaders
from lit_plugins.models import HFSequenceClassifier

FLAGS = flags.FLAGS

_MODELS = flags.DEFINE_list(
    "models",
    None,
    "Models as name:path_or_hub_name (comma separated). Default: the "
    "embedded fine-tuned and pre-trained MiniLM-L6.",
)
_LABELS = flags.DEFINE_list(
    "labels",
    None,
    "Class names in the head's output order (default: the "
    "checkpoint's id2label, or the dataset's labels).",
)
_DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "A .csv/.tsv/.jsonl file, a datasets.save_to_disk "
    "directory, or a HF dataset name. Default: the bundled dev split.",
)
_SPLIT = flags.DEFINE_string("split", "validation", "Split of a HF dataset (name or saved dir).")
_TEXT_FIELDS = flags.DEFINE_list(
    "text_fields",
    ["sentence=sentence"],
    "LIT field=source column; two entries for text pairs, e.g. "
    "premise=sentence1,hypothesis=sentence2.",
)
_LABEL_COLUMN = flags.DEFINE_string("label_column", "label", "Label column ('' for none).")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Keep at most this many examples.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Examples per batch.")
_MAX_LENGTH = flags.DEFINE_integer("max_length", 128, "Max tokens per input.")
_DEVICE = flags.DEFINE_string("device", "auto", "auto, cpu, cuda or cuda:N.")
_ALLOWED_MODEL_DIRS = flags.DEFINE_list(
    "allowed_model_dirs",
    None,
    "Directories under which the UI may load other checkpoints (default: "
    "the lit-plugins cache and the directories of --models).",
)


def _text_fields() -> dict[str, str]:
    fields = {}
    for item in _TEXT_FIELDS.value:
        field, _, column = item.partition("=")
        fields[field] = column or field
    return fields


def load_models(text_fields: Sequence[str]) -> dict[str, HFSequenceClassifier]:
    kw = dict(
        batch_size=_BATCH_SIZE.value,
        max_length=_MAX_LENGTH.value,
        device=_DEVICE.value,
        text_fields=tuple(text_fields),
    )
    if not _MODELS.value:
        from lit_plugins import demo_models  # needs the [demo] extra

        logging.info(
            "Loading the embedded MiniLM-L6 (fine-tuning it once on the "
            "bundled sentences if no cached checkpoint exists) ..."
        )
        return {
            "minilm-finetuned": demo_models.finetuned_minilm(**kw),
            "minilm-pretrained": demo_models.pretrained_minilm(**kw),
        }
    models = {}
    for spec in _MODELS.value:
        name, sep, path = spec.partition(":")
        if not sep:
            name, path = os.path.basename(spec.rstrip("/")) or spec, spec
        logging.info("Loading model %r from %s", name, path)
        models[name] = HFSequenceClassifier(path, labels=_LABELS.value, **kw)
    return models


def load_dataset(models) -> dict[str, loaders.RecordsDataset]:
    if not _DATASET.value:
        return {
            "sentiment-dev": loaders.load_bundled_sentiment("dev", max_examples=_MAX_EXAMPLES.value)
        }
    kw = dict(label_column=_LABEL_COLUMN.value or None, max_examples=_MAX_EXAMPLES.value)
    first = next(iter(models.values()))
    if first.is_regression:
        kw["is_regression"] = True
    elif _LABELS.value or first.labels:
        kw["labels"] = _LABELS.value or first.labels
    path = _DATASET.value
    name = os.path.basename(path.rstrip("/")) or path
    if os.path.isfile(path):
        return {name: loaders.load_table(path, _text_fields(), **kw)}
    return {name: loaders.load_hf_dataset(path, _SPLIT.value, _text_fields(), **kw)}


def main(argv: Sequence[str]) -> dev_server.LitServerType | None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    models = load_models(list(_text_fields()))
    datasets = load_dataset(models)
    for name, ds in datasets.items():
        logging.info("Dataset %r: %d examples", name, len(ds))
    interpreters = registration.plugin_interpreters(
        models,
        include_lit_defaults=True,
        reference_model="minilm-pretrained" if not _MODELS.value else None,
    )
    from lit_plugins.models import finetune  # pylint: disable=g-import-not-at-top

    roots = _ALLOWED_MODEL_DIRS.value or [finetune.cache_root()] + [
        os.path.dirname(os.path.abspath(p.split(":", 1)[-1]))
        for p in (_MODELS.value or [])
        if os.path.isdir(p.split(":", 1)[-1])
    ]
    loader = registration.safe_model_loader(
        roots, text_fields=tuple(_text_fields()), device=_DEVICE.value
    )
    server = dev_server.Server(
        models,
        datasets,
        interpreters=interpreters,
        model_loaders={"HFSequenceClassifier": loader},
        **server_flags.get_flags(),
    )
    flags_ = server_flags.get_flags()
    print(f"\nlit-plugins demo: http://{flags_['host']}:{flags_['port']}\n", flush=True)
    return server.serve()


if __name__ == "__main__":
    app.run(main)
