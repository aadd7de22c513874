"""Dataset loaders, the bundled set, the cached fine-tune, the safe loader."""

import json

import numpy as np
import pytest
from lit_nlp.api import types as lit_types

from lit_plugins.app import registration
from lit_plugins.data import loaders
from lit_plugins.hf import finetune
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import tiny_models

ROWS = [
    {"review": "great fun", "stars": "pos", "id": 1},
    {"review": "a total bore", "stars": "neg", "id": 2},
    {"review": "not bad at all", "stars": "pos", "id": 3},
]


def _check(ds):
    assert [ex["sentence"] for ex in ds.examples] == [r["review"] for r in ROWS]
    assert [ex["label"] for ex in ds.examples] == [r["stars"] for r in ROWS]
    assert isinstance(ds.spec()["label"], lit_types.CategoryLabel)
    assert ds.spec()["label"].vocab == ["neg", "pos"]


def test_csv_tsv_jsonl_with_column_mapping(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(ROWS)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    with open(tmp_path / "d.jsonl", "w") as f:
        f.write("\n".join(json.dumps(r) for r in ROWS))
    for name in ("d.csv", "d.tsv", "d.jsonl"):
        _check(loaders.load_table(str(tmp_path / name), {"sentence": "review"}, "stars"))


def test_hf_saved_dataset_with_class_labels(tmp_path):
    import datasets

    features = datasets.Features(
        {
            "review": datasets.Value("string"),
            "stars": datasets.ClassLabel(names=["neg", "pos"]),
            "id": datasets.Value("int64"),
        }
    )
    data = datasets.Dataset.from_list(
        [dict(r, stars=["neg", "pos"].index(r["stars"])) for r in ROWS], features=features
    )
    datasets.DatasetDict({"validation": data}).save_to_disk(str(tmp_path / "h"))
    _check(
        loaders.load_hf_dataset(str(tmp_path / "h"), "validation", {"sentence": "review"}, "stars")
    )


def test_loader_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        loaders.RecordsDataset(ROWS, {"sentence": "text"}, "stars")
    with pytest.raises(ValueError, match="not in the label vocab"):
        loaders.RecordsDataset(ROWS, {"sentence": "review"}, "stars", labels=["neg", "neutral"])
    with pytest.raises(ValueError, match="not a number"):
        loaders.RecordsDataset(ROWS, {"sentence": "review"}, "stars", is_regression=True)
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(ValueError, match="Unsupported file type"):
        loaders.load_table(str(tmp_path / "x.xml"), {"sentence": "a"})


def test_class_indices_get_the_given_names():
    """A label column of class indices with `labels=` names: shown as names."""
    rows = [dict(r, stars=["neg", "pos"].index(r["stars"])) for r in ROWS]
    _check(loaders.RecordsDataset(rows, {"sentence": "review"}, "stars", labels=["neg", "pos"]))
    mixed = [dict(rows[0], stars="pos"), *rows[1:]]  # a name and indices: ambiguous
    with pytest.raises(ValueError, match="not in the label vocab"):
        loaders.RecordsDataset(mixed, {"sentence": "review"}, "stars", labels=["neg", "pos"])
    big = [dict(rows[0], stars=2), *rows[1:]]  # an index beyond the names
    with pytest.raises(ValueError, match="not in the label vocab"):
        loaders.RecordsDataset(big, {"sentence": "review"}, "stars", labels=["neg", "pos"])


def test_bundled_set_is_balanced_and_split():
    train = loaders.load_bundled_sentiment("train").examples
    dev = loaders.load_bundled_sentiment("dev").examples
    assert len(train) + len(dev) >= 600
    for split in (train, dev):
        labels = [ex["label"] for ex in split]
        assert labels.count("negative") == labels.count("positive") > 0
    texts = [ex["sentence"] for ex in train + dev]
    assert len(set(texts)) == len(texts)  # no duplicates, no leakage
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) <= 4 and max(lengths) >= 35
    lowered = " ".join(texts).lower()
    for phrase in ("not bad", " but ", "oh great"):
        assert phrase in lowered


def test_cached_fine_tune_trains_once(tmp_path, monkeypatch):
    model, tok = tiny_models.make("bert")
    base = tmp_path / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    calls = []
    real = finetune.fine_tune
    monkeypatch.setattr(finetune, "fine_tune", lambda *a, **k: calls.append(1) or real(*a, **k))
    texts = ["great fun", "a total bore"] * 4
    labels = ["1", "0"] * 4
    kw = dict(
        base_dir=str(base),
        cache_dir=str(tmp_path / "cache"),
        epochs=1,
        batch_size=4,
        progress=False,
    )
    first = finetune.fine_tuned_checkpoint(texts, labels, ["0", "1"], **kw)
    second = finetune.fine_tuned_checkpoint(texts, labels, ["0", "1"], **kw)
    assert first == second and len(calls) == 1
    third = finetune.fine_tuned_checkpoint(texts[:4], labels[:4], ["0", "1"], **kw)
    assert third != first and len(calls) == 2  # new data → new checkpoint
    clf = HFSequenceClassifier(first, labels=["0", "1"])
    assert len(list(clf.predict([{"sentence": "fun"}]))) == 1


def test_minilm_fine_tunes_on_a_slice(tmp_path):
    """The real MiniLM-L6: a few steps on the bundled set lower the loss."""
    import torch

    train = loaders.load_bundled_sentiment("train").examples[:48]
    model, tok = finetune.load_classifier(finetune.default_model_dir(), ["0", "1"])
    texts = [ex["sentence"] for ex in train]
    labels = torch.tensor([loaders.SENTIMENT_LABELS.index(ex["label"]) for ex in train])

    def loss():
        with torch.no_grad():
            enc = tok(texts, padding=True, return_tensors="pt")
            return float(model(**enc, labels=labels).loss)

    before = loss()
    finetune.fine_tune(
        model,
        tok,
        texts,
        labels.tolist(),
        epochs=2,
        batch_size=16,
        learning_rate=1e-4,
        progress=False,
    )
    assert loss() < before
    clf = HFSequenceClassifier(model=model, tokenizer=tok, labels=["0", "1"])
    out = next(iter(clf.predict([{"sentence": texts[0]}])))
    assert out["tokens"][0] == "[CLS]" and np.isfinite(out["probas"]).all()


def test_safe_model_loader_only_allows_operator_dirs(tmp_path):
    model, tok = tiny_models.make("bert")
    allowed = tmp_path / "allowed" / "ckpt"
    model.save_pretrained(allowed)
    tok.save_pretrained(allowed)
    load, spec = registration.safe_model_loader([tmp_path / "allowed"])
    assert set(spec) == {"model_name_or_path", "batch_size", "max_length", "threshold"}
    assert isinstance(load(str(allowed)), HFSequenceClassifier)
    for bad in ("bert-base-uncased", str(tmp_path), "/etc", str(allowed) + "/../../../"):
        with pytest.raises(ValueError, match="not an allowed checkpoint"):
            load(bad)
