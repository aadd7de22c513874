"""Trust Checks' plausibility chips on examples loaded with a rationale column
(`loaders.load_table(..., rationale_column=...)`, what --rationale_column does):
a 0/1 mask keeps its positions through the stored form, evidence words mark every
occurrence, and the chips equal hand-computed numbers and plausibility.score."""

import json

import numpy as np
import pytest
from lit_nlp.api import components as lit_components
from lit_nlp.api import dtypes
from lit_nlp.api import types as lit_types

from lit_plugins.data import loaders
from lit_plugins.faithfulness import plausibility
from lit_plugins.lit.interpreters import trust_checks
from tests.kit import tiny_models

LABELS = ["neg", "pos"]
TEXT = "good not good at all"  # tiny BERT: [CLS] good not good at all [SEP]
# A fixed map over those 7 pieces: top-2 by score = pieces 1 and 2 ("good", "not").
SCORES = [0.0, 0.9, 0.8, 0.1, 0.5, 0.2, 0.0]
METHOD = "fixed map"


class FixedMap(lit_components.Interpreter):
    """A 'salience method' that returns SCORES whatever the model."""

    def run(self, inputs, model, dataset, model_outputs=None, config=None):
        outputs = model_outputs or list(model.predict(inputs))
        return [{"map": dtypes.TokenSalience(o["tokens"], np.array(SCORES))} for o in outputs]

    def meta_spec(self):
        return {"map": lit_types.TokenSalience(autorun=False, signed=True)}


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reviews.jsonl"
    rows = [
        {"text": TEXT, "label": "pos", "why": [0, 1, 1, 0, 0]},  # "not good", the second
        {"text": TEXT, "label": "pos", "why": "not good"},  # every "not" and "good"
        {"text": TEXT, "label": "pos", "why": ""},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = loaders.load_table(str(path), {"sentence": "text"}, "label", rationale_column="why")
    model = tiny_models.classifier("bert", labels=LABELS)
    (first,) = model.predict(dataset.examples[:1])
    assert first["tokens"] == ["[CLS]", "good", "not", "good", "at", "all", "[SEP]"]
    checks = trust_checks.TrustChecks({METHOD: FixedMap()})
    config = {f"{trust_checks.METHOD_PREFIX}{METHOD}": True, trust_checks.INFIDELITY_KEY: 0}
    out = checks.run(list(dataset.examples), model, dataset, config=config)
    return [trust_checks.chips_values(o[METHOD]) for o in out], [o[METHOD].tokens for o in out]


def test_a_mask_keeps_its_positions(chips):
    values, _ = chips
    # Human: pieces {2, 3} ("not", the second "good"); predicted top-2 {1, 2}:
    # P = R = 1/2 -> F1 1/2. Spans [1, 3) vs [2, 4): IOU 1/3 < 0.5 -> IOU-F1 0.
    # AUPRC over the 5 word pieces ranked 0.9 F, 0.8 T, 0.5 F, 0.2 F, 0.1 T:
    # AP = (1/2)(1/2) + (1/2)(2/5) = 0.45.
    got = values[0]
    assert got["token F1 ↑"] == pytest.approx(0.5, abs=1e-4)
    assert got["IOU-F1 ↑"] == pytest.approx(0.0, abs=1e-4)
    assert got["AUPRC ↑"] == pytest.approx(0.45, abs=1e-4)
    special = [True, False, False, False, False, False, True]
    direct = plausibility.score(SCORES, [2, 3], special).metrics()
    assert got["token F1 ↑"] == pytest.approx(direct["token_f1"], abs=1e-4)
    assert got["AUPRC ↑"] == pytest.approx(direct["auprc"], abs=1e-4)


def test_evidence_words_mark_every_occurrence(chips):
    values, _ = chips
    # Human: pieces {1, 2, 3}; predicted top-3 {1, 2, 4}: P = R = 2/3 -> F1 2/3.
    # Spans [1, 3) vs [1, 4): IOU 2/3 matches; [4, 5) matches none -> P 1/2,
    # R 1 -> IOU-F1 2/3. AP: ranks 1 T, 2 T, 3 F, 4 F, 5 T -> (1 + 1 + 3/5) / 3.
    got = values[1]
    assert got["token F1 ↑"] == pytest.approx(2 / 3, abs=1e-4)
    assert got["IOU-F1 ↑"] == pytest.approx(2 / 3, abs=1e-4)
    assert got["AUPRC ↑"] == pytest.approx((1 + 1 + 3 / 5) / 3, abs=1e-4)


def test_an_empty_cell_is_no_rationale(chips):
    values, tokens = chips
    assert "token F1 ↑" not in values[2]
    assert any("no rationale in 'rationale'" in t for t in tokens[2])
