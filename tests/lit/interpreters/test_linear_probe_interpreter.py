"""LinearProbeInterpreter: the LIT interpreter around lit_plugins.probing."""

import re

import numpy as np
import pytest
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import types as lit_types

from lit_plugins.lit import specs
from lit_plugins.lit.interpreters import common
from lit_plugins.lit.interpreters import linear_probe as lp
from tests.kit import fake_models, tiny_models
from tests.kit.threads import call_in_threads

LABELS = ["neg", "pos"]
ADJ = {
    "good",
    "bad",
    "great",
    "awful",
    "boring",
    "fun",
    "slow",
    "stunning",
    "terrible",
    "brilliant",
}
SPEC = {
    "sentence": lit_types.TextSegment(),
    "label": lit_types.CategoryLabel(vocab=LABELS),
    "tags": lit_types.SequenceTags(align="tokens"),
    "length": lit_types.Scalar(),
}


def _examples(n=80, seed=0):
    """label = 'pos' iff the word 'great' occurs (a word-presence rule)."""
    rng = np.random.default_rng(seed)
    vocab = [w for w in tiny_models.WORDS if w != "great"]
    out = []
    for i in range(n):
        words = list(rng.choice(vocab, size=int(rng.integers(3, 9))))
        if i % 2 == 0:
            words.insert(int(rng.integers(0, len(words) + 1)), "great")
        if i % 5 == 0:
            words.append("films")  # word pieces: film ##s
        out.append(
            {
                "sentence": " ".join(words),
                "label": "pos" if "great" in words else "neg",
                "tags": ["ADJ" if w in ADJ else "O" for w in words],
                "length": float(len(words)),
            }
        )
    return out


EXAMPLES = _examples()


def _dataset(examples=None, spec=None):
    return lit_dataset.Dataset(
        spec=dict(spec or SPEC), examples=list(EXAMPLES if examples is None else examples)
    )


@pytest.fixture(scope="module")
def bert():
    return tiny_models.classifier("bert", labels=LABELS, batch_size=16)


def _pooled(model, examples, layer, pooling="mean"):
    field = specs.LAYER_ACTIVATIONS_TEMPLATE.format(layer)
    outs = list(model.predict(examples, activation_layers=[layer], gradients=False))
    vecs = []
    for out in outs:
        h = np.asarray(out[field], dtype=np.float64)
        vecs.append(h.mean(0) if pooling == "mean" else h[0])
    return outs, np.stack(vecs)


