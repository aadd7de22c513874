r"""A custom LIT app: lit-plugins' components in a layout of their own.

What a LIT app of your own needs to show our interpreters: the model wrapper,
`registration.plugin_interpreters` (ours, LIT's defaults, and a Salience
Clustering over both), a `LitCanonicalLayout` that puts the modules they
feed in view, and `registration.serve` (LIT's server behind the safety layer).

  .venv/bin/python -m demos.custom_app                 # embedded MiniLM pair
  .venv/bin/python -m demos.custom_app --checkpoint=/path/to/checkpoint \
      --labels=negative,positive --dataset=reviews.csv --text_column=review \
      --port=5433

Where each component shows up in the layout below:
- lit-plugins' Gradient Norm, Gradient · Input, Integrated Gradients, Linear
  Probe and TX-Ray Neuron Shift, LIT's gradient maps and LIME:
  "Explanations" tab, Salience Maps module.
- Salience Clustering over all of them: "Salience Clustering" tab.
- TCAV (concept vectors on `cls_emb`, gradients `cls_grad`): "TCAV" tab.
- HotFlip, Ablation Flip, Scrambler, Word Replacer: "Counterfactuals" tab.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from absl import app, flags

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lit_nlp import server_flags
from lit_nlp.api import layout

from lit_plugins.app import registration
from lit_plugins.data import loaders
from lit_plugins.lit.model import HFSequenceClassifier

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint",
    None,
    "A local AutoModelForSequenceClassification directory. Default: the "
    "embedded MiniLM-L6 fine-tuned on the bundled sentences, with the "
    "pre-trained one as TX-Ray's reference.",
)
_LABELS = flags.DEFINE_list("labels", None, "Class names in the head's order.")
_DATASET = flags.DEFINE_string(
    "dataset", None, "A .csv/.tsv/.jsonl file. Default: the bundled dev sentences."
)
_TEXT_COLUMN = flags.DEFINE_string("text_column", "sentence", "The dataset's text column.")
_LABEL_COLUMN = flags.DEFINE_string("label_column", "label", "The dataset's label column.")
_RATIONALE_COLUMN = flags.DEFINE_string(
    "rationale_column",
    None,
    "A column of human rationales (evidence words, word indices or a 0/1 mask; "
    "Trust Checks' plausibility reads them).",
)
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Keep at most this many examples.")

modules = layout.LitModuleName

LAYOUT_NAME = "lit-plugins"
LAYOUT = layout.LitCanonicalLayout(
    upper={
        "Main": [
            modules.DataTableModule,
            modules.DatapointEditorModule,
            modules.EmbeddingsModule,
        ],
    },
    lower={
        "Explanations": [
            modules.ClassificationModule,
            modules.SalienceMapModule(requiredForTab=True),
        ],
        "Salience Clustering": [modules.SalienceClusteringModule],
        "TCAV": [modules.TCAVModule],
        "Counterfactuals": [modules.ClassificationModule, modules.GeneratorModule],
        "Metrics": [
            modules.MetricsModule,
            modules.ConfusionMatrixModule,
            modules.CurvesModule,
            modules.ThresholderModule,
        ],
    },
    description=(
        "lit-plugins first: gradient salience, integrated gradients with "
        "completeness, linear probes and TX-Ray in Salience Maps; Salience "
        "Clustering over every salience method; TCAV; HotFlip counterfactuals."
    ),
)


def load_models() -> tuple[dict[str, HFSequenceClassifier], str | None]:
    """The app's models and TX-Ray's default reference model."""
    if _CHECKPOINT.value:
        return {"mine": HFSequenceClassifier(_CHECKPOINT.value, labels=_LABELS.value)}, None
    from lit_plugins.lit import demo_models  # pylint: disable=g-import-not-at-top

    models = {
        "minilm-finetuned": demo_models.finetuned_minilm(),
        "minilm-pretrained": demo_models.pretrained_minilm(),
    }
    return models, "minilm-pretrained"


def load_datasets(model: HFSequenceClassifier) -> dict[str, loaders.RecordsDataset]:
    if not _DATASET.value:
        return {
            "sentiment-dev": loaders.load_bundled_sentiment("dev", max_examples=_MAX_EXAMPLES.value)
        }
    data = loaders.load_table(
        _DATASET.value,
        {model.text_fields[0]: _TEXT_COLUMN.value},
        _LABEL_COLUMN.value or None,
        labels=model.labels or None,
        is_regression=model.is_regression,
        max_examples=_MAX_EXAMPLES.value,
        rationale_column=_RATIONALE_COLUMN.value or None,
    )
    return {os.path.basename(_DATASET.value): data}


def main(argv: Sequence[str]):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    models, reference = load_models()
    datasets = load_datasets(next(iter(models.values())))
    interpreters = registration.plugin_interpreters(
        models, include_lit_defaults=True, reference_model=reference
    )
    server_kw = server_flags.get_flags()
    server_kw["default_layout"] = LAYOUT_NAME
    return registration.serve(
        models,
        datasets,
        interpreters=interpreters,
        layouts={LAYOUT_NAME: LAYOUT},
        **server_kw,
    )


if __name__ == "__main__":
    app.run(main)
