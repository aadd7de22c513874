"""HFSequenceClassifier: specs, padding, gradients (finite differences), bad
inputs, regression heads, text pairs, activations on request."""

import logging

import numpy as np
import pytest
import torch
from lit_nlp.api import types as lit_types

from lit_plugins.lit import specs
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import tiny_models

SENTENCES = [
    "the film was not bad at all",
    "boring",
    "slow start but a stunning finale really",
    "i hated it , a terrible mess",
]


def _examples(texts=SENTENCES):
    return [{"sentence": t} for t in texts]


def test_every_declared_field_is_returned_with_aligned_shapes(tiny_classifier):
    clf = tiny_classifier
    outputs = list(clf.predict(_examples()))
    spec = clf.output_spec()
    required = [k for k, v in spec.items() if v.required]
    for out in outputs:
        assert sorted(required) == sorted(out)  # optional activations absent
        n = len(out["tokens"])
        assert out["token_embs"].shape == (n, clf.hidden_size)
        assert out["token_grads"].shape == (n, clf.hidden_size)
        assert out["probas"].shape == (2,)
        np.testing.assert_allclose(out["probas"].sum(), 1.0, rtol=1e-6)
        assert out["grad_class"] == clf.labels[int(np.argmax(out["probas"]))]
        for i in range(clf.num_layers + 1):
            assert out[f"layer_{i}/avg_emb"].shape == (clf.hidden_size,)
    # LIT's own gradient_maps would accept these fields.
    assert specs.find_gradient_fields(spec, clf.input_spec(), need_embeddings_input=True)


def test_same_example_alone_or_padded_in_a_batch(tiny_classifier):
    batch = list(tiny_classifier.predict(_examples()))
    for ex, in_batch in zip(_examples(), batch):
        alone = next(iter(tiny_classifier.predict([ex])))
        assert alone["tokens"] == in_batch["tokens"]
        for key, value in alone.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_allclose(value, in_batch[key], atol=1e-5, err_msg=key)


def _prob(clf, ex, embs, target):
    out = next(iter(clf.predict([dict(ex, token_embs=embs, grad_class=target)])))
    return float(out["probas"][clf.labels.index(target)])


@pytest.mark.parametrize("arch", tiny_classifier_archs := ("bert", "roberta"))
@pytest.mark.parametrize("target", ["neg", "pos"])
def test_gradients_match_finite_differences(arch, target):
    model, tok = tiny_models.make(arch)
    clf = HFSequenceClassifier(model=model.double(), tokenizer=tok, labels=["neg", "pos"])
    rng = np.random.default_rng(0)
    ex = {"sentence": "the film was not bad at all", "grad_class": target}
    out = next(iter(clf.predict([ex])))
    assert out["grad_class"] == target  # the target field is honoured
    embs = out["token_embs"].astype(np.float64)
    for _ in range(3):
        v = rng.normal(size=embs.shape)
        h = 1e-4
        fd = (_prob(clf, ex, embs + h * v, target) - _prob(clf, ex, embs - h * v, target)) / (2 * h)
        analytic = float(np.sum(out["token_grads"] * v))
        assert abs(fd - analytic) <= 1e-2 * abs(fd) + 1e-9, (fd, analytic)


def test_target_class_changes_the_gradient(tiny_classifier):
    ex = _examples()[0]
    neg = next(iter(tiny_classifier.predict([dict(ex, grad_class="neg")])))
    pos = next(iter(tiny_classifier.predict([dict(ex, grad_class="pos")])))
    # p_neg = 1 - p_pos, so the two gradients are exact negatives.
    np.testing.assert_allclose(neg["token_grads"], -pos["token_grads"], rtol=1e-4, atol=1e-6)


def test_output_embeddings_fed_back_reproduce_probabilities(tiny_classifier):
    outs = list(tiny_classifier.predict(_examples()))
    again = list(
        tiny_classifier.predict(
            [dict(ex, token_embs=o["token_embs"]) for ex, o in zip(_examples(), outs)]
        )
    )
    for a, b in zip(outs, again):
        np.testing.assert_allclose(a["probas"], b["probas"], atol=1e-6)


