"""`heap.trim`: freed heap memory goes back to the system (glibc), measured in
this process's resident set."""

import platform

import numpy as np
import pytest

from lit_plugins.util import heap


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_returns_freed_memory_between_kept_objects():
    heap.trim()
    start = _rss_mb()
    kept, freed = [], []
    # 3,000 batches' worth: 64 KB freed (below the mmap threshold: heap), 1 KB kept
    # after each, so the freed blocks sit between live ones and the heap cannot shrink.
    for _ in range(3000):
        freed.append(np.ones(16384, np.float32))
        kept.append(np.ones(256, np.float32))
    del freed
    held = _rss_mb() - start
    assert heap.trim() is True
    after = _rss_mb() - start
    assert held > 150 and after < held - 120, (held, after)
    assert len(kept) == 3000


def test_trim_is_safe_to_call_anywhere():
    assert heap.trim() in (True, False)
