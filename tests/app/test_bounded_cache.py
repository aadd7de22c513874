"""The served app's bounded memory: light outputs for every example, token-level
outputs in a byte-bounded LRU, whole-dataset predictions without gradients —
and the same numbers as the model's own predict and LIT's own app."""

import os
import sys

import numpy as np
import pytest
import torch
import transformers
from lit_nlp import app as lit_app
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import types as lit_types
from lit_nlp.components import gradient_maps, projection
from lit_nlp.lib import caching

from lit_plugins.app import bounded_cache
from lit_plugins.data import loaders
from lit_plugins.hf import finetune
from lit_plugins.lit.model import HFSequenceClassifier
from lit_plugins.util.store import OutputStore
from tests.kit import lit_apps, sentiment_data, tiny_models

RTOL, ATOL = 1e-5, 1e-6  # float32 forward passes in different batches


@pytest.fixture(scope="module")
def classifier():
    return tiny_models.classifier("bert", labels=sentiment_data.LABELS, batch_size=4)


@pytest.fixture(scope="module")
def examples():
    return list(sentiment_data.indexed_dataset().examples)


def _assert_outputs_close(a, b, keys):
    for key in keys:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_allclose(a[key], b[key], rtol=RTOL, atol=ATOL, err_msg=key)
        else:
            assert a[key] == b[key], key


def test_light_and_heavy_fields_split_by_type(classifier):
    light = bounded_cache.light_fields(classifier.output_spec())
    assert {"probas", "grad_class", "cls_emb", "tokens", "layer_0/avg_emb"} <= light
    assert not {"token_embs", "token_grads", "cls_grad", "layer_1/token_activations"} & light


def test_full_outputs_equal_the_models_own(classifier, examples):
    wrapper = bounded_cache.BoundedCachingModelWrapper(classifier, "m", heavy_cache_mb=64)
    got = wrapper.predict(examples)
    want = list(classifier.predict(examples))
    for g, w in zip(got, want):
        assert set(g) == set(w)
        _assert_outputs_close(g, w, w)
    calls = wrapper.model_calls
    again = wrapper.predict(examples[:3])  # all cached: no model call
    assert wrapper.model_calls == calls
    for g, w in zip(again, got):
        _assert_outputs_close(g, w, w)


def test_light_requests_skip_gradients_and_are_cached(classifier, examples):
    wrapper = bounded_cache.BoundedCachingModelWrapper(classifier, "m", heavy_cache_mb=64)
    fields = {"probas", "cls_emb"}
    got = wrapper.predict(examples, fields=fields)
    assert wrapper.light_calls == 1 and wrapper.model_calls == 1
    assert all(set(g) == wrapper.light_keys for g in got)  # no token-level field
    want = list(classifier.predict(examples))  # with gradients, in LIT's order
    for g, w in zip(got, want):
        _assert_outputs_close(g, w, wrapper.light_keys)
    wrapper.predict(examples[::-1], fields=fields)
    assert wrapper.model_calls == 1  # every light part cached
    # A full request computes the heavy part once, and keeps the light part shown.
    full = wrapper.predict(examples[:2])
    assert wrapper.model_calls == 2 and "token_grads" in full[0]
    assert full[0]["probas"] is got[0]["probas"]


def test_heavy_outputs_beyond_the_budget_are_recomputed_alike(classifier, examples):
    one = bounded_cache.BoundedCachingModelWrapper(classifier, "m", heavy_cache_mb=64)
    heavy_bytes = one.predict(examples[:1]) and one.memory()["heavy_bytes"]
    # Room for about two examples' token-level outputs.
    small = bounded_cache.BoundedCachingModelWrapper(
        classifier, "m", heavy_cache_mb=2.5 * heavy_bytes / 2**20
    )
    first = small.predict(examples)
    assert small.memory()["heavy_examples"] <= 3
    assert small.memory()["examples"] == len(examples)
    calls = small.model_calls
    (again,) = small.predict(examples[:1])  # evicted long ago: recomputed
    assert small.model_calls == calls + 1
    _assert_outputs_close(again, first[0], first[0])


def test_examples_without_ids_are_computed_not_kept(classifier):
    wrapper = bounded_cache.BoundedCachingModelWrapper(classifier, "m", heavy_cache_mb=64)
    wrapper.predict([{"sentence": "a great film"}])
    wrapper.predict([{"sentence": "a great film"}], fields={"probas"})
    assert wrapper.model_calls == 2 and wrapper.memory()["examples"] == 0


