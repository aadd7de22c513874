"""The `attribute` command's rows shown in LIT: the maps a run wrote are the ones
the live interpreters compute, found by the example's text for the served model
with the run's checkpoint, and a run for other weights is refused."""

import numpy as np
import pytest

from lit_plugins.app import registration
from lit_plugins.cli import attribute, shards
from lit_plugins.lit import methods, saved_results
from lit_plugins.lit.interpreters import common, precomputed
from lit_plugins.lit.interpreters import integrated_gradients as ig_interp
from lit_plugins.lit.interpreters.gradient_salience import GradientNorm
from lit_plugins.lit.model import HFSequenceClassifier
from lit_plugins.util import digest
from tests.kit import sentiment_data, tiny_models

OPTS = attribute.AttributeOptions(
    methods=(attribute.GRAD_NORM, attribute.INTEGRATED_GRADIENTS), steps=16
)


def _checkpoint(tmp_path, seed=0):
    model, tok = tiny_models.make("bert", num_labels=2, seed=seed)
    path = tmp_path / f"ckpt{seed}"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _write_run(out_dir, clf, checkpoint, examples, model_name="tiny"):
    config = {
        "command": "attribute",
        "model": model_name,
        "text_fields": ["sentence=sentence"],
        shards.CHECKPOINTS_KEY: {"model": digest.checkpoint_digest(checkpoint)},
    }
    plan = shards.ShardPlan(str(out_dir), config, len(examples), 4, ".parquet")
    plan.prepare()
    attribute.run(clf, examples, plan, OPTS, columns=["sentence", "label"])
    plan.finish()
    return str(out_dir)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("precomputed")
    path = _checkpoint(tmp)
    clf = HFSequenceClassifier(path, labels=sentiment_data.LABELS, batch_size=4)
    examples = [
        {"sentence": ex["sentence"], "label": ex["label"]}
        for ex in sentiment_data.indexed_dataset().examples
    ]
    out = _write_run(tmp / "run", clf, path, examples[:6])
    return clf, examples, out, tmp


def test_maps_equal_the_live_interpreters(served):
    clf, examples, out, _ = served
    interp = precomputed.PrecomputedAttributions({"served-name": clf})
    assert interp.preload(saved_results.load_attribution_results(out)) == "served-name"
    assert interp.is_compatible(clf, None)
    got = interp.run(examples[:6], clf, None)
    live_norm = GradientNorm().run(examples[:6], clf, None)
    live_ig = ig_interp.IntegratedGradients().run(
        examples[:6],
        clf,
        None,
        config={common.INTERPOLATION_KEY: 16, common.NORMALIZATION_KEY: False},
    )
    for g, n, i in zip(got, live_norm, live_ig):
        assert g["grad_norm"].tokens == n["token_grads"].tokens
        np.testing.assert_allclose(g["grad_norm"].salience, n["token_grads"].salience, atol=1e-6)
        np.testing.assert_allclose(
            g["integrated_gradients"].salience, i["token_grads"].salience, rtol=1e-4, atol=1e-6
        )
        chips = common.chips_dict(g[precomputed.SOURCE_FIELD])
        assert any(label.startswith("from ") for label in chips)
        assert any("completeness error" in label for label in chips)


def test_an_example_outside_the_run_says_so(served):
    clf, _examples, out, _ = served
    interp = precomputed.PrecomputedAttributions({"m": clf})
    interp.preload(saved_results.load_attribution_results(out))
    (result,) = interp.run([{"sentence": "never seen before"}], clf, None)
    assert set(result) == {precomputed.SOURCE_FIELD}
    assert (
        "not in the precomputed run (6 of 6 examples)" in result[precomputed.SOURCE_FIELD].tokens[0]
    )


def test_a_run_for_other_weights_is_refused(served):
    _clf, _examples, out, tmp = served
    other = HFSequenceClassifier(_checkpoint(tmp, seed=1), labels=sentiment_data.LABELS)
    interp = precomputed.PrecomputedAttributions({"tiny": other})
    with pytest.raises(ValueError, match=r"no served model .* has those weights"):
        interp.preload(saved_results.load_attribution_results(out))
    assert not interp.is_compatible(other, None)


def test_bad_directories_are_refused(tmp_path, served):
    with pytest.raises(ValueError, match="holds no lit-plugins run"):
        saved_results.load_attribution_results(str(tmp_path))
    (tmp_path / saved_results.RUN_MANIFEST).write_text('{"config": {"command": "probe"}}')
    with pytest.raises(ValueError, match="'probe' run, not an `attribute` run"):
        saved_results.load_attribution_results(str(tmp_path))


def test_registered_by_load_corpus_results_and_not_a_salience_method(served):
    clf, _examples, out, _ = served
    interps = registration.plugin_interpreters({"tiny": clf})
    registration.load_corpus_results(interps, {"tiny": clf}, attribution_results=[out])
    loaded = interps[methods.PRECOMPUTED_ATTRIBUTIONS]
    assert isinstance(loaded, precomputed.PrecomputedAttributions)
    assert not methods.is_salience_method(loaded)
    assert methods.PRECOMPUTED_ATTRIBUTIONS not in methods.salience_mappers(interps)
