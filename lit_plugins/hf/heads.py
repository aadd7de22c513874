"""Which HF classification heads we accept, and how each one is run.

Every kind of head answers the same questions here, so nothing above `hf/` asks which
transformers class it holds:

* which position the head reads (`Head.pooling`): encoders read the first token
  ([CLS] / <s>); decoder-only models (GPT-2, Llama, Mistral, Qwen, Gemma, Phi, ...)
  read the last real token;
* how logits become probabilities (`Head.activation`): softmax for single-label
  classification, sigmoid for multi-label, none for regression.

Decoder heads find their last real token from ``input_ids`` and the pad id; given
``inputs_embeds`` (which every gradient method needs) they read the last position,
padding or not. So decoders (and XLNet, whose summary reads the last position) are
always padded on the left here, encoders on the right, whatever the tokenizer's own
side (a left-padding tokenizer would shift an encoder's absolute positions).
Decoders also get position ids counted from the attention mask: the last position is
then every row's last real token and each row sees the positions it would see alone,
so an example gives the same logits alone, in a padded batch, and in HF's own
forward on the unpadded text.
"""

from __future__ import annotations

import dataclasses
import inspect

import torch

SUPPORTED = (
    "encoder sequence classification (single-label, multi-label, regression): "
    "BERT, RoBERTa, DistilBERT, DeBERTa, ELECTRA, ALBERT, XLM-R, MPNet, ModernBERT, ...",
    "decoder-only sequence classification: GPT-2, Llama, Mistral, Qwen2/3, Gemma, Phi, ...",
    "token classification (NER, POS; *ForTokenClassification): per-word tags, see "
    "hf.token_classifier",
)
SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"


@dataclasses.dataclass(frozen=True)
class Head:
    """What a sequence-classification head is, for the code that runs it."""

    pooling: str  # 'first' (encoders) or 'last' (decoder-only: the last real token)
    problem: str  # SINGLE_LABEL, MULTI_LABEL or REGRESSION
    num_outputs: int
    takes_position_ids: bool = False

    @property
    def is_decoder(self) -> bool:
        return self.pooling == "last"

    @property
    def padding_side(self) -> str:
        """The side every batch is padded on, whatever the tokenizer's own: the right
        for heads that read the first token (absolute positions then match the
        unpadded text), the left for heads that read the last one."""
        return "left" if self.is_decoder else "right"

    @property
    def pooled_name(self) -> str:
        """What the pooled embedding is, for field descriptions."""
        return "last real token" if self.is_decoder else "first token"


def head_of(model: torch.nn.Module) -> Head:
    """The head of a transformers model, or ValueError naming it and listing what is accepted."""
    name = type(model).__name__
    config = getattr(model, "config", None)
    if config is None or not name.endswith("ForSequenceClassification"):
        raise ValueError(
            f"{name} is not a sequence classifier; supported: " + "; ".join(SUPPORTED) + "."
        )
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(
            f"{name} is an encoder-decoder classifier (it reads the decoder's end-of-sequence "
            "state); not supported. Supported: " + "; ".join(SUPPORTED) + "."
        )
    num_outputs = int(config.num_labels)
    problem = getattr(config, "problem_type", None)
    if num_outputs == 1:
        problem = REGRESSION
    elif problem not in (SINGLE_LABEL, MULTI_LABEL):
        problem = SINGLE_LABEL
    # Decoder heads are a `score` projection applied at every position, pooled at the
    # last real token; XLNet's summary reads the last position too; encoder heads
    # (`classifier`, `pooler`, ...) read the first.
    summary = getattr(getattr(model, "sequence_summary", None), "summary_type", None)
    decoder = isinstance(getattr(model, "score", None), torch.nn.Linear) or summary == "last"
    takes_positions = decoder and "position_ids" in inspect.signature(model.forward).parameters
    return Head("last" if decoder else "first", problem, num_outputs, takes_positions)


def forward_kwargs(head: Head, enc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's keyword inputs besides the ids/embeddings, from a tokenizer batch:
    the attention mask and segment ids, and for decoders the position ids counted from
    the attention mask (0 at each row's first real token)."""
    kwargs = {k: v for k, v in enc.items() if k not in ("input_ids", "position_ids")}
    if head.takes_position_ids:
        mask = enc["attention_mask"]
        kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
    return kwargs


def pooled_positions(head: Head, attention_mask: torch.Tensor) -> torch.Tensor:
    """Per row, the index of the token the head reads."""
    mask = attention_mask.bool()
    index = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    if head.is_decoder:
        return torch.where(mask, index, -1).max(dim=1).values
    return torch.where(mask, index, mask.shape[1]).min(dim=1).values


def probabilities(head: Head, logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (softmax, or sigmoid per label for multi-label heads)."""
    if head.problem == MULTI_LABEL:
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=-1)


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """`x` in float32 when it is half precision (bfloat16, float16), else as it is: sums,
    probabilities and attributions of half-precision models are taken in float32, and
    float64 models (the tests' finite differences) keep float64."""
    return x.float() if x.is_floating_point() and x.element_size() < 4 else x