def test_large_passes_give_their_freed_memory_back(classifier, monkeypatch):
    """heap.trim runs after a heavy pass of HEAVY_TRIM_MIN_EXAMPLES or more and after
    a light pass of PROGRESS_MIN_EXAMPLES or more, and not after smaller ones or
    cached answers (what it returns is measured in tests/util/test_heap.py)."""
    trims = []
    monkeypatch.setattr(bounded_cache.heap, "trim", lambda: trims.append(1) or True)
    n_light = bounded_cache.PROGRESS_MIN_EXAMPLES
    examples = [
        {"_id": f"ex{i}", "sentence": f"film number {i} was {'good' if i % 2 else 'bad'}"}
        for i in range(n_light)
    ]
    wrapper = bounded_cache.BoundedCachingModelWrapper(classifier, "m", heavy_cache_mb=64)
    n_heavy = bounded_cache.HEAVY_TRIM_MIN_EXAMPLES
    wrapper.predict(examples[: n_heavy - 1])
    assert trims == []
    wrapper.predict(examples[: 2 * n_heavy - 1])  # n_heavy new ones
    assert len(trims) == 1
    wrapper.predict(examples[: 2 * n_heavy - 1])  # cached
    wrapper.predict(examples[n_heavy : n_light - 1], fields={"probas"})  # light, one short
    assert len(trims) == 1
    wrapper = bounded_cache.BoundedCachingModelWrapper(classifier, "m2", heavy_cache_mb=64)
    wrapper.predict(examples, fields={"probas"})
    assert len(trims) == 2


# ------------------------------------------------------------------ the app
def _apps(classifier):
    datasets = {"d": sentiment_data.indexed_dataset()}
    kw = dict(
        interpreters={"grad_norm": gradient_maps.GradientNorm()},
        metrics={},
        client_root=lit_apps.CLIENT_ROOT,
    )
    ours = bounded_cache.BoundedLitApp({"m": classifier}, datasets, heavy_cache_mb=64, **kw)
    theirs = lit_app.LitApp({"m": classifier}, datasets, **kw)
    return ours, theirs


def _inputs(examples):
    return {"inputs": [{"id": ex["_id"], "data": ex} for ex in examples]}


def test_app_serves_the_data_table_without_gradients(classifier, examples):
    ours, theirs = _apps(classifier)
    wrapper = ours._models["m"]
    assert isinstance(wrapper, bounded_cache.BoundedCachingModelWrapper)
    table = ours._get_preds(_inputs(examples), model="m", requested_types="MulticlassPreds")
    assert wrapper.light_calls == 1 and wrapper.memory()["heavy_examples"] == 0
    lit_table = theirs._get_preds(_inputs(examples), model="m", requested_types="MulticlassPreds")
    for a, b in zip(table, lit_table):
        assert set(a) == set(b) == {"probas"}
        np.testing.assert_allclose(a["probas"], b["probas"], rtol=RTOL, atol=ATOL)
    # Without requested types, /get_preds returns complete outputs as LIT's does.
    (full,) = ours._get_preds(_inputs(examples[:1]), model="m")
    assert "token_grads" in full


