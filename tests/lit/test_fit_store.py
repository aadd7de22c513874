"""Dataset-level fits in the output store: the codecs round-trip every kind of fit
exactly (dtypes and bytes), the persistent key has a stable text form (models as
their store key) or none, and a fit store reads, writes and drops rows."""

import dataclasses
import logging
import sqlite3

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from lit_nlp.api import model as lit_model

from lit_plugins import probing, txray
from lit_plugins.lit import fit_codecs, fit_store
from lit_plugins.lit.probe_state import ProbeFitOptions, ProbeState
from lit_plugins.util.store import OutputStore
from tests.kit.threads import call_in_threads


# ------------------------------------------------------------------ codecs
def _round_trip(value):
    """Through the codec and the store's own JSON + raw-bytes encoding, as on disk."""
    from lit_plugins.util import store as store_lib

    encoded = fit_codecs.encode_fit(value)
    assert encoded is not None
    return fit_codecs.decode_fit(store_lib.decode(*store_lib.encode(encoded)))


def test_dataframe_round_trips_exactly():
    frame = pd.DataFrame(
        {
            "metric": ["comprehensiveness", "sufficiency", "tau_loo"],
            "method": ["grad_norm", "random", None],
            "mean": [0.125, np.nan, -0.0],
            "ci_low": np.array([1 / 3, np.inf, 2.5e-300], dtype=np.float64),
            "n": np.array([10, 0, 3], dtype=np.int64),
            "score32": np.array([0.1, 0.2, 0.3], dtype=np.float32),
            "passed": [True, False, True],
            "note": pd.Series(["a", None, "c"], dtype="string"),  # pd.NA as missing
            "mixed": pd.Series(["x", 1, None], dtype=object),
        }
    )
    back = _round_trip(frame)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert list(back.dtypes) == list(frame.dtypes)
    assert np.signbit(back["mean"].iloc[2])  # -0.0 stays -0.0


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a": [1.0, 2.0]}, index=["x", "y"]),  # an index of its own
        pd.DataFrame({"a": pd.Categorical(["x", "y"])}),
        pd.DataFrame({"a": [object(), object()]}),
        pd.DataFrame({0: [1.0]}),  # a non-string column name
    ],
)
def test_dataframes_a_codec_cannot_store_stay_in_memory(frame):
    assert fit_codecs.encode_fit(frame) is None


def test_values_without_a_codec_are_not_stored():
    assert fit_codecs.codec_for({"a": 1}) is None
    assert fit_codecs.encode_fit({"a": 1}) is None
    assert fit_codecs.encode_fit(object()) is None


def _probe_state(control: bool) -> ProbeState:
    rng = np.random.default_rng(0)
    X = {l: rng.standard_normal((60, 8)).astype(np.float32) for l in (0, 1, 2)}
    y = np.where(X[1][:, 0] > 0, "pos", "neg")
    sweep = probing.LayerSweep("classification", lambda_l1=1e-3, lambda_l2=1e-3, device="cpu")
    sweep.fit({l: x[:40] for l, x in X.items()}, y[:40], {l: x[40:] for l, x in X.items()}, y[40:])
    fit = ProbeFitOptions(
        label_field="label",
        level="sentence",
        task_type="classification",
        text_field=None,
        layers=(0, 1, 2),
        sweep=True,
        pooling="mean",
        l1=1e-3,
        l2=1e-3,
        control=control,
    )
    extra = {}
    if control:
        extra = {
            "control_scores": {0: 0.5, 1: 0.55, 2: 0.45},
            "selectivity": {0: 0.1, 1: 0.4, 2: 0.2},
        }
    return ProbeState.of_sweep(
        fit, sweep, num_train=40, num_held_out=20, num_items=60, seconds=1 / 7, **extra
    ), X


@pytest.mark.parametrize("control", [False, True])
def test_probe_state_round_trips_exactly_and_predicts_alike(control):
    state, X = _probe_state(control)
    back = _round_trip(state)
    for field in dataclasses.fields(ProbeState):
        if field.name not in ("sweep", "model"):
            assert getattr(back, field.name) == getattr(state, field.name), field.name
    assert back.scores == state.scores and all(isinstance(l, int) for l in back.scores)
    assert back.best_layer == state.best_layer == state.sweep.best_layer_
    for layer in state.layers:
        a, b = state.probe(layer), back.probe(layer)
        for attr in ("weight_", "bias_", "mean_", "scale_"):
            assert getattr(b, attr).dtype == getattr(a, attr).dtype
            np.testing.assert_array_equal(getattr(b, attr), getattr(a, attr))
        np.testing.assert_array_equal(b.predict(X[layer]), a.predict(X[layer]))
        assert list(b.class_to_idx_) == list(a.class_to_idx_) == ["neg", "pos"]
    assert back.model is None  # the live model is never stored


