r"""LIT demo server for lit-plugins.

Offline default (no flags): MiniLM-L6 fine-tuned on the bundled movie-review
sentences (trained once, cached under ~/.cache/lit_plugins) next to the
untouched pre-trained MiniLM, on the bundled dev split, with our interpreters
beside LIT's defaults.

Your own model and data:
  ./run demo --models=mine:/path/to/checkpoint --labels=negative,positive \
      --dataset=/path/to/reviews.csv --text_fields=sentence=review \
      --label_column=stars --max_examples=500 \
      --reference_model=/path/to/the/pretrained/checkpoint  # for TX-Ray

LIT's icon font is served by this server (lit_plugins/offline_ui.py), so the
UI needs no network.

Beyond this machine (no authentication; see README "Limits, caching and
safety"): --host=0.0.0.0 --allowed_hosts=lit.example.org
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

from lit_plugins import offline_ui, registration, serving
from lit_plugins.data import loaders
from lit_plugins.interpreters import TXRayNeuronShift
from lit_plugins.models import HFSequenceClassifier

FLAGS = flags.FLAGS

_MODELS = flags.DEFINE_list(
    "models",
    None,
    "Models as name:path_or_hub_name (comma separated). Default: the "
    "embedded fine-tuned and pre-trained MiniLM-L6.",
)
_REFERENCE_MODEL = flags.DEFINE_string(
    "reference_model",
    None,
    "TX-Ray's reference: a checkpoint (path or name:path) loaded only to compare "
    "the served models with, e.g. the pre-trained model --models was fine-tuned "
    "from. Default: the pre-trained MiniLM in the default setup; with --models, "
    "none (TX-Ray then says what it needs instead of comparing a model with itself).",
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
_ALLOWED_HOSTS = flags.DEFINE_list(
    "allowed_hosts",
    None,
    "Host names (or IP addresses) in the URLs clients use, served besides "
    "127.0.0.1, localhost and [::1] (default: the --host value); other Host "
    "headers get 400 (DNS rebinding). Required with a non-loopback --host; "
    "'*' serves any name.",
)
_ALLOWED_ORIGINS = flags.DEFINE_list(
    "allowed_origins",
    None,
    "Other web origins allowed to call the API (e.g. https://lit.example.org "
    "behind a proxy that rewrites Host); the server's own origin always is.",
)
_DATAPOINTS_DIR = flags.DEFINE_string(
    "datapoints_dir",
    None,
    "The only directory /save_datapoints and /load_datapoints may write and "
    "read (default: <lit-plugins cache>/datapoints). LIT's --data_dir is its "
    "prediction cache, not this.",
)
_MAX_REQUEST_MB = flags.DEFINE_float(
    "max_request_mb", 32.0, "Larger request bodies are refused (413)."
)
_DEBUG_ERRORS = flags.DEFINE_bool(
    "debug_errors",
    False,
    "Send Python tracebacks in error responses (they always go to the server log).",
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
        name, path = _name_and_path(spec)
        logging.info("Loading model %r from %s", name, path)
        models[name] = HFSequenceClassifier(path, labels=_LABELS.value, **kw)
    return models


def _name_and_path(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition(":")
    if not sep:
        name, path = os.path.basename(spec.rstrip("/")) or spec, spec
    return name, path


def load_reference(models, text_fields: Sequence[str]) -> tuple[str, HFSequenceClassifier] | None:
    """--reference_model as (name, model), or None."""
    if not _REFERENCE_MODEL.value:
        return None
    name, path = _name_and_path(_REFERENCE_MODEL.value)
    if name in models:
        name = f"{name} (reference)"
    logging.info("Loading TX-Ray's reference model %r from %s", name, path)
    return name, HFSequenceClassifier(
        path,
        batch_size=_BATCH_SIZE.value,
        max_length=_MAX_LENGTH.value,
        device=_DEVICE.value,
        text_fields=tuple(text_fields),
    )


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
    if _MAX_REQUEST_MB.value <= 0:
        raise app.UsageError("--max_request_mb must be > 0")
    try:  # fail before loading models
        serving.check_exposure(FLAGS.host, _ALLOWED_HOSTS.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    models = load_models(list(_text_fields()))
    datasets = load_dataset(models)
    for name, ds in datasets.items():
        logging.info("Dataset %r: %d examples", name, len(ds))
    interpreters = registration.plugin_interpreters(
        models,
        include_lit_defaults=True,
        reference_model="minilm-pretrained" if not _MODELS.value else None,
    )
    reference = load_reference(models, list(_text_fields()))
    if reference is not None:  # compared with, not served
        name, ref = reference
        interpreters[registration.TXRAY_SHIFT] = TXRayNeuronShift(
            {**models, name: ref}, default_reference=name
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
    flags_ = server_flags.get_flags()
    if not FLAGS["client_root"].present:  # LIT's client, icon font served locally
        flags_["client_root"] = offline_ui.client_root() or flags_["client_root"]
    print(f"\nlit-plugins demo: http://{flags_['host']}:{flags_['port']}\n", flush=True)
    return registration.serve(
        models,
        datasets,
        interpreters=interpreters,
        model_loaders={"HFSequenceClassifier": loader},
        allowed_hosts=_ALLOWED_HOSTS.value or (),
        allowed_origins=_ALLOWED_ORIGINS.value or (),
        datapoints_dir=_DATAPOINTS_DIR.value,
        max_request_mb=_MAX_REQUEST_MB.value,
        debug_errors=_DEBUG_ERRORS.value,
        **flags_,
    )


if __name__ == "__main__":
    app.run(main)
