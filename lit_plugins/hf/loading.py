"""Loading a checkpoint as a sequence classifier (`hf.classifier.HFClassifier`).

* `DTYPES`: the weight dtypes for prediction ('auto': the checkpoint's own).
* `check_architecture`: a checkpoint whose saved head classifies another task is
  refused before it is loaded (it would silently get a new, random head).
* `with_pad_token`: the tokenizer, or a copy that pads with its end-of-sequence token.
* `model_max_length`: the longest input the model's positions and the tokenizer allow.
"""

from __future__ import annotations

import copy

import torch
import transformers
from absl import logging

from lit_plugins.hf import heads

# Weight dtypes for prediction ('auto': the checkpoint's own).
DTYPES = {
    "auto": None,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def model_max_length(model, tokenizer) -> int:
    """The longest input the model and tokenizer take (512 when neither says)."""
    limits = [
        getattr(model.config, "max_position_embeddings", None),
        getattr(model.config, "n_positions", None),
        getattr(tokenizer, "model_max_length", None),
    ]
    limits = [l for l in limits if isinstance(l, int) and 0 < l < 100_000]
    # RoBERTa reserves two positions for the padding offset.
    if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limits = [l - 2 if l == model.config.max_position_embeddings else l for l in limits]
    return min(limits) if limits else 512


# Saved heads that classify something else: loading one as a sequence classifier would
# silently put a new, random head in its place. (A bare or language-model checkpoint,
# e.g. the pre-trained model TX-Ray compares with, gets a new head too, which is what it
# is loaded for: its activations.)
_OTHER_TASK_HEADS = (
    "ForTokenClassification",
    "ForQuestionAnswering",
    "ForMultipleChoice",
    "ForConditionalGeneration",
)


def check_architecture(path: str) -> None:
    """Refuses a checkpoint whose saved head classifies another task (tokens, answer
    spans, choices, generated text) before loading it."""
    config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=False)
    archs = list(getattr(config, "architectures", None) or [])
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return
    other = [a for a in archs if a.endswith(_OTHER_TASK_HEADS)]
    if other:
        raise ValueError(
            f"{path!r} holds a {other[0]} head, not a sequence classifier; supported: "
            + "; ".join(heads.SUPPORTED)
            + "."
        )


def with_pad_token(tokenizer, head: heads.Head):
    """The tokenizer, or a copy padding with its end-of-sequence token when it has no pad
    token (common for decoders: the padded positions are masked, so which id fills them
    does not matter)."""
    if tokenizer.pad_token is not None:
        return tokenizer
    fill = tokenizer.eos_token or tokenizer.unk_token
    if fill is None:
        raise ValueError(
            "The tokenizer has no pad token and no end-of-sequence or unknown token to pad "
            "with; set tokenizer.pad_token before wrapping."
        )
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.pad_token = fill
    logging.info("Tokenizer without a pad token: padding with %r (masked).", fill)
    return tokenizer
