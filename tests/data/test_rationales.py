"""Human rationales: the bundled dev set's own, and a rationale column of a user's
table (evidence words, word indices, 0/1 masks) read into the stored form, with
the word positions each one marks and the errors bad cells raise at load time."""

import json
import string

import pytest
from lit_nlp.api import types as lit_types
from lit_nlp.lib import utils as lit_utils

from lit_plugins.data import loaders, rationales

# Words: good(0) not(1) good(2) at(3) all(4). "good" is repeated: a mask or indices
# marking only the second one must keep it marked once; evidence words mark both.
TEXT = "good not good at all"
POSITIONAL = "_ not good _ _"


def _word(w: str) -> str:  # the comparison rule, written out independently
    return w.lower().strip(string.punctuation)


def test_every_bundled_dev_sentence_has_a_rationale_of_its_own_words():
    dev = loaders.load_bundled_sentiment("dev")
    assert isinstance(dev.spec()["rationale"], lit_types.String)
    assert len(dev) == 160
    for ex in dev.examples:
        evidence = ex["rationale"].split()
        assert evidence, ex["sentence"]
        words = {_word(w) for w in ex["sentence"].split()}
        assert all(_word(e) in words and _word(e) == e.lower() for e in evidence), ex
        # Evidence words, not the positional form: every occurrence counts.
        assert rationales.UNMARKED not in evidence
    train = loaders.load_bundled_sentiment("train")
    assert "rationale" not in train.spec() and "rationale" not in train.examples[0]


def test_the_field_is_no_text_segment_for_lit_generators():
    """LIT's word replacer, scrambler and back-translator edit the dataset's
    TextSegment fields (find_spec_keys(dataset.spec(), TextSegment)): not ours."""
    spec = loaders.load_bundled_sentiment("dev", max_examples=2).spec()
    assert lit_utils.find_spec_keys(spec, lit_types.TextSegment) == ["sentence"]


def _csv(tmp_path, cells):
    path = tmp_path / "reviews.csv"
    rows = ["text,label,why"] + [f'{TEXT},pos,"{c}"' for c in cells]
    path.write_text("\n".join(rows) + "\n")
    return loaders.load_table(str(path), {"sentence": "text"}, "label", rationale_column="why")


def test_csv_cells_in_every_accepted_format(tmp_path):
    ds = _csv(
        tmp_path,
        ["not good", "[1, 2]", "0 1 1 0 0", "[0, 1, 1, 0, 0]", "", POSITIONAL, "0 0 0 0 0"],
    )
    assert isinstance(ds.spec()["rationale"], lit_types.String)
    stored = [ex["rationale"] for ex in ds.examples]
    assert stored == ["not good", POSITIONAL, POSITIONAL, POSITIONAL, "", POSITIONAL, ""]
    positions = [rationales.word_positions(s, TEXT) for s in stored]
    assert positions == [[0, 1, 2], [1, 2], [1, 2], [1, 2], [], [1, 2], []]


def test_jsonl_values_in_every_accepted_format(tmp_path):
    values = [["not", "good"], [2, 1], [0, 1, 1, 0, 0], [False, True, True, False, False]]
    values += [None, "Not good.", ["not good"], [4]]
    path = tmp_path / "reviews.jsonl"
    lines = [json.dumps({"text": TEXT, "label": "pos", "why": v}) for v in values]
    lines.append(json.dumps({"text": "fun", "label": "pos"}))  # no rationale key at all
    path.write_text("\n".join(lines) + "\n")
    ds = loaders.load_table(str(path), {"sentence": "text"}, "label", rationale_column="why")
    got = [rationales.word_positions(ex["rationale"], ex["sentence"]) for ex in ds.examples]
    assert got == [[0, 1, 2], [1, 2], [1, 2], [1, 2], [], [0, 1, 2], [0, 1, 2], [4], []]
    assert ds.examples[1]["rationale"] == POSITIONAL
    assert ds.examples[7]["rationale"] == "_ _ _ _ all"


def test_a_saved_hf_dataset_with_index_lists(tmp_path):
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict(
        {"text": [TEXT, "fun"], "label": ["pos", "pos"], "why": [[1, 2], []]}
    )
    data.save_to_disk(str(tmp_path / "saved"))
    ds = loaders.load_hf_dataset(
        str(tmp_path / "saved"), "train", {"sentence": "text"}, rationale_column="why"
    )
    assert [ex["rationale"] for ex in ds.examples] == [POSITIONAL, ""]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("[7, 1]", r"Row 1, rationale column 'why': word indices \[7\] are outside the text"),
        ("0 1 1", "a 0/1 mask needs one value per word, got 3 values"),
        ("[1, 1, 0, 0, 0, 1]", "a 0/1 mask needs one value per word, got 6 values"),
        ("brilliant not", r"evidence words \['brilliant'\] do not occur in the text"),
        ("[1.5]", r"\[1.5\] is neither words, word indices nor a 0/1 mask"),
        ('[""not"", 2]', r"\['not', 2\] is neither words"),
        ("...", "holds no word"),
    ],
)
def test_bad_cells_name_the_row_the_column_and_what_is_accepted(tmp_path, cell, message):
    with pytest.raises(ValueError, match=message) as err:
        _csv(tmp_path, ["not good", cell])
    assert "Row 1, rationale column 'why'" in str(err.value)
    assert "(5 words in 'sentence'); accepted: evidence words" in str(err.value)


def test_other_bad_values_and_a_missing_column(tmp_path):
    with pytest.raises(ValueError, match=r"Row 0, rationale column 'why': \{'a': 1\}"):
        loaders.RecordsDataset(
            [{"text": TEXT, "why": {"a": 1}}], {"sentence": "text"}, None, rationale_column="why"
        )
    with pytest.raises(ValueError, match=r"Columns \['nope'\] not found"):
        loaders.RecordsDataset(
            [{"text": TEXT, "why": ""}], {"sentence": "text"}, None, rationale_column="nope"
        )


def test_the_positional_form_reads_back():
    words = TEXT.split()
    assert rationales.marked_positions(POSITIONAL, words) == [1, 2]
    assert rationales.marked_positions("_ NOT Good. _ _", words) == [1, 2]  # as compared
    assert rationales.marked_positions("not good", words) is None  # evidence words
    assert rationales.marked_positions("_ not bad _ _", words) is None  # not the text's word
    assert rationales.marked_positions("_ not good _", words) is None  # one entry short
