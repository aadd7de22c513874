"""The served app keeps the dataset-level fits (Linear Probe, TX-Ray, Salience
Faithfulness's whole-dataset summary) in its output store: a restart (new model
objects loaded from the same checkpoints, new interpreters, the same cache
directory) shows them without running the model; changed weights, another
config or a damaged row refit; without the store nothing is written.

Stored floats come back bit for bit (float32 / float64 arrays through .npz,
Python floats through JSON's shortest repr), so restored fits are compared
with `assert_array_equal`, not a tolerance."""

import dataclasses
import logging
import os
import sqlite3

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import transformers
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import types as lit_types
from lit_nlp.components import gradient_maps
from lit_nlp.lib import caching

from lit_plugins import txray
from lit_plugins.app import bounded_cache
from lit_plugins.lit import fit_store
from lit_plugins.lit.interpreters import faithfulness as faith_lib
from lit_plugins.lit.interpreters import linear_probe, trust_checks, txray_shift
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import lit_apps, tiny_models

LABELS = ["neg", "pos"]
SPEC = {"sentence": lit_types.TextSegment(), "label": lit_types.CategoryLabel(vocab=LABELS)}
PROBE, TXRAY, FAITH, TRUST = "probe", "txray", "faithfulness", "trust"
PROBE_CONFIG = {linear_probe.LAYER_KEY: "sweep"}
TXRAY_CONFIG = {
    txray_shift.REFERENCE_KEY: "base",
    txray_shift.LAYER_KEY: 2,
    txray_shift.REPLICATES_KEY: 20,
}
FAITH_CONFIG = {faith_lib.SUMMARY_KEY: "whole dataset"}
TRUST_CONFIG = {trust_checks.SUMMARY_KEY: "whole dataset", trust_checks.SENSITIVITY_KEY: 2}


def _examples(n=24):
    """label = 'pos' iff the sentence says 'great' (something a probe can find)."""
    rng = np.random.default_rng(0)
    words = [w for w in tiny_models.WORDS if w != "great"]
    out = []
    for i in range(n):
        sentence = list(rng.choice(words, size=int(rng.integers(3, 7))))
        if i % 2 == 0:
            sentence.insert(1, "great")
        out.append({"sentence": " ".join(sentence), "label": LABELS[i % 2 == 0]})
    return out


EXAMPLES = _examples()


def _dataset():
    return lit_dataset.IndexedDataset(
        base=lit_dataset.Dataset(spec=SPEC, examples=EXAMPLES), id_fn=caching.input_hash
    )


def _save(path, seed, sharpen=1.0):
    model, tok = tiny_models.make("bert", seed=seed)
    with torch.no_grad():  # a sharper head: removals move the probabilities
        model.classifier.weight.mul_(sharpen)
    model.save_pretrained(path)
    tok.save_pretrained(path)


@pytest.fixture()
def checkpoints(tmp_path):
    paths = {"m": str(tmp_path / "model"), "base": str(tmp_path / "base")}
    _save(paths["m"], seed=0, sharpen=50.0)
    _save(paths["base"], seed=1)
    return paths


def _perturb(path):
    """One weight changed by 1e-3, the checkpoint saved again."""
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    model.save_pretrained(path)


class _Process:
    """One run of the served app: models loaded from the checkpoints (each
    `predict` counted), fresh interpreters, the app over `cache_dir`."""

    def __init__(self, checkpoints, cache_dir, use_store=True):
        self.models = {
            name: HFSequenceClassifier(path, labels=LABELS, batch_size=8)
            for name, path in checkpoints.items()
        }
        self.predicted = dict.fromkeys(self.models, 0)  # examples through predict
        self.forwards = 0  # HF forward passes of "m" (faithfulness drives it directly)
        for name, model in self.models.items():
            self._count(name, model)
        # A function (copied as it is by deepcopy, unlike a bound method): the
        # trust checks' randomized copies of "m" count their forwards here too.
        self.models["m"].model.register_forward_pre_hook(lambda *_: self._forward())
        methods = {"Grad L2 Norm": gradient_maps.GradientNorm()}
        self.interpreters = {
            PROBE: linear_probe.LinearProbeInterpreter(batch_size=8),
            TXRAY: txray_shift.TXRayNeuronShift(self.models, default_reference="base"),
            FAITH: faith_lib.SalienceFaithfulness(methods, batch_size=8),
            TRUST: trust_checks.TrustChecks(methods, batch_size=8),
            **methods,
        }
        self.app = bounded_cache.build(
            self.models,
            {"d": _dataset()},
            cache_dir=cache_dir,
            use_store=use_store,
            interpreters=self.interpreters,
            metrics={},
            client_root=lit_apps.CLIENT_ROOT,
        )

    def _count(self, name, model):
        predict = model.predict

        def counted(inputs, *args, **kw):
            inputs = list(inputs)
            self.predicted[name] += len(inputs)
            return predict(inputs, *args, **kw)

        model.predict = counted

    def _forward(self, *_):
        self.forwards += 1

    def fit(self, interpreter, config):
        served = self.app._models["m"]  # what LIT hands interpreters
        return self.interpreters[interpreter].fit(served, self.app._datasets["d"], config)

    def faithfulness(self, config, interpreter=FAITH):
        served, dataset = self.app._models["m"], self.app._datasets["d"]
        return self.interpreters[interpreter].run(EXAMPLES[:1], served, dataset, config=config)