def test_app_salience_equals_lits_own_app(classifier, examples):
    ours, theirs = _apps(classifier)
    ours._get_preds(_inputs(examples), model="m", requested_types="MulticlassPreds")
    args = dict(model="m", dataset_name="d", interpreter="grad_norm")
    got = ours._get_interpretations(_inputs(examples[:3]), **args)
    want = theirs._get_interpretations(_inputs(examples[:3]), **args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(
            g["token_grads"].salience, w["token_grads"].salience, rtol=RTOL, atol=ATOL
        )


def test_app_metrics_predict_light(classifier, examples):
    from lit_nlp.components import metrics as lit_metrics

    datasets = {"d": sentiment_data.indexed_dataset()}
    ours = bounded_cache.BoundedLitApp(
        {"m": classifier},
        datasets,
        metrics={"multiclass": lit_metrics.MulticlassMetrics()},
        client_root=lit_apps.CLIENT_ROOT,
    )
    theirs = lit_app.LitApp(
        {"m": classifier},
        datasets,
        metrics={"multiclass": lit_metrics.MulticlassMetrics()},
        client_root=lit_apps.CLIENT_ROOT,
    )
    got = ours._get_metrics(_inputs(examples), model="m", dataset_name="d")
    assert ours._models["m"].light_calls == 1
    assert ours._models["m"].memory()["heavy_examples"] == 0
    want = theirs._get_metrics(_inputs(examples), model="m", dataset_name="d")
    assert got == want


def test_models_loaded_later_are_bounded_too(classifier):
    app = bounded_cache.BoundedLitApp(
        {"m": classifier}, {}, interpreters={}, metrics={}, client_root=lit_apps.CLIENT_ROOT
    )
    app._models["later"] = caching.CachingModelWrapper(classifier, "later")
    assert isinstance(app._models["later"], bounded_cache.BoundedCachingModelWrapper)


def test_bad_budget():
    with pytest.raises(ValueError, match="heavy_cache_mb"):
        bounded_cache.BoundedLitApp({}, {}, heavy_cache_mb=-1)


# ---------------------------------------------------------------- the store
def test_a_restart_reads_the_store_without_running_the_model(tmp_path, examples):
    path = str(tmp_path / "outputs.sqlite")
    clf = tiny_models.classifier("bert", labels=sentiment_data.LABELS, batch_size=4)
    first = bounded_cache.BoundedCachingModelWrapper(clf, "m", 64, OutputStore(path))
    shown = first.predict(examples, fields={"probas"})
    # A new process: a new model object with the same weights, a new wrapper.
    clf2 = tiny_models.classifier("bert", labels=sentiment_data.LABELS, batch_size=4)
    again = bounded_cache.BoundedCachingModelWrapper(clf2, "m", 64, OutputStore(path))
    restored = again.predict(examples, fields={"probas"})
    assert again.model_calls == 0 and again.store_hits == len(examples)
    for a, b in zip(shown, restored):
        _assert_outputs_close(a, b, [k for k in a if k != "tokens"])
        assert list(a["tokens"]) == list(b["tokens"])
    # Token-level outputs are computed as before, beside the stored light part.
    (full,) = again.predict(examples[:1])
    (want,) = clf2.predict(examples[:1])
    _assert_outputs_close(full, want, ["token_grads", "probas"])


def test_changed_weights_or_settings_are_not_served_old_rows(tmp_path, examples):
    path = str(tmp_path / "outputs.sqlite")
    clf = tiny_models.classifier("bert", labels=sentiment_data.LABELS, batch_size=4)
    bounded_cache.BoundedCachingModelWrapper(clf, "m", 64, OutputStore(path)).predict(
        examples, fields={"probas"}
    )
    other = tiny_models.classifier("bert", seed=1, labels=sentiment_data.LABELS)
    assert bounded_cache.model_key(other) != bounded_cache.model_key(clf)
    wrapper = bounded_cache.BoundedCachingModelWrapper(other, "m", 64, OutputStore(path))
    got = wrapper.predict(examples, fields={"probas"})
    assert wrapper.store_hits == 0 and wrapper.model_calls == 1
    want = list(other.predict(examples))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g["probas"], w["probas"], rtol=RTOL, atol=ATOL)
    # One weight changed in place, or another max length: another key.
    with torch.no_grad():
        next(other.model.parameters()).view(-1)[0] += 1e-3
    assert bounded_cache.model_key(other) != wrapper._store_key
    shorter = tiny_models.classifier("bert", seed=1, labels=sentiment_data.LABELS, max_length=16)
    assert bounded_cache.model_key(shorter) != wrapper._store_key


def test_model_key_is_stable_across_loads():
    a = tiny_models.classifier("bert", labels=sentiment_data.LABELS)
    b = tiny_models.classifier("bert", labels=sentiment_data.LABELS)
    assert bounded_cache.model_key(a) == bounded_cache.model_key(b)
    assert bounded_cache.model_key(object()) is None


def test_app_build_with_and_without_the_store(tmp_path, classifier, examples):
    kw = dict(metrics={}, interpreters={}, client_root=lit_apps.CLIENT_ROOT)
    datasets = {"d": sentiment_data.indexed_dataset()}
    app = bounded_cache.build({"m": classifier}, datasets, cache_dir=str(tmp_path), **kw)
    app._get_preds(_inputs(examples), model="m", requested_types="MulticlassPreds")
    assert app.store.stats()["rows"] == len(examples)
    assert os.path.exists(tmp_path / bounded_cache.STORE_FILE)
    restarted = bounded_cache.build({"m": classifier}, datasets, cache_dir=str(tmp_path), **kw)
    restarted._get_preds(_inputs(examples), model="m", requested_types="MulticlassPreds")
    assert restarted._models["m"].model_calls == 0
    off = bounded_cache.build({"m": classifier}, datasets, use_store=False, **kw)
    assert off.store is None and off._models["m"]._store_key is None


