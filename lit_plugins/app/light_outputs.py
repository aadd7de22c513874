"""The light outputs of every example a served model has predicted: what the data
table, metrics, slicing and the embeddings projector read.

Light fields are every output field but the token-level ones (`HEAVY_TYPES`).
Of those, the **resident** ones (predictions, labels, tokens: a few hundred
bytes an example) stay in memory for every example. The pooled embeddings
(`Embeddings`: one vector per layer, ~12 KB an example for MiniLM, most of the
light part) stay in memory too when there is no store; with an `OutputStore`
they live on disk only and are read back for the requests that name them (the
embeddings projector), so a 100,000-example dataset keeps ~1 KB an example in
memory instead of ~15 KB.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable
from typing import Any

from lit_nlp.api import types as lit_types

from lit_plugins.util.lru import nbytes
from lit_plugins.util.store import OutputStore, encode

JsonDict = dict[str, Any]
Key = tuple  # (model name, example id)

# Fields that need a backward pass or hold one vector per token (or per token
# pair): kept only for recently explained examples.
HEAVY_TYPES = (
    lit_types.TokenEmbeddings,
    lit_types.TokenGradients,
    lit_types.Gradients,
    lit_types.AttentionHeads,
    lit_types.ImageGradients,
)
# Light fields kept on disk only when there is a store.
ON_DISK_TYPES = (lit_types.Embeddings,)
STORE_WRITE_ROWS = 1000  # rows per store transaction when a whole dataset is written


def light_fields(output_spec: lit_types.Spec) -> frozenset[str]:
    """The output fields kept for every example: all but `HEAVY_TYPES`."""
    return frozenset(k for k, v in output_spec.items() if not isinstance(v, HEAVY_TYPES))


def resident_fields(output_spec: lit_types.Spec) -> frozenset[str]:
    """The light fields kept in memory even when a store holds the rest."""
    return frozenset(
        k for k in light_fields(output_spec) if not isinstance(output_spec[k], ON_DISK_TYPES)
    )


def _shared_strings(value: Any) -> Any:
    """`value` with its strings (a label, a list of tokens) replaced by the one
    interned copy: 100,000 examples' tokens then cost a pointer each, not a
    string object each (the vocabulary is small, the dataset is not)."""
    if type(value) is str:
        return sys.intern(value)
    if type(value) is list and all(type(v) is str for v in value):
        return [sys.intern(v) for v in value]
    return value


class LightOutputs:
    """Light outputs by (model name, example id): resident fields in memory,
    everything light in the store (when there is one, under `store_key`).

    Not thread-safe: the caller (`BoundedCachingModelWrapper`) holds its lock.
    """

    def __init__(
        self,
        output_spec: lit_types.Spec,
        store: OutputStore | None = None,
        store_key: str | None = None,
    ):
        self.light_keys = light_fields(output_spec)
        on_disk = store is not None and store_key is not None
        self.resident_keys = resident_fields(output_spec) if on_disk else self.light_keys
        self._store = store if on_disk else None
        self._store_key = store_key
        self._resident: dict[Key, JsonDict] = {}
        self.store_hits = 0  # rows read from the store

    def __len__(self) -> int:
        return len(self._resident)

    def resident_bytes(self) -> int:
        """An upper estimate of the memory the resident parts use (shared strings
        counted once per use)."""
        return sum(nbytes(v) for v in self._resident.values())

    def get(self, keys: list[Key | None], fields: Collection[str]) -> list[JsonDict | None]:
        """Per key, a light output with at least `fields` (resident values from
        memory, the rest from the store), or None where it must be computed."""
        rows: list[JsonDict | None] = [
            self._resident.get(k) if k is not None else None for k in keys
        ]
        if self._store is None:
            return rows  # every light field is resident
        fields = set(fields)
        lacking = [r is None or not fields <= r.keys() for r in rows]
        wanted = [k[1] for k, lack in zip(keys, lacking) if k is not None and lack]
        # Only the fields asked for and the resident ones are decoded: a projection
        # of 100,000 examples reads one embedding each, not all of them.
        found = (
            self._store.get_many(self._store_key, wanted, fields | self.resident_keys)
            if wanted
            else {}
        )
        self.store_hits += len(found)
        for i, key in enumerate(keys):
            if not lacking[i]:
                continue
            stored = found.get(key[1]) if key is not None else None
            if stored is None:
                rows[i] = None  # never computed, or dropped by the store's size cap
                continue
            # Values kept in memory win: they are what the data table shows.
            rows[i] = {**stored, **self._keep(key, stored)}
        return rows

    def put(self, keys: list[Key | None], outputs: list[JsonDict]) -> list[JsonDict]:
        """Keeps the light part of each output (a resident part already kept
        stays); returns the light parts, with the kept resident values."""
        lights = []
        rows = []
        for key, output in zip(keys, outputs):
            light = {k: v for k, v in output.items() if k in self.light_keys}
            if key is not None:
                light.update(self._keep(key, light))
                rows.append((key, light))
            lights.append(light)
        self._write(rows)
        return lights

    def _keep(self, key: Key, light: JsonDict) -> JsonDict:
        resident = self._resident.get(key)
        if resident is None:
            resident = {k: _shared_strings(v) for k, v in light.items() if k in self.resident_keys}
            self._resident[key] = resident
        return resident

    def _write(self, rows: Iterable[tuple[Key, JsonDict]]) -> None:
        if self._store is None:
            return
        rows = list(rows)
        # In chunks: the encoded rows of a whole dataset are not held at once.
        for start in range(0, len(rows), STORE_WRITE_ROWS):
            chunk = {k[1]: light for k, light in rows[start : start + STORE_WRITE_ROWS]}
            if self._store.put_many(self._store_key, chunk) < len(chunk):
                # An output the store cannot encode stays whole in memory.
                for key, light in rows[start : start + STORE_WRITE_ROWS]:
                    if encode(light) is None:
                        self._resident[key] = light
