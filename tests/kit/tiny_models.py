"""Tiny random HF classifiers built in-process from configs (no downloads)."""

import torch
import transformers

WORDS = [
    "the",
    "a",
    "an",
    "film",
    "movie",
    "plot",
    "acting",
    "was",
    "is",
    "not",
    "bad",
    "good",
    "great",
    "awful",
    "boring",
    "fun",
    "slow",
    "start",
    "but",
    "stunning",
    "finale",
    "really",
    "very",
    "at",
    "all",
    "i",
    "loved",
    "hated",
    "it",
    "this",
    "of",
    "and",
    "to",
    "terrible",
    "brilliant",
    "mess",
]


def bert_tokenizer():
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = ["##s", "##ing", "##ed", "##ly"]
    vocab = {t: i for i, t in enumerate(specials + list(WORDS) + pieces)}
    return transformers.BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=64)


def roberta_tokenizer():
    # Byte-level BPE with no merges: every character is its own token.
    chars = [chr(c) for c in range(33, 127)] + ["\u0120"]
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *chars])}
    return transformers.RobertaTokenizerFast(vocab=vocab, merges=[], model_max_length=64)


def _unigram_vocab(specials: list[str]) -> list[tuple[str, float]]:
    """SentencePiece-style (piece, log-prob) list: specials, whole words with
    the word-start mark, then single characters (so nothing is unknown)."""
    words = [("\u2581" + w, -5.0) for w in WORDS]
    chars = sorted({c for w in WORDS for c in w} | set("0123456789.,!?'-"))
    return [(t, 0.0) for t in specials] + words + [(c, -10.0) for c in chars] + [("\u2581", -8.0)]


def deberta_v2_tokenizer():
    # DeBERTa-v3 layout: [PAD]=0, [CLS]=1, [SEP]=2, [UNK]=3, then pieces, [MASK] last.
    vocab = [*_unigram_vocab(["[PAD]", "[CLS]", "[SEP]", "[UNK]"]), ("[MASK]", 0.0)]
    return transformers.DebertaV2TokenizerFast(vocab=vocab, unk_id=3, model_max_length=64)


def albert_tokenizer():
    vocab = _unigram_vocab(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"])
    return transformers.AlbertTokenizerFast(vocab=vocab, model_max_length=64)


def xlm_roberta_tokenizer():
    vocab = [*_unigram_vocab(["<s>", "<pad>", "</s>", "<unk>"]), ("<mask>", 0.0)]
    return transformers.XLMRobertaTokenizerFast(vocab=vocab, model_max_length=64)


def mpnet_tokenizer():
    specials = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"]
    pieces = ["##s", "##ing", "##ed", "##ly"]
    vocab = {t: i for i, t in enumerate(specials + list(WORDS) + pieces)}
    return transformers.MPNetTokenizerFast(vocab=vocab, model_max_length=64)


def modernbert_tokenizer():
    """Byte-level BPE (no merges) with ModernBERT's [CLS] x [SEP] template."""
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, processors

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)] + ["\u0120"]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length=64,
    )


