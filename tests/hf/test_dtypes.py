"""Half-precision checkpoints: loaded in their own dtype (or the one asked for), with
float32 outputs, gradients and attribution sums."""

import numpy as np
import pytest
import torch

from lit_plugins.lit import interpreters
from lit_plugins.lit.interpreters import integrated_gradients as ig_interp
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import tiny_models

TEXTS = ["the film was not bad at all", "boring"]


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("bf16")
    model, tok = tiny_models.make("bert")
    model.to(torch.bfloat16).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _float32_reference(path):
    """The same bfloat16 weights, computed in float32."""
    return HFSequenceClassifier(path, dtype="float32")


def test_a_bfloat16_checkpoint_predicts_in_its_dtype_with_float32_outputs(bf16_checkpoint):
    clf = HFSequenceClassifier(bf16_checkpoint)  # dtype='auto': the checkpoint's
    assert clf.model.dtype == torch.bfloat16
    ref = _float32_reference(bf16_checkpoint)
    assert ref.model.dtype == torch.float32
    for ours, exact in zip(
        clf.predict([{"sentence": t} for t in TEXTS]), ref.predict([{"sentence": t} for t in TEXTS])
    ):
        for field in ("probas", "token_grads", "token_embs", "cls_emb"):
            assert ours[field].dtype == np.float32, field
            assert np.isfinite(ours[field]).all(), field
        # bfloat16 keeps 8 bits of mantissa: probabilities within a few 1e-3.
        np.testing.assert_allclose(ours["probas"], exact["probas"], atol=2e-2)


def test_ig_on_a_bfloat16_model_reports_completeness_in_float32(bf16_checkpoint):
    clf = HFSequenceClassifier(bf16_checkpoint)
    (res,) = interpreters.IntegratedGradients().run([{"sentence": TEXTS[0]}], clf, None)
    report = ig_interp.completeness_dict(res["completeness"])
    assert np.isfinite(list(report.values())).all()
    assert np.isfinite(res["token_grads"].salience).all()


def test_unknown_dtype_is_refused(bf16_checkpoint):
    with pytest.raises(ValueError, match="dtype must be one of"):
        HFSequenceClassifier(bf16_checkpoint, dtype="float8")


def test_probe_on_a_bfloat16_model_fits_float32_activations(bf16_checkpoint):
    """The probe's inputs (per-layer activations) come out of a bfloat16 model as
    float32, so its solvers accumulate in float32 (weights float32 and finite); the
    activations match those of the float32 copy of the weights to bfloat16's
    rounding of the activations."""
    from lit_plugins import probing

    clf = HFSequenceClassifier(bf16_checkpoint)
    examples = [{"sentence": t} for t in [*TEXTS, "a great film", "awful mess", "fun", "slow"]]
    labels = np.array([0, 1, 1, 0, 1, 0])
    outs = list(clf.predict(examples, activation_layers=[2], gradients=False))
    acts = [o["layer_2/token_activations"] for o in outs]
    assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in acts)
    pooled = np.stack([a.mean(axis=0) for a in acts])
    probe = probing.LinearProbe(lambda_l1=0.0, lambda_l2=1e-3).fit(pooled, labels)
    assert probe.weight_.dtype == np.float32 and np.isfinite(probe.weight_).all()
    ref = _float32_reference(bf16_checkpoint)
    ref_outs = list(ref.predict(examples, activation_layers=[2], gradients=False))
    ref_pooled = np.stack([o["layer_2/token_activations"].mean(axis=0) for o in ref_outs])
    np.testing.assert_allclose(pooled, ref_pooled, atol=0.05 * np.abs(ref_pooled).max())
