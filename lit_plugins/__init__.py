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

from lit_plugins.util import lazy

# Lazy, so that importing a math package (`lit_plugins.probing`, ...) does not load LIT.
_PUBLIC = {
    "HFSequenceClassifier": "lit_plugins.lit.model",
    "load_corpus_results": "lit_plugins.app.registration",
    "plugin_interpreters": "lit_plugins.app.registration",
    "serve": "lit_plugins.app.registration",
    "wrap_model": "lit_plugins.app.registration",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy.exports(__name__, _PUBLIC)