# Encoder families beyond the three of the default fixture (see
# tests/hf/test_encoder_families.py).  Each is tiny: 32 wide, 2 layers, 4 heads.
FAMILIES = ("deberta-v2", "electra", "albert", "xlm-roberta", "mpnet", "modernbert")
# Decoder-only sequence classifiers (HF pools their last non-pad token).
DECODERS = ("gpt2", "llama", "qwen2")
ARCHS = ("bert", "distilbert", "roberta", *FAMILIES)
_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def make(arch: str = "bert", num_labels: int = 2, seed: int = 0):
    """Returns (model, tokenizer) for one of ARCHS."""
    torch.manual_seed(seed)
    if arch == "deberta-v2":
        # DeBERTa-v3 style: relative attention only (no absolute positions).
        tok = deberta_v2_tokenizer()
        cfg = transformers.DebertaV2Config(
            vocab_size=len(tok),
            max_position_embeddings=64,
            relative_attention=True,
            position_buckets=16,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            type_vocab_size=0,
            pad_token_id=tok.pad_token_id,
            num_labels=num_labels,
            **_SMALL,
        )
        model = transformers.DebertaV2ForSequenceClassification(cfg)
    elif arch == "electra":
        # Narrower embeddings than the encoder (projected), as in ELECTRA-small.
        tok = bert_tokenizer()
        cfg = transformers.ElectraConfig(
            vocab_size=len(tok),
            embedding_size=16,
            max_position_embeddings=64,
            num_labels=num_labels,
            **_SMALL,
        )
        model = transformers.ElectraForSequenceClassification(cfg)
    elif arch == "albert":
        # Factorised embeddings and one parameter-shared layer group.
        tok = albert_tokenizer()
        cfg = transformers.AlbertConfig(
            vocab_size=len(tok),
            embedding_size=16,
            max_position_embeddings=64,
            pad_token_id=tok.pad_token_id,
            num_labels=num_labels,
            **_SMALL,
        )
        model = transformers.AlbertForSequenceClassification(cfg)
    elif arch == "xlm-roberta":
        tok = xlm_roberta_tokenizer()
        cfg = transformers.XLMRobertaConfig(
            vocab_size=len(tok),
            max_position_embeddings=66,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
            num_labels=num_labels,
            **_SMALL,
        )
        model = transformers.XLMRobertaForSequenceClassification(cfg)
    elif arch == "mpnet":
        tok = mpnet_tokenizer()
        cfg = transformers.MPNetConfig(
            vocab_size=len(tok),
            max_position_embeddings=66,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
            num_labels=num_labels,
            **_SMALL,
        )
        model = transformers.MPNetForSequenceClassification(cfg)
    elif arch == "modernbert":
        # LayerNorm straight on the word embeddings, rotary positions,
        # alternating global / local attention.
        tok = modernbert_tokenizer()
        cfg = transformers.ModernBertConfig(
            vocab_size=len(tok),
            max_position_embeddings=64,
            global_attn_every_n_layers=2,
            local_attention=8,
            pad_token_id=tok.pad_token_id,
            cls_token_id=tok.cls_token_id,
            sep_token_id=tok.sep_token_id,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
            num_labels=num_labels,
            **_SMALL,
        )
        model = transformers.ModernBertForSequenceClassification(cfg)
    elif arch == "bert":
        tok = bert_tokenizer()
        cfg = transformers.BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            num_labels=num_labels,
        )
        model = transformers.BertForSequenceClassification(cfg)
    elif arch == "distilbert":
        tok = bert_tokenizer()
        cfg = transformers.DistilBertConfig(
            vocab_size=len(tok),
            dim=32,
            n_layers=2,
            n_heads=4,
            hidden_dim=64,
            max_position_embeddings=64,
            num_labels=num_labels,
        )
        model = transformers.DistilBertForSequenceClassification(cfg)
    elif arch == "roberta":
        tok = roberta_tokenizer()
        cfg = transformers.RobertaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=66,
            num_labels=num_labels,
            pad_token_id=tok.pad_token_id,
            bos_token_id=0,
            eos_token_id=2,
        )
        model = transformers.RobertaForSequenceClassification(cfg)
    elif arch in DECODERS:
        tok = bert_tokenizer()
        common = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id, num_labels=num_labels)
        if arch == "gpt2":
            cfg = transformers.GPT2Config(
                n_embd=32,
                n_layer=2,
                n_head=4,
                n_positions=64,
                bos_token_id=2,
                eos_token_id=3,
                **common,
            )
            model = transformers.GPT2ForSequenceClassification(cfg)
        else:
            config_cls, model_cls = {
                "llama": (transformers.LlamaConfig, transformers.LlamaForSequenceClassification),
                "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForSequenceClassification),
            }[arch]
            cfg = config_cls(
                max_position_embeddings=64,
                num_key_value_heads=2,
                bos_token_id=2,
                eos_token_id=3,
                **common,
                **_SMALL,
            )
            model = model_cls(cfg)
    else:
        raise ValueError(arch)
    if arch in FAMILIES or arch in DECODERS:
        # HF initialises every bias (and LayerNorm shift) to zero; trained
        # checkpoints never look like that, and a model without absolute
        # position embeddings is then almost scale-invariant in its input, so
        # a zero-baseline path degenerates (tiny DeBERTa-v3: F jumps within
        # alpha < 1e-8). Small random biases, as after training.
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    # Random heads give near-uniform probabilities; scale up the classifier so
    # gradients and attributions are not vanishingly small.
    with torch.no_grad():
        for name, p in model.named_parameters():
            # ModernBERT's head normalises its features: already unit scale.
            head = ("classifier.weight", "classifier.out_proj.weight", "score.weight")
            if arch != "modernbert" and name in head:
                p.mul_(20.0)
    return model.eval(), tok


def xlnet(seed: int = 0, num_labels: int = 2):
    """(model, tokenizer): a tiny random XLNet classifier (its sequence summary reads
    the last position; its layers run time-major) with the tiny BERT tokenizer."""
    tok = bert_tokenizer()
    config = transformers.XLNetConfig(
        vocab_size=tok.vocab_size,
        d_model=32,
        n_layer=2,
        n_head=4,
        d_inner=64,
        num_labels=num_labels,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = transformers.XLNetForSequenceClassification(config).eval()
    with torch.no_grad():
        model.logits_proj.weight.mul_(20.0)  # probabilities away from 0.5
    return model, tok


def classifier(arch: str = "bert", seed: int = 0, labels=("neg", "pos"), **wrapper_kw):
    """A tiny random model of `arch` wrapped as an `HFSequenceClassifier`."""
    from lit_plugins.lit.model import HFSequenceClassifier

    model, tokenizer = make(arch, num_labels=len(labels), seed=seed)
    return HFSequenceClassifier(model=model, tokenizer=tokenizer, labels=list(labels), **wrapper_kw)
