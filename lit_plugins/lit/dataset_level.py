"""Plumbing for dataset-level interpreters (linear probe, TX-Ray, and the ones to come).

A dataset-level interpreter fits something on the *whole dataset* loaded in
LIT the first time it is asked for a (model, dataset contents, config) key,
caches the fit, then explains the selected examples with it. What every such
interpreter needs lives here once:

* `stream_predictions`: the dataset through the model in batches, with a
  progress bar on the server console (the raw model is called, so thousands
  of activation requests never fill LIT's prediction cache).
* `dataset_fingerprint`: the cache key's data part (LIT users add datapoints
  in the UI, so the key must change with the contents).
* `FitOnceCache`: one fit per key even under concurrent requests, bounded.
* `DatasetInterpreter`: the base class holding the cache and batch size, and
  the checks every such interpreter repeats (non-empty data, per-layer
  activations present). With a `FitStore` (`use_fit_store`; the served app
  hands its own to every dataset-level interpreter), fits also persist
  across restarts (`lit_plugins.lit.fit_store`).
"""

from __future__ import annotations

import collections
import hashlib
import sys
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import tqdm
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import model as lit_model
from lit_nlp.lib import caching as lit_caching

from lit_plugins.lit import specs
from lit_plugins.lit.fit_store import FitStore

JsonDict = specs.JsonDict
ActivationLayers = str | Sequence[int]

# Progress on a server console is read by people, not parsed: a bar that
# refreshes every few seconds is enough, and it keeps logs short.
_PROGRESS_INTERVAL_S = 5.0


def dataset_fingerprint(examples: Sequence[JsonDict]) -> str:
    """Hash of the examples' contents (order-sensitive; ignores _id/_meta)."""
    digest = hashlib.sha1()
    digest.update(str(len(examples)).encode())
    for ex in examples:
        digest.update(str(lit_caching.input_hash(ex)).encode())
    return digest.hexdigest()


def stream_predictions(
    model: lit_model.Model,
    examples: Sequence[JsonDict],
    batch_size: int,
    activation_layers: ActivationLayers | None = None,
    description: str = "",
) -> Iterator[tuple[int, list[JsonDict], list[JsonDict]]]:
    """Yields (offset, batch, outputs) over `examples`, `batch_size` at a time.

    Calls the innermost model (under LIT's caching wrapper) with
    ``gradients=False`` and, when given, ``activation_layers`` (a list of
    layer indices or "all"). A progress bar named `description` goes to
    stderr, the server console.
    """
    raw = specs.unwrap(model)
    kwargs: dict[str, Any] = {"gradients": False}
    if activation_layers is not None:
        kwargs["activation_layers"] = activation_layers
    with tqdm.tqdm(
        total=len(examples),
        desc=description or None,
        unit="ex",
        file=sys.stderr,
        mininterval=_PROGRESS_INTERVAL_S,
        disable=not description,
    ) as progress:
        for offset in range(0, len(examples), batch_size):
            batch = list(examples[offset : offset + batch_size])
            outputs = list(raw.predict(batch, **kwargs))
            yield offset, batch, outputs
            progress.update(len(batch))


def layer_outputs(
    model: lit_model.Model, inputs: Sequence[JsonDict], layer: int
) -> list[tuple[list[str], np.ndarray]]:
    """(tokens, activations [T, H]) of `layer` for each input, in one predict call."""
    raw = specs.unwrap(model)
    act_field = layer_activation_fields(raw)[layer]
    tokens_field = specs.find_tokens_field(raw.output_spec(), act_field)
    outputs = raw.predict(list(inputs), activation_layers=[layer], gradients=False)
    return [
        ([str(t) for t in out[tokens_field]], np.asarray(out[act_field], dtype=np.float64))
        for out in outputs
    ]


def layer_activation_fields(
    model: lit_model.Model, which: str = "The selected model"
) -> dict[int, str]:
    """{layer: per-token activation field} of the model, or a ValueError that says so."""
    fields = specs.find_layer_activation_fields(model.output_spec())
    if not fields:
        raise ValueError(
            f"{which} exposes no per-layer token activations "
            f"({specs.LAYER_ACTIVATIONS_TEMPLATE.format('<i>')} TokenEmbeddings output fields)."
        )
    return fields


