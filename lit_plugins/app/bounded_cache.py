"""Bounded memory for the served app: small outputs for every example, token-level
outputs only for the examples being explained.

LIT's `CachingModelWrapper` keeps every output of every prediction in memory.
For our wrapper that is ~0.5 MB per example (token embeddings and gradients,
per-layer vectors), so a user's 100,000-example dataset needs ~50 GB, and the
data table's whole-dataset predictions pay for gradients nobody asked for.

Here each model is wrapped in `BoundedCachingModelWrapper` instead:

* the **light** fields (predictions, labels, pooled embeddings, tokens: what the
  data table, metrics, the embeddings projector and slicing read, ~15 KB per
  example for MiniLM) are kept for every example;
* the **heavy** fields (token embeddings, gradients, attention) are kept in a
  least-recently-used cache bounded in bytes (`heavy_cache_mb`) and recomputed
  when asked for again;
* a request for light fields only (the UI's `/get_preds` always names the
  types it wants; `/get_metrics` needs predictions only) runs a forward pass
  without gradients, in batches of similar lengths;
* with an `OutputStore` (`lit_plugins.util.store`, SQLite), the light fields
  are also kept on disk under a key of the weights and settings
  (`model_key`): a restart on the same model and data reads them instead of
  running the model, and changed weights are never served old rows; the
  per-example salience methods' maps are stored too (by method and config),
  and so are the dataset-level interpreters' fits (the probe, TX-Ray, the
  whole-dataset summaries: `lit_plugins.lit.fit_store`, keyed by the models'
  `model_key`, the settings and the dataset's contents).

`BoundedLitApp` is LIT's `LitApp` with every model so wrapped, including models
loaded later from the UI. Everything else (interpreters, generators, the HTTP
API) is LIT's own.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sys
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

import torch
import tqdm
from absl import logging
from lit_nlp import app as lit_app
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types
from lit_nlp.components import projection
from lit_nlp.lib import caching
from lit_nlp.lib import serialize as lit_serialize
from lit_nlp.lib import utils as lit_utils

from lit_plugins.app.light_outputs import STORE_WRITE_ROWS, LightOutputs, light_fields
from lit_plugins.hf import finetune
from lit_plugins.lit import dataset_level, methods, specs
from lit_plugins.lit.fit_store import FitStore
from lit_plugins.util import heap
from lit_plugins.util.lru import ByteLRU
from lit_plugins.util.store import SCHEMA_VERSION, OutputStore

JsonDict = dict[str, Any]
DEFAULT_HEAVY_CACHE_MB = 512
DEFAULT_STORE_MB = 4096
STORE_FILE = "served-outputs.sqlite"
PROGRESS_MIN_EXAMPLES = 256  # fewer print no progress bar
# A heavy pass over this many examples or more gives its freed memory back
# (`util/heap.py`). Measured on MiniLM with 10,000 examples served: explaining 8
# examples left 62 MB more resident, 32 left 268 MB, 100 left 367-397 MB, of a heavy
# cache of 1-12 MiB; a trim took 7-28 ms (1-2 % of those requests) and returned it
# all. One example (4 MB) is left to the allocator to reuse.
HEAVY_TRIM_MIN_EXAMPLES = 8
# Set while the app serves a request that reads predictions only (metrics, the
# embeddings projector): predict calls without `fields` return the resident
# light fields and the ones named (`LightOutputs`).
_light_request = threading.local()


@contextlib.contextmanager
def predictions_only(fields: Collection[str] = ()):
    """Within this block, this thread's `predict` calls without `fields` compute
    and return light fields only: the resident ones (predictions, labels,
    tokens) and the light `fields` named (e.g. the projector's embedding)."""
    before = getattr(_light_request, "fields", None)
    _light_request.fields = frozenset(fields)
    try:
        yield
    finally:
        _light_request.fields = before


class BoundedCachingModelWrapper(lit_model.ModelWrapper):
    """LIT's per-example prediction cache with bounded memory (module docstring).

    `predict(inputs, fields=...)` computes and returns only what `fields` needs
    when those are all light; without `fields` it returns complete outputs, as
    LIT's wrapper does.
    """

    def __init__(
        self,
        model: lit_model.Model,
        name: str,
        heavy_cache_mb: float,
        store: OutputStore | None = None,
    ):
        super().__init__(model)
        self._name = name
        self._store_key = model_key(model) if store is not None else None
        self._light = LightOutputs(model.output_spec(), store, self._store_key)
        self._heavy = ByteLRU(int(heavy_cache_mb * 2**20))
        self._lock = threading.RLock()
        self.model_calls = 0  # predict calls on the wrapped model (for tests and logs)
        self.light_calls = 0  # of which without gradients, light fields only

    def key_fn(self, example: JsonDict) -> tuple | None:
        return (self._name, example_id) if (example_id := example.get("_id")) else None

    @property
    def light_keys(self) -> frozenset[str]:
        return self._light.light_keys

    @property
    def resident_keys(self) -> frozenset[str]:
        """The light fields held in memory for every example (all of them
        without a store; with one, the pooled embeddings are read from disk)."""
        return self._light.resident_keys

    @property
    def store_hits(self) -> int:
        """Light outputs read from the store."""
        return self._light.store_hits

    @property
    def store_key(self) -> str | None:
        """The model's key in the output store (None: its outputs are not stored)."""
        return self._store_key

    def memory(self) -> dict[str, int]:
        """Examples held and bytes used by the light store and the heavy cache."""
        with self._lock:
            return {
                "examples": len(self._light),
                "light_bytes": self._light.resident_bytes(),
                "heavy_examples": len(self._heavy),
                "heavy_bytes": self._heavy.bytes,
            }

    def predict(
        self,
        inputs: Iterable[JsonDict],
        progress_indicator: Callable | None = None,
        fields: Collection[str] | None = None,
        **unused_kw,
    ) -> list[JsonDict]:
        # Other keywords (the request's URL parameters, from LIT's /get_preds) are
        # ignored, as LIT's own caching wrapper does.
        inputs = list(inputs)
        progress = progress_indicator or self._console_progress
        keys = [self.key_fn(ex) for ex in inputs]
        if fields is None and getattr(_light_request, "fields", None) is not None:
            fields = self._light.resident_keys | _light_request.fields
        light_only = fields is not None and set(fields) <= self.light_keys
        with self._lock:
            if light_only:
                lights = self._light.get(keys, fields)
                missing = [i for i, light in enumerate(lights) if light is None]
                if missing:
                    wanted = self.resident_keys | set(fields)
                    for i, light in self._predict_light(inputs, keys, missing, progress):
                        lights[i] = {k: v for k, v in light.items() if k in wanted}
                return [dict(light) for light in lights]
            # The heavy part is everything not resident (with a store, the pooled
            # embeddings too): computed with the token-level fields, kept in the LRU.
            lights = self._light.get(keys, self.resident_keys)
            heavies = [self._heavy.get(k) if k is not None else None for k in keys]
            missing = [i for i in range(len(inputs)) if lights[i] is None or heavies[i] is None]
            if missing:
                self.model_calls += 1
                computed = list(self.wrapped.predict(progress([inputs[i] for i in missing])))
                if len(computed) != len(missing):
                    raise ValueError(
                        f"Model {self._name!r} returned {len(computed)} outputs "
                        f"for {len(missing)} inputs."
                    )
                new = [(i, out) for i, out in zip(missing, computed) if lights[i] is None]
                kept = self._light.put([keys[i] for i, _ in new], [out for _, out in new])
                for (i, _), light in zip(new, kept):
                    lights[i] = light
                for i, out in zip(missing, computed):
                    heavy = {k: v for k, v in out.items() if k not in self.resident_keys}
                    if keys[i] is not None:
                        self._heavy.put(keys[i], heavy)
                    heavies[i] = heavy
                if len(missing) >= HEAVY_TRIM_MIN_EXAMPLES:
                    heap.trim()  # the pass's freed activations and gradients (util/heap.py)
            # A light part kept earlier stays what the data table shows.
            return [
                {**heavy, **{k: v for k, v in light.items() if k in self.resident_keys}}
                for light, heavy in zip(lights, heavies)
            ]

    def _console_progress(self, examples: list[JsonDict]) -> Iterable[JsonDict]:
        """Examples/s and time left in the server's console for whole-dataset work
        (a few examples, e.g. the one being explained, print nothing)."""
        return tqdm.tqdm(
            examples,
            desc=f"{self._name}: predictions",
            unit="ex",
            file=sys.stderr,
            mininterval=2.0,
            disable=len(examples) < PROGRESS_MIN_EXAMPLES,
        )

    def _predict_light(
        self, inputs: list[JsonDict], keys: list, todo: list[int], progress
    ) -> Iterator[tuple[int, JsonDict]]:
        """(index, light output) for each of `todo`, kept as it comes: forward
        passes without gradients, longest texts first so each batch holds similar
        lengths (little padding)."""
        self.model_calls += 1
        self.light_calls += 1
        logging.info("%s: %d predictions without gradients (light fields).", self._name, len(todo))
        order = sorted(todo, key=lambda i: -_text_length(inputs[i]))
        kw = {"gradients": False} if specs.hf_classifier(self.wrapped) is not None else {}
        outputs = iter(self.wrapped.predict(progress([inputs[i] for i in order]), **kw))
        # Kept (and written to the store) STORE_WRITE_ROWS at a time, each output
        # cut to its light fields as its batch arrives: neither the dataset's token
        # embeddings (~50 KB an example for MiniLM) nor all its pooled embeddings
        # (~12 KB) exist at once.
        for start in range(0, len(order), STORE_WRITE_ROWS):
            chunk = order[start : start + STORE_WRITE_ROWS]
            lights = [
                {k: v for k, v in out.items() if k in self.light_keys}
                for out in itertools.islice(outputs, len(chunk))
            ]
            if len(lights) != len(chunk):
                raise ValueError(
                    f"Model {self._name!r} returned {len(lights)} outputs for {len(chunk)} inputs."
                )
            yield from zip(chunk, self._light.put([keys[i] for i in chunk], lights))
        if len(todo) >= PROGRESS_MIN_EXAMPLES:
            heap.trim()  # the passes' freed batches back to the system (util/heap.py)


def _text_length(example: JsonDict) -> int:
    return sum(len(v) for v in example.values() if isinstance(v, str))


def model_key(model: lit_model.Model) -> str | None:
    """What the outputs of `model` depend on, hashed: its weights (every
    parameter and buffer, bytes, dtype and shape), its tokenizer's vocabulary and
    special tokens, its settings (labels, max length, dtype, threshold, ...), its
    light fields and the store's schema. None for a model that is not one of our
    HF wrappers (its outputs are then not stored)."""
    raw = specs.unwrap(model)
    torch_model = getattr(raw, "model", None)
    tokenizer = getattr(raw, "tokenizer", None)
    if not isinstance(torch_model, torch.nn.Module) or not hasattr(tokenizer, "get_vocab"):
        return None
    digest = hashlib.sha256()
    for name, tensor in torch_model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}\0{flat.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    vocab = sorted(tokenizer.get_vocab().items())
    settings = {
        "class": type(raw).__name__,
        "fields": sorted(light_fields(raw.output_spec())),
        "tokenizer": [vocab, sorted(map(str, tokenizer.all_special_tokens))],
        "padding_side": getattr(tokenizer, "padding_side", None),
        "schema": SCHEMA_VERSION,
        **{
            attr: getattr(raw, attr)
            for attr in ("labels", "max_length", "text_fields", "label_field", "threshold")
            if isinstance(getattr(raw, attr, None), (str, int, float, list, tuple))
        },
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class _BoundedModels(dict):
    """The app's model map: every `CachingModelWrapper` LIT puts in it (at start-up
    and for models loaded later from the UI) is replaced by a bounded one."""

    def __init__(self, models: Mapping, heavy_cache_mb: float, store: OutputStore | None):
        super().__init__()
        self._heavy_cache_mb = heavy_cache_mb
        self._store = store
        for name, model in models.items():
            self[name] = model

    def __setitem__(self, name, model):
        if isinstance(model, caching.CachingModelWrapper):
            model = BoundedCachingModelWrapper(
                model.wrapped, name, self._heavy_cache_mb, self._store
            )
        super().__setitem__(name, model)


class BoundedLitApp(lit_app.LitApp):
    """LIT's app with `BoundedCachingModelWrapper` around every model, and
    whole-dataset predictions (the data table's, the metrics') without gradients."""

    def __init__(
        self,
        *args,
        heavy_cache_mb: float = DEFAULT_HEAVY_CACHE_MB,
        store: OutputStore | None = None,
        **kw,
    ):
        if not heavy_cache_mb >= 0:
            raise ValueError(f"heavy_cache_mb must be >= 0, got {heavy_cache_mb!r}.")
        self._heavy_cache_mb = heavy_cache_mb
        self.store = store
        super().__init__(*args, **kw)
        self.fit_store = FitStore(store, model_key) if store is not None else None
        self._hand_over_fit_store()

    def _hand_over_fit_store(self) -> None:
        """Every dataset-level interpreter keeps its fits in this app's store (or,
        without one, in memory only, even if another app gave it a store)."""
        if self.fit_store is not None:
            for wrapper in self._models.values():
                if isinstance(wrapper, BoundedCachingModelWrapper):
                    self.fit_store.remember(wrapper, wrapper.store_key)  # hashed once
        for interpreter in self._interpreters.values():
            if isinstance(interpreter, dataset_level.DatasetInterpreter):
                interpreter.use_fit_store(self.fit_store)

    # LitApp assigns `self._models = {}` and fills it; this property keeps every
    # entry bounded without repeating any of LitApp's set-up.
    @property
    def _models(self) -> _BoundedModels:
        return self.__dict__["_bounded_models"]

    @_models.setter
    def _models(self, models: Mapping) -> None:
        self.__dict__["_bounded_models"] = _BoundedModels(models, self._heavy_cache_mb, self.store)

    def _get_preds(
        self,
        data: JsonDict,
        model: str | None = None,
        requested_types: str | None = None,
        requested_fields: str | None = None,
        **kw,
    ):
        wrapper = self._models.get(model) if model is not None else None
        if isinstance(wrapper, BoundedCachingModelWrapper) and "fields" not in kw:
            fields = _requested(wrapper.output_spec(), requested_types, requested_fields)
            if fields is not None:
                kw["fields"] = fields
        return super()._get_preds(data, model, requested_types, requested_fields, **kw)

    def _get_metrics(self, *args, **kw):
        # Metrics read the predictions only: their whole-dataset predict is light.
        with predictions_only():
            return super()._get_metrics(*args, **kw)

    def _get_interpretations(self, data, model=None, dataset_name=None, interpreter=None, **kw):
        # The embeddings projector reads one pooled embedding (light) of every example.
        light = isinstance(self._interpreters.get(interpreter), projection.ProjectionManager)
        projected = (data.get("config") or {}).get("field_name")
        with (
            predictions_only([projected] if projected else ())
            if light
            else contextlib.nullcontext()
        ):
            key = self._stored_interpretation_key(data, model, interpreter)
            if key is None:
                return super()._get_interpretations(data, model, dataset_name, interpreter, **kw)
            return self._stored_interpretations(key, data, model, dataset_name, interpreter, **kw)

    def _stored_interpretation_key(self, data, model, interpreter) -> str | None:
        """The store key of a per-example salience method's results on `model` with
        this request's config; None when they are not stored (no store, not a
        per-example salience method, a model without a key)."""
        wrapper = self._models.get(model) if model is not None else None
        interp = self._interpreters.get(interpreter) if interpreter is not None else None
        if (
            self.store is None
            or not isinstance(wrapper, BoundedCachingModelWrapper)
            or wrapper.store_key is None
            or interp is None
            or not methods.is_salience_method(interp)
        ):
            return None
        config = json.dumps(data.get("config") or {}, sort_keys=True, default=str)
        return f"{wrapper.store_key}|{interpreter}|{hashlib.sha256(config.encode()).hexdigest()}"

    def _stored_interpretations(self, key, data, model, dataset_name, interpreter, **kw):
        """Results read from the store where present; the rest computed (for those
        inputs only) and stored. A salience method's result for an example does not
        depend on the other selected examples beyond float32 rounding."""
        inputs = data["inputs"]
        ids = [str(ex.get("id") or ex["data"].get("_id") or "") for ex in inputs]
        found = self.store.get_many(key, [i for i in ids if i])
        missing = [n for n, i in enumerate(ids) if not i or i not in found]
        results: list = [None] * len(inputs)
        for n, i in enumerate(ids):
            if i and i in found:
                results[n] = lit_serialize.from_json(found[i]["json"])
        if missing:
            todo = {**data, "inputs": [inputs[n] for n in missing]}
            computed = super()._get_interpretations(todo, model, dataset_name, interpreter, **kw)
            if computed is None:
                return None
            rows = {}
            for n, result in zip(missing, computed):
                results[n] = result
                if ids[n]:
                    rows[ids[n]] = {"json": lit_serialize.to_json(result)}
            self.store.put_many(key, rows)
        return results

    def memory(self) -> dict[str, dict[str, int]]:
        """Per model: examples and bytes held (see BoundedCachingModelWrapper.memory)."""
        return {
            name: m.memory()
            for name, m in self._models.items()
            if isinstance(m, BoundedCachingModelWrapper)
        }


def _requested(
    output_spec: lit_types.Spec, types: str | None, fields: str | None
) -> frozenset[str] | None:
    """The output fields a `/get_preds` request names (None: all of them)."""
    if not types and not fields:
        return None
    names = {f for f in (fields or "").split(",") if f}
    for type_name in (t for t in (types or "").split(",") if t):
        lit_type = getattr(lit_types, type_name, None)
        if isinstance(lit_type, type) and issubclass(lit_type, lit_types.LitType):
            names.update(lit_utils.find_spec_keys(output_spec, lit_type))
        else:
            return None  # LIT itself answers with a TypeError
    return frozenset(names)


def default_cache_dir() -> str:
    """Where the served app's output store lives unless --cache_dir says."""
    return os.path.join(finetune.cache_root(), "served")


def build(
    models,
    datasets,
    heavy_cache_mb: float = DEFAULT_HEAVY_CACHE_MB,
    cache_dir: str | None = None,
    use_store: bool = True,
    store_mb: float = DEFAULT_STORE_MB,
    **server_kw,
):
    """A `BoundedLitApp` from what `dev_server.Server` takes: the keywords LitApp
    accepts are used, the web server's (host, port, ...) are left out. With
    `use_store`, light outputs persist in `<cache_dir>/served-outputs.sqlite`
    (default `default_cache_dir()`), at most `store_mb`."""
    from lit_nlp import dev_server  # pylint: disable=g-import-not-at-top

    accepted = set(dev_server.get_available_keywords(lit_app.LitApp))
    app_kw = {k: v for k, v in server_kw.items() if k in accepted}
    store = None
    if use_store:
        store = OutputStore(os.path.join(cache_dir or default_cache_dir(), STORE_FILE), store_mb)
    logging.info(
        "Serving with bounded memory: light outputs for every example%s, token-level "
        "outputs for at most %g MB per model.",
        f" (kept in {store.path})" if store else "",
        heavy_cache_mb,
    )
    return BoundedLitApp(models, datasets, heavy_cache_mb=heavy_cache_mb, store=store, **app_kw)
