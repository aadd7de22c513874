"""The demo's datasets carry human rationales (no server started): the bundled
dev set as `demos/demo.py` loads it (`model_data.load_dataset`), and a user's
table with --rationale_column."""

import pytest
from absl import flags
from absl.testing import flagsaver
from lit_nlp.api import types as lit_types
from lit_nlp.lib import serialize

from lit_plugins.cli import model_data
from lit_plugins.data import rationales
from tests.kit import tiny_models


@pytest.fixture(scope="module")
def model():
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    return tiny_models.classifier("bert", labels=["negative", "positive"])


def test_the_demo_serves_the_dev_set_with_its_rationales(model):
    with flagsaver.flagsaver(dataset=None, max_examples=None, labels=None):
        datasets = model_data.load_dataset({"m": model})
    ((name, dev),) = datasets.items()
    assert name == model_data.DEFAULT_DATASET_NAME and len(dev) == 160
    assert isinstance(dev.spec()["rationale"], lit_types.String)
    assert all(ex["rationale"] for ex in dev.examples)
    assert dev.examples[0]["rationale"] == "bold unexpected absolutely right"
    # As LIT's server sends the spec to the UI: a plain string field.
    assert '"__name__": "StringLitType"' in serialize.to_json(dev.spec()["rationale"])


def test_rationale_column_flag_on_a_user_table(model, tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text(
        "review,stars,evidence\n"
        "good not good at all,0,0 1 1 0 0\n"
        "good not good at all,0,[0]\n"
        "a great film,1,great\n"
        "a great film,1,\n"
    )
    with flagsaver.flagsaver(
        dataset=str(path),
        text_fields=["sentence=review"],
        label_column="stars",
        rationale_column="evidence",
        max_examples=None,
        labels=None,
    ):
        ((_, ds),) = model_data.load_dataset({"m": model}).items()
    stored = [ex["rationale"] for ex in ds.examples]
    assert stored == ["_ not good _ _", "good _ _ _ _", "great", ""]
    positions = [rationales.word_positions(s, ex["sentence"]) for s, ex in zip(stored, ds.examples)]
    assert positions == [[1, 2], [0], [1], []]
    assert model.is_compatible_with_dataset(ds)
    bad_column = flagsaver.flagsaver(
        dataset=str(path),
        text_fields=["sentence=review"],
        label_column="stars",
        rationale_column="stars",  # the class index 0: no word of the text
        max_examples=None,
        labels=None,
    )
    message = r"Row 0, rationale column 'stars': evidence words \['0'\]"
    with bad_column, pytest.raises(ValueError, match=message):
        model_data.load_dataset({"m": model})
