"""LIT Datasets: CSV/TSV/JSONL files, HF `datasets`, and the bundled set."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import types as lit_types

from lit_plugins.data import rationales

BUNDLED_DIR = os.path.join(os.path.dirname(__file__), "sentiment")
# The bundled multi-label set: restaurant-review sentences tagged with the topics
# they talk about, several per sentence ("food|service"; empty: none of them).
RESTAURANT_DIR = os.path.join(os.path.dirname(__file__), "restaurant")
RESTAURANT_LABELS = ("food", "service", "price", "ambience")
# How a CSV/TSV cell lists several labels (JSONL files may hold lists instead).
LABEL_SEPARATOR = "|"
# Class names of the bundled set, in the head's output order; its files
# store the class index (0, 1).
SENTIMENT_LABELS = ("negative", "positive")
# The field a rationale column becomes: the Trust Checks interpreter's default
# "Rationale field" (its plausibility chips read it).
RATIONALE_FIELD = "rationale"


def _label_spec(labels: Sequence[str] | None, is_regression: bool):
    if is_regression:
        return lit_types.Scalar()
    return lit_types.CategoryLabel(vocab=list(labels) if labels else None)


class RecordsDataset(lit_dataset.Dataset):
    """A LIT Dataset from records, renaming source columns to LIT fields.

    `text_fields` maps each LIT text field to its source column
    (e.g. {"sentence": "review"}); `label_column` names the label column
    (None: no labels). Labels are kept as strings for classification
    (`labels` fixes the vocab order; default: sorted distinct values) and as
    floats for regression.
    """

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        text_fields: Mapping[str, str],
        label_column: str | None = "label",
        label_field: str = "label",
        labels: Sequence[str] | None = None,
        is_regression: bool = False,
        max_examples: int | None = None,
        description: str = "",
        tags_columns: Mapping[str, str] | None = None,
        multi_label: bool = False,
        label_separator: str = LABEL_SEPARATOR,
        rationale_column: str | None = None,
    ):
        """`tags_columns`: {LIT field: source column} of per-word labels
        (`SequenceTags` over the first text field's whitespace words, for the
        token-level probe and TX-Ray's tag features): a list of strings
        (JSONL) or one space-separated string (CSV/TSV).

        `multi_label`: the label column lists any number of labels per example
        (a `SparseMultilabel` field): a list of strings (JSONL) or one string
        with the labels separated by `label_separator` ("food|service"; an
        empty cell: no label). With `labels` given, a label outside them is a
        ValueError naming the row.

        `rationale_column`: a column of human rationales over the first text
        field's whitespace words (evidence words, word indices or a 0/1 mask; see
        `data.rationales`), checked here and kept as the `rationale` field
        (RATIONALE_FIELD) in `rationales.stored_form`; an empty cell: none."""
        tags_columns = dict(tags_columns or {})
        if not text_fields:
            raise ValueError(
                "text_fields must map at least one LIT field to a "
                "source column, e.g. {'sentence': 'text'}."
            )
        records = list(records)[:max_examples] if max_examples else list(records)
        columns = set().union(*(r.keys() for r in records)) if records else set()
        missing = [
            c
            for c in [
                *text_fields.values(),
                *([label_column] if label_column else []),
                *tags_columns.values(),
                *([rationale_column] if rationale_column else []),
            ]
            if c not in columns
        ]
        if records and missing:
            raise ValueError(f"Columns {missing} not found; available: {sorted(columns)}.")
        examples = []
        first_text = next(iter(text_fields))
        for r in records:
            ex = {f: "" if r.get(c) is None else str(r[c]) for f, c in text_fields.items()}
            if label_column:
                value = r.get(label_column)
                if multi_label:
                    ex[label_field] = _label_list(value, label_separator, len(examples))
                elif is_regression:
                    try:
                        ex[label_field] = float(value)
                    except (TypeError, ValueError):
                        raise ValueError(f"Label {value!r} is not a number.") from None
                else:
                    ex[label_field] = _label_str(value)
            for field, column in tags_columns.items():
                ex[field] = _tags(r.get(column), column, len(examples))
            if rationale_column:
                ex[RATIONALE_FIELD] = rationales.stored_form(
                    r.get(rationale_column),
                    ex[first_text],
                    row=len(examples),
                    column=rationale_column,
                    text_field=first_text,
                )
            examples.append(ex)
        if label_column and multi_label:
            labels = _multi_label_vocab(examples, label_field, labels)
        elif label_column and not is_regression:
            seen = sorted({ex[label_field] for ex in examples})
            if labels is None:
                labels = seen
            else:
                labels = [str(l) for l in labels]
                names = _class_names(seen, labels)
                for ex in examples:
                    ex[label_field] = names.get(ex[label_field], ex[label_field])
        self._spec = {f: lit_types.TextSegment() for f in text_fields}
        if label_column and multi_label:
            # LIT's default separator (how its UI shows and edits the list): LIT pairs a
            # dataset field with a model's input field only when the two specs are equal.
            self._spec[label_field] = lit_types.SparseMultilabel(vocab=list(labels))
        elif label_column:
            self._spec[label_field] = _label_spec(labels, is_regression)
        for field in tags_columns:
            self._spec[field] = lit_types.SequenceTags(align=first_text)
        if rationale_column:
            # A String, not a TextSegment: LIT's data table shows it, and LIT's
            # generators (word replacer, scrambler, back-translation), which edit the
            # dataset's TextSegment fields, leave it alone.
            self._spec[RATIONALE_FIELD] = lit_types.String(required=False)
        self.labels = list(labels) if labels else []
        super().__init__(spec=self._spec, examples=examples, description=description)

    def spec(self) -> lit_types.Spec:
        return self._spec


def _class_names(seen: Sequence[str], labels: Sequence[str]) -> dict[str, str]:
    """{stored value: class name}: empty when every stored label is a name in
    `labels`; {"0": labels[0], ...} when every one is a class index instead
    (a file with 0/1 labels and `labels=["negative", "positive"]`)."""
    unknown = sorted(set(seen) - set(labels))
    if not unknown:
        return {}
    indices = [str(i) for i in range(len(labels))]
    if set(seen) <= set(indices) and not set(seen) & set(labels):
        return dict(zip(indices, labels))
    raise ValueError(
        f"Labels {unknown} are not in the label vocab {labels} (nor are all labels class "
        f"indices 0..{len(labels) - 1})."
    )


def _label_list(value, separator: str, row: int) -> list[str]:
    """One example's labels from a list of strings or a `separator`-joined string."""
    if value is None or (isinstance(value, float) and value != value):  # missing / NaN
        return []
    if isinstance(value, str):
        return [l.strip() for l in value.split(separator) if l.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(l, str) for l in value):
        return [l.strip() for l in value if l.strip()]
    raise ValueError(
        f"Row {row}: a multi-label column must hold a list of label names or one string "
        f"with the labels separated by {separator!r}, got {value!r}."
    )


