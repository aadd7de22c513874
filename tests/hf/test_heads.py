"""Each head read at the right position and padded on the side that keeps its
positions (decoders and XLNet left, encoders right), and heads we do not support
refused when wrapped.

Every number is checked against HF's own forward on the unpadded text (input ids, so
HF finds the last real token itself) or against finite differences."""

import numpy as np
import pytest
import torch
import transformers

from lit_plugins.hf import heads
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import tiny_models

TEXTS = [
    "the film was not bad at all",
    "boring",
    "i loved it but the plot was slow and very boring",
]


def _wrap(arch, dtype=torch.float32, padding_side="right", pad=True):
    model, tok = tiny_models.make(arch)
    tok.padding_side = padding_side
    if not pad:
        tok.pad_token = None
    return HFSequenceClassifier(
        model=model.to(dtype), tokenizer=tok, labels=["neg", "pos"], batch_size=4
    )


def _hf_probs(model, tok, text):
    enc = tok(text, return_tensors="pt")  # one text: nothing to pad
    with torch.no_grad():
        return torch.softmax(model(**enc).logits, -1)[0].double().numpy()


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("arch", tiny_models.DECODERS)
def test_decoder_batch_equals_alone_equals_hf(arch, padding_side):
    clf = _wrap(arch, padding_side=padding_side)
    assert clf.head.is_decoder and clf.padding_side == "left"
    batch = list(clf.predict([{"sentence": t} for t in TEXTS]))
    for text, b in zip(TEXTS, batch):
        (alone,) = clf.predict([{"sentence": text}])
        hf = _hf_probs(clf.model, clf.tokenizer, text)
        np.testing.assert_allclose(b["probas"], alone["probas"], atol=1e-5)
        np.testing.assert_allclose(b["probas"], hf, atol=1e-5)
        np.testing.assert_allclose(b["token_grads"], alone["token_grads"], atol=1e-5)
        # The pooled embedding is the last real token's final state: the head reproduces
        # the logits from it.
        logits = clf.model.score(torch.from_numpy(b["last_token_emb"]))
        np.testing.assert_allclose(torch.softmax(logits, -1).detach().numpy(), hf, atol=1e-5)
    spec = clf.output_spec()
    assert "last_token_emb" in spec and "cls_emb" not in spec
    assert spec["last_token_grad"].grad_for == "last_token_emb"


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "deberta-v2", "modernbert"])
def test_encoder_with_a_left_padding_tokenizer_is_padded_right(arch):
    """A tokenizer that pads on the left would shift an encoder's absolute positions
    (0.05-0.07 off in a batch before): encoders are padded on the right."""
    clf = _wrap(arch, padding_side="left")
    assert not clf.head.is_decoder and clf.padding_side == "right"
    batch = list(clf.predict([{"sentence": t} for t in TEXTS]))
    for text, b in zip(TEXTS, batch):
        (alone,) = clf.predict([{"sentence": text}])
        np.testing.assert_allclose(b["probas"], alone["probas"], atol=1e-5)
        np.testing.assert_allclose(
            b["probas"], _hf_probs(clf.model, clf.tokenizer, text), atol=1e-5
        )
        np.testing.assert_allclose(b["token_grads"], alone["token_grads"], atol=1e-5)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_xlnet_reads_the_last_position_and_is_padded_left(padding_side):
    """XLNet's sequence summary reads the last position, as decoders do: padded on
    the left whatever the tokenizer says (6e-2 off in a right-padded batch before)."""
    model, tok = tiny_models.xlnet()
    tok.padding_side = padding_side
    clf = HFSequenceClassifier(model=model, tokenizer=tok, labels=["neg", "pos"], batch_size=4)
    assert clf.head.pooling == "last" and clf.padding_side == "left"
    batch = list(clf.predict([{"sentence": t} for t in TEXTS]))
    for text, b in zip(TEXTS, batch):
        (alone,) = clf.predict([{"sentence": text}])
        np.testing.assert_allclose(b["probas"], alone["probas"], atol=1e-5)
        np.testing.assert_allclose(b["probas"], _hf_probs(model, tok, text), atol=1e-5)