def test_with_a_store_pooled_embeddings_are_read_from_disk(tmp_path, examples):
    clf = tiny_models.classifier("bert", labels=sentiment_data.LABELS, batch_size=4)
    store = OutputStore(str(tmp_path / "outputs.sqlite"))
    wrapper = bounded_cache.BoundedCachingModelWrapper(clf, "m", 64, store)
    assert "cls_emb" in wrapper.light_keys and "cls_emb" not in wrapper.resident_keys
    assert {"probas", "grad_class", "tokens"} <= wrapper.resident_keys
    wrapper.predict(examples, fields={"probas"})
    fields = {"cls_emb", "layer_1/avg_emb"}
    got = wrapper.predict(examples, fields=fields)
    assert wrapper.model_calls == 1 and wrapper.store_hits == len(examples)
    want = list(clf.predict(examples))
    for g, w in zip(got, want):
        _assert_outputs_close(g, w, [*fields, "probas", "tokens"])
    # Rows the store dropped (its size cap) are computed again, those only.
    store.delete(wrapper.store_key, [ex["_id"] for ex in examples[:2]])
    again = wrapper.predict(examples, fields=fields)
    assert wrapper.light_calls == 2 and wrapper.memory()["examples"] == len(examples)
    for g, w in zip(again[:2], want[:2]):
        _assert_outputs_close(g, w, fields)
    # Complete outputs carry the embeddings with the token-level fields.
    (full,) = wrapper.predict(examples[:1])
    assert set(full) == set(want[0])
    _assert_outputs_close(full, want[0], want[0])


def test_with_a_store_the_projector_equals_lits_own_app(tmp_path, classifier, examples):
    from lit_nlp.components import pca

    kw = dict(
        interpreters={"pca": projection.ProjectionManager(pca.PCAModel)},
        metrics={},
        client_root=lit_apps.CLIENT_ROOT,
    )
    datasets = {"d": sentiment_data.indexed_dataset()}
    ours = bounded_cache.build({"m": classifier}, datasets, cache_dir=str(tmp_path), **kw)
    theirs = lit_app.LitApp({"m": classifier}, datasets, **kw)
    ours._get_preds(_inputs(examples), model="m", requested_types="MulticlassPreds")
    request = {
        **_inputs(examples),
        "config": {"field_name": "layer_2/avg_emb", "proj_kw": {"n_components": 3}},
    }
    args = dict(model="m", dataset_name="d", interpreter="pca")
    got = ours._get_interpretations(request, **args)
    want = theirs._get_interpretations(request, **args)
    wrapper = ours._models["m"]
    assert wrapper.light_calls == 1 and wrapper.memory()["heavy_examples"] == 0
    # PCA's axes are defined up to sign.
    np.testing.assert_allclose(
        np.abs([g["z"] for g in got]), np.abs([w["z"] for w in want]), rtol=1e-4, atol=1e-5
    )


class _CountingGradientNorm(gradient_maps.GradientNorm):
    calls = 0

    def run(self, inputs, *args, **kw):
        type(self).calls += len(inputs)
        return super().run(inputs, *args, **kw)


def test_salience_maps_persist_and_are_computed_once_per_example(tmp_path, examples):
    clf = tiny_models.classifier("bert", labels=sentiment_data.LABELS, batch_size=4)
    kw = dict(metrics={}, client_root=lit_apps.CLIENT_ROOT, cache_dir=str(tmp_path))
    datasets = {"d": sentiment_data.indexed_dataset()}
    args = dict(model="m", dataset_name="d", interpreter="grad_norm")
    first = bounded_cache.build(
        {"m": clf}, datasets, interpreters={"grad_norm": _CountingGradientNorm()}, **kw
    )
    want = first._get_interpretations(_inputs(examples[:3]), **args)
    assert _CountingGradientNorm.calls == 3
    # Two stored, one new: only the new one is computed.
    mixed = first._get_interpretations(_inputs(examples[1:4]), **args)
    assert _CountingGradientNorm.calls == 4
    # A restart: every map from the store, none computed, the same numbers.
    again = bounded_cache.build(
        {"m": clf}, datasets, interpreters={"grad_norm": _CountingGradientNorm()}, **kw
    )
    got = again._get_interpretations(_inputs(examples[:3]), **args)
    assert _CountingGradientNorm.calls == 4
    for g, w in zip([*got, mixed[2]], [*want, mixed[2]]):
        assert g["token_grads"].tokens == w["token_grads"].tokens
        np.testing.assert_allclose(g["token_grads"].salience, w["token_grads"].salience, rtol=0)
    # Another config is another result.
    again._get_interpretations({**_inputs(examples[:1]), "config": {"x": 1}}, **args)
    assert _CountingGradientNorm.calls == 5


