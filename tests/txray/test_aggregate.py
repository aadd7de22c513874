"""Tests for lit_plugins.txray.aggregate (numbers worked out by hand in comments)."""

import numpy as np
import pytest

from lit_plugins.txray import FeatureVocab, NeuronFeatureAggregator, merge_subwords

# Hand-worked example: H = 3 neurons, 4 token positions, features [0, 1, 0, 2].
ACTS = np.array(
    [
        [1.0, 0.5, -1.0],  # f0: max1 -> n0 (+1.0); all -> n0 +1.0, n1 +0.5
        [0.25, 2.0, 0.75],  # f1: max1 -> n1 (+2.0); all -> n0 +.25, n1 +2.0, n2 +.75
        [-0.5, -0.25, -2.0],  # f0: max is -0.25 <= 0 -> nothing in either mode
        [0.5, 0.0, 1.5],  # f2: max1 -> n2 (+1.5); all -> n0 +0.5, n2 +1.5 (0.0 not > 0)
    ]
)
FIDS = np.array([0, 1, 0, 2])


def test_max1_hand_worked():
    agg = NeuronFeatureAggregator(3, mode="max1").update(ACTS, FIDS)
    np.testing.assert_array_equal(
        agg.mass_matrix().toarray(), [[1.0, 0, 0], [0, 2.0, 0], [0, 0, 1.5]]
    )
    np.testing.assert_array_equal(agg.count_matrix().toarray(), [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(agg.lengths(), [1, 1, 1])
    # total mass 4.5
    np.testing.assert_allclose(agg.mass_activation(), [1 / 4.5, 2 / 4.5, 1.5 / 4.5], rtol=1e-15)
    d = agg.distributions(dense=True)
    np.testing.assert_array_equal(d.probs, np.eye(3))
    assert d.active.all()
    assert agg.num_tokens == 4 and agg.num_credited == 3


def test_all_hand_worked():
    agg = NeuronFeatureAggregator(3, mode="all").update(ACTS, FIDS)
    np.testing.assert_array_equal(
        agg.mass_matrix().toarray(),
        [[1.0, 0.25, 0.5], [0.5, 2.0, 0.0], [0.0, 0.75, 1.5]],
    )
    np.testing.assert_array_equal(agg.count_matrix().toarray(), [[1, 1, 1], [1, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(agg.lengths(), [3, 2, 2])
    d = agg.distributions(dense=True)
    # n0 total 1.75, n1 total 2.5, n2 total 2.25
    np.testing.assert_allclose(
        d.probs,
        [[4 / 7, 1 / 7, 2 / 7], [0.2, 0.8, 0.0], [0.0, 1 / 3, 2 / 3]],
        rtol=1e-15,
    )
    # layer total 6.5
    np.testing.assert_allclose(
        agg.mass_activation(), [1.75 / 6.5, 2.5 / 6.5, 2.25 / 6.5], rtol=1e-15
    )


def test_max1_tie_goes_to_lowest_neuron_and_inactive_flagged():
    acts = np.array([[1.0, 1.0, 0.0], [0.5, 0.5, -1.0]])
    agg = NeuronFeatureAggregator(3).update(acts, np.array([4, 4]))
    np.testing.assert_array_equal(agg.mass_matrix().toarray()[:, 4], [1.5, 0, 0])
    d = agg.distributions()
    np.testing.assert_array_equal(d.active, [True, False, False])
    assert d.probs[1].nnz == 0 and d.probs[2].nnz == 0
    assert agg.num_features == 5
    assert agg.top_features(1) == []


def test_top_features_order_and_names():
    acts = np.array([[3.0, 0], [1.0, 0], [1.0, 0], [2.0, 0]])
    agg = NeuronFeatureAggregator(2).update(acts, np.array([2, 0, 1, 0]))
    # n0: f0 = 1 + 2 = 3 (count 2), f1 = 1, f2 = 3 -> total 7; tie f0/f2 -> lower id first
    top = agg.top_features(0, k=3, names=["a", "b", "c"])
    assert [t.feature for t in top] == [0, 2, 1]
    assert [t.name for t in top] == ["a", "c", "b"]
    assert [t.count for t in top] == [2, 1, 1]
    np.testing.assert_allclose([t.prob for t in top], [3 / 7, 3 / 7, 1 / 7])
    assert [t.mass for t in top] == [3.0, 3.0, 1.0]
    with pytest.raises(ValueError):
        agg.top_features(2)


def _dyadic_data(seed, T=3000, H=40, F=500):
    """Activations that are multiples of 1/16 in [-4, 4): float64 sums of them are exact."""
    rng = np.random.default_rng(seed)
    acts = rng.integers(-64, 64, size=(T, H)).astype(np.float32) / 16
    fids = rng.integers(0, F, size=T)
    return acts, fids


@pytest.mark.parametrize("mode", ["max1", "all"])
@pytest.mark.parametrize("storage", ["dense", "sparse"])
def test_streaming_equals_one_batch_exactly(mode, storage):
    acts, fids = _dyadic_data(0)
    one = NeuronFeatureAggregator(40, mode=mode, storage=storage).update(acts, fids)
    streamed = NeuronFeatureAggregator(40, mode=mode, storage=storage, coalesce_every=500)
    for s in range(0, 3000, 137):  # uneven batch sizes
        streamed.update(acts[s : s + 137], fids[s : s + 137])
    assert (one.mass_matrix() != streamed.mass_matrix()).nnz == 0
    assert (one.count_matrix() != streamed.count_matrix()).nnz == 0
    assert one.num_tokens == streamed.num_tokens == 3000


@pytest.mark.parametrize("mode", ["max1", "all"])
def test_sparse_and_dense_paths_equal(mode):
    acts, fids = _dyadic_data(1)
    dense = NeuronFeatureAggregator(40, mode=mode, storage="dense").update(acts, fids)
    sparse = NeuronFeatureAggregator(40, mode=mode, storage="sparse", coalesce_every=100)
    auto_small = NeuronFeatureAggregator(
        40, mode=mode, dense_max_cells=40 * 100
    )  # switches to sparse
    for s in range(0, 3000, 250):
        sparse.update(acts[s : s + 250], fids[s : s + 250])
        auto_small.update(acts[s : s + 250], fids[s : s + 250])
    assert not dense.is_sparse and sparse.is_sparse and auto_small.is_sparse
    for other in (sparse, auto_small):
        assert (dense.mass_matrix() != other.mass_matrix()).nnz == 0
        assert (dense.count_matrix() != other.count_matrix()).nnz == 0
        np.testing.assert_array_equal(dense.lengths(), other.lengths())
        np.testing.assert_array_equal(dense.mass_activation(), other.mass_activation())


@pytest.mark.parametrize("mode", ["max1", "all"])
def test_dense_blocks_sparse_and_switch_bit_identical(mode, monkeypatch):
    """Dense tables grow in blocks of features (here 7 rows, so ~70 blocks); dense,
    sparse and auto (dense, then switching to sparse mid-stream) add every
    cell's credits in batch order: bit-identical sums even for general floats."""
    from lit_plugins.txray import storage

    monkeypatch.setattr(storage, "BLOCK_CELLS", 7 * 40)
    rng = np.random.default_rng(5)
    acts = rng.standard_normal((3000, 40)).astype(np.float32)
    fids = rng.integers(0, 500, size=3000)
    fids[:200] = rng.integers(0, 20, size=200)  # the feature space grows mid-stream
    kinds = dict(
        dense=dict(storage="dense"),
        sparse=dict(storage="sparse", coalesce_every=300),
        auto=dict(dense_max_cells=40 * 100),
    )
    aggs = {k: NeuronFeatureAggregator(40, mode=mode, **kw) for k, kw in kinds.items()}
    for s in range(0, 3000, 173):
        for agg in aggs.values():
            agg.update(acts[s : s + 173], fids[s : s + 173])
    dense, sparse, auto = aggs["dense"], aggs["sparse"], aggs["auto"]
    assert len(dense._blocks) > 60 and sparse.is_sparse and auto.is_sparse
    for other in (sparse, auto):
        for a, b in (
            (dense.mass_matrix(), other.mass_matrix()),
            (dense.count_matrix(), other.count_matrix()),
        ):
            assert a.has_canonical_format and b.has_canonical_format
            np.testing.assert_array_equal(a.indptr, b.indptr)
            np.testing.assert_array_equal(a.indices, b.indices)
            np.testing.assert_array_equal(a.data, b.data)  # bit-identical
    # round trips through COO keep the dense blocks and the cells
    r, c, m, n = dense.to_coo()
    back = NeuronFeatureAggregator.from_coo(
        40, dense.num_features, r, c, m, n, mode=mode, storage="dense"
    )
    assert len(back._blocks) == len(dense._blocks)
    assert (back.mass_matrix() != dense.mass_matrix()).nnz == 0
    assert (back.count_matrix() != dense.count_matrix()).nnz == 0
    # one-batch reference computed from the definitions
    expect = np.zeros((40, 500))
    if mode == "max1":
        n_ = acts.argmax(axis=1)
        v = acts[np.arange(3000), n_]
        np.add.at(expect, (n_[v > 0], fids[v > 0]), v[v > 0].astype(np.float64))
    else:
        r_, c_ = np.nonzero(acts > 0)
        np.add.at(expect, (c_, fids[r_]), acts[r_, c_].astype(np.float64))
    np.testing.assert_allclose(dense.mass_matrix().toarray(), expect, rtol=1e-12)


def test_general_floats_streaming_close():
    rng = np.random.default_rng(2)
    acts = rng.standard_normal((2000, 30)).astype(np.float32)
    fids = rng.integers(0, 100, size=2000)
    one = NeuronFeatureAggregator(30, mode="all").update(acts, fids)
    streamed = NeuronFeatureAggregator(30, mode="all", storage="sparse", coalesce_every=1000)
    for s in range(0, 2000, 64):
        streamed.update(acts[s : s + 64], fids[s : s + 64])
    np.testing.assert_allclose(
        one.mass_matrix().toarray(), streamed.mass_matrix().toarray(), rtol=1e-12
    )
    assert (one.count_matrix() != streamed.count_matrix()).nnz == 0
    # reference: plain python loop over positions
    ref = np.zeros((30, 100))
    for t in range(2000):
        for n in range(30):
            if acts[t, n] > 0:
                ref[n, fids[t]] += float(acts[t, n])
    np.testing.assert_allclose(one.mass_matrix().toarray(), ref, rtol=1e-12)


def test_batched_3d_input_mask_and_negative_ids():
    acts = np.array([[[1.0, 0.0], [0.0, 2.0]], [[3.0, 0.0], [0.0, 5.0]]])  # [B=2, S=2, H=2]
    fids = np.array([[0, 1], [-1, 1]])  # -1 skipped
    mask = np.array([[True, False], [True, True]])  # (0,1) skipped
    agg = NeuronFeatureAggregator(2).update(acts, fids, mask=mask)
    np.testing.assert_array_equal(agg.mass_matrix().toarray(), [[1.0, 0.0], [0.0, 5.0]])
    assert agg.num_tokens == 2


def test_torch_input():
    torch = pytest.importorskip("torch")
    acts = torch.tensor(ACTS, dtype=torch.float32, requires_grad=True)
    agg = NeuronFeatureAggregator(3).update(acts * 1, torch.tensor(FIDS))
    np.testing.assert_array_equal(
        agg.mass_matrix().toarray(), [[1.0, 0, 0], [0, 2.0, 0], [0, 0, 1.5]]
    )
    agg16 = NeuronFeatureAggregator(3).update(
        torch.tensor(ACTS, dtype=torch.bfloat16), torch.tensor(FIDS)
    )
    np.testing.assert_array_equal(
        agg16.mass_matrix().toarray(), [[1.0, 0, 0], [0, 2.0, 0], [0, 0, 1.5]]
    )


@pytest.mark.parametrize(
    "acts, fids, msg",
    [
        (np.ones((3, 4)), np.zeros(3, int), "trailing dimension"),
        (np.ones((3, 3)), np.zeros(2, int), "leading shape"),
        (np.array([[1.0, np.nan, 0.0]]), np.zeros(1, int), "NaN"),
        (np.array([[1.0, np.inf, 0.0]]), np.zeros(1, int), "NaN"),
        (np.ones((1, 3)), np.zeros(1, float), "integers"),
        (np.ones((1, 3)), np.array([7]), "out of range"),
    ],
)
def test_update_bad_input(acts, fids, msg):
    agg = NeuronFeatureAggregator(3, num_features=5)
    with pytest.raises(ValueError, match=msg):
        agg.update(acts, fids)


@pytest.mark.parametrize("mode", ["max1", "all"])
def test_nan_anywhere_raises(mode):
    acts = np.zeros((5, 4), dtype=np.float32)
    acts[:, 0] = 5.0
    acts[3, 2] = np.nan  # not the maximum of its row
    with pytest.raises(ValueError, match="NaN"):
        NeuronFeatureAggregator(4, mode=mode).update(acts, np.arange(5))


def test_constructor_and_empty_results_errors():
    with pytest.raises(ValueError):
        NeuronFeatureAggregator(0)
    with pytest.raises(ValueError):
        NeuronFeatureAggregator(3, mode="max2")
    with pytest.raises(ValueError):
        NeuronFeatureAggregator(3, storage="ragged")
    empty = NeuronFeatureAggregator(3)
    with pytest.raises(ValueError, match="no activations"):
        empty.distributions()
    never = NeuronFeatureAggregator(3).update(-np.ones((4, 3)), np.arange(4))
    with pytest.raises(ValueError, match="no activations"):
        never.mass_activation()
    # empty batch is a no-op
    empty.update(np.zeros((0, 3)), np.zeros(0, int))
    assert empty.num_tokens == 0


def test_save_load_roundtrip_and_remap(tmp_path):
    acts, fids = _dyadic_data(3, T=500, H=8, F=30)
    agg = NeuronFeatureAggregator(8, mode="all").update(acts, fids)
    names = [f"t{i}" for i in range(agg.num_features)]
    agg.save(tmp_path / "a.npz", feature_names=names, label="pre")
    back, back_names, meta = NeuronFeatureAggregator.load(tmp_path / "a.npz")
    assert back_names == names and meta == {"label": "pre"} and back.mode == "all"
    assert (back.mass_matrix() != agg.mass_matrix()).nnz == 0
    assert (back.count_matrix() != agg.count_matrix()).nnz == 0
    assert back.num_tokens == 500
    # remap: reverse the id space
    F = agg.num_features
    rev = agg.remap_features(np.arange(F)[::-1], F)
    np.testing.assert_array_equal(rev.mass_matrix().toarray(), agg.mass_matrix().toarray()[:, ::-1])
    np.savez(tmp_path / "bad.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not a"):
        NeuronFeatureAggregator.load(tmp_path / "bad.npz")


def test_feature_vocab():
    v = FeatureVocab(["the", "cat"])
    np.testing.assert_array_equal(v.encode(["cat", "sat", "the", "sat"]), [1, 2, 0, 2])
    assert len(v) == 3 and v.decode([2, 0]) == ["sat", "the"] and v.id_of("cat") == 1
    v.freeze()
    with pytest.raises(KeyError):
        v.add("dog")
    u = FeatureVocab(unk="<unk>").freeze()
    assert u.encode(["x", "y"]).tolist() == [0, 0]
    assert FeatureVocab.from_list(v.names).names == ["the", "cat", "sat"]
    with pytest.raises(ValueError):
        FeatureVocab.from_list(["a", "a"])


def test_merge_subwords():
    toks = ["[CLS]", "un", "##believ", "##able", "film", "##s", "!", "[SEP]", "##x"]
    assert merge_subwords(toks, special_tokens=["[CLS]", "[SEP]"]) == [
        "[CLS]",
        "unbelievable",
        "unbelievable",
        "unbelievable",
        "films",
        "films",
        "!",
        "[SEP]",
        "x",
    ]
    sp_toks = ["\u2581The", "\u2581un", "believ", "able", "\u2581film"]
    assert merge_subwords(sp_toks, continuation_prefix=None, word_start_prefix="\u2581") == [
        "The",
        "unbelievable",
        "unbelievable",
        "unbelievable",
        "film",
    ]
    with pytest.raises(ValueError):
        merge_subwords(toks, continuation_prefix=None)
