"""One call to put our components into a custom LIT app."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from absl import logging
from lit_nlp.api import components as lit_components
from lit_nlp.api import model as lit_model
from lit_nlp.components import core as lit_core
from lit_nlp.components import salience_clustering

from lit_plugins.app import bounded_cache
from lit_plugins.hf import kinds
from lit_plugins.lit import interpreters as ours
from lit_plugins.lit import methods, multilabel_metrics, saved_results, tag_metrics, token_model
from lit_plugins.lit.interpreters import tag_salience, trust_checks, txray_shift
from lit_plugins.lit.model import HFSequenceClassifier
from lit_plugins.lit.token_model import HFTokenClassifier

# The display names, re-exported from the one registry (`lit_plugins.lit.methods`).
GRADIENT_NORM = methods.GRADIENT_NORM
GRADIENT_DOT_INPUT = methods.GRADIENT_DOT_INPUT
INTEGRATED_GRADIENTS = methods.INTEGRATED_GRADIENTS
TXRAY_SHIFT = methods.TXRAY_SHIFT
LINEAR_PROBE = methods.LINEAR_PROBE
SALIENCE_FAITHFULNESS = methods.SALIENCE_FAITHFULNESS
LAYER_CONDUCTANCE = methods.LAYER_CONDUCTANCE
NEURON_CONDUCTANCE = methods.NEURON_CONDUCTANCE
SALIENCE_CLUSTERING = methods.SALIENCE_CLUSTERING


def plugin_interpreters(
    models: Mapping[str, lit_model.Model] | None = None,
    include_lit_defaults: bool = False,
    reference_model: str | None = None,
    reference_models: Mapping[str, lit_model.Model] | None = None,
) -> dict[str, lit_components.Interpreter]:
    """Our interpreters, ready for `dev_server.Server(..., interpreters=...)`
    or `serve(..., interpreters=...)`.

    Returns our gradient norm, gradient · input, integrated gradients, layer
    and neuron conductance, linear probe, TX-Ray (with `models`), Salience Faithfulness (which scores every
    token-salience method in the returned dict: ours, and LIT's with
    `include_lit_defaults`; it reads the dict when LIT asks for its config,
    so methods added to the dict later are scored too), and LIT's "Salience
    Clustering" rebuilt
    over every token-salience method: LIT's four (Grad L2 Norm, Grad ⋅ Input,
    Integrated Gradients, LIME) and our three (IG's completeness report is
    left out of what it clusters). It has LIT's name, so it replaces LIT's
    default one (which knows only LIT's four) in the UI's Salience Clustering
    module.

    With `include_lit_defaults`, LIT 1.3's default interpreters come too; on
    `HFSequenceClassifier` they all apply except the tabular and
    regression-only ones (see tests/lit/test_lit_compatibility.py): TCAV (through
    the model's `cls_grad`), LIME, LIT's gradient maps, nearest neighbours,
    PCA / UMAP, classification results, curves, thresholder. LIT's generators
    (HotFlip, Ablation Flip, Scrambler, Word Replacer) and metrics are not
    interpreters: `dev_server.Server` adds its defaults when none are given.

    Args:
      models: the app's models, the same objects given to the Server (TX-Ray
        compares the selected model against one of them; without models it is
        left out).
      include_lit_defaults: also include LIT's default interpreters (what a
        Server gets when no `interpreters` argument is given).
      reference_model: TX-Ray's default reference (e.g. the pre-trained model
        when comparing it with a fine-tuned one); default: the first of
        `reference_models`, else the first model.
      reference_models: checkpoints TX-Ray may compare the served models with
        without the app serving them (e.g. the pre-trained model a served one
        was fine-tuned from), by name.
    """
    found = {
        GRADIENT_NORM: ours.GradientNorm(),
        GRADIENT_DOT_INPUT: ours.GradientDotInput(),
        INTEGRATED_GRADIENTS: ours.IntegratedGradients(),
        LAYER_CONDUCTANCE: ours.LayerConductance(),
        NEURON_CONDUCTANCE: ours.NeuronConductance(),
        LINEAR_PROBE: ours.LinearProbeInterpreter(),
    }
    if models:  # model-comparison interpreters need the app's models
        compared = {**models, **(reference_models or {})}
        if reference_model is None and reference_models:
            reference_model = next(iter(reference_models))
        found[TXRAY_SHIFT] = ours.TXRayNeuronShift(compared, default_reference=reference_model)
    found[SALIENCE_CLUSTERING] = salience_clustering.SalienceClustering(
        methods.salience_mappers(found)
    )
    if include_lit_defaults:
        # LIT's defaults with LIME seeded, so the faithfulness of its maps is reproducible.
        found = {
            **methods.with_seeded_lime(lit_core.default_interpreters(dict(models or {}))),
            **found,
        }
    found[SALIENCE_FAITHFULNESS] = ours.SalienceFaithfulness(found)
    found[trust_checks.NAME] = trust_checks.TrustChecks(found)
    # Token classifiers' "why is word j tagged X" (only they are compatible).
    found.update(tag_salience.interpreters())
    return found


def load_corpus_results(
    interpreters: Mapping[str, lit_components.Interpreter],
    models: Mapping[str, lit_model.Model],
    probe_results: Sequence[str] = (),
    txray_results: Sequence[str] = (),
    attribution_results: Sequence[str] = (),
) -> None:
    """Puts the results of ``python -m lit_plugins probe|txray|attribute`` runs into
    the Linear Probe and TX-Ray interpreters of `interpreters` (from
    `plugin_interpreters`), so the UI shows those corpus fits without refitting;
    `attribute` runs become the "Precomputed attributions" interpreter (added to
    `interpreters`), whose maps appear for a selected example without recomputing.

    Each entry is a command's --output_dir. A probe result is used when its
    model (by name in `models`) is selected with the options it was fitted
    with; a TX-Ray result when its model, reference, layer, mode and
    features are. A ValueError names a result whose model is not served.
    """
    for out_dir in probe_results:
        name, fit, state = saved_results.load_probe_results(out_dir)
        if name not in models:
            raise ValueError(
                f"Probe results in {out_dir!r} are for model {name!r}, which is not served "
                f"({list(models)})."
            )
        interpreters[LINEAR_PROBE].preload(models[name], fit, state)
        logging.info(
            "Linear probe: loaded the %s fit of %r from %s", fit.label_field, name, out_dir
        )
    for out_dir in txray_results:
        loaded = saved_results.load_txray_results(out_dir)
        meta = loaded["meta"]
        fit = txray_shift.TXRayFitOptions(
            reference_name=meta["reference"],
            layer=int(meta["layer"]),
            mode=meta["mode"],
            features=meta["features"],
            tags_field=meta.get("tags_field", ""),
            normalize=False,
        )
        if TXRAY_SHIFT not in interpreters:
            raise ValueError("TX-Ray results need the TX-Ray interpreter (give models).")
        interpreters[TXRAY_SHIFT].preload(
            meta["model"], fit, loaded["reference"], loaded["model"], loaded["feature_names"]
        )
        logging.info("TX-Ray: loaded %r vs %r from %s", meta["model"], meta["reference"], out_dir)
    if attribution_results:
        precomputed = ours.PrecomputedAttributions(models)
        for out_dir in attribution_results:
            run = saved_results.load_attribution_results(out_dir)
            name = precomputed.preload(run)
            logging.info(
                "Precomputed attributions: %d rows for %r from %s", len(run.rows), name, out_dir
            )
        interpreters[methods.PRECOMPUTED_ATTRIBUTIONS] = precomputed


def wrap_model(model, tokenizer, **kw) -> HFSequenceClassifier | HFTokenClassifier:
    """Wraps in-memory `transformers` model + tokenizer objects for LIT: a
    `*ForTokenClassification` model as `HFTokenClassifier` (per-word tags), a sequence
    classifier as `HFSequenceClassifier`; any other head is refused with a ValueError
    naming it and listing the supported kinds (`hf.heads.SUPPORTED`)."""
    if kinds.model_kind(model) == kinds.TOKEN:
        return HFTokenClassifier(model=model, tokenizer=tokenizer, **token_model.token_kwargs(kw))
    return HFSequenceClassifier(model=model, tokenizer=tokenizer, **kw)


def safe_model_loader(allowed_roots, **model_kw):
    """A LIT model loader for the UI's "load model" dialog that accepts only
    local checkpoint directories under `allowed_roots` (never hub names, never
    remote code), so a UI user cannot make the server fetch or run code.

    Use as `model_loaders={"HFSequenceClassifier": safe_model_loader([...])}`. The
    kind comes from the checkpoint's config (`hf.kinds.checkpoint_kind`): a token
    classifier loads as `HFTokenClassifier` (with the `model_kw` it takes: the first
    of `text_fields` as its text field, the device and dtype; its tags from its
    config, `threshold` unused), any other task head is refused with a message.
    """
    import os  # pylint: disable=g-import-not-at-top

    roots = [os.path.realpath(r) for r in allowed_roots]

    def load_checkpoint(
        model_name_or_path: str,
        batch_size: int = 16,
        max_length: int = 128,
        threshold: float = 0.5,
    ) -> lit_model.Model:  # one class: LIT reads this annotation (a union breaks it)
        path = os.path.realpath(str(model_name_or_path))
        inside = any(os.path.commonpath([path, r]) == r for r in roots)
        if not inside or not os.path.isdir(path):
            raise ValueError(
                f"{model_name_or_path!r} is not an allowed checkpoint directory; "
                f"the server operator allows directories under: {roots}."
            )
        if kinds.checkpoint_kind(path) == kinds.TOKEN:
            kw = token_model.token_kwargs(model_kw)
            taken = ("text_field", "tags_field", "device", "dtype")
            kw = {k: v for k, v in kw.items() if k in taken}
            return HFTokenClassifier(path, batch_size=batch_size, max_length=max_length, **kw)
        return HFSequenceClassifier(
            path,
            batch_size=batch_size,
            max_length=max_length,
            **{**model_kw, "threshold": threshold},
        )

    return load_checkpoint, HFSequenceClassifier.init_spec()


def serve(
    models,
    datasets,
    *,
    allowed_hosts=(),
    allowed_origins=(),
    datapoints_dir: str | None = None,
    max_request_mb: float | None = None,
    debug_errors: bool = False,
    heavy_cache_mb: float = bounded_cache.DEFAULT_HEAVY_CACHE_MB,
    cache_dir: str | None = None,
    use_store: bool = True,
    **server_kw,
):
    """`dev_server.Server(models, datasets, **server_kw).serve()` behind
    `lit_plugins.app.serving`'s safety layer: only loopback and `allowed_hosts`
    host names, no cross-site requests, datapoint files confined to
    `datapoints_dir`, request bodies capped at `max_request_mb`, no tracebacks
    in error responses unless `debug_errors`. See `serving.secure_app`.

    Memory stays bounded (`lit_plugins.app.bounded_cache`): every example's
    predictions and pooled embeddings are kept, token-level outputs (token
    embeddings, gradients, attention) for at most `heavy_cache_mb` per model,
    recomputed when asked for again; the data table's and the metrics'
    whole-dataset predictions run without gradients. With `use_store`, the
    predictions also persist in `cache_dir` (SQLite, keyed by the weights and
    settings), so a restart on the same model and data does not rerun them.

    `server_kw` are LIT's (e.g. `**server_flags.get_flags()`, `interpreters=`,
    `model_loaders=`). A non-loopback `host` needs `allowed_hosts` (ValueError
    otherwise) and logs a warning. Returns what `Server.serve()` returns; for
    `server_type="external"` the wrapped WSGI app (e.g. for gunicorn: list
    the names clients use in `allowed_hosts`).
    """
    from lit_nlp import dev_server  # pylint: disable=g-import-not-at-top

    from lit_plugins.app import serving  # pylint: disable=g-import-not-at-top

    server_type = server_kw.pop("server_type", "default")
    host = server_kw.get("host", "127.0.0.1")
    port = server_kw.get("port", 5432)
    if server_type not in ("external", "prebake"):
        if server_type not in dev_server.WSGI_SERVERS:
            raise ValueError(f"Unknown server_type {server_type!r}")
        warning = serving.check_exposure(host, allowed_hosts)
        if warning:
            logging.warning(warning)
    # LIT's metrics, the multi-label ones at each model's own threshold.
    server_kw.setdefault(
        "metrics", {**multilabel_metrics.plugin_metrics(), **tag_metrics.plugin_metrics()}
    )
    lit_app = bounded_cache.build(
        models,
        datasets,
        heavy_cache_mb=heavy_cache_mb,
        cache_dir=cache_dir,
        use_store=use_store,
        **server_kw,
    )
    if server_type == "prebake":  # as LIT: run start-up tasks, save the cache, exit
        lit_app.save_cache()
        return None
    app = serving.secure_app(
        lit_app,
        allowed_hosts=[*allowed_hosts, *([] if host in serving.WILDCARD_BINDS else [host])],
        allowed_origins=allowed_origins,
        datapoints_dir=datapoints_dir,
        max_request_mb=max_request_mb or serving.DEFAULT_MAX_REQUEST_MB,
        debug_errors=debug_errors,
    )
    logging.info(
        "lit-plugins serving: hosts %s; datapoint files under %s; requests up to %g MB",
        ", ".join(sorted(app.allowed_hosts)) + (" and any other" if app.any_host else ""),
        app.datapoints_dir,
        app.max_request_bytes / 2**20,
    )
    if server_type == "external":
        return app
    server = dev_server.WSGI_SERVERS[server_type](app, host=host, port=port)
    server.serve()
    if server_type == "notebook":
        return server
    lit_app.save_cache()
    return None