def test_fit_and_outputs(bert):
    interp = lp.LinearProbeInterpreter(batch_size=16)
    ds = _dataset()
    assert interp.is_compatible(bert, ds)
    state = interp.fit(bert, ds, {})
    assert state.label_field == "label" and state.level == "sentence"
    assert state.layers == [0, 1, 2]
    assert state.num_train + state.num_held_out == len(EXAMPLES)
    assert state.num_held_out == 16
    # Word presence is linearly decodable from mean-pooled embeddings.
    assert state.scores[state.best_layer] >= 0.9
    assert state.best_layer == max(state.layers, key=lambda l: (state.scores[l], -l))

    inputs = EXAMPLES[:4]
    results = interp.run(inputs, bert, ds, config={})
    assert len(results) == 4
    layer = state.best_layer
    probe = state.probe()
    outs, pooled = _pooled(bert, inputs, layer)
    for res, out, x in zip(results, outs, pooled):
        ts = res[lp.TOKEN_SALIENCE]
        assert isinstance(ts, dtypes.TokenSalience)
        assert ts.tokens == out["tokens"]
        assert np.asarray(ts.salience).shape == (len(out["tokens"]),)
        # The pooled vector is the model's own layer average.
        np.testing.assert_allclose(x, out[f"layer_{layer}/avg_emb"], rtol=1e-5, atol=1e-6)
        logits = probe.weight_.astype(np.float64) @ x + probe.bias_
        c = int(np.argmax(logits))
        assert np.sum(ts.salience) == pytest.approx(logits[c] - probe.bias_[c], rel=1e-5, abs=1e-5)
        # Per token: w_c . h_t / T.
        h = np.asarray(out[f"layer_{layer}/token_activations"], np.float64)
        np.testing.assert_allclose(ts.salience, h @ probe.weight_[c] / len(h), rtol=1e-5, atol=1e-6)

        # Labelled chips: the text carries the number (LIT 1.3 renders a
        # FeatureSalience of non-field keys as "key: undefined").
        top = res[lp.TOP_NEURONS]
        assert isinstance(top, dtypes.TokenSalience)
        assert 1 <= len(top.tokens) <= 10
        for text, value in zip(top.tokens, top.salience):
            m = re.fullmatch(r"L(\d+) n(\d+) = ([+-]\S+)", text)
            assert m and int(m.group(1)) == layer, text
            assert value == pytest.approx(float(probe.weight_[c, int(m.group(2))]))
            assert float(m.group(3)) == pytest.approx(value, rel=1e-2)  # 3 digits shown
        top_dict = common.chips_dict(top)
        assert list(top_dict) == [t.split(" = ")[0] for t in top.tokens]
        mags = [abs(v) for v in top_dict.values()]
        assert mags == sorted(mags, reverse=True)

        sweep = res[lp.LAYER_SWEEP]
        assert isinstance(sweep, dtypes.TokenSalience)
        parsed = {
            int(re.fullmatch(r"layer (\d+)", k).group(1)): v
            for k, v in common.chips_dict(sweep).items()
        }
        assert parsed == pytest.approx(state.scores)
        assert list(parsed) == state.layers  # in layer order
        for text, layer_i in zip(sweep.tokens, state.layers):
            assert text == f"layer {layer_i} = {state.scores[layer_i]:.3f}"

    meta = interp.meta_spec()
    assert meta[lp.TOKEN_SALIENCE].signed and not meta[lp.TOKEN_SALIENCE].autorun
    assert all(
        isinstance(meta[k], lit_types.TokenSalience) for k in (lp.TOP_NEURONS, lp.LAYER_SWEEP)
    )
    assert all(not f.required for f in interp.config_spec().values())


def test_single_layer_cls_and_top_shown(bert):
    interp = lp.LinearProbeInterpreter(batch_size=16)
    ds = _dataset()
    cfg = {lp.LAYER_KEY: "1", lp.POOLING_KEY: "cls", lp.TOP_SHOWN_KEY: 3, lp.L1_KEY: 0.0}
    (res,) = interp.run(EXAMPLES[:1], bert, ds, config=cfg)
    state = interp.fit(bert, ds, cfg)
    assert state.layers == [1] and state.best_layer == 1
    assert list(common.chips_dict(res[lp.LAYER_SWEEP])) == ["layer 1"]
    assert len(common.chips_dict(res[lp.TOP_NEURONS])) == 3
    _, pooled = _pooled(bert, EXAMPLES[:1], 1, "cls")
    probe = state.probe()
    logits = probe.weight_ @ pooled[0] + probe.bias_
    c = int(np.argmax(logits))
    sal = np.asarray(res[lp.TOKEN_SALIENCE].salience)
    assert np.all(sal[1:] == 0)
    assert sal[0] == pytest.approx(logits[c] - probe.bias_[c], rel=1e-5)