# ------------------------------------------------- memory at MiniLM's size
def _retained_bytes(outputs) -> int:
    """Memory the outputs keep alive: every array's outermost buffer (a view of a
    batch keeps the whole batch array) and every other object, each counted once
    (a token string shared by many examples is one string). Independent of
    `lru.nbytes`, which counts each view's own size and each use of a string."""
    seen: dict[int, int] = {}
    for out in outputs:
        seen[id(out)] = sys.getsizeof(out)
        for value in out.values():
            if isinstance(value, np.ndarray):
                while isinstance(value.base, np.ndarray):
                    value = value.base
                seen[id(value)] = value.nbytes
            else:
                seen[id(value)] = sys.getsizeof(value)
                for item in value if isinstance(value, (list, tuple)) else ():
                    seen[id(item)] = sys.getsizeof(item)
    return sum(seen.values())


def _minilm_sized_wrapper(store=None):
    """A random model of MiniLM-L6's shape and tokenizer, bounded, and 2,000
    examples (the bundled sentences, each with a number)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(finetune.default_model_dir())
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    clf = HFSequenceClassifier(
        model=model, tokenizer=tokenizer, labels=loaders.SENTIMENT_LABELS, batch_size=64
    )
    base = [ex["sentence"] for ex in loaders.load_bundled_sentiment("train").examples]
    spec = {"sentence": lit_types.TextSegment()}
    texts = [f"{base[i % len(base)]} ({i})" for i in range(2000)]
    ds = lit_dataset.IndexedDataset(
        base=lit_dataset.Dataset(spec=spec, examples=[{"sentence": t} for t in texts]),
        id_fn=caching.input_hash,
    )
    return bounded_cache.BoundedCachingModelWrapper(clf, "m", 64, store), ds.examples


@pytest.mark.slow
def test_memory_per_example_at_minilm_size_stays_under_20_kb():
    """Without a store, what the light store keeps alive per example is under
    the 20 KB the served app allows per example and model, and no view keeps a
    token-level array alive."""
    wrapper, examples = _minilm_sized_wrapper()
    outputs = wrapper.predict(examples, fields={"probas"})
    assert wrapper.light_calls == 1 and wrapper.memory()["examples"] == len(examples)
    retained = _retained_bytes(outputs) / len(examples)
    counted = wrapper.memory()["light_bytes"] / len(examples)
    print(f"light store per example: {retained:.0f} B retained, {counted:.0f} B counted")
    assert retained < 20_000 and counted < 20_000, (retained, counted)
    # 8 vectors of 384 float32 (pooled embeddings) are 12 KB: the floor.
    assert retained > 8 * 384 * 4 and retained < 1.2 * counted, (retained, counted)


@pytest.mark.slow
def test_with_a_store_memory_per_example_is_the_resident_fields_only(tmp_path):
    """With a store the pooled embeddings live on disk: memory keeps the
    predictions, label and tokens (shared strings), under 1.5 KB an example;
    the projector's embeddings come back from disk equal to the model's."""
    wrapper, examples = _minilm_sized_wrapper(OutputStore(str(tmp_path / "s.sqlite")))
    computed = wrapper.predict(examples, fields={"probas", "layer_3/avg_emb"})
    assert "cls_emb" not in computed[0]  # only what was asked, and the resident fields
    kept = wrapper.predict(examples, fields={"probas"})  # what memory holds
    assert wrapper.model_calls == 1 and set(kept[0]) == wrapper.resident_keys
    retained = _retained_bytes(kept) / len(examples)
    print(f"resident per example: {retained:.0f} B")
    assert retained < 1500, retained
    embs = wrapper.predict(examples, fields={"layer_3/avg_emb"})
    assert wrapper.model_calls == 1 and wrapper.store_hits == len(examples)
    for got, want in zip(embs[::97], computed[::97]):
        np.testing.assert_array_equal(got["layer_3/avg_emb"], want["layer_3/avg_emb"])
