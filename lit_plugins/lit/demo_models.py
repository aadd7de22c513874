"""The offline default: pre-trained and fine-tuned MiniLM-L6 on the bundled
sentiment set."""

from __future__ import annotations

import torch

from lit_plugins.data import loaders
from lit_plugins.hf import finetune
from lit_plugins.lit.model import HFSequenceClassifier

# The demo's fine-tuning recipe; part of the checkpoint cache key.
FINETUNE_SETTINGS = dict(epochs=3, learning_rate=5e-5, batch_size=16, max_length=128, seed=0)
PRETRAINED_HEAD_SEED = 0


def finetuned_checkpoint(cache_dir: str | None = None) -> str:
    train = loaders.load_bundled_sentiment("train").examples
    return finetune.fine_tuned_checkpoint(
        [ex["sentence"] for ex in train],
        [ex["label"] for ex in train],
        loaders.SENTIMENT_LABELS,
        cache_dir=cache_dir,
        **FINETUNE_SETTINGS,
    )


def finetuned_minilm(cache_dir: str | None = None, **kw) -> HFSequenceClassifier:
    """MiniLM-L6 fine-tuned on the bundled train split (trained once, cached)."""
    return HFSequenceClassifier(
        finetuned_checkpoint(cache_dir), labels=loaders.SENTIMENT_LABELS, **kw
    )


def pretrained_minilm(**kw) -> HFSequenceClassifier:
    """The untouched pre-trained encoder (its classification head is new and
    random: only its representations are meaningful, e.g. for TX-Ray). The head
    is drawn from a fixed seed, so every start serves the same weights: the
    served app's store (keyed by the weights) then finds this model's
    predictions and TX-Ray fits against it again after a restart."""
    with torch.random.fork_rng(devices=[]):  # the caller's random state untouched
        torch.manual_seed(PRETRAINED_HEAD_SEED)
        model, tokenizer = finetune.load_classifier(
            finetune.default_model_dir(), loaders.SENTIMENT_LABELS
        )
    return HFSequenceClassifier(
        model=model, tokenizer=tokenizer, labels=loaders.SENTIMENT_LABELS, **kw
    )