@pytest.mark.parametrize("arch", tiny_models.DECODERS)
def test_decoder_gradients_match_finite_differences(arch):
    clf = _wrap(arch, torch.float64)
    batch = clf.encode([{"sentence": t} for t in TEXTS])  # padded: checks every row
    out = clf.forward(batch)
    targets = [int(t) for t in out["targets"]]
    rng = np.random.default_rng(0)
    # Llama's and Qwen2's RMSNorm compute in float32 whatever the model's dtype, so their
    # differences carry float32 rounding (~1e-7 relative): a wider step and a tolerance
    # of 1e-3 (the step's truncation error is ~1e-6); GPT-2 runs in float64 throughout.
    float32_norm = arch in ("llama", "qwen2")
    h, rtol = (1e-3, 1e-3) if float32_norm else (1e-5, 1e-5)
    v = torch.from_numpy(rng.standard_normal(tuple(batch["embs"].shape)))
    v *= batch["embs"].abs().mean() / v.abs().mean()
    v *= batch["enc"]["attention_mask"][..., None]  # real tokens only
    f = []
    for sign in (1, -1):
        moved = dict(batch, embs=batch["embs"] + sign * h * v, targets=targets)
        probs = clf.forward(moved, gradients=False)["probs"]
        f.append(probs[torch.arange(len(targets)), targets].numpy())
    fd = (f[0] - f[1]) / (2 * h)
    analytic = (out["grads"] * v).sum(dim=(1, 2)).numpy()
    np.testing.assert_allclose(fd, analytic, rtol=rtol, atol=1e-10)


def test_tokenizer_without_pad_token_pads_with_eos():
    model, tok = tiny_models.make("gpt2")
    tok.eos_token, tok.pad_token = "[SEP]", None  # as GPT-2's own tokenizer: no pad token
    clf = HFSequenceClassifier(model=model, tokenizer=tok, labels=["neg", "pos"])
    assert clf.tokenizer.pad_token == "[SEP]" and tok.pad_token is None  # the user's is kept
    batch = list(clf.predict([{"sentence": t} for t in TEXTS]))
    for text, b in zip(TEXTS, batch):
        np.testing.assert_allclose(
            b["probas"], _hf_probs(clf.model, clf.tokenizer, text), atol=1e-5
        )


def test_multi_label_head_uses_sigmoid():
    model, tok = tiny_models.make("bert", num_labels=3)
    model.config.problem_type = heads.MULTI_LABEL
    clf = HFSequenceClassifier(model=model, tokenizer=tok, labels=["a", "b", "c"])
    (out,) = clf.predict([{"sentence": TEXTS[0]}])
    with torch.no_grad():
        logits = model(**tok(TEXTS[0], return_tensors="pt")).logits[0]
    # LIT's multi-label prediction: every label with its sigmoid probability.
    assert [label for label, _ in out["probas"]] == ["a", "b", "c"]
    np.testing.assert_allclose(
        [p for _, p in out["probas"]], torch.sigmoid(logits).numpy(), atol=1e-6
    )


def _bert_config():
    tok = tiny_models.bert_tokenizer()
    return tok, transformers.BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=2,
    )


@pytest.mark.parametrize(
    "model_cls",
    [transformers.BertForTokenClassification, transformers.BertForQuestionAnswering],
)
def test_unsupported_heads_are_refused_in_memory_and_by_path(model_cls, tmp_path):
    tok, cfg = _bert_config()
    model = model_cls(cfg)
    with pytest.raises(ValueError, match=f"{model_cls.__name__}.*supported: encoder") as e:
        HFSequenceClassifier(model=model, tokenizer=tok)
    assert "decoder-only sequence classification" in str(e.value)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"holds a {model_cls.__name__} head"):
        HFSequenceClassifier(str(tmp_path))


@pytest.mark.parametrize("model_cls", [transformers.BertModel, transformers.BertForMaskedLM])
def test_pretrained_backbones_load_by_path_with_a_new_head(model_cls, tmp_path):
    """A bare or language-model checkpoint (the pre-trained model TX-Ray compares with)
    loads, with a new head: its activations are what it is loaded for."""
    tok, cfg = _bert_config()
    backbone = model_cls(cfg).eval()
    backbone.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    clf = HFSequenceClassifier(str(tmp_path))
    assert clf.head.pooling == "first" and len(clf.labels) == 2
    ids = tok(TEXTS[0], return_tensors="pt")
    with torch.no_grad():
        want = (
            backbone.bert(**ids).last_hidden_state
            if model_cls is not transformers.BertModel
            else backbone(**ids).last_hidden_state
        )
    (out,) = clf.predict([{"sentence": TEXTS[0]}], activation_layers=[1])
    np.testing.assert_allclose(out["layer_1/token_activations"], want[0].numpy(), atol=1e-5)


def test_encoder_decoder_classifiers_are_refused():
    tok = tiny_models.bert_tokenizer()
    cfg = transformers.BartConfig(
        vocab_size=len(tok),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        num_labels=2,
    )
    model = transformers.BartForSequenceClassification(cfg)
    with pytest.raises(ValueError, match="encoder-decoder"):
        HFSequenceClassifier(model=model, tokenizer=tok)
