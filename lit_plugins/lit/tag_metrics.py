"""Tagging metrics in LIT's Metrics module: token accuracy and BIO span F1.

LIT 1.3 ships no metric for `SequenceTags` (its metrics read `parent` fields, which
SequenceTags does not have), so this component pairs a token classifier's predicted
`tags` with the dataset's gold tags field (`HFTokenClassifier.tags_field`) itself.
Span precision, recall and F1 are micro-averaged over exact (first word, last word,
type) matches, conlleval's way (`util.bio`); they are left out for non-BIO tag sets
(POS). Examples without gold tags (e.g. typed in the UI) or whose gold tags do not
fit the words are skipped and counted.
"""

from __future__ import annotations

from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.lit import specs
from lit_plugins.lit.token_model import TAGS, HFTokenClassifier
from lit_plugins.util import bio

JsonDict = specs.JsonDict
METRICS_NAME = "tagging"
_BEST_HIGH = ("token_accuracy", "span_precision", "span_recall", "span_f1")


class TagMetrics(lit_components.Metrics):
    """Token accuracy and span P/R/F1 of an `HFTokenClassifier`'s tags."""

    def meta_spec(self) -> lit_types.Spec:
        spec = {
            k: lit_types.MetricResult(best_value=lit_types.MetricBestValue.HIGHEST)
            for k in _BEST_HIGH
        }
        spec["skipped_examples"] = lit_types.MetricResult(
            description="examples without gold tags that fit their words"
        )
        return spec

    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        raw = specs.unwrap(model)
        if not isinstance(raw, HFTokenClassifier):
            return False
        return isinstance(dataset.spec().get(raw.tags_field), lit_types.SequenceTags)

    def is_field_compatible(self, pred_spec, parent_spec) -> bool:
        return isinstance(pred_spec, lit_types.SequenceTags) and isinstance(
            parent_spec, lit_types.SequenceTags
        )

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict]:
        del config
        if not self.is_compatible(model, dataset):
            return []
        gold_field = specs.unwrap(model).tags_field
        if model_outputs is None:
            model_outputs = list(model.predict(inputs))
        metrics = self.compute_tags([ex.get(gold_field) for ex in inputs], model_outputs)
        return [{"pred_key": TAGS, "label_key": gold_field, "metrics": metrics}]

    @staticmethod
    def compute_tags(golds, model_outputs) -> dict[str, float | None]:
        """The metrics over the examples whose gold tags fit their predicted tags."""
        pairs = [
            (list(g), list(out[TAGS]))
            for g, out in zip(golds, model_outputs)
            if g is not None and len(g) == len(out[TAGS]) and len(g) > 0
        ]
        result: dict[str, float | None] = {"skipped_examples": float(len(golds) - len(pairs))}
        if pairs:
            values = bio.tag_metrics([g for g, _ in pairs], [p for _, p in pairs])
            result.update({k: (None if v != v else v) for k, v in values.items()})
        return result


def plugin_metrics() -> dict[str, lit_components.Metrics]:
    """{name: component} to add to a Server's metrics."""
    return {METRICS_NAME: TagMetrics()}