def _multi_label_vocab(
    examples: Sequence[Mapping[str, Any]], field: str, labels: Sequence[str] | None
) -> list[str]:
    """The label vocab: `labels`, after checking every example's labels are in it;
    without `labels`, every label seen, sorted."""
    if labels is None:
        return sorted({l for ex in examples for l in ex[field]})
    labels = [str(l) for l in labels]
    known = set(labels)
    for row, ex in enumerate(examples):
        unknown = [l for l in ex[field] if l not in known]
        if unknown:
            raise ValueError(
                f"Row {row}: labels {unknown} are not labels of the model's head; "
                f"accepted: {labels} (any number of them per example, none included)."
            )
    return labels


def _tags(value, column: str, row: int) -> list[str]:
    """Per-word tags from a list of strings or a space-separated string."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value):
        return list(value)
    raise ValueError(
        f"Row {row}: tags column {column!r} must hold a list of strings or a "
        f"space-separated string, got {value!r}."
    )


def _label_str(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def read_table(path: str) -> list[dict[str, Any]]:
    """Rows of a .csv, .tsv or .jsonl/.json file as dicts."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        frame = pd.read_csv(path, keep_default_na=False)
    elif ext in (".tsv", ".txt"):
        frame = pd.read_csv(path, sep="\t", keep_default_na=False, quoting=3)
    elif ext in (".jsonl", ".json"):
        with open(path) as f:
            if ext == ".json":
                return list(json.load(f))
            return [json.loads(line) for line in f if line.strip()]
    else:
        raise ValueError(
            f"Unsupported file type {ext!r} for {path}; accepted: .csv, .tsv, .jsonl, .json."
        )
    return frame.to_dict("records")


