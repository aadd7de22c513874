"""HFTokenClassifier in LIT: specs validated by LIT, entity annotations, wrap_model's
kind pick, the tagging metrics (closed forms), the tag salience interpreters (map
totals, IG completeness) and LIT's app serving them; the CoNLL loader."""

import typing

import numpy as np
import pytest
from lit_nlp import app as lit_app
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types
from lit_nlp.components import core as lit_core
from lit_nlp.lib import caching, validation

from lit_plugins.app import registration
from lit_plugins.data import conll
from lit_plugins.lit import tag_metrics, token_model
from lit_plugins.lit.interpreters import tag_salience
from lit_plugins.lit.interpreters.integrated_gradients import completeness_dict
from lit_plugins.lit.model import HFSequenceClassifier
from lit_plugins.util import bio
from tests.kit import lit_apps, tiny_models, tiny_taggers

DATA = conll.load_bundled_ner()


@pytest.fixture(scope="module")
def tagger():
    return tiny_taggers.tagger("bert", batch_size=8)


def test_outputs_pass_lits_validation_and_align(tagger):
    small = lit_dataset.Dataset(spec=DATA.spec(), examples=DATA.examples[:10])
    validation.validate_model(tagger, small)
    spec = tagger.output_spec()
    assert isinstance(spec["tags"], lit_types.SequenceTags) and spec["tags"].align == "words"
    for ex, out in zip(small.examples, tagger.predict(small.examples)):
        assert out["words"] == ex["sentence"].split()
        assert len(out["tags"]) == len(out["words"]) == len(out["tag_confidence"])
        # Each predicted entity is the character span of its words in the text.
        spans = bio.spans(out["tags"])
        assert len(out["entities"]) == len(spans)
        for cluster, (a, b, kind) in zip(out["entities"], spans):
            (span,) = cluster.spans
            assert cluster.label == kind and span.align == "sentence"
            assert ex["sentence"][span.start : span.end] == " ".join(out["words"][a:b])


def test_wrap_model_picks_the_kind_and_refuses_other_heads():
    model, tok = tiny_taggers.make("roberta")
    wrapped = registration.wrap_model(model, tok, text_fields=("text",), batch_size=2)
    assert isinstance(wrapped, token_model.HFTokenClassifier) and wrapped.text_field == "text"
    seq, seq_tok = tiny_models.make("bert")
    assert isinstance(registration.wrap_model(seq, seq_tok), HFSequenceClassifier)
    import transformers

    qa = transformers.BertForQuestionAnswering(seq.config)
    with pytest.raises(ValueError, match=r"BertForQuestionAnswering.*token classification"):
        registration.wrap_model(qa, seq_tok)
    with pytest.raises(ValueError, match="one text field"):
        registration.wrap_model(model, tok, text_fields=("a", "b"))


def test_tag_metrics_closed_form():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "B-LOC"]]
    outputs = [{"tags": p} for p in pred]
    got = tag_metrics.TagMetrics.compute_tags(gold, outputs)
    # 4 of 6 words right; gold spans {PER 0-2, LOC 3, ORG 0}, predicted {PER, ORG 3, ORG, LOC}.
    assert got["token_accuracy"] == pytest.approx(4 / 6)
    assert got["span_precision"] == pytest.approx(2 / 4)
    assert got["span_recall"] == pytest.approx(2 / 3)
    assert got["span_f1"] == pytest.approx(2 * 2 / 7)
    assert got["skipped_examples"] == 0
    # Examples without fitting gold are skipped and counted; POS tags get accuracy only.
    got = tag_metrics.TagMetrics.compute_tags([None, ["O"]], outputs)
    assert got == {"skipped_examples": 2.0}
    pos = tag_metrics.TagMetrics.compute_tags([["DET", "NOUN"]], [{"tags": ["DET", "VERB"]}])
    assert pos == {"skipped_examples": 0.0, "token_accuracy": 0.5}


def test_conlleval_chunks():
    assert bio.spans(["I-PER", "I-PER", "O", "B-LOC", "I-ORG", "I-ORG", "B-ORG", "B-ORG"]) == [
        (0, 2, "PER"),
        (3, 4, "LOC"),
        (4, 6, "ORG"),
        (6, 7, "ORG"),
        (7, 8, "ORG"),
    ]