def test_regression_head_score_and_gradient():
    model, tok = tiny_models.make("bert", num_labels=1)
    clf = HFSequenceClassifier(model=model.double(), tokenizer=tok)
    spec = clf.output_spec()
    assert isinstance(spec["score"], lit_types.RegressionScore)
    assert "probas" not in spec and "grad_class" not in clf.input_spec()
    ex = {"sentence": "a great film"}
    out = next(iter(clf.predict([ex])))
    with torch.no_grad():
        enc = tok(["a great film"], return_tensors="pt")
        direct = float(model(**enc).logits[0, 0])
    assert out["score"] == pytest.approx(direct, abs=1e-9)
    v = np.random.default_rng(1).normal(size=out["token_embs"].shape)
    h = 1e-4
    score = lambda e: next(iter(clf.predict([dict(ex, token_embs=e)])))["score"]
    fd = (score(out["token_embs"] + h * v) - score(out["token_embs"] - h * v)) / (2 * h)
    assert fd == pytest.approx(float(np.sum(out["token_grads"] * v)), rel=1e-2)


def test_text_pairs_use_both_segments():
    model, tok = tiny_models.make("bert")
    clf = HFSequenceClassifier(
        model=model, tokenizer=tok, labels=["a", "b"], text_fields=("premise", "hypothesis")
    )
    assert set(clf.input_spec()) >= {"premise", "hypothesis"}
    out = next(iter(clf.predict([{"premise": "the plot", "hypothesis": "a mess"}])))
    assert out["tokens"] == ["[CLS]", "the", "plot", "[SEP]", "a", "mess", "[SEP]"]
    with torch.no_grad():
        enc = tok(["the plot"], ["a mess"], return_tensors="pt")
        direct = torch.softmax(model(**enc).logits, -1)[0].numpy()
    np.testing.assert_allclose(out["probas"], direct, atol=1e-6)


