"""A LIT model around any HuggingFace `AutoModelForTokenClassification` (NER, POS).

Fields:

  input:  <text field> (TextSegment: tagged word by word, whitespace words),
          <tags field> (SequenceTags aligned to the text: the gold tags, optional)
  output: words (Tokens: the whitespace words), tokens (Tokens: the word pieces),
          tags (SequenceTags aligned to `words`: each word's tag, read at its first
          word piece as HF's pipeline does with aggregation_strategy="first"),
          tag_confidence (one per word, the probability of its tag, in
          SequenceTags text since LIT 1.3 has no per-token score type),
          entities (MultiSegmentAnnotations: the predicted BIO entities as character
          spans of the text, with their mean tag probability; empty for non-BIO tags)

Where LIT 1.3 shows them: `entities` in "Annotated Text (predicted)" (Predictions
tab; the dataset's gold entities, see `data.conll`, in "Annotated Text (gold)"),
the gold tags in the data table and the datapoint editor. LIT 1.3 has no module that
draws predicted SequenceTags, hence the entity annotations. Metrics: `lit.tag_metrics`
(LIT 1.3 ships no sequence or span metric). "Why is word j tagged X":
`lit.interpreters.tag_salience` (gradient x input, integrated gradients and layer
conductance over the word pieces, in the Salience Maps module). `layer_<i>/token_activations` (on request)
let the Linear Probe and TX-Ray read the layers; `with_model_tags` adds the model's own
tags to a dataset, for a token-level probe of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.hf.token_classifier import HFTokenTagger
from lit_plugins.lit import specs

JsonDict = specs.JsonDict

WORDS = "words"
TOKENS = "tokens"
TAGS = "tags"
TAG_CONFIDENCE = "tag_confidence"
ENTITIES = "entities"
MODEL_TAGS = "model_tags"  # the model's own tags as a dataset field (`with_model_tags`)


class HFTokenClassifier(HFTokenTagger, lit_model.BatchedModel):
    """LIT BatchedModel for a PyTorch HF token classifier; see the module docstring for
    its fields and `HFTokenTagger` for the constructor's arguments."""

    @classmethod
    def init_spec(cls) -> lit_types.Spec:
        return {
            "model_name_or_path": lit_types.String(),
            "batch_size": lit_types.Integer(default=16, min_val=1, max_val=256),
            "max_length": lit_types.Integer(default=128, min_val=8, max_val=512),
        }

    def description(self) -> str:
        return f"HFTokenClassifier({self.name_or_path})"

    def max_minibatch_size(self, **unused_kw) -> int:
        return self.batch_size

    @property
    def supports_concurrent_predictions(self):
        return False

    def input_spec(self) -> lit_types.Spec:
        return {
            self.text_field: lit_types.TextSegment(),
            self.tags_field: lit_types.SequenceTags(align=self.text_field, required=False),
        }

    def output_spec(self) -> lit_types.Spec:
        return {
            WORDS: lit_types.Tokens(parent=self.text_field),
            TOKENS: lit_types.Tokens(parent=self.text_field),
            TAGS: lit_types.SequenceTags(align=WORDS),
            TAG_CONFIDENCE: lit_types.SequenceTags(align=WORDS),
            ENTITIES: lit_types.MultiSegmentAnnotations(),
            **{
                specs.LAYER_ACTIVATIONS_TEMPLATE.format(i): lit_types.TokenEmbeddings(
                    align=TOKENS, required=False
                )
                for i in range(self.num_layers + 1)
            },
        }

    def predict_minibatch(
        self,
        inputs: list[JsonDict],
        activation_layers: str | Iterable[int] | None = None,
        gradients: bool = False,
    ) -> list[JsonDict]:
        """One batch; `activation_layers` ('all' or layer indices, 0 = the embedding
        output) adds `layer_<i>/token_activations` (the probe and TX-Ray ask for them);
        `gradients` is accepted for the dataset-level interpreters and unused."""
        del gradients
        if activation_layers is None:
            layers: list[int] = []
        elif activation_layers == "all":
            layers = list(range(self.num_layers + 1))
        else:
            layers = [int(l) for l in activation_layers]
        results = []
        for out in self.predict_words(inputs, layers):
            confidence = out["probs"].max(-1)
            result = {
                WORDS: out["words"],
                TOKENS: out["tokens"],
                TAGS: out["tags"],
                TAG_CONFIDENCE: [f"{c:.3f}" for c in confidence],
                ENTITIES: entity_annotations(out["entities"], self.text_field),
            }
            for l, states in out["layers"].items():
                result[specs.LAYER_ACTIVATIONS_TEMPLATE.format(l)] = states
            results.append(result)
        return results


def entity_annotations(entities, text_field: str) -> list[dtypes.AnnotationCluster]:
    """`HFTokenTagger` entity dicts as LIT annotation clusters over the text field."""
    return [
        dtypes.AnnotationCluster(
            label=e["label"],
            spans=[dtypes.SpanLabel(e["start"], e["end"], align=text_field)],
            score=e["score"],
        )
        for e in entities
    ]


def token_kwargs(kw: dict) -> dict:
    """Sequence-classifier wrapper arguments as `HFTokenClassifier` takes them: the
    first of `text_fields` becomes its `text_field` (a second one is refused: token
    classifiers tag one text); other arguments pass as they are."""
    kw = dict(kw)
    fields = kw.pop("text_fields", None)
    if fields:
        fields = (fields,) if isinstance(fields, str) else tuple(fields)
        if len(fields) != 1:
            raise ValueError(f"A token classifier tags one text field, got {fields!r}.")
        kw["text_field"] = fields[0]
    return kw


def with_model_tags(
    dataset: lit_dataset.Dataset, model: lit_model.Model, field: str = MODEL_TAGS
) -> lit_dataset.Dataset:
    """`dataset` plus `field`: each example's tags as `model` predicts them
    (`SequenceTags` aligned to its text), a label field for the token-level Linear
    Probe: what a layer's word vectors encode of the model's own tags."""
    raw = specs.unwrap(model)
    if not isinstance(raw, HFTokenClassifier):
        raise ValueError(f"{type(raw).__name__} is not a token classifier.")
    if field in dataset.spec():
        raise ValueError(f"The dataset already has a field {field!r}.")
    outputs = list(raw.predict(dataset.examples))
    spec = {**dataset.spec(), field: lit_types.SequenceTags(align=raw.text_field)}
    examples = [{**ex, field: list(out[TAGS])} for ex, out in zip(dataset.examples, outputs)]
    return lit_dataset.Dataset(spec=spec, examples=examples, description=dataset.description())


def from_pretrained(path: str, **kw) -> HFTokenClassifier:
    """Shorthand for HFTokenClassifier(path, **kw)."""
    return HFTokenClassifier(os.fspath(path), **kw)
