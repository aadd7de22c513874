"""Hardening: bad input, bad configs, caches and safety, through the Python
API and through LIT's HTTP API on a running demo server.

Already covered elsewhere (not repeated here):
- empty / whitespace / emoji / 10k-char text, unknown grad_class, missing
  text field, NaN token_embs, wrong token_embs shape (Python API):
  tests/lit/test_model.py::test_bad_and_unusual_inputs;
- probe on zero examples, one class, no label field, missing labels, bad
  probe configs: test_linear_probe_interpreter.py::test_bad_inputs;
- TX-Ray reference with another hidden size / tokenizer, empty dataset, bad
  configs: test_txray_interpreter.py::test_different_hidden_size_raises,
  ::test_different_tokenizer_raises, ::test_empty_dataset_raises,
  ::test_bad_config_raises;
- refits on more datapoints / other config: ::test_caching_and_refits in
  both interpreter test files;
- the UI model loader refuses hub names and paths outside the operator's
  directories: test_data_and_finetune.py::
  test_safe_model_loader_only_allows_operator_dirs.

LIT 1.3 and datapoints added in the UI: /get_interpretations gets the new
datapoint in `inputs`, but the interpreter is given the *loaded* dataset
(`app._datasets[dataset_name]`); LIT does not add UI datapoints to it. So
the dataset-level fits (probe, TX-Ray) do not refit for a new datapoint -
they still describe the loaded dataset - and the new datapoint is only
explained with that fit. test_new_datapoint_over_http_* pins this.
"""

import gc
import re
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import transformers
from absl import flags
from lit_nlp import server_flags  # noqa: F401  (defines --host)
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import types as lit_types

from lit_plugins.app import registration
from lit_plugins.lit.interpreters import integrated_gradients as ig
from lit_plugins.lit.interpreters import linear_probe as lp
from lit_plugins.lit.interpreters import txray_shift
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import tiny_models
from tests.kit.demo_server import count_in_log, demo_server, interpret, post

MODEL = "minilm-finetuned"
DATASET = "sentiment-dev"
HTTP_TIMEOUT_S = 120
LABELS = ["neg", "pos"]


# ------------------------------------------------------ server helpers --
def new_datapoint(**data):
    """A datapoint as the UI sends one it created: id = LIT's input_hash."""
    uid = lit_dataset.input_hash(data)
    meta = {"added": True, "parentId": None, "source": "hardening test"}
    return {"id": uid, "data": dict(data, _id=uid, _meta=meta), "meta": meta}


@pytest.fixture(scope="module")
def server(minilm_finetuned, tmp_path_factory):
    del minilm_finetuned  # makes sure the fine-tuned checkpoint is cached
    log = tmp_path_factory.mktemp("hardening_server") / "server.log"
    with demo_server(log) as srv:
        yield srv


@pytest.fixture(scope="module")
def data(server):
    return post(server[0], "get_dataset", {"dataset_name": DATASET})


# ------------------------------------------------- Python API: inputs --
@pytest.fixture(scope="module")
def bert():
    return tiny_models.classifier("bert", labels=LABELS, batch_size=4)


@pytest.mark.parametrize(
    "text",
    [
        "\x00\x01\x1b[31m\x7f\u200b\u200d\ufeff",  # control / zero-width only
        "مرحبا بالعالم هذا فيلم رائع",  # Arabic (RTL)
        "यह फ़िल्म बहुत अच्छी है",  # Devanagari
        "👨‍👩‍👧‍👦🏳️‍🌈 " * 50,  # ZWJ emoji sequences
    ],
)
def test_unusual_text_gives_finite_outputs(bert, text):
    (out,) = list(bert.predict([{"sentence": text}]))
    assert len(out["tokens"]) >= 2
    for key in ("probas", "token_grads", "cls_emb"):
        assert np.all(np.isfinite(out[key]))


