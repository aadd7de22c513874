"""Every kind of head we accept × every interpreter the app serves (ours and LIT's
defaults), as a user meets them in the UI: for each pair, the interpreter either says
it does not apply (`is_compatible` False), or runs at its default settings on two
examples and returns one finite result per example, or refuses with a ValueError that
says why. No other exception anywhere in the matrix.

The numbers themselves are checked against independent references in the per-kind
tests (test_heads, test_decoder_interpreters, test_multilabel, test_token_model);
this one is the "no bare exception" sweep, and it prints the matrix
docs/model-wrapper.md's table is written from (`pytest -s`)."""

import numpy as np
import pytest
from absl import logging as absl_logging
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import types as lit_types
from lit_nlp.lib import caching

from lit_plugins.app import registration
from lit_plugins.data import conll
from lit_plugins.hf import heads
from lit_plugins.lit import methods
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import sentiment_data, tiny_models, tiny_taggers

TOPICS = ["food", "service", "price"]
# Defaults, except where a default only costs time on a tiny model.
FASTER = {
    "LIME": {"Number of samples": 32},
    registration.SALIENCE_FAITHFULNESS: {"lit-plugins faithfulness: LIME": False},
    # The default layer (3) is deeper than the tiny models (2 layers: a clear ValueError).
    registration.LAYER_CONDUCTANCE: {"Layer (0 = embedding output)": 1},
    registration.NEURON_CONDUCTANCE: {"Layer (0 = embedding output)": 1},
}
RESULTS: dict[tuple[str, str], str] = {}


def _indexed(spec, examples):
    return lit_dataset.IndexedDataset(
        base=lit_dataset.Dataset(spec=spec, examples=examples), id_fn=caching.input_hash
    )


def _sentences(label_of):
    return [{"sentence": s, "label": label_of(i)} for i, s in enumerate(sentiment_data.SENTENCES)]


def _kind(name):
    """(LIT model, its reference of the same shape for TX-Ray, dataset)."""
    if name == "token classification":
        from lit_plugins.lit.token_model import HFTokenClassifier

        model = tiny_taggers.tagger("bert", batch_size=8)
        ref_model, ref_tok = tiny_taggers.make("bert", seed=1)
        ref = HFTokenClassifier(model=ref_model, tokenizer=ref_tok)
        data = conll.load_bundled_ner(max_examples=10)
        return model, ref, _indexed(data.spec(), data.examples)
    arch = {"decoder (GPT-2)": "gpt2", "decoder (Llama)": "llama"}.get(name, "bert")
    labels = {"regression": ["score"], "multi-label": TOPICS}.get(name, sentiment_data.LABELS)
    clfs = []
    for seed in (0, 1):
        if name == "XLNet":
            model, tok = tiny_models.xlnet(seed=seed)
        else:
            model, tok = tiny_models.make(arch, num_labels=len(labels), seed=seed)
            if name == "multi-label":
                model.config.problem_type = heads.MULTI_LABEL
        clfs.append(
            HFSequenceClassifier(
                model=model,
                tokenizer=tok,
                labels=labels if name != "regression" else None,
                batch_size=8,
            )
        )
    text = lit_types.TextSegment()
    if name == "regression":
        spec = {"sentence": text, "label": lit_types.Scalar()}
        examples = _sentences(lambda i: float(i % 3))
    elif name == "multi-label":
        spec = {"sentence": text, "label": lit_types.SparseMultilabel(vocab=TOPICS)}
        examples = _sentences(lambda i: TOPICS[: i % 3])
    else:
        spec = {"sentence": text, "label": lit_types.CategoryLabel(vocab=sentiment_data.LABELS)}
        examples = _sentences(lambda i: sentiment_data.LABELS[i % 2])
    return clfs[0], clfs[1], _indexed(spec, examples)


def _finite(value) -> bool:
    if isinstance(value, dtypes.TokenSalience | dtypes.FeatureSalience):
        scores = value.salience
        scores = list(scores.values()) if isinstance(scores, dict) else scores
        return bool(np.isfinite(np.asarray(scores, dtype=np.float64)).all())
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return bool(np.isfinite(value).all())
    return True


def _ours(name, interp) -> bool:
    return name.startswith("lit-plugins") or type(interp).__module__.startswith("lit_plugins")


KINDS = [
    "encoder",
    "regression",
    "multi-label",
    "decoder (GPT-2)",
    "decoder (Llama)",
    "XLNet",
    "token classification",
]


@pytest.mark.parametrize("kind", KINDS)
def test_every_interpreter_applies_runs_or_says_why(kind):
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        model, reference, dataset = _kind(kind)
        served = caching.CachingModelWrapper(model, "m")
        interpreters = registration.plugin_interpreters(
            {"m": served}, include_lit_defaults=True, reference_models={"reference": reference}
        )
        inputs = dataset.examples[:2]
        outputs = list(served.predict(inputs))
        for name, interp in interpreters.items():
            if not interp.is_compatible(served, dataset):
                RESULTS[(kind, name)] = "—"
                continue
            # The UI sends every config field, at its default unless the user changed it.
            config = {
                key: field.default
                for key, field in (interp.config_spec() or {}).items()
                if getattr(field, "default", None) is not None
            }
            config.update(FASTER.get(name, {}))
            try:
                results = interp.run(inputs, served, dataset, model_outputs=outputs, config=config)
            except ValueError as e:
                RESULTS[(kind, name)] = f"ValueError: {str(e)[:80]}"
                continue
            except Exception as e:  # LIT's own components: recorded, ours must not
                if _ours(name, interp):
                    raise
                RESULTS[(kind, name)] = f"LIT {type(e).__name__}: {str(e)[:60]}"
                continue
            if results is None:  # dataset-level only (e.g. metrics-like interpreters)
                RESULTS[(kind, name)] = "none"
                continue
            if isinstance(results, list) and len(results) == len(inputs):
                for result in results:
                    assert all(_finite(v) for v in result.values()), (kind, name, result)
            else:  # a dataset-level result (LIT's thresholder, ...)
                assert not methods.is_salience_method(interp), (kind, name)
            RESULTS[(kind, name)] = "yes"
    finally:
        absl_logging.set_verbosity(absl_logging.INFO)
    print(f"\n{kind}: " + "; ".join(f"{n}: {r}" for (k, n), r in RESULTS.items() if k == kind))
