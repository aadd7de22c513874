"""The byte-bounded LRU cache the served app keeps token-level outputs in."""

import numpy as np
import pytest

from lit_plugins.util.lru import ByteLRU, nbytes
from tests.kit.threads import call_in_threads


def _value(kb: int) -> dict:
    return {"token_grads": np.zeros(kb * 256, dtype=np.float32)}  # kb KiB of data


def test_evicts_the_least_recently_used_beyond_the_budget():
    size = nbytes(_value(4))
    lru = ByteLRU(3 * size)
    for key in "abc":
        lru.put(key, _value(4))
    assert lru.bytes == 3 * size and len(lru) == 3
    assert lru.get("a") is not None  # 'a' is now the most recent: 'b' goes next
    lru.put("d", _value(4))
    assert "b" not in lru and {"a", "c", "d"} <= {k for k in "abcd" if k in lru}
    assert lru.bytes == 3 * size
    assert (lru.hits, lru.misses) == (1, 0)
    assert lru.get("b") is None and lru.misses == 1


def test_replacing_a_key_counts_its_new_size_and_oversize_values_are_not_kept():
    lru = ByteLRU(nbytes(_value(8)))
    lru.put("a", _value(2))
    lru.put("a", _value(8))
    assert lru.bytes == nbytes(_value(8)) and len(lru) == 1
    lru.put("big", _value(9))
    assert "big" not in lru and "a" in lru
    lru.put("a", _value(9))  # replaced by a value that does not fit: gone
    assert len(lru) == 0 and lru.bytes == 0


def test_nbytes_counts_array_buffers():
    arrays = {"a": np.zeros((10, 384), np.float32), "b": np.zeros(7, np.float64)}
    assert nbytes(arrays) >= 10 * 384 * 4 + 7 * 8
    assert nbytes(arrays) < 10 * 384 * 4 + 7 * 8 + 2048


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_bad_budget(bad):
    with pytest.raises(ValueError, match="max_bytes"):
        ByteLRU(bad)


def test_concurrent_puts_keep_the_budget():
    size = nbytes(_value(1))
    lru = ByteLRU(50 * size)

    def work():
        me = object()
        for j in range(200):
            lru.put((me, j), _value(1))
            lru.get((me, j // 2))

    _, errors = call_in_threads(work, 4)
    assert not errors
    assert lru.bytes <= 50 * size and len(lru) == 50
    assert lru.bytes == sum(nbytes(_value(1)) for _ in range(len(lru)))