def _shift(replicates: int) -> txray.ShiftResult:
    gen = txray.synthetic.SyntheticTXRay(num_neurons=24, vocab_size=60, seed=3)
    aggs = [txray.NeuronFeatureAggregator(24, record_units=True) for _ in range(2)]
    for i, batch in enumerate(gen.batches(2000, batch_tokens=100)):
        units = np.full(batch.feature_ids.shape, i, dtype=np.int64)
        aggs[0].update(batch.acts_a, batch.feature_ids, units=units)
        aggs[1].update(batch.acts_b, batch.feature_ids, units=units)
    return txray.compute_shift(
        *aggs,
        feature_names=gen.feature_names,
        labels=("base", "tuned"),
        replicates=replicates,
        seed=1,
    )


@pytest.mark.parametrize("replicates", [0, 20])
def test_shift_result_round_trips_exactly(replicates):
    result = _shift(replicates)
    back = _round_trip(result)
    for field in dataclasses.fields(txray.ShiftResult):
        a, b = getattr(result, field.name), getattr(back, field.name)
        if isinstance(a, np.ndarray):
            assert b.dtype == a.dtype, field.name
            np.testing.assert_array_equal(b, a, err_msg=field.name)
        elif sp.issparse(a):
            assert b.shape == a.shape and b.dtype == a.dtype, field.name
            assert (b != a).nnz == 0, field.name
        else:
            assert b == a, field.name
    ranked, again = result.rank_shifts(k=5), back.rank_shifts(k=5)
    assert [s.neuron for s in again.most] == [s.neuron for s in ranked.most]
    np.testing.assert_array_equal(back.interval(0.9), result.interval(0.9))


def test_rows_of_another_codec_version_or_damaged_are_refused():
    encoded = fit_codecs.encode_fit(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(fit_codecs.FitCodecError, match="version"):
        fit_codecs.decode_fit({**encoded, fit_codecs.VERSION_FIELD: 99})
    with pytest.raises(fit_codecs.FitCodecError, match="no codec"):
        fit_codecs.decode_fit({**encoded, fit_codecs.CODEC_FIELD: "nope"})
    with pytest.raises(fit_codecs.FitCodecError, match="KeyError"):
        fit_codecs.decode_fit({k: v for k, v in encoded.items() if k != "columns"})


# ---------------------------------------------------------------- the key
@dataclasses.dataclass(frozen=True)
class _Settings:
    layer: int
    weights: tuple
    name: str = "x"


@dataclasses.dataclass
class _Mutable:
    layer: int


def _fit_store(tmp_path, keys=None):
    keys = {} if keys is None else keys
    return fit_store.FitStore(
        OutputStore(str(tmp_path / "s.sqlite")), lambda model: keys.get(model.description())
    )


class _Model(lit_model.Model):
    """A LIT model whose store key the test chooses (by its description)."""

    def __init__(self, name):
        self._name = name

    def description(self):
        return self._name

    def input_spec(self):
        return {}

    def output_spec(self):
        return {}

    def predict(self, inputs, **kw):
        raise AssertionError("not called")


def test_key_text_is_stable_and_maps_models_to_their_store_key(tmp_path):
    keys = {"a": "k" * 64, "b": "j" * 64}
    store = _fit_store(tmp_path, keys)
    parts = (("model", _Model("a")), _Settings(2, (0.5, -0.0)), ("split", 0.2, 0), None, True)
    text = store.key_text("Probe", parts, "f" * 40)
    # Another process: other objects, the same weights and settings.
    again = _fit_store(tmp_path, keys).key_text(
        "Probe",
        (("model", _Model("a")), _Settings(2, (0.5, -0.0)), ("split", 0.2, 0), None, True),
        "f" * 40,
    )
    assert text == again and "k" * 64 in text and "_Settings" in text
    changed = [
        store.key_text("TXRay", parts, "f" * 40),  # another kind
        store.key_text("Probe", parts, "e" * 40),  # other data
        store.key_text("Probe", (("model", _Model("b")), *parts[1:]), "f" * 40),  # other weights
        store.key_text("Probe", (parts[0], _Settings(2, (0.5, 0.0)), *parts[2:]), "f" * 40),
        store.key_text("Probe", (*parts[:-1], 1), "f" * 40),  # True is not 1
    ]
    assert len({text, *changed}) == 6


@pytest.mark.parametrize(
    "part",
    [object(), _Mutable(1), ("model", _Model("unknown")), {"a": 1}, lambda: 0],
    ids=["object", "mutable dataclass", "model without a key", "dict", "function"],
)
def test_parts_without_a_stable_form_keep_the_fit_in_memory(tmp_path, part):
    store = _fit_store(tmp_path, {"a": "k" * 64})
    assert store.key_text("Probe", (("model", _Model("a")), part), "f" * 40) is None
    computed = []
    _, stored = store.load_or_compute(
        "Probe", (part,), "f" * 40, lambda: computed.append(1) or pd.DataFrame({"a": [1.0]})
    )
    assert not stored and computed == [1] and store.store.stats()["rows"] == 0


def test_model_keys_are_computed_once_per_model_object(tmp_path):
    calls = []
    store = fit_store.FitStore(
        OutputStore(str(tmp_path / "s.sqlite")), lambda m: calls.append(m) or "k" * 64
    )
    model = _Model("a")
    for _ in range(3):
        assert store.model_key(model) == "k" * 64
    assert len(calls) == 1
    other = _Model("b")
    store.remember(other, "j" * 64)
    assert store.model_key(other) == "j" * 64 and len(calls) == 1


# ------------------------------------------------------------- the values
def _frame(seed=0):
    return pd.DataFrame({"method": ["a", "b"], "mean": np.random.default_rng(seed).random(2)})


def test_load_or_compute_stores_then_reads(tmp_path):
    parts = (("model", _Model("a")), _Settings(1, ()))
    keys = {"a": "k" * 64}
    first = _fit_store(tmp_path, keys)
    value, stored = first.load_or_compute("Faith", parts, "f" * 40, _frame)
    assert not stored and first.writes == 1
    again = _fit_store(tmp_path, keys)  # a restart

    def fail():
        raise AssertionError("computed again")

    back, stored = again.load_or_compute("Faith", parts, "f" * 40, fail)
    assert stored and again.reads == 1
    pd.testing.assert_frame_equal(back, value, check_exact=True)


def _damage(path, sql):
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql)
    conn.close()


