"""HFTokenTagger (token classification, LIT-free): first-piece alignment against the
tokenizer's word_ids(), agreement with HF's own forward (alone, in padded batches, either
tokenizer padding side) and with HF's pipeline (aggregation_strategy="first"), gradients
against finite differences, integrated-gradients completeness, bad input, head kinds."""

import numpy as np
import pytest
import torch
import transformers

from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.data import conll
from lit_plugins.hf import heads, kinds
from lit_plugins.hf.token_classifier import HFTokenTagger, entity_spans
from tests.kit import tiny_taggers

EXAMPLES = conll.load_bundled_ner().examples[:12]


def _tagger(arch, padding_side="right", **kw):
    model, tok = tiny_taggers.make(arch)
    tok.padding_side = padding_side
    return HFTokenTagger(model=model, tokenizer=tok, batch_size=5, **kw)


def _hf_word_probs(tagger, text):
    """Tag probabilities at each word's first piece from HF's own forward on the
    unpadded text, with the first pieces read from the tokenizer's word_ids()."""
    words = text.split()
    enc = tagger.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        logits = tagger.model(**enc).logits[0]
    ids = enc.word_ids(0)
    first = [ids.index(k) for k in range(len(words))]
    return torch.softmax(logits.double(), -1)[first].numpy(), first


@pytest.mark.parametrize("arch", tiny_taggers.ARCHS)
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_word_probabilities_equal_hf_alone_and_in_batches(arch, padding_side):
    tagger = _tagger(arch, padding_side)
    batched = tagger.predict_words(EXAMPLES)
    worst_batch = worst_hf = 0.0
    for ex, out in zip(EXAMPLES, batched):
        alone = tagger.predict_words([ex])[0]
        expected, _ = _hf_word_probs(tagger, ex["sentence"])
        assert out["words"] == ex["sentence"].split()
        assert out["tags"] == [tagger.labels[k] for k in expected.argmax(-1)]
        worst_batch = max(worst_batch, float(np.abs(out["probs"] - alone["probs"]).max()))
        worst_hf = max(worst_hf, float(np.abs(out["probs"] - expected).max()))
    assert worst_batch <= 1e-5, worst_batch
    assert worst_hf <= 1e-5, worst_hf


@pytest.mark.parametrize("arch", tiny_taggers.ARCHS)
def test_first_piece_alignment_matches_word_ids(arch):
    tagger = _tagger(arch)
    batch = tagger.encode(EXAMPLES)
    multi_piece = 0
    for i, ex in enumerate(EXAMPLES):
        words = ex["sentence"].split()
        enc = tagger.tokenizer(words, is_split_into_words=True)
        ids = enc.word_ids()
        assert batch["first"][i] == [ids.index(k) for k in range(len(words))]
        assert batch["word_ids"][i] == ids
        assert batch["tokens"][i] == tagger.tokenizer.convert_ids_to_tokens(enc["input_ids"])
        multi_piece += sum(ids.count(k) > 1 for k in range(len(words)))
    assert multi_piece > 20  # the alignment is exercised on words of several pieces


def test_entities_equal_hf_pipeline_first_aggregation():
    """HF's pipeline (aggregation_strategy="first") on the raw text: same entity groups,
    character spans and scores (mean of the words' tag probabilities)."""
    tagger = _tagger("bert")
    pipe = transformers.pipeline(
        "token-classification",
        model=tagger.model,
        tokenizer=tagger.tokenizer,
        aggregation_strategy="first",
        device="cpu",
    )
    compared = 0
    for ex in EXAMPLES:
        ours = tagger.predict_words([ex])[0]["entities"]
        theirs = pipe(ex["sentence"])
        assert [(e["label"], e["start"], e["end"]) for e in ours] == [
            (e["entity_group"], e["start"], e["end"]) for e in theirs
        ]
        for a, b in zip(ours, theirs):
            assert abs(a["score"] - float(b["score"])) <= 1e-5
        compared += len(ours)
    assert compared > 5


def _f_direct(model, enc, embs, pos, tag):
    """p(tag | word) from HF's forward on given input embeddings (float64 model)."""
    other = {k: v for k, v in enc.items() if k != "input_ids"}
    with torch.no_grad():
        logits = model(inputs_embeds=embs, **other).logits[0, pos]
    return float(torch.softmax(logits, -1)[tag])


