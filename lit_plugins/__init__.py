"""lit-plugins: interpretability components for Google's LIT on PyTorch HuggingFace classifiers.

The public face (everything a custom LIT app needs)::

    from lit_plugins import HFSequenceClassifier, plugin_interpreters, serve, wrap_model

The packages, top layer first (imports only flow down; `lint-imports` checks it):

    app/, cli/       faces: the served app (registration, safety layer, offline UI), the command line
    lit/             LIT glue: the model wrapper, specs, alignment, dataset-level plumbing,
                     one thin adapter per interpreter, the salience-method registry
    data/            LIT datasets: loaders and the bundled examples
    hf/              transformers only (never lit_nlp): tokenise/forward, paths, perturbation,
                     live ablation, fine-tuning
    attribution/ faithfulness/ probing/ txray/   the math: numpy / torch / scipy only
    util/            devices, torch.distributed, statistics (the one bootstrap)
"""

# Lazy, so that importing a math package (`lit_plugins.probing`, ...) does not load LIT.
_PUBLIC = {
    "HFSequenceClassifier": "lit_plugins.lit.model",
    "load_corpus_results": "lit_plugins.app.registration",
    "plugin_interpreters": "lit_plugins.app.registration",
    "serve": "lit_plugins.app.registration",
    "wrap_model": "lit_plugins.app.registration",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_PUBLIC[name]), name)
