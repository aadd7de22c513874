"""Which kind of classifier a checkpoint or model object is, from its class or config.

`wrap_model` and the demo's ``--models`` read the kind here and build the matching
wrapper: `SEQUENCE` (`HFSequenceClassifier`) or `TOKEN` (`HFTokenClassifier`). Heads
for other tasks (question answering, seq2seq, language modelling, multiple choice,
...) are refused before anything runs, with a ValueError naming the head and listing
`heads.SUPPORTED`. A bare encoder or a masked-LM / pre-training checkpoint (how
pre-trained encoders ship, loaded for their activations: the probe, TX-Ray) is a
sequence classifier with a new head, as before; an in-memory model object must be a
classifier.
"""

from __future__ import annotations

import transformers

from lit_plugins.hf import heads

SEQUENCE = "sequence classification"
TOKEN = "token classification"
_KINDS = {"ForSequenceClassification": SEQUENCE, "ForTokenClassification": TOKEN}
# Task heads we know are something else (matched as class-name suffixes).
_OTHER_HEADS = (
    "ForQuestionAnswering",
    "ForMultipleChoice",
    "ForConditionalGeneration",
    "ForCausalLM",
    "LMHeadModel",
    "ForSeq2SeqLM",
    "ForImageClassification",
    "ForAudioClassification",
    "ForSpeechSeq2Seq",
    "ForCTC",
)


def kind_of_names(names: list[str], what: str) -> str:
    """The kind for class names (a model's class, or a config's `architectures`)."""
    for suffix, kind in _KINDS.items():
        if any(n.endswith(suffix) for n in names):
            return kind
    other = [n for n in names if n.endswith(_OTHER_HEADS)]
    if other:
        raise ValueError(
            f"{what} holds a {other[0]} head, which is not supported; supported: "
            + "; ".join(heads.SUPPORTED)
            + "."
        )
    return SEQUENCE


def model_kind(model) -> str:
    """The kind of an in-memory `transformers` model (ValueError for any other class,
    from `heads.head_of`)."""
    name = type(model).__name__
    if name.endswith("ForTokenClassification"):
        return TOKEN
    heads.head_of(model)  # refuses anything but a supported sequence classifier
    return SEQUENCE


def checkpoint_kind(path: str) -> str:
    """The kind of a checkpoint from its config's `architectures` (ValueError for
    other heads). A config that cannot be read (an unreachable hub name) counts as a
    sequence classifier, whose loader then reports the failure."""
    try:
        config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError):
        return SEQUENCE
    return kind_of_names(list(getattr(config, "architectures", None) or []), repr(path))
