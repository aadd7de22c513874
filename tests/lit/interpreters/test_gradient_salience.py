"""GradientNorm / GradientDotInput equal LIT 1.3's gradient_maps."""

import numpy as np
import pytest
from lit_nlp.components import gradient_maps as lit_gradient_maps
from lit_nlp.lib import caching

from lit_plugins.lit import interpreters
from tests.kit import fake_models

PAIRS = [
    (interpreters.GradientNorm, lit_gradient_maps.GradientNorm),
    (interpreters.GradientDotInput, lit_gradient_maps.GradientDotInput),
]
TEXTS = ["the film was not bad at all", "boring", "slow start but a stunning finale really"]


def _assert_same_as_lit(model, examples):
    outputs = list(model.predict(examples))
    for ours_cls, lit_cls in PAIRS:
        ours = ours_cls().run(examples, model, None, outputs)
        theirs = lit_cls().run(examples, model, None, outputs)
        assert len(ours) == len(theirs) == len(examples)
        for a, b in zip(ours, theirs):
            assert set(a) == set(b)
            for key in a:
                assert a[key].tokens == b[key].tokens
                np.testing.assert_array_equal(a[key].salience, b[key].salience)


def test_equal_to_lit_on_tiny_models(tiny_classifier):
    _assert_same_as_lit(tiny_classifier, [{"sentence": t} for t in TEXTS])


def test_equal_to_lit_on_minilm(minilm_finetuned, dev_examples):
    _assert_same_as_lit(minilm_finetuned, dev_examples[:16])


def test_equal_to_lit_through_lits_caching_wrapper(tiny_classifier):
    wrapped = caching.CachingModelWrapper(tiny_classifier, "m")
    examples = [{"sentence": t, "_id": str(i)} for i, t in enumerate(TEXTS)]
    _assert_same_as_lit(wrapped, examples)


def test_runs_without_precomputed_outputs(tiny_classifier):
    examples = [{"sentence": t} for t in TEXTS]
    ours = interpreters.GradientNorm().run(examples, tiny_classifier, None)
    theirs = lit_gradient_maps.GradientNorm().run(examples, tiny_classifier, None)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a["token_grads"].salience, b["token_grads"].salience, atol=1e-6)


def test_text_pairs(tiny_classifier):
    from lit_plugins.lit.model import HFSequenceClassifier
    from tests.kit import tiny_models

    model, tok = tiny_models.make("bert")
    clf = HFSequenceClassifier(
        model=model, tokenizer=tok, labels=["a", "b"], text_fields=("premise", "hypothesis")
    )
    _assert_same_as_lit(clf, [{"premise": "the plot", "hypothesis": "a mess"}])


@pytest.mark.parametrize("cls", [interpreters.GradientNorm, interpreters.GradientDotInput])
def test_exclude_special_tokens(tiny_classifier, cls):
    examples = [{"sentence": t} for t in TEXTS]
    outputs = list(tiny_classifier.predict(examples))
    default = cls().run(examples, tiny_classifier, None, outputs)
    result = cls().run(
        examples,
        tiny_classifier,
        None,
        outputs,
        {"Exclude special tokens from normalization": True},
    )
    for res, out, dflt in zip(result, outputs, default):
        sal = res["token_grads"].salience
        assert sal[0] == 0 and sal[-1] == 0  # [CLS]/<s> and [SEP]/</s>
        np.testing.assert_allclose(np.abs(sal).sum(), 1.0, rtol=1e-5)
        # Same ranking of the inner tokens as the LIT-identical default.
        inner = dflt["token_grads"].salience[1:-1]
        np.testing.assert_allclose(
            sal[1:-1] / np.abs(sal[1:-1]).sum(), inner / np.abs(inner).sum(), rtol=1e-4, atol=1e-7
        )


def test_class_to_explain_from_the_salience_module(tiny_classifier):
    """Pinning the other class equals LIT's numbers on outputs predicted with
    that class as the gradient target."""
    examples = [{"sentence": t} for t in TEXTS]
    outputs = list(tiny_classifier.predict(examples))
    for ex, out in zip(examples, outputs):
        other = "neg" if out["grad_class"] == "pos" else "pos"
        config = {"_salience_target": {"field": "probas", "index": ["neg", "pos"].index(other)}}
        ours = interpreters.GradientNorm().run([ex], tiny_classifier, None, [out], config)[0]
        pinned = list(tiny_classifier.predict([dict(ex, grad_class=other)]))
        theirs = lit_gradient_maps.GradientNorm().run([ex], tiny_classifier, None, pinned)[0]
        np.testing.assert_allclose(
            ours["token_grads"].salience, theirs["token_grads"].salience, atol=1e-7
        )


def test_incompatible_model():
    for cls in (
        interpreters.GradientNorm,
        interpreters.GradientDotInput,
        interpreters.IntegratedGradients,
    ):
        assert not cls().is_compatible(fake_models.PredictionsOnly(), None)


def test_bad_config(tiny_classifier):
    examples = [{"sentence": "fun"}]
    with pytest.raises(ValueError, match="true or false"):
        interpreters.GradientNorm().run(
            examples,
            tiny_classifier,
            None,
            config={"Exclude special tokens from normalization": "maybe"},
        )
