"""Dataset-level fits kept across restarts, in the served app's output store.

A `DatasetInterpreter` (`lit_plugins.lit.dataset_level`) fits once per key in
memory; with a `FitStore` handed to it (the served app does so when it runs
with a store, `lit_plugins.app.bounded_cache`), a fit missing from memory is
first looked up on disk, and a fit computed is written there, so a restart on
the same model and data shows the probe, TX-Ray or a whole-dataset summary
without running the model.

The persistent key of a fit is a sha256 of

* the fit's kind (the interpreter's class),
* its in-memory key parts in a stable text form: every LIT model in them
  (the selected model, TX-Ray's reference) replaced by its store key, a digest
  of its weights, tokenizer and settings (so changed weights never read an old
  fit); frozen dataclasses, tuples, lists, strings, numbers, booleans and None
  as themselves. A part with no stable form (any other object, a model
  without a store key) keeps the fit in memory only;
* the dataset's content fingerprint (`dataset_fingerprint`);
* `KEY_FORMAT`, bumped when what a fit means changes.

Values go through `lit_plugins.lit.fit_codecs` (JSON + numpy arrays, never
pickle); a value with no codec stays in memory only. A stored fit that cannot
be decoded is dropped with a warning and recomputed; a store that fails to
read or write is logged and the fit served from memory: a request never fails
because of the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import sqlite3
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from absl import logging
from lit_nlp.api import model as lit_model

from lit_plugins.lit import fit_codecs, specs
from lit_plugins.util.store import OutputStore

KEY_FORMAT = 1
# The store's "model" column for fits: one namespace per kind of fit.
ROW_PREFIX = "dataset-fit|"
KEY_FIELD = "_key"  # the key's text, kept with the value and checked on reading

ModelKey = Callable[[lit_model.Model], "str | None"]


class _NoStableForm(Exception):
    """A key part whose text could differ between processes (or is unknown)."""


class FitStore:
    """Dataset-level fits in an `OutputStore`, keyed as the module docstring says.

    Args:
      store: the app's output store (shared with the per-example outputs and
        their size cap).
      model_key: a model's store key (None: its fits stay in memory), e.g.
        `lit_plugins.app.bounded_cache.model_key`; each model object's key is
        computed once (hashing the weights takes a moment) unless `remember`ed.
    """

    def __init__(self, store: OutputStore, model_key: ModelKey):
        self.store = store
        self._model_key = model_key
        self._known: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.reads = 0  # fits read from the store
        self.writes = 0  # fits written to it

    # ------------------------------------------------------------ the key
    def remember(self, model: lit_model.Model, key: str | None) -> None:
        """`model`'s store key, already known (the app's wrappers computed it)."""
        with self._lock, contextlib.suppress(TypeError):  # not weakly referenceable
            self._known[specs.unwrap(model)] = key

    def model_key(self, model: lit_model.Model) -> str | None:
        """`model`'s store key (of the model under LIT's wrappers), computed once
        per model object."""
        raw = specs.unwrap(model)
        with self._lock, contextlib.suppress(TypeError):
            if raw in self._known:
                return self._known[raw]
        key = self._model_key(raw)
        self.remember(raw, key)
        return key

    def key_text(self, kind: str, key_parts: tuple, fingerprint: str) -> str | None:
        """The fit's identity as canonical JSON, or None when a part has no stable form."""
        try:
            parts = self._stable(key_parts)
        except _NoStableForm as e:
            logging.debug("%s: fit kept in memory only (key part %s has no stable form).", kind, e)
            return None
        return json.dumps(
            {"format": KEY_FORMAT, "kind": kind, "key": parts, "data": fingerprint},
            sort_keys=True,
            allow_nan=True,
            ensure_ascii=True,
            separators=(",", ":"),
        )

    def _stable(self, part: Any) -> Any:
        if part is None or isinstance(part, (bool, int, str)):
            return part
        if isinstance(part, float):
            return {"float": repr(part)}  # -0.0, NaN and infinities kept apart
        if isinstance(part, np.generic) and not isinstance(part, np.object_):
            return self._stable(part.item())
        if isinstance(part, (tuple, list)):
            return [self._stable(p) for p in part]
        if isinstance(part, lit_model.Model):
            key = self.model_key(part)
            if key is None:
                raise _NoStableForm(f"model {type(specs.unwrap(part)).__name__} (no store key)")
            return {"model": key}
        if isinstance(part, enum.Enum):
            return {"enum": f"{type(part).__qualname__}.{part.name}"}
        if dataclasses.is_dataclass(part) and not isinstance(part, type):
            if not type(part).__dataclass_params__.frozen:
                raise _NoStableForm(f"{type(part).__qualname__} (a mutable dataclass)")
            fields = {f.name: self._stable(getattr(part, f.name)) for f in dataclasses.fields(part)}
            return {"dataclass": f"{type(part).__module__}.{type(part).__qualname__}", **fields}
        raise _NoStableForm(type(part).__qualname__)

    # ---------------------------------------------------------- the value
    def load_or_compute(
        self, kind: str, key_parts: tuple, fingerprint: str, compute: Callable[[], Any]
    ) -> tuple[Any, bool]:
        """(the fit, whether it came from the store): the stored fit for this
        key, else `compute()`, stored when its type has a codec."""
        text = self.key_text(kind, key_parts, fingerprint)
        if text is None:
            return compute(), False
        row, digest = ROW_PREFIX + kind, hashlib.sha256(text.encode()).hexdigest()
        found = self._read(row, digest, text)
        if found is not None:
            return found[0], True
        value = compute()
        self._write(row, digest, text, value, kind)
        return value, False

    def _read(self, row: str, digest: str, text: str) -> tuple[Any] | None:
        try:
            stored = self.store.get_many(row, [digest]).get(digest)
        except (sqlite3.Error, OSError) as e:
            logging.warning("Could not read a stored fit (%s); computing it.", e)
            return None
        if stored is None:
            return None
        try:
            if stored.get(KEY_FIELD) != text:
                raise fit_codecs.FitCodecError("its key is not this fit's key")
            value = fit_codecs.decode_fit(stored)
        except fit_codecs.FitCodecError as e:
            logging.warning("Dropping an unreadable stored fit (%s); computing it again.", e)
            self._drop(row, digest)
            return None
        with self._lock:
            self.reads += 1
        return (value,)

    def _write(self, row: str, digest: str, text: str, value: Any, kind: str) -> None:
        encoded = fit_codecs.encode_fit(value)
        if encoded is None:
            logging.debug(
                "%s: a %s has no codec (lit_plugins.lit.fit_codecs); kept in memory only.",
                kind,
                type(value).__qualname__,
            )
            return
        try:
            if self.store.put_many(row, {digest: {**encoded, KEY_FIELD: text}}):
                with self._lock:
                    self.writes += 1
            else:
                logging.debug("%s: the fit is not storable as JSON + arrays.", kind)
        except (sqlite3.Error, OSError) as e:
            logging.warning("Could not store a fit (%s); it stays in memory only.", e)

    def _drop(self, row: str, digest: str) -> None:
        try:
            self.store.delete(row, [digest])
        except (sqlite3.Error, OSError) as e:
            logging.warning("Could not drop an unreadable stored fit (%s).", e)