def _app(tagger):
    data = lit_dataset.IndexedDataset(
        base=conll.load_bundled_ner(max_examples=12), id_fn=caching.input_hash
    )
    interpreters = registration.plugin_interpreters({"ner": tagger}, include_lit_defaults=True)
    metrics = {**lit_core.default_metrics(), **tag_metrics.plugin_metrics()}
    app = lit_app.LitApp(
        {"ner": tagger},
        {"ner": data},
        interpreters=interpreters,
        metrics=metrics,
        client_root=lit_apps.CLIENT_ROOT,
    )
    inputs = {"inputs": [{"id": ie["id"], "data": ie["data"]} for ie in data.indexed_examples]}
    return app, data, inputs


def test_lit_app_serves_tags_metrics_and_tag_salience(tagger):
    app, data, inputs = _app(tagger)
    info = app._build_metadata()["models"]["ner"]
    # Only what fits a tagger: our tag maps, LIT's metrics none, ours "tagging".
    assert set(tag_salience.NAMES.values()) <= set(info["interpreters"])
    assert info["metrics"] == [tag_metrics.METRICS_NAME]
    preds = app._get_preds(inputs, model="ner")
    assert [p["tags"] for p in preds] == [o["tags"] for o in tagger.predict(data.examples)]
    (result,) = app._get_metrics(inputs, model="ner", dataset_name="ner")["tagging"]
    expected = bio.tag_metrics([ex["tags"] for ex in data.examples], [p["tags"] for p in preds])
    for key, value in expected.items():
        assert result["metrics"][key] == pytest.approx(value)
    assert result["label_key"] == "tags" and result["pred_key"] == "tags"

    one = {"inputs": inputs["inputs"][:2]}
    config = {tag_salience.WORD_KEY: "1", tag_salience.TAG_KEY: "B-LOC"}
    for name in tag_salience.NAMES.values():
        got = app._get_interpretations(
            {**one, "config": config}, model="ner", dataset_name="ner", interpreter=name
        )
        for item, ex in zip(got, data.examples[:2]):
            words = item[tag_salience.WORDS]
            assert list(words.tokens) == ex["sentence"].split()
            pieces = item[tag_salience.PIECES]
            assert pieces.tokens[0] == "[CLS]"
            word_one = ex["sentence"].split()[1]
            assert f"word 1 '{word_one}' is tagged B-LOC" in item[tag_salience.TARGET].tokens[0]
            # The word map is the piece map summed per word (special tokens left out).
            specials = [k for k, t in enumerate(pieces.tokens) if t in ("[CLS]", "[SEP]")]
            total = np.sum(pieces.salience) - np.sum(np.asarray(pieces.salience)[specials])
            assert np.sum(words.salience) == pytest.approx(total, rel=1e-5, abs=1e-7)
            if name == tag_salience.NAMES[tag_salience.INTEGRATED_GRADIENTS]:
                report = completeness_dict(item["completeness"])
                assert report["relative completeness error"] <= 0.01
                assert np.sum(pieces.salience) == pytest.approx(
                    report["F(input) - F(baseline)"], rel=0.01
                )


def test_tag_ig_on_a_layer_via_the_interpreter(tagger):
    interp = tag_salience.TagSalience(tag_salience.INTEGRATED_GRADIENTS)
    ex = DATA.examples[2]
    config = {tag_salience.TARGET_LAYER_KEY: "layer 1", tag_salience.WORD_KEY: "Tom"}
    (out,) = interp.run([ex], tagger, DATA, config=config)
    report = completeness_dict(out["completeness"])
    assert report["relative completeness error"] <= 0.01
    assert "word 0 'Tom'" in out[tag_salience.TARGET].tokens[0]
    with pytest.raises(ValueError, match="'layer N'"):
        interp.run([ex], tagger, DATA, config={tag_salience.TARGET_LAYER_KEY: "top"})
    with pytest.raises(ValueError, match="layer must be in"):
        interp.run([ex], tagger, DATA, config={tag_salience.TARGET_LAYER_KEY: "layer 9"})


