r"""TX-Ray overview plots for the demo's models (PNG + interactive HTML).

  .venv/bin/python -m demos.txray_report --out=docs/txray --layer=6

Compares the pre-trained MiniLM-L6 (reference, "before") with the one
fine-tuned on the bundled sentences ("after") over all bundled sentences,
with the same fit the LIT UI's TX-Ray interpreter runs
(`lit_plugins.lit.txray_inputs.fit_shift`, settings in `txray.TXRaySettings`).
"""

from __future__ import annotations

import os

from absl import app, flags

from lit_plugins import txray
from lit_plugins.data import loaders
from lit_plugins.lit import demo_models, txray_inputs

_DEFAULTS = txray.TXRaySettings()
_OUT = flags.DEFINE_string("out", "txray_report", "Output directory.")
_LAYER = flags.DEFINE_integer("layer", 6, "Layer (0 = embedding output).")
_MODE = flags.DEFINE_enum("mode", _DEFAULTS.mode, list(txray.MODES), "Crediting mode.")
_FEATURES = flags.DEFINE_enum(
    "features", "words", ["tokens", "words"], "Features: word pieces or merged words."
)
_K = flags.DEFINE_integer("k", _DEFAULTS.top_k, "Most/least shifted neurons to plot.")


def main(argv):
    del argv
    reference = demo_models.pretrained_minilm(batch_size=64)
    model = demo_models.finetuned_minilm(batch_size=64)
    examples = (
        loaders.load_bundled_sentiment("train").examples
        + loaders.load_bundled_sentiment("dev").examples
    )
    settings = txray.TXRaySettings(
        layer=_LAYER.value, mode=_MODE.value, features=_FEATURES.value, top_k=_K.value
    )
    result = txray_inputs.fit_shift(
        model,
        reference,
        examples,
        settings,
        names=("minilm-pretrained", "minilm-finetuned"),
        batch_size=64,
    )
    paths = txray.write_report(
        result,
        _OUT.value,
        k=settings.top_k,
        title=f"TX-Ray: pre-trained vs fine-tuned MiniLM-L6, layer {settings.layer}",
    )
    for name, path in paths.items():
        print(f"{name}: {os.path.relpath(path)}")


if __name__ == "__main__":
    app.run(main)