def test_non_string_text_and_infinite_embeddings_raise(bert):
    with pytest.raises(ValueError, match="must be a string"):
        list(bert.predict([{"sentence": 42}]))
    with pytest.raises(ValueError, match="not valid Unicode"):
        list(bert.predict([{"sentence": "fine \ud800 film"}]))  # lone surrogate
    (out,) = list(bert.predict([{"sentence": "fun"}]))
    for bad_value in (np.inf, -np.inf, np.nan):
        bad = out["token_embs"].copy()
        bad[1, 3] = bad_value
        with pytest.raises(ValueError, match="NaN or infinite"):
            list(bert.predict([{"sentence": "fun", "token_embs": bad}]))
    # and the model still answers normally afterwards
    (again,) = list(bert.predict([{"sentence": "fun"}]))
    np.testing.assert_allclose(again["probas"], out["probas"], atol=1e-6)


# ------------------------------------------------ Python API: configs --
IG_BAD_CONFIGS = [
    ({"Interpolation steps": 0}, r"\[1, 1024\]"),
    ({"Interpolation steps": -3}, r"\[1, 1024\]"),
    ({"Interpolation steps": 1025}, r"\[1, 1024\]"),
    ({"Interpolation steps": 10**12}, r"\[1, 1024\]"),
    ({"Interpolation steps": 2.5}, r"\[1, 1024\]"),
    ({"Interpolation steps": "abc"}, r"\[1, 1024\]"),
    ({"Interpolation steps": "nan"}, r"\[1, 1024\]"),
    ({"Interpolation steps": "inf"}, r"\[1, 1024\]"),
    ({"Interpolation steps": None}, r"\[1, 1024\]"),
    ({"Interpolation steps": [8]}, r"\[1, 1024\]"),
    ({"Integration rule": "clenshaw_curtis", "Interpolation steps": 1}, r"\[2, 1024\]"),
    ({"Integration rule": "simpson"}, "gausslegendre"),
    ({"Integration rule": ""}, "gausslegendre"),
    ({"Baseline": "random"}, "zero"),
    ({"Completeness tolerance (0 = fixed steps)": -0.1}, r"\[0.0, 0.5\]"),
    ({"Completeness tolerance (0 = fixed steps)": 0.51}, r"\[0.0, 0.5\]"),
    ({"Completeness tolerance (0 = fixed steps)": "nan"}, r"\[0.0, 0.5\]"),
    ({"Completeness tolerance (0 = fixed steps)": "x"}, r"\[0.0, 0.5\]"),
    ({"Max steps (adaptive)": 1025}, "Max steps"),
    ({"Interpolation steps": 64, "Max steps (adaptive)": 8}, r"\[64, 1024\]"),
    ({"Internal batch size": 0}, r"\[1, 4096\]"),
    ({"Internal batch size": 4097}, r"\[1, 4096\]"),
    ({"Keep special tokens in baseline": "maybe"}, "true or false"),
    ({"Normalize": 2}, "true or false"),
    ({"Attribution target": "deep"}, "layer N"),
    ({"Attribution target": "layer 99"}, r"\[0, 2\]"),
    ({"Attribution target": "layer -1"}, "layer N"),
    ({"Class to explain": "maybe"}, r"accepted: \['neg', 'pos'\]"),
]


@pytest.mark.parametrize("config, match", IG_BAD_CONFIGS)
def test_ig_config_beyond_bounds_raises(bert, config, match):
    with pytest.raises(ValueError, match=match):
        ig.IntegratedGradients().run([{"sentence": "a great film"}], bert, None, config=config)


@pytest.mark.parametrize(
    "config",
    [
        {"Interpolation steps": 1},
        {"Interpolation steps": 1024, "Internal batch size": 4096},
        {"Interpolation steps": "8"},  # numeric strings are accepted
        {"Integration rule": "riemann_trapezoid", "Interpolation steps": 2},
        {
            "Completeness tolerance (0 = fixed steps)": 0.5,
            "Max steps (adaptive)": 2,
            "Interpolation steps": 2,
        },
        {"Internal batch size": 1, "Interpolation steps": 3},
        {"Attribution target": "layer 0"},
        {"Attribution target": " LAYER 2 "},
        {"Baseline": "mask", "Keep special tokens in baseline": True},
    ],
)
def test_ig_config_at_bounds_works(bert, config):
    (res,) = ig.IntegratedGradients().run([{"sentence": "a great film"}], bert, None, config=config)
    assert np.all(np.isfinite(res["token_grads"].salience))