def test_token_level_and_control(bert):
    interp = lp.LinearProbeInterpreter(batch_size=16)
    ds = _dataset()
    cfg = {lp.LABEL_FIELD_KEY: "tags", lp.POOLING_KEY: "first", lp.CONTROL_KEY: True}
    results = interp.run(EXAMPLES[:5], bert, ds, config=cfg)
    state = interp.fit(bert, ds, cfg)
    assert state.level == "token"
    assert state.num_items == sum(len(ex["tags"]) for ex in EXAMPLES)
    assert set(state.selectivity) == {0, 1, 2}
    for l in state.layers:
        assert state.selectivity[l] == pytest.approx(state.scores[l] - state.control_scores[l])
    sweep = common.chips_dict(results[0][lp.LAYER_SWEEP])
    assert sweep["layer 0 selectivity"] == pytest.approx(state.selectivity[0])
    # Per word, the scores sum to the word's logit for its predicted tag
    # minus bias; 'first' puts each word's score on its first piece only.
    probe = state.probe()
    layer = state.best_layer
    ex = EXAMPLES[0]  # ends in 'films' = film ##s
    (out,) = list(bert.predict([ex], activation_layers=[layer], gradients=False))
    toks = out["tokens"]
    sal = np.asarray(results[0][lp.TOKEN_SALIENCE].salience)
    assert toks[-3:] == ["film", "##s", "[SEP]"]
    assert sal[0] == 0 and sal[-1] == 0 and sal[-2] == 0
    h = np.asarray(out[f"layer_{layer}/token_activations"], np.float64)
    first = h[1:-1][[i for i, t in enumerate(toks[1:-1]) if not t.startswith("##")]]
    logits = first @ probe.weight_.T.astype(np.float64) + probe.bias_
    c = logits.argmax(1)
    want = logits[np.arange(len(c)), c] - probe.bias_[c]
    got = [s for s, t in zip(sal[1:-1], toks[1:-1]) if not t.startswith("##")]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="first"):
        interp.fit(bert, ds, {lp.LABEL_FIELD_KEY: "tags", lp.POOLING_KEY: "cls"})


def test_regression_label(bert):
    interp = lp.LinearProbeInterpreter(batch_size=16)
    state = interp.fit(bert, _dataset(), {lp.LABEL_FIELD_KEY: "length", lp.CONTROL_KEY: True})
    assert state.task_type == "regression" and state.metric == "pearson"
    assert state.scores[state.best_layer] > 0.5
    (res,) = interp.run(
        EXAMPLES[:1], bert, _dataset(), config={lp.LABEL_FIELD_KEY: "length", lp.CONTROL_KEY: True}
    )
    probe = state.probe()
    _, pooled = _pooled(bert, EXAMPLES[:1], state.best_layer)
    assert np.sum(res[lp.TOKEN_SALIENCE].salience) == pytest.approx(
        float(probe.weight_[0] @ pooled[0]), rel=1e-5, abs=1e-5
    )


def test_caching_and_refits(bert):
    interp = lp.LinearProbeInterpreter(batch_size=16)
    ds = _dataset()
    first = interp.fit(bert, ds, {})
    interp.run(EXAMPLES[:2], bert, ds, config={})
    assert interp.fit_count == 1
    # Same contents in a new Dataset object, other display options: no refit.
    interp.run(EXAMPLES[:2], bert, _dataset(), config={lp.TOP_SHOWN_KEY: 3, lp.MASS_KEY: 90})
    assert interp.fit_count == 1
    assert interp.fit(bert, _dataset(), {}) is first
    bigger = _dataset(
        [
            *EXAMPLES,
            {"sentence": "a great film", "label": "pos", "tags": ["O", "ADJ", "O"], "length": 3.0},
        ]
    )
    interp.fit(bert, bigger, {})
    assert interp.fit_count == 2
    interp.fit(bert, ds, {lp.L1_KEY: 1e-2})
    assert interp.fit_count == 3
    interp.fit(bert, ds, {lp.POOLING_KEY: "cls"})
    assert interp.fit_count == 4
    interp.fit(bert, ds, {lp.CONTROL_KEY: True})
    assert interp.fit_count == 5


def test_concurrent_requests_fit_once(bert):
    interp = lp.LinearProbeInterpreter(batch_size=16)
    ds = _dataset()
    results, errors = call_in_threads(lambda: interp.fit(bert, ds, {}))
    assert not errors
    assert interp.fit_count == 1
    assert all(r is results[0] for r in results)