@pytest.mark.parametrize("arch", tiny_taggers.ARCHS)
def test_gradients_match_finite_differences(arch):
    model, tok = tiny_taggers.make(arch)
    tagger = HFTokenTagger(model=model.double(), tokenizer=tok)
    ex = EXAMPLES[0]
    word, tag = 3, tagger.labels.index("B-ORG")
    out = tagger.gradient_x_input([ex], [(word, "B-ORG")])[0]
    assert out["target"] == (word, tag)
    batch = tagger.encode([ex])
    out = tagger.forward(batch, [(word, tag)])
    x, grad = batch["embs"], out["grads"]
    pos = batch["first"][0][word]
    rng = np.random.default_rng(0)
    h = 1e-5
    for _ in range(3):
        v = torch.from_numpy(rng.normal(size=tuple(x.shape)))
        fd = (
            _f_direct(tagger.model, batch["enc"], x + h * v, pos, tag)
            - _f_direct(tagger.model, batch["enc"], x - h * v, pos, tag)
        ) / (2 * h)
        analytic = float((grad * v).sum())
        assert abs(fd - analytic) <= 1e-4 * abs(fd) + 1e-9, (fd, analytic)
    # gradient x input is the per-piece dot product of that gradient with the input.
    gxi = tagger.gradient_x_input([ex], [(word, "B-ORG")])[0]["salience"]
    np.testing.assert_allclose(gxi, (grad * x).sum(-1)[0].numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("arch", tiny_taggers.ARCHS)
def test_integrated_gradients_completeness_within_one_percent_at_defaults(arch):
    tagger = _tagger(arch)
    examples = EXAMPLES[:6]
    found = tagger.integrated_gradients(examples)  # default targets and IG settings
    errors = []
    for ex, r in zip(examples, found):
        res = r["result"]
        word, tag = r["target"]
        predicted = tagger.predict_words([ex])[0]
        assert tagger.labels[tag] == predicted["tags"][word]  # default: the predicted tag
        # ΔF from HF's own forward at the input and at the all-zero baseline.
        enc = tagger.tokenizer(
            ex["sentence"].split(), is_split_into_words=True, return_tensors="pt"
        )
        x = tagger.model.get_input_embeddings()(enc["input_ids"]).detach()
        pos = r["first"][word]
        delta = _f_direct(tagger.model, enc, x, pos, tag) - _f_direct(
            tagger.model, enc, torch.zeros_like(x), pos, tag
        )
        assert abs(res.delta_f - delta) <= 1e-5
        err = abs(float(res.attributions.sum()) - delta) / abs(delta)
        errors.append(err)
        assert res.attributions.shape == (len(r["tokens"]),)
    assert max(errors) <= 0.01, errors


def test_ig_with_a_chosen_word_and_tag_and_a_pad_baseline():
    tagger = _tagger("bert")
    ex = EXAMPLES[1]
    options = ig_lib.IGOptions(baseline="pad", keep_special=True)
    r = tagger.integrated_gradients([ex], [("Vienna", "I-LOC")], options)[0]
    assert r["target"] == (ex["sentence"].split().index("Vienna"), tagger.labels.index("I-LOC"))
    assert r["result"].completeness_error <= 0.01
    # special tokens keep their embedding in the baseline: no attribution.
    special = [k for k, t in enumerate(r["tokens"]) if t in ("[CLS]", "[SEP]")]
    assert np.abs(r["result"].attributions[special]).max() <= 1e-7


def test_default_target_is_the_first_entity_word():
    tagger = _tagger("bert")
    ex = EXAMPLES[0]
    tags = tagger.predict_words([ex])[0]["tags"]
    first = next(k for k, t in enumerate(tags) if t != "O")
    out = tagger.gradient_x_input([ex])[0]
    assert out["target"] == (first, tagger.labels.index(tags[first]))


@pytest.mark.parametrize(
    "example, target, message",
    [
        ({"sentence": "   "}, None, "empty"),
        ({"sentence": "Maria works"}, None, None),  # fine
        ({"sentence": "Maria works", "tags": ["B-PER"]}, None, "has 1 tags but the text has 2"),
        ({"sentence": "Maria works", "tags": ["B-PER", "B-FOO"]}, None, "does not know"),
        ({"sentence": "Maria works", "tags": "B-PER O"}, None, "must be a list"),
        ({"sentence": "Maria works"}, (5, None), "out of range"),
        ({"sentence": "Maria works"}, ("Lopez", None), "neither a word index"),
        ({"sentence": "Maria works"}, (0, "B-FOO"), "not one of the model's tags"),
        ({"sentence": " ".join(["Madrid"] * 20)}, None, "at most 64"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(example, target, message):
    tagger = _tagger("bert", max_length=64)
    call = lambda: tagger.gradient_x_input([example], None if target is None else [target])
    if message is None:
        assert call()[0]["tokens"][0] == "[CLS]"
        assert tagger.predict_words([dict(example, tags=[])])  # an empty list: no gold
        return
    with pytest.raises(ValueError, match=message):
        call()


def test_head_kinds_and_refusals(tmp_path):
    model, tok = tiny_taggers.make("bert")
    assert kinds.model_kind(model) == kinds.TOKEN
    assert any("token classification" in s for s in heads.SUPPORTED)
    model.save_pretrained(tmp_path / "ner")
    tok.save_pretrained(tmp_path / "ner")
    assert kinds.checkpoint_kind(str(tmp_path / "ner")) == kinds.TOKEN
    loaded = HFTokenTagger(str(tmp_path / "ner"))
    ex = EXAMPLES[0]
    np.testing.assert_allclose(
        loaded.predict_words([ex])[0]["probs"],
        HFTokenTagger(model=model, tokenizer=tok).predict_words([ex])[0]["probs"],
        atol=1e-6,
    )
    qa = transformers.BertForQuestionAnswering(model.config)
    with pytest.raises(ValueError, match=r"BertForQuestionAnswering.*token classification"):
        kinds.model_kind(qa)
    qa.save_pretrained(tmp_path / "qa")
    with pytest.raises(ValueError, match=r"BertForQuestionAnswering head.*supported: .*token"):
        kinds.checkpoint_kind(str(tmp_path / "qa"))
    with pytest.raises(ValueError, match="not a token classifier"):
        HFTokenTagger(str(tmp_path / "qa"))
    with pytest.raises(ValueError, match="not a token classifier"):
        HFTokenTagger(model=qa, tokenizer=tok)
    # A causal-LM checkpoint is refused by path; a masked-LM one (how pre-trained
    # encoders ship) is a sequence classifier with a new head, as before.
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2))
    gpt2.save_pretrained(tmp_path / "lm")
    with pytest.raises(ValueError, match="GPT2LMHeadModel head, which is not supported"):
        kinds.checkpoint_kind(str(tmp_path / "lm"))
    transformers.BertForMaskedLM(model.config).save_pretrained(tmp_path / "mlm")
    assert kinds.checkpoint_kind(str(tmp_path / "mlm")) == kinds.SEQUENCE
    with pytest.raises(ValueError, match="GPT2LMHeadModel is not a sequence classifier"):
        kinds.model_kind(gpt2)


def test_entity_spans_are_character_spans_of_the_words():
    text = "Anna  Novak works at Delft University ."
    tags = ["B-PER", "I-PER", "O", "O", "B-ORG", "I-ORG", "O"]
    spans = entity_spans(text, tags, np.array([0.9, 0.7, 1, 1, 0.5, 0.3, 1]))
    assert [(text[e["start"] : e["end"]], e["label"]) for e in spans] == [
        ("Anna  Novak", "PER"),
        ("Delft University", "ORG"),
    ]
    assert spans[0]["score"] == pytest.approx(0.8)
    assert entity_spans("the big dog", ["DET", "ADJ", "NOUN"]) == []  # not BIO


@pytest.mark.parametrize("arch", tiny_taggers.ARCHS)
def test_layer_integrated_gradients_complete_with_the_inputs_delta_f(arch):
    """Layer IG: Σ attributions = F(x) − F(baseline) within 1 % at the defaults, with the
    same F(x) − F(baseline) as input IG (the layer's states of the baseline input), at
    every layer: GPT-2's last one too (its state is taken after the final norm, where
    `layer_hooks.hidden_state_hook` hooks it)."""
    tagger = _tagger(arch)
    examples = EXAMPLES[:4]
    plain = tagger.integrated_gradients(examples)
    for layer in range(tagger.num_layers + 1):
        options = ig_lib.IGOptions(layer=layer)
        found = tagger.integrated_gradients(examples, None, options)
        for r, p in zip(found, plain):
            res = r["result"]
            assert r["target"] == p["target"]
            assert abs(res.delta_f - p["result"].delta_f) <= 1e-5
            assert abs(res.attributions.sum() - res.delta_f) <= 0.01 * abs(res.delta_f)