def test_tag_layer_conductance_interpreter_sums_to_hfs_delta_f(tagger):
    """Tag salience: Layer Conductance at layer 1 for a chosen word and tag: ΔF in the
    completeness chips equals F(x) − F(0) from HF's own forward at the word's first piece;
    the piece map and (all 32 neurons shown) the neuron chips each sum to it within 1 %,
    the neuron chips ordered by |total|; the word map is the piece map summed per word."""
    import torch

    interp = tag_salience.TagSalience(tag_salience.LAYER_CONDUCTANCE)
    assert tag_salience.NAMES[tag_salience.LAYER_CONDUCTANCE] in tag_salience.interpreters()
    ex = DATA.examples[1]
    words = ex["sentence"].split()
    config = {
        tag_salience.WORD_KEY: "Vienna",
        tag_salience.TAG_KEY: "B-LOC",
        tag_salience.LAYER_KEY: 1,
        tag_salience.TOP_KEY: 100,
    }
    (out,) = interp.run([ex], tagger, DATA, config=config)
    assert (
        f"word {words.index('Vienna')} 'Vienna' is tagged B-LOC"
        in out[tag_salience.TARGET].tokens[0]
    )
    enc = tagger.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    pos = enc.word_ids(0).index(words.index("Vienna"))
    tag = tagger.labels.index("B-LOC")
    x = tagger.model.get_input_embeddings()(enc["input_ids"]).detach()
    with torch.no_grad():
        f = [
            float(torch.softmax(tagger.model(inputs_embeds=e).logits[0, pos], -1)[tag])
            for e in (x, torch.zeros_like(x))
        ]
    delta = f[0] - f[1]
    report = completeness_dict(out["completeness"])
    assert report["F(input) - F(baseline)"] == pytest.approx(delta, rel=1e-5, abs=1e-7)
    assert report["relative completeness error"] <= 0.01
    pieces = out[tag_salience.PIECES]
    assert list(pieces.tokens) == tagger.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    assert abs(np.sum(pieces.salience) - delta) <= 0.01 * abs(delta) + 1e-7
    specials = [k for k, t in enumerate(pieces.tokens) if t in ("[CLS]", "[SEP]")]
    total = np.sum(pieces.salience) - np.sum(np.asarray(pieces.salience)[specials])
    assert np.sum(out[tag_salience.WORDS].salience) == pytest.approx(total, rel=1e-5, abs=1e-7)
    top = out[tag_salience.TOP_FIELD]
    assert len(top.tokens) == tagger.model.config.hidden_size
    assert all(t.startswith("L1 n") for t in top.tokens)
    assert abs(np.sum(top.salience) - delta) <= 0.01 * abs(delta) + 1e-7
    assert list(np.abs(top.salience)) == sorted(np.abs(top.salience), reverse=True)
    with pytest.raises(ValueError, match=r"must be an integer in \[0, 2\]"):
        interp.run([ex], tagger, DATA, config={tag_salience.LAYER_KEY: 3})


def test_load_model_dialog_loads_a_token_classifier(tmp_path):
    """The UI's "load model" loader (`safe_model_loader`, as the demo builds it) picks the
    kind from the checkpoint's config: a saved tagger comes back as HFTokenClassifier on
    the demo's text field with the in-memory model's word probabilities; a sequence
    classifier as before; a question-answering head is refused, naming it."""
    import transformers

    model, tok = tiny_taggers.make("roberta")
    model.save_pretrained(tmp_path / "ner")
    tok.save_pretrained(tmp_path / "ner")
    seq, seq_tok = tiny_models.make("bert")
    seq.save_pretrained(tmp_path / "seq")
    seq_tok.save_pretrained(tmp_path / "seq")
    transformers.BertForQuestionAnswering(seq.config).save_pretrained(tmp_path / "qa")
    seq_tok.save_pretrained(tmp_path / "qa")
    load, spec = registration.safe_model_loader([tmp_path], text_fields=("text",), device="cpu")
    assert "model_name_or_path" in spec
    # LIT's /create_model reads the loader's return annotation and needs a class there
    # (`get_type_hints(...)["return"].__mro__`): a union of the two wrappers gave a 500.
    assert lit_model.Model in typing.get_type_hints(load)["return"].__mro__
    loaded = load(str(tmp_path / "ner"), batch_size=3, max_length=64, threshold=0.5)
    assert isinstance(loaded, token_model.HFTokenClassifier)
    assert loaded.text_field == "text" and loaded.batch_size == 3 and loaded.max_length == 64
    assert loaded.labels == list(conll.NER_LABELS)
    ex = {"text": DATA.examples[0]["sentence"]}
    in_memory = token_model.HFTokenClassifier(model=model, tokenizer=tok, text_field="text")
    np.testing.assert_allclose(
        loaded.predict_words([ex])[0]["probs"],
        in_memory.predict_words([ex])[0]["probs"],
        atol=1e-6,
    )
    assert isinstance(load(str(tmp_path / "seq")), HFSequenceClassifier)
    with pytest.raises(ValueError, match="BertForQuestionAnswering head"):
        load(str(tmp_path / "qa"))
    with pytest.raises(ValueError, match="not an allowed checkpoint directory"):
        load(str(tmp_path.parent))


