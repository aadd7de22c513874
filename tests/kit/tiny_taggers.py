"""Tiny random token classifiers (NER heads) built in-process from configs.

The tokenizers know a few whole words and single characters (WordPiece `##x`
continuations, byte-level characters), so most words of the bundled NER sentences
split into several pieces: the first-piece alignment is exercised on every sentence.
"""

import torch
import transformers

from lit_plugins.data.conll import NER_LABELS

ARCHS = ("bert", "roberta", "gpt2")
_WHOLE = ["the", "in", "of", "to", "and", "a", "at", "for", "Maria", "Paris", "."]


def wordpiece_tokenizer():
    chars = [chr(c) for c in range(33, 127)]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = specials + _WHOLE + chars + ["##" + c for c in chars]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(pieces))}
    return transformers.BertTokenizerFast(vocab=vocab, do_lower_case=False, model_max_length=64)


def bytelevel_tokenizer():
    chars = [chr(c) for c in range(33, 127)] + ["\u0120"]
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *chars])}
    return transformers.RobertaTokenizerFast(
        vocab=vocab, merges=[], model_max_length=128, add_prefix_space=True
    )


def make(arch: str = "bert", labels=NER_LABELS, seed: int = 0):
    """(model, tokenizer) of a tiny random token classifier of `arch` (ARCHS)."""
    torch.manual_seed(seed)
    id2label = dict(enumerate(labels))
    common = dict(
        num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()}
    )
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    if arch == "bert":
        tok = wordpiece_tokenizer()
        cfg = transformers.BertConfig(
            vocab_size=len(tok), max_position_embeddings=64, **small, **common
        )
        model = transformers.BertForTokenClassification(cfg)
    elif arch == "roberta":
        tok = bytelevel_tokenizer()
        cfg = transformers.RobertaConfig(
            vocab_size=len(tok),
            max_position_embeddings=130,
            pad_token_id=tok.pad_token_id,
            bos_token_id=0,
            eos_token_id=2,
            **small,
            **common,
        )
        model = transformers.RobertaForTokenClassification(cfg)
    elif arch == "gpt2":
        tok = wordpiece_tokenizer()
        cfg = transformers.GPT2Config(
            vocab_size=len(tok),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            pad_token_id=tok.pad_token_id,
            bos_token_id=2,
            eos_token_id=3,
            **common,
        )
        model = transformers.GPT2ForTokenClassification(cfg)
    else:
        raise ValueError(arch)
    # Random heads give near-uniform tags; a larger classifier makes the argmax and
    # the gradients informative.
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)
    return model.eval(), tok


def tagger(arch: str = "bert", **kw):
    """A tiny random model of `arch` wrapped as the LIT `HFTokenClassifier`."""
    from lit_plugins.lit.token_model import HFTokenClassifier

    model, tok = make(arch)
    return HFTokenClassifier(model=model, tokenizer=tok, **kw)