def load_table(
    path: str, text_fields: Mapping[str, str], label_column: str | None = "label", **kw
) -> RecordsDataset:
    """A LIT Dataset from a CSV/TSV/JSONL file with column mapping."""
    return RecordsDataset(
        read_table(path), text_fields, label_column, description=f"{os.path.basename(path)}", **kw
    )


def load_hf_dataset(
    name_or_dir: str,
    split: str,
    text_fields: Mapping[str, str],
    label_column: str | None = "label",
    **kw,
) -> RecordsDataset:
    """A LIT Dataset from HF `datasets`: a `save_to_disk` directory, or a hub
    name where the hub is reachable. Integer ClassLabel columns become their
    names."""
    import datasets  # optional dependency (extra "demo")

    if os.path.isdir(name_or_dir):
        data = datasets.load_from_disk(name_or_dir)
    else:
        data = datasets.load_dataset(name_or_dir)
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise ValueError(f"Split {split!r} not in {list(data)}.")
        data = data[split]
    feature = data.features.get(label_column) if label_column else None
    records = data.to_list()
    if isinstance(feature, datasets.ClassLabel):
        kw.setdefault("labels", feature.names)
        for r in records:
            r[label_column] = feature.int2str(r[label_column])
    inner = getattr(feature, "feature", None)  # a list of ClassLabel (multi-label)
    if kw.get("multi_label") and isinstance(inner, datasets.ClassLabel):
        kw.setdefault("labels", inner.names)
        for r in records:
            r[label_column] = [inner.int2str(i) for i in r[label_column] or []]
    return RecordsDataset(
        records, text_fields, label_column, description=f"{name_or_dir}:{split}", **kw
    )


def load_bundled_restaurant(
    max_examples: int | None = None, labels: Sequence[str] = RESTAURANT_LABELS
) -> RecordsDataset:
    """The project's own restaurant-review sentences with the topics each one talks
    about (any of RESTAURANT_LABELS, several per sentence or none), for multi-label
    heads; the file separates them with '|'. `labels`: the label vocab in a model's
    head order (LIT pairs the field with a model's only when the vocabs are equal)."""
    return load_table(
        os.path.join(RESTAURANT_DIR, "reviews.tsv"),
        {"sentence": "sentence"},
        "labels",
        labels=labels,
        max_examples=max_examples,
        multi_label=True,
    )


def load_bundled_sentiment(split: str = "dev", max_examples: int | None = None) -> RecordsDataset:
    """The project's own movie-review sentences, labelled 'negative' or
    'positive' (SENTIMENT_LABELS; the files store 0 and 1). The dev split also
    has our own human-style rationales (the `rationale` field: the evidence words
    of each sentence's label; docs/trust-checks.md)."""
    if split not in ("train", "dev"):
        raise ValueError(f"split must be 'train' or 'dev', got {split!r}.")
    return load_table(
        os.path.join(BUNDLED_DIR, f"{split}.tsv"),
        {"sentence": "sentence"},
        "label",
        labels=SENTIMENT_LABELS,
        max_examples=max_examples,
        rationale_column=RATIONALE_FIELD if split == "dev" else None,
    )