def _stored_fits(cache_dir) -> int:
    conn = sqlite3.connect(os.path.join(cache_dir, bounded_cache.STORE_FILE))
    (n,) = conn.execute(
        "SELECT COUNT(*) FROM outputs WHERE model LIKE ?", (fit_store.ROW_PREFIX + "%",)
    ).fetchone()
    conn.close()
    return n


def _assert_same_probe(a, b):
    assert (a.layers, a.best_layer, a.scores, a.metric) == (
        b.layers,
        b.best_layer,
        b.scores,
        b.metric,
    )
    for layer in a.layers:
        for attr in ("weight_", "bias_", "mean_", "scale_", "classes_"):
            x, y = getattr(a.probe(layer), attr), getattr(b.probe(layer), attr)
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)


def _assert_same_shift(a, b):
    for field in dataclasses.fields(txray.ShiftResult):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, field.name
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        elif sp.issparse(x):
            assert x.shape == y.shape and (x != y).nnz == 0, field.name
        else:
            assert x == y, field.name


def test_probe_fit_survives_a_restart_and_refits_on_changed_weights(tmp_path, checkpoints):
    cache = str(tmp_path / "cache")
    first = _Process(checkpoints, cache)
    state = first.fit(PROBE, PROBE_CONFIG)
    assert first.predicted["m"] >= len(EXAMPLES) and _stored_fits(cache) == 1
    # A restart: the fit from the store, the model not run.
    again = _Process(checkpoints, cache)
    restored = again.fit(PROBE, PROBE_CONFIG)
    assert again.predicted == {"m": 0, "base": 0}
    assert again.interpreters[PROBE].stored_fit_count == 1
    _assert_same_probe(restored, state)
    # The same LIT output for a selected example (its activations are computed).
    inputs = EXAMPLES[:2]
    want = first.interpreters[PROBE].run(inputs, first.app._models["m"], _dataset(), PROBE_CONFIG)
    got = again.interpreters[PROBE].run(inputs, again.app._models["m"], _dataset(), PROBE_CONFIG)
    for w, g in zip(want, got):
        np.testing.assert_allclose(
            g[linear_probe.TOKEN_SALIENCE].salience,
            w[linear_probe.TOKEN_SALIENCE].salience,
            rtol=1e-5,
            atol=1e-6,  # float32 forward passes of separate model objects
        )
        assert g[linear_probe.LAYER_SWEEP].tokens == w[linear_probe.LAYER_SWEEP].tokens
    assert again.interpreters[PROBE].stored_fit_count == 1  # the run used the same fit
    # Another config: a new fit.
    other = {**PROBE_CONFIG, linear_probe.L2_KEY: 0.01}
    again.fit(PROBE, other)
    assert again.predicted["m"] >= len(EXAMPLES) + 2 and _stored_fits(cache) == 2
    # One weight changed and saved again: the old fits are not read.
    _perturb(checkpoints["m"])
    changed = _Process(checkpoints, cache)
    changed.fit(PROBE, PROBE_CONFIG)
    assert changed.predicted["m"] >= len(EXAMPLES)
    assert changed.interpreters[PROBE].stored_fit_count == 0 and _stored_fits(cache) == 3


def test_txray_fit_survives_a_restart_and_refits_on_a_changed_reference(tmp_path, checkpoints):
    cache = str(tmp_path / "cache")
    first = _Process(checkpoints, cache)
    shift = first.fit(TXRAY, TXRAY_CONFIG)
    assert shift.has_bootstrap and first.predicted["base"] >= len(EXAMPLES)
    again = _Process(checkpoints, cache)
    restored = again.fit(TXRAY, TXRAY_CONFIG)
    assert again.predicted == {"m": 0, "base": 0}
    assert again.interpreters[TXRAY].stored_fit_count == 1
    _assert_same_shift(restored, shift)
    assert restored.label_a == "base" and restored.label_b == "m"
    # Another layer: a new fit.
    again.fit(TXRAY, {**TXRAY_CONFIG, txray_shift.LAYER_KEY: 1})
    assert again.predicted["base"] >= len(EXAMPLES)
    # The reference's weights changed: the fit is not read.
    _perturb(checkpoints["base"])
    changed = _Process(checkpoints, cache)
    changed.fit(TXRAY, TXRAY_CONFIG)
    assert changed.predicted["base"] >= len(EXAMPLES)
    assert changed.interpreters[TXRAY].stored_fit_count == 0


