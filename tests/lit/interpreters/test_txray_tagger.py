"""TX-Ray Neuron Shift on token classifiers (`HFTokenClassifier`): the shift of one tiny
tagger from another at a layer, with word-piece and gold-tag features, equals an
independent computation from HF's own forward on each sentence alone (pieces and their
words from the tokenizer's `word_ids()` on the pre-split words, not the offsets
`lit.alignment` uses), and the chips and per-piece map read it."""

import numpy as np
import pytest
import torch

from lit_plugins import txray
from lit_plugins.data import conll
from lit_plugins.lit.interpreters import common, txray_shift
from tests.kit import tiny_taggers

DATA = conll.load_bundled_ner(max_examples=24)


@pytest.fixture(scope="module")
def models():
    from lit_plugins.lit.token_model import HFTokenClassifier

    out = {}
    for name, seed in (("ref", 0), ("tuned", 1)):
        model, tok = tiny_taggers.make("bert", seed=seed)
        out[name] = HFTokenClassifier(model=model, tokenizer=tok, batch_size=5)
    return out


def _independent_shift(ref, model, examples, layer, features, replicates=0):
    """HF's forward one sentence at a time; features from word_ids() (tags: the gold tag
    of the piece's word, special tokens skipped); the sentence index as the unit."""
    vocab = txray.FeatureVocab()
    width = model.model.config.hidden_size
    record = replicates > 0
    aggs = [txray.NeuronFeatureAggregator(width, mode="max1", record_units=record) for _ in "ab"]
    for i, ex in enumerate(examples):
        words = ex["sentence"].split()
        enc = model.tokenizer(words, is_split_into_words=True, return_tensors="pt")
        pieces = model.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
        if features == "tokens":
            feats = pieces
        else:
            feats = [None if w is None else ex["tags"][w] for w in enc.word_ids(0)]
        ids = np.array([-1 if f is None else vocab.add(f) for f in feats])
        for agg, m in zip(aggs, (ref, model)):
            with torch.no_grad():
                h = m.model(**enc, output_hidden_states=True).hidden_states[layer][0]
            agg.update(h.numpy(), ids, units=np.full(len(ids), i) if record else None)
    if record:
        for agg in aggs:
            agg.units.seen(np.array([len(examples) - 1]))
    return txray.compute_shift(*aggs, feature_names=vocab, replicates=replicates)


def _config(**kw):
    return {
        txray_shift.REFERENCE_KEY: "ref",
        txray_shift.LAYER_KEY: 2,
        txray_shift.MODE_KEY: "max1",
        txray_shift.FEATURES_KEY: "tokens",
        txray_shift.TOP_K_KEY: 5,
        txray_shift.NORMALIZE_KEY: False,
        txray_shift.REPLICATES_KEY: 0,
        **kw,
    }


@pytest.mark.parametrize(
    "features, layer", [("tokens", 2), ("tokens", 0), ("tags", 1), ("tags", 2)]
)
def test_shift_equals_independent_computation(models, features, layer):
    interp = txray_shift.TXRayNeuronShift(models, batch_size=7)
    model, ref = models["tuned"], models["ref"]
    extra = {txray_shift.TAGS_KEY: "tags"} if features == "tags" else {}
    config = _config(**{txray_shift.FEATURES_KEY: features, txray_shift.LAYER_KEY: layer}, **extra)
    fitted = interp.fit(model, DATA, config)
    expected = _independent_shift(ref, model, DATA.examples, layer, features)
    assert np.any(expected.distance > 0)
    np.testing.assert_allclose(fitted.distance, expected.distance, rtol=1e-5, atol=1e-6)
    if features == "tags":  # exactly the tag set the words carry, no special tokens
        assert set(fitted.feature_names) == {t for ex in DATA.examples for t in ex["tags"]}

    inputs = DATA.examples[:2]
    results = interp.run(inputs, model, DATA, config=config)
    most = expected.rank_shifts(k=5, n_features=3).most
    for res, ex in zip(results, inputs):
        shown = common.chips_dict(res[txray_shift.SHIFTED_NEURONS])
        assert [int(label.split(" n")[1].split(":")[0]) for label in shown] == [
            s.neuron for s in most
        ]
        for value, s in zip(shown.values(), most):
            assert value == pytest.approx(s.distance, rel=1e-5, abs=1e-6)
        # The per-piece map: the most shifted neurons' positive activations, max 1.
        enc = model.tokenizer(ex["sentence"].split(), is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            h = model.model(**enc, output_hidden_states=True).hidden_states[layer][0].numpy()
        raw = np.clip(h[:, [s.neuron for s in most]], 0, None).sum(1)
        ts = res[txray_shift.TOKEN_SALIENCE]
        assert ts.tokens == model.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
        np.testing.assert_allclose(ts.salience, raw / raw.max(), rtol=1e-4, atol=1e-6)


def test_bootstrap_replicates_equal_independent_ones(models):
    interp = txray_shift.TXRayNeuronShift(models, batch_size=7)
    config = _config(**{txray_shift.REPLICATES_KEY: 50})
    fitted = interp.fit(models["tuned"], DATA, config)
    expected = _independent_shift(models["ref"], models["tuned"], DATA.examples, 2, "tokens", 50)
    np.testing.assert_allclose(fitted.distance, expected.distance, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        fitted.replicate_distance, expected.replicate_distance, rtol=1e-5, atol=1e-6
    )