def test_salience_config_errors_are_clear(tagger):
    interp = tag_salience.TagSalience(tag_salience.GRADIENT_X_INPUT)
    ex = DATA.examples[0]
    with pytest.raises(ValueError, match="out of range"):
        interp.run([ex], tagger, DATA, config={tag_salience.WORD_KEY: "99"})
    with pytest.raises(ValueError, match="not one of the model's tags"):
        interp.run([ex], tagger, DATA, config={tag_salience.TAG_KEY: "B-MISC"})
    seq = tiny_models.classifier("bert")
    assert not interp.is_compatible(seq, DATA)
    assert interp.run([{"sentence": "the film"}], seq, DATA) is None


def test_conll_loader(tmp_path):
    assert len(DATA) == 60 and DATA.labels == list(conll.NER_LABELS)
    assert isinstance(DATA.spec()["tags"], lit_types.SequenceTags)
    for ex in DATA.examples:
        assert len(ex["tags"]) == len(ex["sentence"].split())
    path = tmp_path / "pos.conll"
    path.write_text("-DOCSTART- X\n\nThe DT B-NP\ncat NN I-NP\n\n\nsat VBD B-VP\n")
    ds = conll.load_conll(str(path), text_field="text", tags_field="chunks")
    assert [(ex["text"], ex["chunks"]) for ex in ds.examples] == [
        ("The cat", ["B-NP", "I-NP"]),
        ("sat", ["B-VP"]),
    ]
    # BIO tags: the gold entities as character spans, for "Annotated Text (gold)".
    gold = [
        [(c.label, c.spans[0].start, c.spans[0].end) for c in ex[conll.GOLD_ENTITIES]]
        for ex in ds.examples
    ]
    assert gold == [[("NP", 0, 7)], [("VP", 0, 3)]]
    path.write_text("The DT\ncat NN\n")
    assert conll.GOLD_ENTITIES not in conll.load_conll(str(path)).spec()  # POS: not BIO
    with pytest.raises(ValueError, match="not among the model's tags"):
        conll.load_conll(str(path), labels=["O", "B-NP", "I-NP"])
    path.write_text("The DT\ncat\n")
    with pytest.raises(ValueError, match=r"pos.conll:2: expected 'word TAG'"):
        conll.read_conll(str(path))
    with pytest.raises(ValueError, match="has 2 words but 1 tags"):
        conll.TaggedDataset([(["a", "b"], ["O"])])
    with pytest.raises(ValueError, match="has 1 words but 0 tags"):
        conll.TaggedDataset([(["a"], [])])


def test_token_level_probe_on_the_models_own_tags(tagger):
    """The Linear Probe runs on a token classifier with its own tags as the label field
    (`with_model_tags`); the rows it trains on at the last layer ("first" pooling) are
    exactly the states the head reads: the head applied to them gives those tags."""
    import torch

    from lit_plugins.lit import probe_inputs
    from lit_plugins.lit.interpreters import linear_probe

    data = token_model.with_model_tags(DATA, tagger)
    field = token_model.MODEL_TAGS
    assert isinstance(data.spec()[field], lit_types.SequenceTags)
    tags = [ex[field] for ex in data.examples]
    assert tags == [o["tags"] for o in tagger.predict(DATA.examples)]
    last = tagger.num_layers
    rows = probe_inputs.collect_word_vectors(
        tagger, data.examples, tags, "sentence", [last], pooling="first"
    )
    with torch.no_grad():
        logits = tagger.model.classifier(torch.from_numpy(rows.vectors[last]))
    assert [tagger.labels[k] for k in logits.argmax(-1)] == list(rows.tags)
    assert len(rows.tags) == sum(len(t) for t in tags)

    probe = registration.plugin_interpreters()[registration.LINEAR_PROBE]
    assert probe.is_compatible(tagger, data)
    config = {linear_probe.LABEL_FIELD_KEY: field, linear_probe.POOLING_KEY: "first"}
    (out,) = probe.run(data.examples[:1], tagger, data, config=config)
    sweep = {
        t.split(" = ")[0]: v
        for t, v in zip(
            out[linear_probe.LAYER_SWEEP].tokens, out[linear_probe.LAYER_SWEEP].salience
        )
    }
    majority = max(np.unique(rows.tags, return_counts=True)[1]) / len(rows.tags)
    assert set(sweep) == {f"layer {l}" for l in range(last + 1)}
    assert majority < sweep[f"layer {last}"] <= 1.0
    assert out[linear_probe.TOKEN_SALIENCE].tokens[0] == "[CLS]"
