"""The served app's output store (SQLite): round trips, foreign and damaged
files, the size cap, threads, and a writer killed mid-transaction."""

import os
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lit_plugins.util import store as store_lib
from tests.kit.threads import call_in_threads


def _output(i: int) -> dict:
    rng = np.random.default_rng(i)
    return {
        "probas": rng.random(2).astype(np.float32),
        "cls_emb": rng.standard_normal(384).astype(np.float32),
        "grad_class": "positive",
        "tokens": ["[CLS]", "a", f"w{i}", "[SEP]"],
        "score": float(i) / 3,
        "labels": [["food", 0.9], ["price", 0.1]],
    }


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key, value in a.items():
        if isinstance(value, np.ndarray):
            assert b[key].dtype == value.dtype
            np.testing.assert_array_equal(b[key], value)
        else:
            assert b[key] == value, key


def test_round_trip_keyed_by_model_and_example(tmp_path):
    store = store_lib.OutputStore(str(tmp_path / "s.sqlite"))
    assert store.put_many("model-a", {f"e{i}": _output(i) for i in range(5)}) == 5
    got = store.get_many("model-a", ["e0", "e3", "missing"])
    assert set(got) == {"e0", "e3"}
    _assert_same(_output(3), got["e3"])
    assert store.get_many("model-b", ["e0"]) == {}  # other weights: nothing
    store.close()
    reopened = store_lib.OutputStore(str(tmp_path / "s.sqlite"))
    _assert_same(_output(4), reopened.get_many("model-a", ["e4"])["e4"])
    assert reopened.stats()["rows"] == 5


def test_named_fields_only_are_read_back(tmp_path):
    store = store_lib.OutputStore(str(tmp_path / "s.sqlite"))
    store.put_many("m", {"a": _output(0)})
    (got,) = store.get_many("m", ["a"], fields={"cls_emb", "tokens"}).values()
    _assert_same({k: _output(0)[k] for k in ("cls_emb", "tokens")}, got)


def test_arrays_of_every_kind_read_back_exactly():
    """Dtype, shape (0-d, empty, 3-d, Fortran order) and bytes survive the raw layout."""
    arrays = {
        "f16": np.array([1.5, -2.25], np.float16),
        "f64": np.array(np.pi),
        "i64": np.arange(24, dtype=np.int64).reshape(2, 3, 4),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "empty": np.zeros((0, 5), np.float32),
        "flags": np.array([True, False]),
        "big_endian": np.array([1, 2], dtype=">i4"),
    }
    back = store_lib.decode(*store_lib.encode({**arrays, "note": "x"}))
    assert back["note"] == "x"
    _assert_same(arrays, {k: v for k, v in back.items() if k != "note"})
    assert all(back[k].flags.writeable for k in arrays)


def test_a_row_whose_bytes_do_not_match_is_refused():
    text, blob = store_lib.encode(_output(0))
    for damaged in (blob[:-4], b""):
        with pytest.raises(ValueError, match="outside its row's bytes"):
            store_lib.decode(text, damaged)
    with pytest.raises(ValueError, match="objects"):
        store_lib.decode('{"x": {"__array__": ["|O", [1], 0]}}', b"\0" * 8)


def test_values_it_cannot_store_safely_are_skipped(tmp_path):
    store = store_lib.OutputStore(str(tmp_path / "s.sqlite"))
    odd = {"x": np.array([object()], dtype=object)}
    assert store.put_many("m", {"a": odd, "b": {"y": {1, 2}}, "c": _output(1)}) == 1
    assert set(store.get_many("m", ["a", "b", "c"])) == {"c"}


@pytest.mark.parametrize(
    "content",
    [b"not a database at all, just text\n" * 100, "other-app"],
)
def test_a_foreign_or_damaged_file_is_moved_aside_and_rebuilt(tmp_path, content):
    path = tmp_path / "s.sqlite"
    if content == "other-app":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('app', 'someone else')")
        conn.commit()
        conn.close()
    else:
        path.write_bytes(content)
    store = store_lib.OutputStore(str(path))
    assert store.put_many("m", {"e": _output(0)}) == 1
    _assert_same(_output(0), store.get_many("m", ["e"])["e"])
    aside = [p for p in os.listdir(tmp_path) if ".unreadable-" in p]
    assert len(aside) == 1  # the user's file is kept, not deleted


def test_size_cap_drops_the_least_recently_used(tmp_path):
    one = sum(len(part) for part in store_lib.encode(_output(0)))
    store = store_lib.OutputStore(str(tmp_path / "s.sqlite"), max_mb=10.5 * one / 2**20)
    store.put_many("m", {f"e{i}": _output(i) for i in range(10)})
    store.get_many("m", ["e0"])  # e0 is now recently used
    store.put_many("m", {"e10": _output(10)})
    kept = set(store.get_many("m", [f"e{i}" for i in range(11)]))
    assert "e0" in kept and "e10" in kept and "e1" not in kept
    assert store.stats()["bytes"] <= 10.5 * one


def test_threads_share_one_store(tmp_path):
    store = store_lib.OutputStore(str(tmp_path / "s.sqlite"))
    counter = iter(range(1000))

    def work():
        base = next(counter) * 100
        for i in range(20):
            store.put_many("m", {f"e{base + i}": _output(i)})
            assert store.get_many("m", [f"e{base + i}"])

    _, errors = call_in_threads(work, 4)
    assert not errors and store.stats()["rows"] == 80


def test_a_writer_killed_mid_transaction_leaves_the_store_consistent(tmp_path):
    path = str(tmp_path / "s.sqlite")
    store = store_lib.OutputStore(path)
    store.put_many("m", {"kept": _output(0)})
    store.close()
    script = textwrap.dedent(
        f"""
        import os, sqlite3
        conn = sqlite3.connect({path!r}, isolation_level=None)
        conn.execute("BEGIN")
        conn.execute("DELETE FROM outputs")
        conn.execute("INSERT INTO outputs VALUES ('m', 'half', '{{}}', x'00', 1, 0)")
        os._exit(1)  # killed before COMMIT
        """
    )
    assert subprocess.run([sys.executable, "-c", script]).returncode == 1
    reopened = store_lib.OutputStore(path)
    assert set(reopened.get_many("m", ["kept", "half"])) == {"kept"}


def test_bad_cap(tmp_path):
    with pytest.raises(ValueError, match="max_mb"):
        store_lib.OutputStore(str(tmp_path / "s.sqlite"), max_mb=0)