def _summary_tokens(results):
    return {k: v.tokens for k, v in results[0].items() if k.startswith(faith_lib.SUMMARY_PREFIX)}


def test_faithfulness_summary_survives_a_restart(tmp_path, checkpoints):
    cache = str(tmp_path / "cache")
    first = _Process(checkpoints, cache)
    want = first.faithfulness(FAITH_CONFIG)
    assert _stored_fits(cache) == 1
    # The forward passes of scoring the selected example alone (no dataset summary).
    alone = _Process(checkpoints, cache, use_store=False)
    alone.faithfulness({faith_lib.SUMMARY_KEY: "none"})
    again = _Process(checkpoints, cache)
    got = again.faithfulness(FAITH_CONFIG)
    assert again.interpreters[FAITH].stored_fit_count == 1
    assert again.forwards == alone.forwards  # the dataset was not scored again
    assert _summary_tokens(got) == _summary_tokens(want)
    assert _summary_tokens(got)[next(iter(_summary_tokens(got)))][0] == (
        f"{len(EXAMPLES)} examples in the dataset"
    )


def test_trust_checks_summary_survives_a_restart(tmp_path, checkpoints):
    cache = str(tmp_path / "cache")
    want = _Process(checkpoints, cache).faithfulness(TRUST_CONFIG, TRUST)
    assert _stored_fits(cache) == 1
    alone = _Process(checkpoints, cache, use_store=False)
    alone.faithfulness({trust_checks.SUMMARY_KEY: "none"}, TRUST)
    again = _Process(checkpoints, cache)
    got = again.faithfulness(TRUST_CONFIG, TRUST)
    assert again.interpreters[TRUST].stored_fit_count == 1
    # At most the selected example's own checks (its predictions may come from
    # the store too): the dataset was not checked again.
    assert again.forwards <= alone.forwards
    assert _summary_tokens(got) == _summary_tokens(want)
    assert got[0][trust_checks.VERDICT].tokens[0] == f"{len(EXAMPLES)} examples in the dataset"


def test_a_damaged_stored_fit_is_refit_with_a_warning(tmp_path, checkpoints, caplog):
    cache = str(tmp_path / "cache")
    state = _Process(checkpoints, cache).fit(PROBE, PROBE_CONFIG)
    conn = sqlite3.connect(os.path.join(cache, bounded_cache.STORE_FILE))
    with conn:
        conn.execute(
            "UPDATE outputs SET arrays = x'00ff00' WHERE model LIKE ?",
            (fit_store.ROW_PREFIX + "%",),
        )
    conn.close()
    again = _Process(checkpoints, cache)
    with caplog.at_level(logging.WARNING):
        refit = again.fit(PROBE, PROBE_CONFIG)
    assert "unreadable" in caplog.text
    assert again.predicted["m"] >= len(EXAMPLES)
    assert again.interpreters[PROBE].stored_fit_count == 0
    _assert_same_probe(refit, state)  # the same data and seed: the same fit
    third = _Process(checkpoints, cache)  # stored again, readable
    third.fit(PROBE, PROBE_CONFIG)
    assert third.predicted["m"] == 0


def test_without_the_store_nothing_is_written(tmp_path, checkpoints):
    cache = str(tmp_path / "cache")
    off = _Process(checkpoints, cache, use_store=False)
    off.fit(PROBE, PROBE_CONFIG)
    assert not os.path.exists(cache)
    assert all(getattr(i, "_fit_store", None) is None for i in off.interpreters.values())
    # An interpreter an earlier app gave a store forgets it in an app without one.
    on = _Process(checkpoints, cache)
    assert on.interpreters[PROBE]._fit_store is on.app.fit_store
    bounded_cache.build(
        on.models,
        {"d": _dataset()},
        use_store=False,
        interpreters=on.interpreters,
        metrics={},
        client_root=lit_apps.CLIENT_ROOT,
    )
    on.fit(PROBE, PROBE_CONFIG)
    assert _stored_fits(cache) == 0


@pytest.mark.slow
def test_the_demos_pretrained_model_has_one_key_on_every_start():
    """Its new classification head comes from a fixed seed: the store finds its
    predictions and TX-Ray fits against it again after a restart; the caller's
    random state is left alone."""
    from lit_plugins.lit import demo_models

    keys, draws = [], []
    for seed in (1, 2):
        torch.manual_seed(seed)
        keys.append(bounded_cache.model_key(demo_models.pretrained_minilm()))
        after = torch.rand(3)
        torch.manual_seed(seed)
        draws.append((after, torch.rand(3)))
    assert keys[0] == keys[1]
    for after, untouched in draws:
        torch.testing.assert_close(after, untouched, rtol=0, atol=0)