@pytest.mark.parametrize(
    "sql, message",
    [
        # The arrays are not the bytes the JSON describes: the store drops the row itself.
        ("UPDATE outputs SET arrays = x'00ff00'", "unreadable stored output"),
        # The JSON is fine, the codec cannot read it (a column missing).
        (
            "UPDATE outputs SET plain = replace(plain, '\"columns\"', '\"cols\"')",
            "unreadable stored fit",
        ),
        # Another key's value under this key's digest.
        ("UPDATE outputs SET plain = replace(plain, 'kkkk', 'kkkq')", "unreadable stored fit"),
    ],
    ids=["arrays", "codec", "key"],
)
def test_a_damaged_row_is_dropped_recomputed_and_stored_again(tmp_path, caplog, sql, message):
    parts = (("model", _Model("a")), _Settings(1, ()))
    keys = {"a": "k" * 64}
    first = _fit_store(tmp_path, keys)
    first.load_or_compute("Faith", parts, "f" * 40, _frame)
    _damage(first.store.path, sql)
    again = _fit_store(tmp_path, keys)
    with caplog.at_level(logging.WARNING):
        value, stored = again.load_or_compute("Faith", parts, "f" * 40, lambda: _frame(1))
    assert not stored and message in caplog.text.lower()
    pd.testing.assert_frame_equal(value, _frame(1))
    # Stored again, readable now.
    back, stored = _fit_store(tmp_path, keys).load_or_compute(
        "Faith", parts, "f" * 40, lambda: _frame(2)
    )
    assert stored
    pd.testing.assert_frame_equal(back, _frame(1), check_exact=True)
    assert again.store.stats()["rows"] == 1


def test_a_store_that_fails_to_write_serves_the_fit_from_memory(tmp_path, caplog):
    store = _fit_store(tmp_path, {"a": "k" * 64})
    store.store.close()  # every later SQL statement fails
    with caplog.at_level(logging.WARNING):
        value, stored = store.load_or_compute("Faith", (("model", _Model("a")),), "f", _frame)
    assert not stored and "could not" in caplog.text.lower()
    pd.testing.assert_frame_equal(value, _frame())


def test_concurrent_reads_of_one_key_in_a_dataset_interpreter_read_once(tmp_path):
    from lit_plugins.lit import dataset_level

    model = _Model("a")  # one model object: one in-memory key

    class Fits(dataset_level.DatasetInterpreter):
        computed = 0

        def fit_frame(self):
            def compute():
                type(self).computed += 1
                return _frame()

            return self.cached_fit((("model", model), _Settings(1, ())), [{"x": 1}], compute)

    keys = {"a": "k" * 64}
    writer = Fits()
    writer.use_fit_store(_fit_store(tmp_path, keys))
    results, errors = call_in_threads(writer.fit_frame, n=6)
    assert not errors and Fits.computed == 1 and writer.fit_count == 1
    reader = Fits()  # a restart
    reader.use_fit_store(_fit_store(tmp_path, keys))
    again, errors = call_in_threads(reader.fit_frame, n=6)
    assert not errors and Fits.computed == 1
    assert reader.fit_count == 1 and reader.stored_fit_count == 1
    assert all(r is again[0] for r in again)  # one read, shared from memory
    pd.testing.assert_frame_equal(again[0], results[0], check_exact=True)


def test_output_store_delete_drops_only_the_named_rows(tmp_path):
    store = OutputStore(str(tmp_path / "s.sqlite"))
    store.put_many("a", {"x": {"v": 1}, "y": {"v": 2}})
    store.put_many("b", {"x": {"v": 3}})
    store.delete("a", ["x", "missing"])
    assert store.get_many("a", ["x", "y"]) == {"y": {"v": 2}}
    assert store.get_many("b", ["x"]) == {"x": {"v": 3}}