def test_activations_only_on_request(tiny_classifier):
    clf = tiny_classifier
    fields = specs.find_layer_activation_fields(clf.output_spec())
    assert list(fields) == list(range(clf.num_layers + 1))
    plain = next(iter(clf.predict(_examples())))
    assert not any(f in plain for f in fields.values())
    out = next(
        iter(clf.predict(_examples(), activation_layers=[0, clf.num_layers], gradients=False))
    )
    assert "token_grads" not in out
    for layer in (0, clf.num_layers):
        acts = out[fields[layer]]
        assert acts.shape == (len(out["tokens"]), clf.hidden_size)
        np.testing.assert_allclose(acts.mean(0), out[f"layer_{layer}/avg_emb"], atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        list(clf.predict(_examples(), activation_layers=[99]))


def test_bad_and_unusual_inputs(tiny_classifier, caplog):
    clf = tiny_classifier
    empty, blank = list(clf.predict([{"sentence": ""}, {"sentence": "   "}]))
    for out in (empty, blank):  # documented: only the special tokens remain
        assert len(out["tokens"]) == 2
        assert np.all(np.isfinite(out["probas"]))
    odd = next(iter(clf.predict([{"sentence": "très bien 🎬 映画 \x07 ok"}])))
    assert np.all(np.isfinite(odd["token_grads"]))
    with caplog.at_level(logging.WARNING):
        long = next(iter(clf.predict([{"sentence": "boring " * 5000}])))
    assert len(long["tokens"]) == clf.max_length
    assert "truncated" in caplog.text
    with pytest.raises(ValueError, match="not a class of this model"):
        list(clf.predict([{"sentence": "fun", "grad_class": "maybe"}]))
    with pytest.raises(ValueError, match="missing the text field"):
        list(clf.predict([{"text": "fun"}]))
    out = next(iter(clf.predict([{"sentence": "fun"}])))
    bad = out["token_embs"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        list(clf.predict([{"sentence": "fun", "token_embs": bad}]))
    with pytest.raises(ValueError, match="does not match"):
        list(clf.predict([{"sentence": "fun", "token_embs": bad[:1]}]))


def test_unknown_gold_label_is_ignored_by_predict(tiny_classifier):
    out = list(tiny_classifier.predict([{"sentence": "fun", "label": "zzz"}]))
    assert len(out) == 1


def test_constructor_errors():
    with pytest.raises(ValueError, match="model_name_or_path"):
        HFSequenceClassifier()
    model, tok = tiny_models.make("bert")
    with pytest.raises(ValueError, match="labels"):
        HFSequenceClassifier(model=model, tokenizer=tok, labels=["a", "b", "c"])
    assert set(HFSequenceClassifier.init_spec()) == {
        "model_name_or_path",
        "batch_size",
        "max_length",
        "threshold",
    }


def test_loads_a_saved_checkpoint_by_path(tmp_path):
    model, tok = tiny_models.make("bert")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    clf = HFSequenceClassifier(str(tmp_path), labels=["neg", "pos"])
    ref = HFSequenceClassifier(model=model, tokenizer=tok, labels=["neg", "pos"])
    a = list(clf.predict(_examples()))
    b = list(ref.predict(_examples()))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x["probas"], y["probas"], atol=1e-6)


# ------------------------------------------------ CLS gradients (for TCAV)
def _head(model, arch):
    """The classification head as a function of the last layer's first-token
    state, written from the HF model's modules (independent of the wrapper)."""
    if arch == "bert":
        return lambda c: model.classifier(model.bert.pooler.activation(model.bert.pooler.dense(c)))
    if arch == "distilbert":
        return lambda c: model.classifier(torch.relu(model.pre_classifier(c)))
    return lambda c: model.classifier(c[:, None, :])  # RoBERTa reads features[:, 0]


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta"])
def test_cls_gradients_match_finite_differences(arch):
    model, tok = tiny_models.make(arch)
    model = model.double()
    clf = HFSequenceClassifier(model=model, tokenizer=tok, labels=["neg", "pos"])
    spec = clf.output_spec()
    grad_spec = spec["cls_grad"]
    assert isinstance(grad_spec, lit_types.Gradients)
    assert (grad_spec.align, grad_spec.grad_for, grad_spec.grad_target_field_key) == (
        "probas",
        "cls_emb",
        "grad_class",
    )
    head = _head(model, arch)
    rng = np.random.default_rng(0)
    for target in ("neg", "pos"):
        ex = {"sentence": "slow start but a stunning finale really", "grad_class": target}
        out = next(iter(clf.predict([ex])))
        k = clf.labels.index(target)
        cls = torch.from_numpy(out["cls_emb"].astype(np.float64))[None]

        def prob(c):
            with torch.no_grad():
                return float(torch.softmax(head(c), -1)[0, k])

        # cls_emb is what the head reads: it reproduces the probabilities.
        assert prob(cls) == pytest.approx(float(out["probas"][k]), abs=1e-9)
        for _ in range(3):
            v = torch.from_numpy(rng.normal(size=cls.shape))
            h = 1e-5
            fd = (prob(cls + h * v) - prob(cls - h * v)) / (2 * h)
            analytic = float(np.dot(out["cls_grad"], v[0].numpy()))
            assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-10)


def test_cls_gradient_targets_are_opposite_and_batched_like_alone(tiny_classifier):
    ex = _examples()[2]
    neg = next(iter(tiny_classifier.predict([dict(ex, grad_class="neg")])))
    pos = next(iter(tiny_classifier.predict([dict(ex, grad_class="pos")])))
    np.testing.assert_allclose(neg["cls_grad"], -pos["cls_grad"], rtol=1e-4, atol=1e-7)
    assert np.abs(pos["cls_grad"]).sum() > 0
    batch = list(tiny_classifier.predict(_examples()))
    assert batch[2]["cls_grad"].shape == (tiny_classifier.model.config.hidden_size,)
    alone = next(iter(tiny_classifier.predict([ex])))
    np.testing.assert_allclose(batch[2]["cls_grad"], alone["cls_grad"], atol=1e-6)


# ------------------------------------------------ tokens input (for HotFlip)
def test_tokens_input_round_trips_and_mixes_with_text_in_a_batch(tiny_classifier):
    clf = tiny_classifier
    spec = clf.input_spec()["tokens"]
    assert isinstance(spec, lit_types.Tokens) and not spec.required
    assert spec.is_compatible(clf.output_spec()["tokens"])  # what HotFlip checks
    plain = list(clf.predict(_examples()))
    given = [{"sentence": " ".join(o["tokens"]), "tokens": o["tokens"]} for o in plain[:2]]
    given.append({"sentence": "", "tokens": plain[2]["tokens"]})  # empty text: tokens
    mixed = list(clf.predict([*given, _examples()[3]]))
    for a, b in zip(plain, mixed):
        assert a["tokens"] == b["tokens"]
        for key in ("probas", "token_grads", "cls_grad", "cls_emb"):
            np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)


