"""RecordsDataset: per-word tags columns."""

import pytest

from lit_plugins.data import loaders


def test_tags_columns_become_sequence_tags():
    from lit_nlp.api import types as lit_types

    records = [
        {"text": "a b c", "label": "x", "pos": ["D", "N", "V"]},
        {"text": "d e", "label": "y", "pos": "N V"},
    ]
    ds = loaders.RecordsDataset(records, {"sentence": "text"}, tags_columns={"tags": "pos"})
    assert isinstance(ds.spec()["tags"], lit_types.SequenceTags)
    assert ds.spec()["tags"].align == "sentence"
    assert [ex["tags"] for ex in ds.examples] == [["D", "N", "V"], ["N", "V"]]
    with pytest.raises(ValueError, match="tags column 'pos' must hold a list of strings"):
        loaders.RecordsDataset(
            [{"text": "a", "label": "x", "pos": 3}], {"sentence": "text"}, tags_columns={"t": "pos"}
        )
    with pytest.raises(ValueError, match=r"Columns \['nope'\] not found"):
        loaders.RecordsDataset(records, {"sentence": "text"}, tags_columns={"t": "nope"})