PROBE_EXAMPLES = [
    {"sentence": f"{w} film number {i}", "label": "pos" if w == "great" else "neg"}
    for i in range(6)
    for w in ("great", "awful")
]
PROBE_SPEC = {"sentence": lit_types.TextSegment(), "label": lit_types.CategoryLabel(vocab=LABELS)}


@pytest.mark.parametrize(
    "config, match",
    [  # (others: test_bad_inputs)
        ({lp.L1_KEY: 1e7}, r"\[0.0, 1000000.0\]"),
        ({lp.L2_KEY: -1e-9}, "L2"),
        ({lp.L2_KEY: "inf"}, "L2"),
        ({lp.MASS_KEY: -1}, r"\[0.0, 100.0\]"),
        ({lp.MASS_KEY: "lots"}, r"\[0.0, 100.0\]"),
        ({lp.TOP_SHOWN_KEY: 100_001}, r"\[1, 100000\]"),
        ({lp.TOP_SHOWN_KEY: 1.5}, r"\[1, 100000\]"),
        ({lp.POOLING_KEY: "max"}, r"\['mean', 'cls'\]"),
        ({lp.LAYER_KEY: "-1"}, "sweep"),
        ({lp.LAYER_KEY: "1e400"}, "sweep"),
        ({lp.LABEL_FIELD_KEY: "sentence"}, r"\['label'\]"),
    ],
)
def test_probe_config_beyond_bounds_raises(bert, config, match):
    interp = lp.LinearProbeInterpreter(batch_size=8)
    ds = lit_dataset.Dataset(spec=PROBE_SPEC, examples=PROBE_EXAMPLES)
    with pytest.raises(ValueError, match=match):
        interp.run(PROBE_EXAMPLES[:1], bert, ds, config=config)
    assert interp.fit_count == 0


@pytest.fixture(scope="module")
def bert_pair():
    return {
        "a": tiny_models.classifier("bert", seed=0, labels=LABELS),
        "b": tiny_models.classifier("bert", seed=1, labels=LABELS),
    }


@pytest.mark.parametrize(
    "config, match",
    [  # (others: test_bad_config_raises)
        ({txray_shift.TOP_K_KEY: 100_001}, r"\[1, 100000\]"),
        ({txray_shift.TOP_K_KEY: "ten"}, r"\[1, 100000\]"),
        ({txray_shift.LAYER_KEY: -1}, r"\[0, 2\]"),
        ({txray_shift.LAYER_KEY: "last"}, r"\[0, 2\]"),
        ({txray_shift.LAYER_KEY: 1.5}, r"\[0, 2\]"),
        ({txray_shift.NORMALIZE_KEY: "maybe"}, "true or false"),
        ({txray_shift.MODE_KEY: None}, "max1"),
        ({txray_shift.REFERENCE_KEY: ["a"]}, r"\['a', 'b'\]"),
    ],
)
def test_txray_config_beyond_bounds_raises(bert_pair, config, match):
    interp = txray_shift.TXRayNeuronShift(bert_pair, default_reference="a")
    ds = lit_dataset.Dataset(spec=PROBE_SPEC, examples=PROBE_EXAMPLES)
    with pytest.raises(ValueError, match=match):
        interp.run(PROBE_EXAMPLES[:1], bert_pair["b"], ds, config=config)
    assert interp.fit_count == 0


