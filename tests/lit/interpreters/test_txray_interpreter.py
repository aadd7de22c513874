"""TXRayNeuronShift: the LIT interpreter around lit_plugins.txray."""

import re

import numpy as np
import pytest
import transformers
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import types as lit_types
from lit_nlp.lib import caching

from lit_plugins import txray
from lit_plugins.data.loaders import SENTIMENT_LABELS
from lit_plugins.lit import specs, txray_inputs
from lit_plugins.lit.interpreters import common, neuron_use, txray_shift
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import fake_models, tiny_models
from tests.kit.threads import call_in_threads

LABELS = ["neg", "pos"]
SPEC = {"sentence": lit_types.TextSegment(), "label": lit_types.CategoryLabel(vocab=LABELS)}
W = tiny_models.WORDS


def _sentences(n=20, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = rng.choice(W, size=int(rng.integers(3, 9)))
        text = " ".join(words)
        if i % 3 == 0:  # word pieces (film ##s, slow ##ly) for the 'words' mode
            text += " films slowly"
        out.append({"sentence": text, "label": LABELS[i % 2]})
    return out


EXAMPLES = _sentences()


def _dataset(examples=None):
    return lit_dataset.Dataset(spec=SPEC, examples=list(EXAMPLES if examples is None else examples))


def _wrap(model, tok, batch_size=4):
    return HFSequenceClassifier(model=model, tokenizer=tok, labels=LABELS, batch_size=batch_size)


@pytest.fixture(scope="module")
def models():
    bert_a = _wrap(*tiny_models.make("bert", seed=0))
    bert_b = _wrap(*tiny_models.make("bert", seed=1))
    return {"bert_a": bert_a, "bert_b": bert_b}


def _config(**kw):
    cfg = {
        txray_shift.REFERENCE_KEY: "bert_a",
        txray_shift.LAYER_KEY: 2,
        txray_shift.MODE_KEY: "max1",
        txray_shift.FEATURES_KEY: "tokens",
        txray_shift.TOP_K_KEY: 5,
        txray_shift.NORMALIZE_KEY: False,
    }
    cfg.update(kw)
    return cfg


def _independent_shift(ref, model, examples, layer, mode="max1", replicates=0):
    """One example at a time (its index as the bootstrap's unit)."""
    field = specs.LAYER_ACTIVATIONS_TEMPLATE.format(layer)
    outs_r = list(ref.predict(examples, activation_layers=[layer], gradients=False))
    outs_m = list(model.predict(examples, activation_layers=[layer], gradients=False))
    vocab = txray.FeatureVocab()
    record = replicates > 0
    agg_r = txray.NeuronFeatureAggregator(ref.hidden_size, mode=mode, record_units=record)
    agg_m = txray.NeuronFeatureAggregator(model.hidden_size, mode=mode, record_units=record)
    for i, (o_r, o_m) in enumerate(zip(outs_r, outs_m)):
        assert o_r["tokens"] == o_m["tokens"]
        ids = vocab.encode(o_m["tokens"])
        units = np.full(len(ids), i) if record else None
        agg_r.update(o_r[field], ids, units=units)
        agg_m.update(o_m[field], ids, units=units)
    return txray.compute_shift(agg_r, agg_m, feature_names=vocab, replicates=replicates)


def test_ranking_matches_independent_computation(models):
    """Bootstrap off: the distances, ranking and chips exactly as before."""
    interp = txray_shift.TXRayNeuronShift(models, batch_size=8)
    model, ref = models["bert_b"], models["bert_a"]
    ds = _dataset()
    inputs = EXAMPLES[:3]
    config = _config(**{txray_shift.REPLICATES_KEY: 0})
    results = interp.run(inputs, model, ds, config=config)
    assert len(results) == 3

    expected = _independent_shift(ref, model, EXAMPLES, layer=2)
    fitted = interp.fit(model, ds, config)
    assert not fitted.has_bootstrap
    assert np.any(fitted.distance > 0)
    np.testing.assert_allclose(np.sort(fitted.distance), np.sort(expected.distance), atol=1e-9)
    most = expected.rank_shifts(k=5, n_features=3).most
    want = {}
    for s in most:
        a = ", ".join(f.name for f in s.top_features_a)
        b = ", ".join(f.name for f in s.top_features_b)
        want[f"L2 n{s.neuron}: {a} → {b}"] = s.distance

    for res, ex in zip(results, inputs):
        # Labelled chips, most shifted first: "L2 n7: a, b → c, d = 0.812".
        fs = res["shifted_neurons"]
        assert isinstance(fs, dtypes.TokenSalience)
        shown = common.chips_dict(fs)
        assert list(shown) == list(want)
        for label, value in want.items():
            assert shown[label] == pytest.approx(value, abs=1e-9)
        assert fs.tokens == [f"{label} = {value:.3f}" for label, value in want.items()]
        ts = res["neuron_token_salience"]
        assert isinstance(ts, dtypes.TokenSalience)
        (out,) = list(model.predict([ex], activation_layers=[2], gradients=False))
        assert ts.tokens == out["tokens"]
        neurons = [s.neuron for s in most]
        raw = np.clip(out["layer_2/token_activations"][:, neurons], 0, None).sum(1)
        np.testing.assert_allclose(ts.salience, raw / raw.max(), rtol=1e-5)
        assert ts.salience.max() == pytest.approx(1.0)


BOOT_CHIP = r"L2 n(\d+): .+ → .+ = (\d\.\d{3}) \[(\d\.\d{2}), (\d\.\d{2})\], support (\d+)"


def test_bootstrap_ranking_intervals_and_support_in_the_chips(models):
    """Default config: a seeded bootstrap over the examples; chips read
    'L2 n7: a, b → c, d = 0.812 [0.55, 0.93], support 9', ranked by the
    lower bound, as an independent bootstrap over the same examples gives."""
    interp = txray_shift.TXRayNeuronShift(models, batch_size=8)
    model, ref = models["bert_b"], models["bert_a"]
    ds = _dataset()
    (res,) = interp.run(EXAMPLES[:1], model, ds, config=_config())
    # The neuron-use check is off by default (minutes on a CPU): a chip says how to start it.
    assert interp.config_spec()[neuron_use.USE_KEY].default is False
    assert neuron_use.use_dict(res[neuron_use.USE_FIELD]) == {neuron_use.OFF_TEXT: 0.0}
    fitted = interp.fit(model, ds, _config())
    assert fitted.has_bootstrap and fitted.bootstrap_units == len(EXAMPLES)
    expected = _independent_shift(ref, model, EXAMPLES, layer=2, replicates=200)
    np.testing.assert_allclose(fitted.distance, expected.distance, atol=1e-9)
    np.testing.assert_allclose(fitted.replicate_distance, expected.replicate_distance, atol=1e-9)
    most = expected.rank_shifts(k=5, n_features=3, confidence=0.9).most
    chips = res[txray_shift.SHIFTED_NEURONS]
    assert len(chips.tokens) == 5
    for text, value, s in zip(chips.tokens, chips.salience, most):
        m = re.fullmatch(BOOT_CHIP, text)
        assert m, text
        assert int(m.group(1)) == s.neuron and float(m.group(2)) == round(s.distance, 3)
        assert (float(m.group(3)), float(m.group(4))) == (round(s.lower, 2), round(s.upper, 2))
        assert int(m.group(5)) == s.hellinger_length
        assert value == pytest.approx(s.distance, abs=1e-9)
    lowers = [s.lower for s in most]
    assert lowers == sorted(lowers, reverse=True)
    shown = common.chips_dict(chips)
    assert list(shown) == [txray_shift.neuron_label(2, s) for s in most]

    # The confidence level is display-only (no refit); replicates and seed refit.
    before = interp.fit_count
    (wide,) = interp.run(
        EXAMPLES[:1], model, ds, config=_config(**{txray_shift.CONFIDENCE_KEY: 0.99})
    )
    assert interp.fit_count == before
    assert wide[txray_shift.SHIFTED_NEURONS].tokens != chips.tokens
    interp.run(EXAMPLES[:1], model, ds, config=_config(**{txray_shift.SEED_KEY: 1}))
    assert interp.fit_count == before + 1
    interp.run(EXAMPLES[:1], model, ds, config=_config(**{txray_shift.REPLICATES_KEY: 50}))
    assert interp.fit_count == before + 2


def test_words_features_merge_pieces(models):
    interp = txray_shift.TXRayNeuronShift(models)
    config = _config(**{txray_shift.FEATURES_KEY: "words", txray_shift.MODE_KEY: "all"})
    result = interp.fit(models["bert_b"], _dataset(), config)
    assert result.num_shared > 0 and np.any(result.distance > 0)
    # 'words' merges word pieces: film ##s -> films.
    assert {"films", "slowly", "[CLS]"} <= set(result.feature_names)
    assert not any(f.startswith("##") for f in result.feature_names)


def test_self_comparison_is_refused(models):
    """A model compared with itself gives distance 0 for every neuron; that is
    never shown as a result: the error says what is needed instead."""
    ds = _dataset()
    agg_a, agg_b, _ = txray_inputs.aggregate_pair(models["bert_a"], models["bert_a"], EXAMPLES, 2)
    np.testing.assert_allclose(txray.compute_shift(agg_a, agg_b).distance, 0.0, atol=1e-12)

    interp = txray_shift.TXRayNeuronShift(models)  # default reference: bert_a
    for call in (
        lambda: interp.run(EXAMPLES[:1], models["bert_a"], ds, config=_config()),
        lambda: interp.fit(models["bert_a"], ds, {}),
    ):
        with pytest.raises(ValueError, match=txray_shift.SELF_COMPARISON) as error:
            call()
        assert "'bert_b'" in str(error.value) and "--reference_model" in str(error.value)
    assert interp.fit_count == 0

    # The only model of an app, as `./run demo --models=mine:DIR` serves it.
    alone = txray_shift.TXRayNeuronShift({"mine": models["bert_a"]})
    with pytest.raises(ValueError, match=txray_shift.SELF_COMPARISON) as error:
        alone.run(EXAMPLES[:1], models["bert_a"], ds, config={})
    assert "--reference_model" in str(error.value) and "choose another" not in str(error.value)

    # Another object with the very same weights: caught after the pass.
    copy = _wrap(models["bert_a"].model, models["bert_a"].tokenizer)
    twin = txray_shift.TXRayNeuronShift({**models, "copy": copy}, default_reference="copy")
    with pytest.raises(ValueError, match="same feature distribution"):
        twin.run(
            EXAMPLES[:1],
            models["bert_a"],
            ds,
            config=_config(**{txray_shift.REFERENCE_KEY: "copy"}),
        )
    assert twin.fit_count == 0


def test_caching_and_refits(models):
    interp = txray_shift.TXRayNeuronShift(models, batch_size=8)
    model = models["bert_b"]
    ds = _dataset()
    interp.run(EXAMPLES[:2], model, ds, config=_config())
    assert interp.fit_count == 1
    interp.run(
        EXAMPLES[2:4], model, _dataset(), config=_config(**{txray_shift.TOP_K_KEY: 3})
    )  # same contents, other k: no refit
    assert interp.fit_count == 1
    bigger = _dataset([*EXAMPLES, {"sentence": "a great film", "label": "pos"}])
    interp.run(EXAMPLES[:1], model, bigger, config=_config())
    assert interp.fit_count == 2
    interp.run(EXAMPLES[:1], model, ds, config=_config(**{txray_shift.LAYER_KEY: 1}))
    assert interp.fit_count == 3
    interp.run(EXAMPLES[:1], model, ds, config=_config(**{txray_shift.NORMALIZE_KEY: True}))
    assert interp.fit_count == 4


def test_concurrent_requests_fit_once(models):
    interp = txray_shift.TXRayNeuronShift(models, batch_size=8)
    ds = _dataset()
    results, errors = call_in_threads(lambda: interp.fit(models["bert_b"], ds, _config()))
    assert not errors
    assert interp.fit_count == 1
    assert all(r is results[0] for r in results)


def test_different_hidden_size_raises(models):
    tok = tiny_models.bert_tokenizer()
    cfg = transformers.BertConfig(
        vocab_size=len(tok),
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    wide = _wrap(transformers.BertForSequenceClassification(cfg).eval(), tok)
    interp = txray_shift.TXRayNeuronShift({**models, "wide": wide})
    with pytest.raises(ValueError, match="hidden size"):
        interp.run(
            EXAMPLES[:1],
            models["bert_a"],
            _dataset(),
            config=_config(**{txray_shift.REFERENCE_KEY: "wide"}),
        )


def test_different_tokenizer_raises(models):
    roberta = _wrap(*tiny_models.make("roberta"))
    interp = txray_shift.TXRayNeuronShift({**models, "roberta": roberta})
    with pytest.raises(ValueError, match="tokenizes differently"):
        interp.run(
            EXAMPLES[:1],
            models["bert_a"],
            _dataset(),
            config=_config(**{txray_shift.REFERENCE_KEY: "roberta"}),
        )


@pytest.mark.parametrize(
    "override, match",
    [
        ({txray_shift.REFERENCE_KEY: "nope"}, "bert_a"),
        ({txray_shift.LAYER_KEY: 99}, "Layer"),
        ({txray_shift.MODE_KEY: "foo"}, "max1"),
        ({txray_shift.FEATURES_KEY: "pos"}, "words"),
        ({txray_shift.TOP_K_KEY: 0}, "Top k"),
        ({txray_shift.REPLICATES_KEY: -1}, r"Bootstrap replicates.*\[0, 10000\]"),
        ({txray_shift.REPLICATES_KEY: 10_001}, r"Bootstrap replicates.*\[0, 10000\]"),
        ({txray_shift.REPLICATES_KEY: 2.5}, r"Bootstrap replicates.*integer"),
        ({txray_shift.CONFIDENCE_KEY: 0}, "Confidence level.*strictly between 0 and 1"),
        ({txray_shift.CONFIDENCE_KEY: 1.0}, "Confidence level.*strictly between 0 and 1"),
        ({txray_shift.CONFIDENCE_KEY: "high"}, "Confidence level.*strictly between 0 and 1"),
        ({txray_shift.SEED_KEY: -1}, r"Bootstrap seed.*\[0, 2147483647\]"),
    ],
)
def test_bad_config_raises(models, override, match):
    interp = txray_shift.TXRayNeuronShift(models)
    with pytest.raises(ValueError, match=match):
        interp.run(EXAMPLES[:1], models["bert_b"], _dataset(), config=_config(**override))


def test_empty_dataset_raises(models):
    interp = txray_shift.TXRayNeuronShift(models)
    with pytest.raises(ValueError, match="non-empty dataset"):
        interp.run(EXAMPLES[:1], models["bert_b"], _dataset([]), config=_config())


def test_is_compatible(models):
    interp = txray_shift.TXRayNeuronShift(models)
    ds = _dataset()
    assert interp.is_compatible(models["bert_a"], ds)
    assert not interp.is_compatible(fake_models.PredictionsOnly(LABELS), ds)


def test_config_and_meta_spec(models):
    interp = txray_shift.TXRayNeuronShift(models, default_reference="bert_b")
    spec = interp.config_spec()
    assert spec[txray_shift.REFERENCE_KEY].vocab == ["bert_a", "bert_b"]
    assert spec[txray_shift.REFERENCE_KEY].default == "bert_b"
    assert spec[txray_shift.LAYER_KEY].default == 2
    meta = interp.meta_spec()
    assert isinstance(meta["neuron_token_salience"], lit_types.TokenSalience)
    assert isinstance(meta["shifted_neurons"], lit_types.TokenSalience)
    with pytest.raises(ValueError):
        txray_shift.TXRayNeuronShift(models, default_reference="missing")


def test_through_caching_model_wrapper(models):
    wrapped = caching.CachingModelWrapper(models["bert_b"], "bert_b")
    interp = txray_shift.TXRayNeuronShift(
        {"bert_a": models["bert_a"], "bert_b": wrapped}, batch_size=8
    )
    ds = _dataset()
    results = interp.run(EXAMPLES[:2], wrapped, ds, config=_config())
    direct = txray_shift.TXRayNeuronShift(models, batch_size=8).run(
        EXAMPLES[:2], models["bert_b"], ds, config=_config()
    )
    for got, want in zip(results, direct):
        assert got["shifted_neurons"].tokens == want["shifted_neurons"].tokens
        np.testing.assert_allclose(
            got["neuron_token_salience"].salience, want["neuron_token_salience"].salience
        )
    # The wrapped model is recognised as "bert_b": a self-comparison.
    with pytest.raises(ValueError, match=txray_shift.SELF_COMPARISON):
        interp.fit(wrapped, ds, _config(**{txray_shift.REFERENCE_KEY: "bert_b"}))


def test_minilm_pretrained_vs_finetuned_gives_a_real_ranking(minilm_finetuned, dev_examples):
    """The demo's setting: fine-tuning moves some neurons a lot, others not."""
    from lit_plugins.lit import demo_models

    models = {"pre": demo_models.pretrained_minilm(batch_size=32), "fine": minilm_finetuned}
    interp = txray_shift.TXRayNeuronShift(models, default_reference="pre")
    dataset = lit_dataset.Dataset(
        spec=SPEC,
        examples=[
            {"sentence": ex["sentence"], "label": LABELS[SENTIMENT_LABELS.index(ex["label"])]}
            for ex in dev_examples[:60]
        ],
    )
    config = {txray_shift.LAYER_KEY: 6, txray_shift.FEATURES_KEY: "words"}
    result = interp.fit(minilm_finetuned, dataset, config)
    distances = result.distance
    assert result.shared.sum() >= 50  # many neurons active in both models
    assert distances.max() > 0.9 and distances.min() < 0.5
    assert np.std(distances) > 0.05
    out = interp.run(dataset.examples[:1], minilm_finetuned, dataset, config=config)[0]
    shown = common.chips_dict(out[txray_shift.SHIFTED_NEURONS])
    assert len(shown) == 10 and all(l.startswith("L6 n") and " → " in l for l in shown)
    assert all(d > 0.5 for d in shown.values())
    pattern = BOOT_CHIP.replace("L2", "L6")
    texts = out["shifted_neurons"].tokens
    assert all(re.fullmatch(pattern, t) for t in texts), texts
    lowers = [float(re.fullmatch(pattern, t).group(3)) for t in texts]
    assert lowers == sorted(lowers, reverse=True) and lowers[0] > 0.5
    # The row of ties at 1.0 from a few sentences: none of them leads.
    top = result.rank_shifts(k=10).most
    assert all(min(s.units_a, s.units_b) >= 3 for s in top)
    tokens = out[txray_shift.TOKEN_SALIENCE]
    assert tokens.tokens[0] == "[CLS]" and np.max(tokens.salience) == 1.0


def test_tag_features_from_a_sequence_tags_field(models):
    """Features = a SequenceTags field: every piece of a word is credited to
    that word's tag; [CLS]/[SEP] are left out."""
    spec = dict(SPEC, pos=lit_types.SequenceTags(align="sentence"))
    tag_of = lambda w: "ADJ" if w in ("bad", "good", "great", "awful", "boring", "fun") else "X"
    examples = [dict(ex, pos=[tag_of(w) for w in ex["sentence"].split()]) for ex in EXAMPLES]
    dataset = lit_dataset.Dataset(spec=spec, examples=examples)
    interp = txray_shift.TXRayNeuronShift(models, default_reference="bert_a")
    config = _config(**{txray_shift.FEATURES_KEY: "tags"})
    result = interp.fit(models["bert_b"], dataset, config)
    assert set(result.feature_names) <= {"ADJ", "X"}
    # Independent check of the token → tag mapping for one neuron's counts:
    # total credited positions = all non-special tokens (max1 with positive max).
    total = 0
    for ex in examples:
        out = next(iter(models["bert_b"].predict([ex], activation_layers=[2], gradients=False)))
        acts = out["layer_2/token_activations"][1:-1]
        total += int((acts.max(axis=1) > 0).sum())
    assert int(result.counts_b.sum()) == total
    bad = [dict(ex, pos=["X"]) for ex in examples]
    with pytest.raises(ValueError, match="one tag per whitespace word"):
        interp.fit(models["bert_b"], lit_dataset.Dataset(spec=spec, examples=bad), config)
    with pytest.raises(ValueError, match="needs a SequenceTags field"):
        interp.fit(models["bert_b"], _dataset(), config)


def test_fit_shift_is_the_interpreters_fit(models):
    """Scripts (demos/txray_report.py) call `txray_inputs.fit_shift` with
    `TXRaySettings`; it gives the interpreter's numbers, and layer None is the
    last layer both models have (2 for the tiny models)."""
    interp = txray_shift.TXRayNeuronShift(models)
    config = _config(**{txray_shift.FEATURES_KEY: "words", txray_shift.REPLICATES_KEY: 20})
    via_lit = interp.fit(models["bert_b"], _dataset(), config)
    settings = txray.TXRaySettings(layer=None, features="words", replicates=20)
    direct = txray_inputs.fit_shift(
        models["bert_b"], models["bert_a"], EXAMPLES, settings, names=("bert_a", "bert_b")
    )
    assert direct.feature_names == via_lit.feature_names
    np.testing.assert_array_equal(direct.shared, via_lit.shared)
    np.testing.assert_allclose(direct.distance, via_lit.distance, rtol=1e-6, atol=1e-9)
    assert (direct.label_a, direct.label_b) == ("bert_a", "bert_b")