class FitOnceCache:
    """Dataset-level fits cached by key: each key is fitted once even under
    concurrent requests (a per-key lock), least recently used entries beyond
    `max_entries` are dropped so a long-running server's memory stays bounded.
    """

    def __init__(self, max_entries: int = 16):
        self._results: collections.OrderedDict = collections.OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.fit_count = 0

    def _lookup(self, key):
        if key in self._results:
            self._results.move_to_end(key)
            return True, self._results[key]
        return False, None

    def get_or_fit(self, key: Hashable, fit: Callable[[], Any]) -> Any:
        with self._lock:
            found, value = self._lookup(key)
            if found:
                return value
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                found, value = self._lookup(key)
                if found:
                    return value
            value = fit()
            with self._lock:
                self._results[key] = value
                while len(self._results) > self.max_entries:
                    self._results.popitem(last=False)
                self._key_locks.pop(key, None)
                self.fit_count += 1
            return value


class DatasetInterpreter(lit_components.Interpreter):
    """Base of interpreters that fit once per (model, dataset, options) and cache.

    Fit-then-explain subclasses define three methods and inherit `run` and
    `fit`: `parse_config(model, dataset, config)` → an options object whose
    `fit` part is hashable; `_fit(model, dataset, fit_options)` → the fit,
    through `cached_fit(key_parts, examples, compute)`; and
    `explain(inputs, model, fitted, options, dataset)` → one result per input
    (the dataset is the one fitted on, e.g. for dataset-level checks).
    Interpreters of another shape override `run` and use only the cache.
    """

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        del model_outputs  # dataset-level fits make their own predict calls
        options = self.parse_config(model, dataset, config)
        fitted = self._fit(model, dataset, options.fit)
        return self.explain(inputs, model, fitted, options, dataset) if inputs else []

    def fit(
        self, model: lit_model.Model, dataset: lit_dataset.Dataset, config: JsonDict | None = None
    ) -> Any:
        """The (cached) fit of `model` on `dataset` for this config."""
        return self._fit(model, dataset, self.parse_config(model, dataset, config).fit)

    def __init__(self, batch_size: int = 32, max_cached_fits: int = 16):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self._batch_size = int(batch_size)
        self._cache = FitOnceCache(max_cached_fits)
        self._fit_store: FitStore | None = None
        self.stored_fit_count = 0  # fits read from the fit store (restarts)

    @property
    def fit_count(self) -> int:
        """How many fits were missing from memory (computed, or read from the fit
        store: `stored_fit_count` of them); for tests and monitoring."""
        return self._cache.fit_count

    def use_fit_store(self, fit_store: FitStore | None) -> None:
        """Keep fits in `fit_store` too (None: in memory only), so a restart on the
        same model and data reads them back (`lit_plugins.lit.fit_store`)."""
        self._fit_store = fit_store

    @property
    def fit_kind(self) -> str:
        """The kind of fit in the persistent key: this interpreter's class."""
        return f"{type(self).__module__}.{type(self).__qualname__}"

    @staticmethod
    def dataset_examples(dataset: lit_dataset.Dataset | None, purpose: str) -> list[JsonDict]:
        """The dataset's examples, or a ValueError naming what they are needed for."""
        examples = list(dataset.examples) if dataset is not None else []
        if not examples:
            raise ValueError(f"{purpose} needs a non-empty dataset.")
        return examples

    def cached_fit(
        self, key: tuple, examples: Sequence[JsonDict], compute: Callable[[], Any]
    ) -> Any:
        """`compute()` once per (key, dataset contents); the cached value after.

        With a fit store, a fit missing from memory is read from it when stored
        and stored when computed. Key parts that are LIT models (keep the model
        object itself in the key, not its id) stand there for their weights'
        digest; see `lit_plugins.lit.fit_store` for which parts persist.
        """
        fingerprint = dataset_fingerprint(examples)
        fit_store = self._fit_store
        if fit_store is None:
            return self._cache.get_or_fit((*key, fingerprint), compute)

        def load_or_compute():
            # Runs under the cache's per-key lock: concurrent requests read or fit once.
            value, stored = fit_store.load_or_compute(self.fit_kind, key, fingerprint, compute)
            if stored:
                self.stored_fit_count += 1
            return value

        return self._cache.get_or_fit((*key, fingerprint), load_or_compute)

    def stream(
        self,
        model: lit_model.Model,
        examples: Sequence[JsonDict],
        activation_layers: ActivationLayers | None = None,
        description: str = "",
    ) -> Iterator[tuple[int, list[JsonDict], list[JsonDict]]]:
        """`stream_predictions` with this interpreter's batch size."""
        return stream_predictions(model, examples, self._batch_size, activation_layers, description)
