"""A small labelled LIT dataset of the tiny models' words, as LIT's app serves one
(indexed, with `_id`s): for tests that run LIT's components and ours on a tiny model."""

from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import types as lit_types
from lit_nlp.lib import caching

LABELS = ["neg", "pos"]
SENTENCES = [
    "the film was not bad at all",
    "boring",
    "slow start but a stunning finale really",
    "i hated it and a terrible mess",
    "a great film",
    "the acting was awful",
    "loved it",
    "this movie is fun",
    "very slow",
    "brilliant plot",
]


def indexed_dataset() -> lit_dataset.IndexedDataset:
    """SENTENCES with alternating labels, indexed as LIT's server indexes a dataset."""
    spec = {"sentence": lit_types.TextSegment(), "label": lit_types.CategoryLabel(vocab=LABELS)}
    examples = [{"sentence": s, "label": LABELS[i % 2]} for i, s in enumerate(SENTENCES)]
    return lit_dataset.IndexedDataset(
        base=lit_dataset.Dataset(spec=spec, examples=examples), id_fn=caching.input_hash
    )
