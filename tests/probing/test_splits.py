"""train_held_out_split: sizes, stratification, determinism, errors."""

import numpy as np
import pytest

from lit_plugins.probing import train_held_out_split
from lit_plugins.probing.early_stopping import held_out_rows


def check_partition(train, held_out, n):
    assert train.dtype.kind == "i" and held_out.dtype.kind == "i"
    assert np.all(np.diff(train) > 0) and np.all(np.diff(held_out) > 0)  # sorted, unique
    np.testing.assert_array_equal(np.sort(np.concatenate([train, held_out])), np.arange(n))


@pytest.mark.parametrize("n, fraction", [(2, 0.1), (3, 0.5), (10, 0.2), (101, 0.1), (1000, 0.37)])
def test_random_split_sizes(n, fraction):
    train, held_out = train_held_out_split(n, fraction, seed=0)
    check_partition(train, held_out, n)
    assert held_out.size == max(1, round(fraction * n))
    assert train.size >= 1


def test_stratified_sizes_by_largest_remainder():
    y = np.array([0] * 50 + [1] * 30 + [2] * 5 + [3])
    train, held_out = train_held_out_split(len(y), 0.1, 0, y)
    check_partition(train, held_out, len(y))
    # round(8.6) = 9 rows: floor shares 5 + 3, the spare one to the largest
    # remainder (class 2, 0.5); the single-example class keeps its row.
    assert [int(np.sum(y[held_out] == k)) for k in range(4)] == [5, 3, 1, 0]


def test_many_small_classes_keep_the_total_and_a_train_row_each():
    pairs = np.repeat(np.arange(100), 2)
    train, held_out = train_held_out_split(200, 0.1, 0, pairs)
    assert held_out.size == 20
    assert set(pairs[train]) == set(range(100))


def test_every_class_keeps_a_train_row():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 60))
        strata = rng.integers(0, int(rng.integers(1, 8)), size=n)
        fraction = float(rng.uniform(0.05, 0.95))
        train, held_out = train_held_out_split(n, fraction, int(rng.integers(100)), strata)
        check_partition(train, held_out, n)
        assert held_out.size >= 1
        # Classes capped at size - 1 may leave the total short, never over.
        assert held_out.size <= max(1, round(fraction * n))
        if np.any(np.bincount(strata) >= 2):  # some class can spare a row
            assert set(strata[train]) == set(strata)


def test_deterministic_and_seeded():
    y = np.repeat(np.arange(3), 40)
    a = train_held_out_split(120, 0.25, 7, y)
    b = train_held_out_split(120, 0.25, 7, y)
    c = train_held_out_split(120, 0.25, 8, y)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert [int(np.sum(y[c[1]] == k)) for k in range(3)] == [10, 10, 10]


def test_string_strata_split_like_their_codes():
    names = np.array(["neg", "pos", "neutral"])
    codes = np.random.default_rng(1).integers(0, 3, size=90)
    # np.unique sorts names: neg=0, neutral=1, pos=2.
    sorted_codes = np.searchsorted(np.sort(names), names[codes])
    a = train_held_out_split(90, 0.2, 3, names[codes])
    b = train_held_out_split(90, 0.2, 3, sorted_codes)
    np.testing.assert_array_equal(a[1], b[1])


def test_at_least_one_held_out_row():
    # Stratified share rounds to 0: the row comes from a class that can spare it.
    y = np.array([0, 0, 0, 1])
    train, held_out = train_held_out_split(4, 0.1, 0, y)
    assert held_out.size == 1 and y[held_out[0]] == 0
    # Every class a single row: a random row, whose class then has none left.
    train, held_out = train_held_out_split(5, 0.1, 0, np.arange(5))
    assert held_out.size == 1 and train.size == 4


def test_min_held_out_zero_allows_an_empty_part():
    train, held_out = train_held_out_split(3, 0.1, 0, np.arange(3), min_held_out=0)
    assert held_out.size == 0 and train.size == 3
    train, held_out = train_held_out_split(4, 0.1, 0, min_held_out=0)
    assert held_out.size == 0


def test_probe_mask_is_the_split():
    y = np.repeat(np.arange(4), [30, 20, 7, 3])
    mask = held_out_rows(y, len(y), 0.1, random_state=5)
    _, held_out = train_held_out_split(len(y), 0.1, 5, y)
    np.testing.assert_array_equal(np.flatnonzero(mask), held_out)
    assert not held_out_rows(None, 1, 0.5, random_state=0).any()


@pytest.mark.parametrize(
    "args, kw, match",
    [
        ((1, 0.1, 0), {}, "num_rows"),
        ((0, 0.1, 0), {}, "num_rows"),
        ((2.5, 0.1, 0), {}, "num_rows"),
        ((True, 0.1, 0), {}, "num_rows"),
        ((10, 0.0, 0), {}, "fraction"),
        ((10, 1.0, 0), {}, "fraction"),
        ((10, -0.1, 0), {}, "fraction"),
        ((10, float("nan"), 0), {}, "fraction"),
        ((10, "0.1", 0), {}, "fraction"),
        ((10, 0.1, 0, np.zeros(9)), {}, "strata"),
        ((10, 0.1, 0, np.zeros((10, 1))), {}, "strata"),
        ((10, 0.1, 0), {"min_held_out": -1}, "min_held_out"),
        ((10, 0.1, 0), {"min_held_out": 10}, "min_held_out"),
    ],
)
def test_bad_arguments(args, kw, match):
    with pytest.raises(ValueError, match=match):
        train_held_out_split(*args, **kw)
