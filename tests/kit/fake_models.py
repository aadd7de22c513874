"""Minimal LIT models for is_compatible checks and LIT-API-only paths."""

import numpy as np
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types


class PredictionsOnly(lit_model.BatchedModel):
    """A text classifier with tokens and probabilities only: no gradients,
    no embeddings, no per-layer activations."""

    def __init__(self, labels=("a", "b")):
        self._labels = list(labels)

    def input_spec(self):
        return {"sentence": lit_types.TextSegment()}

    def output_spec(self):
        return {
            "tokens": lit_types.Tokens(),
            "probas": lit_types.MulticlassPreds(vocab=self._labels),
        }

    def predict_minibatch(self, inputs):
        uniform = np.full(len(self._labels), 1.0 / len(self._labels))
        return [{"tokens": ["x"], "probas": uniform} for _ in inputs]


class LitApiOnly(lit_model.Model):
    """Exposes only the LIT API of a model (no wrapper-specific fast paths)."""

    def __init__(self, model):
        self._m = model

    def input_spec(self):
        return self._m.input_spec()

    def output_spec(self):
        return self._m.output_spec()

    def predict(self, inputs, **kw):
        return self._m.predict(inputs, **kw)

    def get_embedding_table(self):
        return self._m.get_embedding_table()
