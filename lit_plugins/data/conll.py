"""Token-tagged data (NER, POS) as LIT Datasets: CoNLL-style files and the bundled NER set.

A CoNLL-style file has one ``word TAG`` per line (further columns in between are
ignored; the tag is the last column, the word the first), a blank line between
sentences, and optional ``-DOCSTART-`` lines. Each sentence becomes one example: the
words joined by spaces in the text field, the tags as a list in the tags field
(`SequenceTags` aligned to the text's whitespace words) and, for BIO tags, the gold
entities as character spans (`GOLD_ENTITIES`, shown by LIT's "Annotated Text (gold)").
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from lit_nlp.api import dtypes
from lit_nlp.api import types as lit_types

from lit_plugins.data import loaders
from lit_plugins.hf.words import entity_spans
from lit_plugins.util import bio

NER_DATASET_NAME = "ner-dev"
# The gold BIO entities as character spans of the text (LIT's "Annotated Text (gold)").
GOLD_ENTITIES = "gold_entities"
NER_DIR = os.path.join(os.path.dirname(__file__), "ner")
# The bundled set's tags, in the order a tiny demo head is built with.
NER_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")


def read_conll(path: str) -> list[tuple[list[str], list[str]]]:
    """(words, tags) per sentence of a CoNLL-style file; ValueError naming the line for
    a line without a tag."""
    sentences: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if words:
                    sentences.append((words, tags))
                words, tags = [], []
                continue
            if len(fields) < 2:
                raise ValueError(f"{path}:{number}: expected 'word TAG', got {line.strip()!r}.")
            words.append(fields[0])
            tags.append(fields[-1])
    if words:
        sentences.append((words, tags))
    return sentences


class TaggedDataset(loaders.RecordsDataset):
    """Sentences with one tag per whitespace word: a text field and a tags field
    (`SequenceTags` aligned to the text). `labels` (the model's tags), when given,
    must cover every tag in the data."""

    def __init__(
        self,
        sentences: Sequence[tuple[Sequence[str], Sequence[str]]],
        text_field: str = "sentence",
        tags_field: str = "tags",
        labels: Sequence[str] | None = None,
        max_examples: int | None = None,
        description: str = "",
    ):
        records = []
        for i, (words, tags) in enumerate(sentences):
            words, tags = list(words), list(tags)
            if not words:
                raise ValueError(f"Sentence {i} has no words.")
            if any(not w or any(c.isspace() for c in w) for w in words):
                raise ValueError(f"Sentence {i}: words must be non-empty and without spaces.")
            if len(tags) != len(words):
                raise ValueError(f"Sentence {i} has {len(words)} words but {len(tags)} tags.")
            records.append({"text": " ".join(words), "tags": tags})
        seen = sorted({t for r in records for t in r["tags"]})
        if labels is not None:
            unknown = sorted(set(seen) - {str(l) for l in labels})
            if unknown:
                raise ValueError(f"Tags {unknown} are not among the model's tags {list(labels)}.")
        super().__init__(
            records,
            {text_field: "text"},
            label_column=None,
            max_examples=max_examples,
            description=description,
            tags_columns={tags_field: "tags"},
        )
        self.labels = list(labels) if labels is not None else seen
        self.text_field = text_field
        self.tags_field = tags_field
        if self._examples and all(bio.is_bio(ex[tags_field]) for ex in self._examples):
            self._spec[GOLD_ENTITIES] = lit_types.MultiSegmentAnnotations()
            for ex in self._examples:
                ex[GOLD_ENTITIES] = [
                    dtypes.AnnotationCluster(
                        label=e["label"],
                        spans=[dtypes.SpanLabel(e["start"], e["end"], align=text_field)],
                    )
                    for e in entity_spans(ex[text_field], ex[tags_field])
                ]

    def spec(self) -> lit_types.Spec:
        return self._spec


def load_conll(path: str, **kw) -> TaggedDataset:
    """A CoNLL-style file (see the module docstring) as a TaggedDataset."""
    kw.setdefault("description", os.path.basename(path))
    return TaggedDataset(read_conll(path), **kw)


def load_bundled_ner(max_examples: int | None = None, **kw) -> TaggedDataset:
    """The project's own 60 hand-written sentences with BIO tags (PER, ORG, LOC)."""
    kw.setdefault("labels", NER_LABELS)
    kw.setdefault("description", "bundled NER sentences (BIO: PER, ORG, LOC)")
    return load_conll(os.path.join(NER_DIR, "dev.conll"), max_examples=max_examples, **kw)