def test_txray_reference_with_other_hidden_size_raises(bert_pair):
    """Also in test_txray_interpreter.py; here through fit() and with the
    wider model as the *selected* one."""
    tok = tiny_models.bert_tokenizer()
    cfg = transformers.BertConfig(
        vocab_size=len(tok),
        hidden_size=40,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    wide = HFSequenceClassifier(
        model=transformers.BertForSequenceClassification(cfg).eval(), tokenizer=tok, labels=LABELS
    )
    interp = txray_shift.TXRayNeuronShift({**bert_pair, "wide": wide}, default_reference="a")
    ds = lit_dataset.Dataset(spec=PROBE_SPEC, examples=PROBE_EXAMPLES)
    with pytest.raises(ValueError, match=r"hidden size 32 .* hidden size 40"):
        interp.fit(wide, ds, {})
    assert interp.fit_count == 0


# ------------------------------------------------- caches: model change --
def test_probe_refits_when_the_model_changes_and_only_then(bert_pair):
    interp = lp.LinearProbeInterpreter(batch_size=8)
    ds = lit_dataset.Dataset(spec=PROBE_SPEC, examples=PROBE_EXAMPLES)
    first = interp.fit(bert_pair["a"], ds)
    assert interp.fit_count == 1
    other = interp.fit(bert_pair["b"], ds)
    assert interp.fit_count == 2 and other is not first
    assert interp.fit(bert_pair["a"], ds) is first
    assert interp.fit(bert_pair["b"], ds) is other
    assert interp.fit_count == 2
    # A new model object with the very same weights is another model: refit.
    same_weights = HFSequenceClassifier(
        model=bert_pair["a"].model, tokenizer=bert_pair["a"].tokenizer, labels=LABELS
    )
    interp.fit(same_weights, ds)
    assert interp.fit_count == 3


def test_txray_refits_when_the_model_or_reference_changes(bert_pair):
    third = tiny_models.classifier("bert", seed=3, labels=LABELS)
    interp = txray_shift.TXRayNeuronShift({**bert_pair, "c": third}, default_reference="a")
    ds = lit_dataset.Dataset(spec=PROBE_SPEC, examples=PROBE_EXAMPLES)
    r_b = interp.fit(bert_pair["b"], ds)
    r_c = interp.fit(third, ds)
    assert interp.fit_count == 2
    assert (r_b.label_a, r_b.label_b, r_c.label_b) == ("a", "b", "c")
    r_cb = interp.fit(third, ds, {txray_shift.REFERENCE_KEY: "b"})
    assert (r_cb.label_a, r_cb.label_b) == ("b", "c")
    assert interp.fit_count == 3
    assert interp.fit(bert_pair["b"], ds) is r_b
    assert interp.fit(third, ds) is r_c
    assert interp.fit_count == 3


def test_txray_model_outside_its_models_never_gets_a_stale_result(bert_pair):
    """Models not given to the interpreter (e.g. loaded later in the UI) are
    cached per model object; a new object never gets an old one's result,
    even if Python reuses the old object's id()."""
    interp = txray_shift.TXRayNeuronShift(bert_pair, default_reference="a")
    ds = lit_dataset.Dataset(spec=PROBE_SPEC, examples=PROBE_EXAMPLES)
    for seed in (3, 4, 5):
        extra = tiny_models.classifier("bert", seed=seed, labels=LABELS)
        interp.fit(extra, ds)
        del extra
        gc.collect()
    assert interp.fit_count == 3  # a stale cache hit would not count a fit


# --------------------------------------------------------------- safety --
def test_trust_remote_code_is_never_enabled(tmp_path, monkeypatch):
    model, tok = tiny_models.make("bert")
    ckpt = tmp_path / "ok" / "ckpt"
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    calls = []

    def recorder(cls_name, original):
        def wrapped(*args, **kwargs):
            calls.append((cls_name, kwargs.get("trust_remote_code", "unset")))
            return original(*args, **kwargs)

        return wrapped

    for cls in (transformers.AutoModelForSequenceClassification, transformers.AutoTokenizer):
        monkeypatch.setattr(cls, "from_pretrained", recorder(cls.__name__, cls.from_pretrained))
    HFSequenceClassifier(str(ckpt), labels=LABELS)
    load, _ = registration.safe_model_loader([tmp_path / "ok"])
    load(str(ckpt))
    assert sorted(calls) == sorted(
        [("AutoModelForSequenceClassification", False), ("AutoTokenizer", False)] * 2
    )


def test_demo_binds_loopback_by_default(server):
    assert flags.FLAGS["host"].default == "127.0.0.1"
    port, log_path, pid = server
    assert f"lit-plugins demo: http://127.0.0.1:{port}" in log_path.read_text()
    # The kernel's view of the server's listening socket: 127.0.0.1 only.
    listening = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                local, _, state = line.split()[1:4]
                addr, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # LISTEN
                    listening.append(addr)
    assert listening == ["0100007F"]


# ------------------------------------------------------ HTTP: bad input --
GN = registration.GRADIENT_NORM
IGN = registration.INTEGRATED_GRADIENTS
PROBE = registration.LINEAR_PROBE
TXRAY = registration.TXRAY_SHIFT
FAST_IG = {"Interpolation steps": 8}

TEXTS = {
    "empty": "",
    "whitespace": " \t\n  ",
    "emoji": "🎬🍿 great film!!! 👍🏽👨‍👩‍👧",
    "non_latin": "映画 отличный фильм مرحبا फ़िल्म",
    "control": "bad\x00\x07\x1b[0m\u200bmovie\r\n",
}


@pytest.mark.parametrize("name", list(TEXTS))
def test_unusual_datapoints_over_http(server, name):
    port = server[0]
    point = new_datapoint(sentence=TEXTS[name], label="positive")
    for interp, config in ((GN, {}), (IGN, FAST_IG)):
        (res,) = interpret(port, interp, [point], config)
        values = np.asarray(res["token_grads"]["salience"], dtype=float)
        assert res["token_grads"]["tokens"][0] == "[CLS]"
        assert np.all(np.isfinite(values))


def test_long_text_over_http_is_truncated_and_logged(server):
    port, log_path, _ = server
    text = ("an unexpectedly moving film " * 400)[:10_000]
    assert len(text) == 10_000
    before = count_in_log(log_path, r"truncated to the model's max length 128")
    (res,) = interpret(port, GN, [new_datapoint(sentence=text, label="positive")])
    assert len(res["token_grads"]["tokens"]) == 128
    assert count_in_log(log_path, r"truncated to the model's max length 128") > before


@pytest.mark.parametrize(
    "data_fields",
    [
        {"sentence": "a fine film", "label": "7"},  # label not in vocab
        {"sentence": "a fine film", "label": ""},
        {"sentence": "a fine film"},  # label missing
    ],
)
def test_odd_labels_over_http(server, data_fields):
    for interp, config in ((GN, {}), (IGN, FAST_IG), (TXRAY, {}), (PROBE, {})):
        (res,) = interpret(server[0], interp, [new_datapoint(**data_fields)], config)
        assert res


def _expect_http_error(port, interp, inputs, config, match):
    with pytest.raises(urllib.error.HTTPError) as err:
        interpret(port, interp, inputs, config)
    body = err.value.read().decode("utf-8", "replace")
    assert err.value.code == 500
    assert re.search(match, body), body[:500]


HTTP_BAD_CONFIGS = [
    (IGN, {"Interpolation steps": 0}, r"\[1, 1024\]"),
    (IGN, {"Interpolation steps": -1}, r"\[1, 1024\]"),
    (IGN, {"Interpolation steps": 10**9}, r"\[1, 1024\]"),
    (IGN, {"Interpolation steps": "abc"}, r"\[1, 1024\]"),
    (IGN, {"Integration rule": "simpson"}, "riemann_left.*clenshaw_curtis"),
    (IGN, {"Baseline": "noise"}, r"\['zero', 'pad', 'mask'\]"),
    (IGN, {"Completeness tolerance (0 = fixed steps)": 9}, r"\[0.0, 0.5\]"),
    (IGN, {"Max steps (adaptive)": 10**6}, r"\[64, 1024\]"),
    (IGN, {"Internal batch size": -5}, r"\[1, 4096\]"),
    (IGN, {"Attribution target": "layer 42"}, r"\[0, 6\]"),
    (IGN, {"Class to explain": "neutral"}, r"accepted: \['negative', 'positive'\]"),
    (GN, {"Exclude special tokens from normalization": "sometimes"}, "true or false"),
    (PROBE, {lp.L1_KEY: 1e9}, r"\[0.0, 1000000.0\]"),
    (PROBE, {lp.LAYER_KEY: "99"}, r"\[0, 1, 2, 3, 4, 5, 6\]"),
    (PROBE, {lp.POOLING_KEY: "first"}, r"\['mean', 'cls'\]"),
    (PROBE, {lp.TOP_SHOWN_KEY: 0}, r"\[1, 100000\]"),
    (PROBE, {lp.LABEL_FIELD_KEY: "sentence"}, r"\['label'\]"),
    (
        TXRAY,
        {txray_shift.REFERENCE_KEY: "bert-base-uncased"},
        "minilm-finetuned.*minilm-pretrained",
    ),
    (TXRAY, {txray_shift.LAYER_KEY: 7}, r"\[0, 6\]"),
    (TXRAY, {txray_shift.MODE_KEY: "max99"}, "max1"),
    (TXRAY, {txray_shift.FEATURES_KEY: "bytes"}, r"\['tokens', 'words', 'tags'\]"),
    (TXRAY, {txray_shift.TOP_K_KEY: 0}, r"\[1, 100000\]"),
]


@pytest.mark.parametrize(
    "interp, config, match",
    HTTP_BAD_CONFIGS,
    ids=[f"{i[0].split(': ')[1]}-{next(iter(i[1]))}" for i in HTTP_BAD_CONFIGS],
)
def test_bad_config_over_http_then_server_keeps_serving(server, data, interp, config, match):
    port = server[0]
    _expect_http_error(port, interp, data[:1], config, match)
    # The next valid request is answered.
    ok_config = FAST_IG if interp == IGN else {}
    (res,) = interpret(port, interp, data[:1], ok_config)
    assert res


def test_nonfinite_token_embs_over_http_are_an_error(server, data):
    port = server[0]
    preds = post(
        port,
        "get_preds",
        {"model": MODEL, "dataset_name": DATASET, "requested_types": "TokenEmbeddings"},
        {"inputs": data[:1]},
    )
    embs = np.asarray(preds[0]["token_embs"], dtype=float)
    embs[1, 0] = 1e39  # overflows float32 -> inf (JSON has no NaN/inf)
    point = new_datapoint(
        sentence=data[0]["data"]["sentence"],
        label=data[0]["data"]["label"],
        token_embs=embs.tolist(),
    )
    _expect_http_error(port, GN, [point], {}, "NaN or infinite")
    assert interpret(port, GN, data[:1])


def test_malformed_requests_are_errors_and_server_keeps_serving(server, data):
    port = server[0]
    bad_id = dict(data[0], id="not-the-hash")
    _expect_http_error(port, GN, [bad_id], {}, "inconsistent ids")
    no_text = new_datapoint(label="positive")
    _expect_http_error(port, GN, [no_text], {}, "missing the text field")
    with pytest.raises(urllib.error.HTTPError):
        post(
            port,
            "get_interpretations",
            {"model": MODEL, "dataset_name": DATASET, "interpreter": "lit-plugins: Nope"},
            {"inputs": data[:1]},
        )
    assert interpret(port, GN, data[:1])


# -------------------------------------------- HTTP: caches / new points --
FIT_LINES = {PROBE: r"Linear probe: done in", TXRAY: r"TX-Ray: done in"}


@pytest.mark.parametrize("interp", [PROBE, TXRAY])
def test_new_datapoint_over_http_uses_loaded_dataset_fit(server, data, interp):
    port, log_path, _ = server
    interpret(port, interp, data[:1])  # fitted (now or by an earlier test)
    fits = count_in_log(log_path, FIT_LINES[interp])
    point = new_datapoint(sentence="A brand new review typed in the UI.", label="negative")
    (res_new,) = interpret(port, interp, [point])
    (res_old,) = interpret(port, interp, data[:1])
    # LIT 1.3 does not add UI datapoints to the dataset the interpreter gets:
    # no refit, and the dataset-level parts of the answer are unchanged.
    assert count_in_log(log_path, FIT_LINES[interp]) == fits
    key = lp.LAYER_SWEEP if interp == PROBE else txray_shift.SHIFTED_NEURONS
    assert res_new[key] == res_old[key]
    token_key = lp.TOKEN_SALIENCE if interp == PROBE else txray_shift.TOKEN_SALIENCE
    assert "brand" in res_new[token_key]["tokens"]


@pytest.mark.parametrize(
    "interp, changed, unchanged",
    [
        (PROBE, {lp.POOLING_KEY: "cls"}, {lp.TOP_SHOWN_KEY: 3, lp.MASS_KEY: 90}),
        (TXRAY, {txray_shift.LAYER_KEY: 3}, {txray_shift.TOP_K_KEY: 4}),
    ],
)
def test_config_change_over_http_refits_once(server, data, interp, changed, unchanged):
    port, log_path, _ = server
    interpret(port, interp, data[:1])
    fits = count_in_log(log_path, FIT_LINES[interp])
    interpret(port, interp, data[1:2], unchanged)  # display-only option
    assert count_in_log(log_path, FIT_LINES[interp]) == fits
    interpret(port, interp, data[:2], changed)
    assert count_in_log(log_path, FIT_LINES[interp]) == fits + 1
    interpret(port, interp, data[2:3], changed)  # cached now
    assert count_in_log(log_path, FIT_LINES[interp]) == fits + 1


def test_other_model_over_http_refits(server, data):
    port, log_path, _ = server
    interpret(port, PROBE, data[:1])
    fits = count_in_log(log_path, FIT_LINES[PROBE])
    interpret(port, PROBE, data[:1], model="minilm-pretrained")
    interpret(port, PROBE, data[1:2], model="minilm-pretrained")
    assert count_in_log(log_path, FIT_LINES[PROBE]) == fits + 1


def test_fit_cache_is_bounded_and_fits_once_per_key():
    from lit_plugins.lit import dataset_level

    cache = dataset_level.FitOnceCache(max_entries=2)
    calls = []
    fit = lambda k: cache.get_or_fit(k, lambda: calls.append(k) or k * 10)
    assert [fit(1), fit(1), fit(2), fit(1), fit(3)] == [10, 10, 20, 10, 30]
    assert calls == [1, 2, 3] and cache.fit_count == 3
    fit(1)  # still cached: it was used more recently than 2
    fit(2)  # evicted earlier: fitted again
    assert calls == [1, 2, 3, 2]


def test_ig_memory_is_bounded_by_splitting_chunks(tiny_classifier, monkeypatch):
    """A huge internal batch size is split into bounded model calls with the
    same numbers."""
    from lit_plugins.hf import paths as hf_paths

    examples = [{"sentence": "the film was not bad at all " * 3}]
    path_fn, _, _ = tiny_classifier.integrated_gradients_path(examples)
    points = [(0, a) for a in np.linspace(0, 1, 40)]
    whole = path_fn(points)
    calls = []
    real = tiny_classifier.model.forward
    monkeypatch.setattr(hf_paths, "MAX_TOKEN_ROWS", 200)
    monkeypatch.setattr(
        tiny_classifier.model, "forward", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    split = path_fn(points)
    assert len(calls) > 1
    for (fa, ia), (fb, ib) in zip(whole, split):
        assert fa == pytest.approx(fb, abs=1e-6)
        np.testing.assert_allclose(ia, ib, atol=1e-6)
