"""A least-recently-used cache bounded in bytes, thread-safe.

The served app keeps token-level outputs (token embeddings and gradients,
per-layer states, attention) only for the examples being explained: they are
~100× larger per example than what the data table needs, so a whole dataset's
worth never fits. Values here are dicts of numpy arrays and plain Python
values; their size is counted with `nbytes`.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np


def nbytes(value: Any) -> int:
    """Approximate memory of `value`: arrays by their buffers, containers by
    their items, anything else by `sys.getsizeof`."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes) + 112  # + the array object itself
    if isinstance(value, Mapping):
        return sys.getsizeof(value) + sum(nbytes(k) + nbytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sys.getsizeof(value) + sum(nbytes(v) for v in value)
    return sys.getsizeof(value)


class ByteLRU:
    """Maps keys to values, dropping the least recently used once the values
    take more than `max_bytes` (a value larger than the budget is not kept)."""

    def __init__(self, max_bytes: int):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an integer >= 0, got {max_bytes!r}.")
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any, size: int | None = None) -> None:
        size = nbytes(value) if size is None else int(size)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    @property
    def bytes(self) -> int:
        """Bytes held now (never above `max_bytes`)."""
        return self._bytes
