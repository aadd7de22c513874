"""A persistent, size-capped store of per-example model outputs in SQLite.

The served app keeps every example's light outputs (predictions, pooled
embeddings) here as well as in memory, so a restart on the same model and data
shows the data table without running the model. Rows are keyed by a model key
(the caller's digest of the weights and every setting that changes an output)
and the example's key (LIT's content hash), so changed weights or settings
never read old rows.

Safety and robustness:

* values are stored as JSON (plain values, and each array's dtype, shape and
  offset) and the arrays' raw bytes, read back with `numpy.frombuffer`: no
  pickle, so a foreign file cannot run code, and a row decodes in ~20 µs (an
  ``.npz`` per row took 650 µs: 65 s of a restart on 100,000 examples);
* a file that is not SQLite, or not ours, or fails SQLite's quick check is
  moved aside (``<name>.unreadable-<time>``) with a warning and a new store is
  started: the server never fails on it;
* every write is one transaction (WAL journal): a killed server leaves the
  store as it was before or after the batch; one lock serialises this
  process's threads;
* the file stays under `max_mb`: least recently used rows go first.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import numpy as np
from absl import logging

APP_ID = "lit-plugins output store"
SCHEMA_VERSION = 2  # 2: raw array bytes (1: one .npz per row)
_ARRAY = "__array__"


class StoreError(ValueError):
    """A store file that cannot be used (not SQLite, not ours, corrupted)."""


def encode(output: Mapping[str, Any]) -> tuple[str, bytes] | None:
    """(JSON of the plain values and of each array's dtype, shape and offset,
    the arrays' bytes one after the other), or None if a value is neither an
    array nor JSON-serialisable (such an output is not stored)."""
    plain: dict[str, Any] = {}
    parts: list[bytes] = []
    offset = 0
    for key, value in output.items():
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                return None
            data = np.ascontiguousarray(value).tobytes()
            plain[key] = {_ARRAY: [value.dtype.str, list(value.shape), offset]}
            parts.append(data)
            offset += len(data)
        elif isinstance(value, np.generic):
            plain[key] = value.item()
        else:
            plain[key] = value
    try:
        text = json.dumps(plain, allow_nan=True)
    except (TypeError, ValueError):
        return None
    return text, b"".join(parts)


def _array(spec, blob: bytes) -> np.ndarray:
    dtype_text, shape, offset = spec
    dtype = np.dtype(str(dtype_text))
    if dtype.hasobject:
        raise ValueError("a stored array of Python objects")
    shape = tuple(int(n) for n in shape)
    count = int(np.prod(shape, dtype=np.int64))
    if not 0 <= int(offset) <= len(blob) - count * dtype.itemsize:
        raise ValueError("a stored array outside its row's bytes")
    # A copy: writable, aligned, and not holding the whole row's bytes.
    return np.frombuffer(blob, dtype, count, int(offset)).reshape(shape).copy()


def decode(text: str, blob: bytes, fields: Collection[str] | None = None) -> dict[str, Any]:
    """The output `encode` stored, or its `fields` only (ValueError for a row
    that does not read back)."""
    plain = json.loads(text)
    if not isinstance(plain, dict):
        raise ValueError("a stored output that is not a JSON object")
    return {
        k: _array(v[_ARRAY], blob) if isinstance(v, dict) and _ARRAY in v else v
        for k, v in plain.items()
        if fields is None or k in fields
    }


class OutputStore:
    """Per-example outputs on disk, keyed by (model key, example key)."""

    def __init__(self, path: str, max_mb: float = 2048):
        if not max_mb > 0:
            raise ValueError(f"max_mb must be > 0, got {max_mb!r}.")
        self.path = os.path.abspath(path)
        self.max_bytes = int(max_mb * 2**20)
        self._lock = threading.Lock()
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        try:
            self._conn = self._open()
        except StoreError as e:
            aside = f"{self.path}.unreadable-{int(time.time())}"
            os.replace(self.path, aside)
            logging.warning("%s; moved it to %s and started a new store.", e, aside)
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        existed = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            if existed:
                self._check(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                conn.execute("BEGIN")
                conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS outputs (model TEXT, example TEXT, plain TEXT, "
                    "arrays BLOB, bytes INTEGER, used REAL, PRIMARY KEY (model, example))"
                )
                conn.execute("CREATE INDEX IF NOT EXISTS outputs_used ON outputs (used)")
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('app', ?), ('schema', ?)",
                    (APP_ID, str(SCHEMA_VERSION)),
                )
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"The output store {self.path} is not a usable SQLite file ({e})"
            ) from e
        return conn

    def _check(self, conn: sqlite3.Connection) -> None:
        try:
            (status,) = conn.execute("PRAGMA quick_check").fetchone()
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            conn.close()
            raise StoreError(f"The output store {self.path} is not ours or is damaged ({e})") from e
        if status != "ok" or meta.get("app") != APP_ID:
            conn.close()
            raise StoreError(
                f"The output store {self.path} is not a lit-plugins store or is damaged "
                f"(check: {status!r}, app: {meta.get('app')!r})"
            )
        if meta.get("schema") != str(SCHEMA_VERSION):
            conn.close()
            raise StoreError(
                f"The output store {self.path} has schema {meta.get('schema')!r}, "
                f"this version reads {SCHEMA_VERSION}"
            )

    # ------------------------------------------------------------------ API
    def get_many(
        self, model: str, examples: Iterable[str], fields: Collection[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """The stored outputs of `examples` under `model`, or their `fields` only
        (missing ones left out; a row that cannot be decoded is dropped and
        reported missing)."""
        wanted = list(dict.fromkeys(examples))
        found: dict[str, dict[str, Any]] = {}
        bad: list[str] = []
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT example, plain, arrays FROM outputs "
                    f"WHERE model = ? AND example IN ({marks})",
                    (model, *chunk),
                ).fetchall()
                for example, plain, arrays in rows:
                    try:
                        found[example] = decode(plain, arrays, fields)
                    except (ValueError, OSError, KeyError, TypeError) as e:
                        logging.warning("Dropping an unreadable stored output (%s).", e)
                        bad.append(example)
            now = time.time()
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany(
                    "UPDATE outputs SET used = ? WHERE model = ? AND example = ?",
                    [(now, model, e) for e in found],
                )
                self._conn.executemany(
                    "DELETE FROM outputs WHERE model = ? AND example = ?",
                    [(model, e) for e in bad],
                )
        return found

    def put_many(self, model: str, outputs: Mapping[str, Mapping[str, Any]]) -> int:
        """Stores `outputs` (example key -> output) in one transaction, then drops
        the least recently used rows beyond the size cap; returns how many were
        stored (outputs with values `encode` refuses are skipped)."""
        rows = []
        now = time.time()
        for example, output in outputs.items():
            encoded = encode(output)
            if encoded is not None:
                plain, arrays = encoded
                rows.append((model, example, plain, arrays, len(plain) + len(arrays), now))
        if not rows:
            return 0
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO outputs VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._trim()
        return len(rows)

    def delete(self, model: str, examples: Iterable[str]) -> None:
        """Drops the rows of `examples` under `model` (one transaction)."""
        rows = [(model, e) for e in dict.fromkeys(examples)]
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany("DELETE FROM outputs WHERE model = ? AND example = ?", rows)

    def _trim(self) -> None:
        (total,) = self._conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM outputs").fetchone()
        if total <= self.max_bytes:
            return
        excess = total - int(0.9 * self.max_bytes)  # room for the next batches
        oldest = self._conn.execute(
            "SELECT model, example, bytes FROM outputs ORDER BY used"
        ).fetchall()
        drop, freed = [], 0
        for model, example, size in oldest:
            if freed >= excess:
                break
            drop.append((model, example))
            freed += size
        self._conn.executemany("DELETE FROM outputs WHERE model = ? AND example = ?", drop)

    def stats(self) -> dict[str, int]:
        """Rows and payload bytes held."""
        with self._lock:
            rows, size = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM outputs"
            ).fetchone()
        return {"rows": int(rows), "bytes": int(size)}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