def test_given_tokens_are_what_the_model_sees(tiny_classifier):
    clf = tiny_classifier
    out = next(iter(clf.predict([{"sentence": "the film was not bad at all"}])))
    vocab, _ = clf.get_embedding_table()
    flipped = list(out["tokens"])
    flipped[3] = vocab[clf.tokenizer.convert_tokens_to_ids(out["tokens"][1])]  # "was" -> "the"
    res = next(iter(clf.predict([{"sentence": " ".join(flipped), "tokens": flipped}])))
    assert res["tokens"] == flipped
    ids = torch.tensor([clf.tokenizer.convert_tokens_to_ids(flipped)])
    with torch.no_grad():
        direct = torch.softmax(clf.model(input_ids=ids).logits, -1)[0].numpy()
    np.testing.assert_allclose(res["probas"], direct, atol=1e-6)
    assert not np.allclose(res["probas"], out["probas"], atol=1e-7)


def test_stale_unknown_and_long_tokens(tiny_classifier, caplog):
    clf = tiny_classifier
    out = next(iter(clf.predict([{"sentence": "boring"}])))
    # The text was edited after the tokens were made: the text wins.
    with caplog.at_level(logging.WARNING):
        edited = next(iter(clf.predict([{"sentence": "a great film", "tokens": out["tokens"]}])))
    assert edited["tokens"] == next(iter(clf.predict([{"sentence": "a great film"}])))["tokens"]
    assert "tokenised" in caplog.text
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary"):
        list(clf.predict([{"sentence": "", "tokens": [out["tokens"][0], "zzzqqq"]}]))
    with pytest.raises(ValueError, match="list of word-piece strings"):
        list(clf.predict([{"sentence": "", "tokens": "boring"}]))
    many = [out["tokens"][0], *[out["tokens"][1]] * 500, out["tokens"][-1]]
    with caplog.at_level(logging.WARNING):
        long = next(iter(clf.predict([{"sentence": "", "tokens": many}])))
    assert len(long["tokens"]) == clf.max_length
    assert long["tokens"][-1] == out["tokens"][-1]  # the final special token is kept


def test_tokens_for_a_text_pair_get_the_tokenizers_segment_ids():
    model, tok = tiny_models.make("bert")
    clf = HFSequenceClassifier(
        model=model, tokenizer=tok, labels=["a", "b"], text_fields=("premise", "hypothesis")
    )
    ex = {"premise": "the plot", "hypothesis": "a mess"}
    out = next(iter(clf.predict([ex])))
    again = next(
        iter(clf.predict([{"premise": "", "hypothesis": "a mess", "tokens": out["tokens"]}]))
    )
    np.testing.assert_allclose(again["probas"], out["probas"], atol=1e-6)
    assert clf.encode([dict(ex, premise="", tokens=out["tokens"])])["enc"][
        "token_type_ids"
    ].tolist() == [tok(["the plot"], ["a mess"])["token_type_ids"][0]]


def test_embedding_table_is_the_vocabulary_and_input_embeddings(tiny_classifier):
    from lit_nlp.components import hotflip

    clf = tiny_classifier
    vocab, table = clf.get_embedding_table()
    assert isinstance(vocab, list) and isinstance(table, np.ndarray)
    assert table.dtype == np.float32 and table.shape == (len(vocab), clf.hidden_size)
    weight = clf.model.get_input_embeddings().weight.detach().numpy()
    out = next(iter(clf.predict([{"sentence": "the film was not bad"}])))
    for i, piece in enumerate(out["tokens"]):
        idx = vocab.index(piece)
        assert clf.tokenizer.convert_tokens_to_ids(piece) == idx
        np.testing.assert_array_equal(table[idx], weight[idx])
        np.testing.assert_allclose(out["token_embs"][i], table[idx], atol=1e-6)
    assert hotflip.HotFlip().is_compatible(clf, None)
