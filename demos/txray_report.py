r"""TX-Ray overview plots for the demo's models (PNG + interactive HTML).

  .venv/bin/python -m demos.txray_report --out=docs/txray --layer=6

Compares the pre-trained MiniLM-L6 (reference, "before") with the one
fine-tuned on the bundled sentences ("after") over all bundled sentences,
through the same TXRayNeuronShift interpreter the LIT UI uses.
"""

from __future__ import annotations

import os

from absl import app, flags
from lit_nlp.api import dataset as lit_dataset

from lit_plugins.data import loaders
from lit_plugins.lit import demo_models
from lit_plugins.lit.interpreters import txray_shift
from lit_plugins.txray import report

_OUT = flags.DEFINE_string("out", "txray_report", "Output directory.")
_LAYER = flags.DEFINE_integer("layer", 6, "Layer (0 = embedding output).")
_MODE = flags.DEFINE_enum("mode", "max1", ["max1", "all"], "Crediting mode.")
_FEATURES = flags.DEFINE_enum(
    "features", "words", ["tokens", "words"], "Features: word pieces or merged words."
)
_K = flags.DEFINE_integer("k", 10, "Most/least shifted neurons to plot.")


def main(argv):
    del argv
    models = {
        "minilm-pretrained": demo_models.pretrained_minilm(batch_size=64),
        "minilm-finetuned": demo_models.finetuned_minilm(batch_size=64),
    }
    examples = (
        loaders.load_bundled_sentiment("train").examples
        + loaders.load_bundled_sentiment("dev").examples
    )
    dataset = lit_dataset.Dataset(
        spec=loaders.load_bundled_sentiment("dev").spec(), examples=examples
    )
    interp = txray_shift.TXRayNeuronShift(models, default_reference="minilm-pretrained")
    result = interp.fit(
        models["minilm-finetuned"],
        dataset,
        {
            txray_shift.LAYER_KEY: _LAYER.value,
            txray_shift.MODE_KEY: _MODE.value,
            txray_shift.FEATURES_KEY: _FEATURES.value,
        },
    )
    paths = report.write_report(
        result,
        _OUT.value,
        k=_K.value,
        title=f"TX-Ray: pre-trained vs fine-tuned MiniLM-L6, layer {_LAYER.value}",
    )
    for name, path in paths.items():
        print(f"{name}: {os.path.relpath(path)}")


if __name__ == "__main__":
    app.run(main)
