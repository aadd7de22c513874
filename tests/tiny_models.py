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


def make(arch: str = "bert", num_labels: int = 2, seed: int = 0):
    """Returns (model, tokenizer) for 'bert', 'distilbert' or 'roberta'."""
    torch.manual_seed(seed)
    if arch == "bert":
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
    else:
        raise ValueError(arch)
    # Random heads give near-uniform probabilities; scale up the classifier so
    # gradients and attributions are not vanishingly small.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in ("classifier.weight", "classifier.out_proj.weight"):
                p.mul_(20.0)
    return model.eval(), tok