def test_deterministic(bert):
    a = lp.LinearProbeInterpreter(batch_size=16)
    b = lp.LinearProbeInterpreter(batch_size=7)
    ra = a.run(EXAMPLES[:3], bert, _dataset(), config={})
    rb = b.run(EXAMPLES[:3], bert, _dataset(), config={})
    sa, sb = a.fit(bert, _dataset()), b.fit(bert, _dataset())
    assert sa.scores == sb.scores and sa.best_layer == sb.best_layer
    np.testing.assert_allclose(sa.probe().weight_, sb.probe().weight_, rtol=1e-4, atol=1e-6)
    for x, y in zip(ra, rb):
        assert x[lp.TOP_NEURONS].tokens == y[lp.TOP_NEURONS].tokens
        np.testing.assert_allclose(
            x[lp.TOKEN_SALIENCE].salience, y[lp.TOKEN_SALIENCE].salience, rtol=1e-4, atol=1e-5
        )


@pytest.mark.parametrize(
    "examples, spec, config, match",
    [
        ([], None, {}, "non-empty"),
        ([dict(ex, label="pos") for ex in EXAMPLES], None, {}, "one class"),
        (
            [dict(ex, label=None) if i == 3 else ex for i, ex in enumerate(EXAMPLES)],
            None,
            {},
            "Example 3 has no value",
        ),
        (
            [dict(ex, length="long") if i == 2 else ex for i, ex in enumerate(EXAMPLES)],
            None,
            {lp.LABEL_FIELD_KEY: "length"},
            "must be numeric",
        ),
        (EXAMPLES, {"sentence": lit_types.TextSegment()}, {}, "no label field"),
        (EXAMPLES, None, {lp.LABEL_FIELD_KEY: "nope"}, "label"),
        (EXAMPLES, None, {lp.LAYER_KEY: "7"}, "sweep"),
        (EXAMPLES, None, {lp.LAYER_KEY: "deep"}, "sweep"),
        (EXAMPLES, None, {lp.POOLING_KEY: "first"}, "mean"),
        (EXAMPLES, None, {lp.L1_KEY: -1}, "L1"),
        (EXAMPLES, None, {lp.MASS_KEY: 150}, "Weight mass"),
        (EXAMPLES, None, {lp.CONTROL_KEY: "maybe"}, "Control task"),
        (EXAMPLES, None, {lp.TOP_SHOWN_KEY: 0}, "Top neurons shown"),
        (
            [dict(ex, tags=ex["tags"][:-1]) if i == 1 else ex for i, ex in enumerate(EXAMPLES)],
            None,
            {lp.LABEL_FIELD_KEY: "tags"},
            "Example 1",
        ),
    ],
)
def test_bad_inputs(bert, examples, spec, config, match):
    interp = lp.LinearProbeInterpreter(batch_size=16)
    with pytest.raises(ValueError, match=match):
        interp.run(EXAMPLES[:1], bert, _dataset(examples, spec), config=config)
    assert interp.fit_count == 0


def test_is_compatible(bert):
    interp = lp.LinearProbeInterpreter()
    assert interp.is_compatible(bert, _dataset())
    assert not interp.is_compatible(fake_models.PredictionsOnly(LABELS), _dataset())
    assert not interp.is_compatible(bert, _dataset(spec={"sentence": lit_types.TextSegment()}))
    tags_only = {
        "sentence": lit_types.TextSegment(),
        "tags": lit_types.SequenceTags(align="tokens"),
    }
    assert interp.is_compatible(bert, _dataset(spec=tags_only))


def test_minilm_sweep_prefers_late_layer(minilm_finetuned, dev_examples):
    examples = list(dev_examples)  # all 160: a held-out part of 32
    ds = lit_dataset.Dataset(
        spec={
            "sentence": lit_types.TextSegment(),
            "label": lit_types.CategoryLabel(vocab=["negative", "positive"]),
        },
        examples=examples,
    )
    interp = lp.LinearProbeInterpreter(batch_size=32)
    state = interp.fit(minilm_finetuned, ds, {})
    assert state.layers == list(range(7))
    # The claim: a late layer ranks above the embedding layer. (Which
    # late layer wins is not stable on 32 held-out sentences.)
    assert max(state.scores[l] for l in range(4, 7)) > state.scores[0]
    assert state.best_layer >= 1
    (res,) = interp.run(examples[:1], minilm_finetuned, ds, config={})
    assert set(common.chips_dict(res[lp.LAYER_SWEEP])) == {f"layer {i}" for i in range(7)}
