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

from lit_plugins.app import bounded_cache, offline_ui, registration, serving
from lit_plugins.cli import model_data

FLAGS = flags.FLAGS

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
_HEAVY_CACHE_MB = flags.DEFINE_float(
    "heavy_cache_mb",
    bounded_cache.DEFAULT_HEAVY_CACHE_MB,
    "Memory per model for token-level outputs (token embeddings, gradients, "
    "attention) of recently explained examples; predictions and pooled embeddings "
    "are kept for every example.",
)
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir",
    None,
    "Where served predictions persist between restarts (SQLite, keyed by the "
    "weights and settings; default: <lit-plugins cache>/served).",
)
_NO_CACHE = flags.DEFINE_bool(
    "no_cache", False, "Keep served predictions in memory only (nothing written to disk)."
)
_PROBE_RESULTS = flags.DEFINE_list(
    "probe_results",
    [],
    "Output directories of `python -m lit_plugins probe` runs: the Linear Probe "
    "shows these corpus fits (for their model and options) instead of refitting.",
)
_TXRAY_RESULTS = flags.DEFINE_list(
    "txray_results",
    [],
    "Output directories of `python -m lit_plugins txray` runs: TX-Ray shows these "
    "corpus aggregations (for their models, layer, mode and features).",
)
_ATTRIBUTION_RESULTS = flags.DEFINE_list(
    "attribution_results",
    [],
    "Output directories of `python -m lit_plugins attribute` runs: their salience maps "
    "show for a selected example (interpreter 'Precomputed attributions') without "
    "recomputing them.",
)
_MAX_REQUEST_MB = flags.DEFINE_float(
    "max_request_mb", 32.0, "Larger request bodies are refused (413)."
)
_DEBUG_ERRORS = flags.DEFINE_bool(
    "debug_errors",
    False,
    "Send Python tracebacks in error responses (they always go to the server log).",
)


def main(argv: Sequence[str]) -> dev_server.LitServerType | None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _MAX_REQUEST_MB.value <= 0:
        raise app.UsageError("--max_request_mb must be > 0")
    try:  # fail before loading models
        serving.check_exposure(FLAGS.host, _ALLOWED_HOSTS.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    models = model_data.load_models()
    datasets = model_data.load_dataset(models)
    for name, ds in datasets.items():
        logging.info("Dataset %r: %d examples", name, len(ds))
    reference = model_data.load_reference(models)  # compared with, not served
    references = dict([reference]) if reference is not None else {}
    default_setup = not model_data.MODELS.value
    interpreters = registration.plugin_interpreters(
        models,
        include_lit_defaults=True,
        reference_model=model_data.DEFAULT_REFERENCE if default_setup and not references else None,
        reference_models=references,
    )
    all_models = {**models, **references}
    try:
        registration.load_corpus_results(
            interpreters,
            all_models,
            _PROBE_RESULTS.value,
            _TXRAY_RESULTS.value,
            _ATTRIBUTION_RESULTS.value,
        )
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    from lit_plugins.hf import finetune

    roots = _ALLOWED_MODEL_DIRS.value or [finetune.cache_root()] + [
        os.path.dirname(os.path.abspath(p.split(":", 1)[-1]))
        for p in (model_data.MODELS.value or [])
        if os.path.isdir(p.split(":", 1)[-1])
    ]
    loader = registration.safe_model_loader(
        roots, text_fields=tuple(model_data.text_fields()), device=model_data.DEVICE.value
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
        heavy_cache_mb=_HEAVY_CACHE_MB.value,
        cache_dir=_CACHE_DIR.value,
        use_store=not _NO_CACHE.value,
        **flags_,
    )


if __name__ == "__main__":
    app.run(main)
