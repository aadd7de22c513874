"""The resumable shard plan: disjoint and complete over ranks, refuses foreign runs."""

import itertools
import json
import os

import pytest

from lit_plugins.cli import shards
from lit_plugins.util import distributed


class _Rank:
    """A Comm stand-in for rank `rank` of `world_size` (no collectives needed here)."""

    def __init__(self, rank, world_size):
        self.rank, self.world_size = rank, world_size
        self.is_main = rank == 0
        self.distributed = world_size > 1

    def broadcast_object(self, obj, src=0):
        return obj

    def barrier(self):
        pass


@pytest.mark.parametrize("n", [1, 7, 12, 13])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_ranks_cover_every_example_once(tmp_path, n, world):
    plan = shards.ShardPlan(str(tmp_path), {"a": 1}, n, 4, ".x")
    seen = []
    for rank in range(world):
        for k in plan.pending(_Rank(rank, world)):
            seen.extend(range(*plan.bounds(k)))
    assert sorted(seen) == list(range(n))


@pytest.mark.parametrize("n", [0, 1, 5, 10, 11])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_blocks_are_contiguous_and_cover(n, world):
    blocks = [distributed.block(n, r, world) for r in range(world)]
    assert blocks[0][0] == 0 and blocks[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
    sizes = [b - a for a, b in blocks]
    assert max(sizes) - min(sizes) <= 1


def test_pending_skips_written_shards(tmp_path):
    plan = shards.ShardPlan(str(tmp_path), {"a": 1}, 10, 3, ".x")
    plan.prepare()
    open(plan.path(1), "w").close()
    assert plan.pending() == [0, 2, 3]
    assert plan.pending(_Rank(1, 2)) == [3]


def test_another_configuration_is_refused_before_work(tmp_path):
    shards.ShardPlan(str(tmp_path), {"steps": 64}, 10, 3, ".x").prepare()
    with pytest.raises(ValueError, match=r"another run configuration \(steps: 64 there vs 32"):
        shards.ShardPlan(str(tmp_path), {"steps": 32}, 10, 3, ".x").prepare()


def test_a_foreign_shard_without_manifest_is_refused(tmp_path):
    other = shards.ShardPlan(str(tmp_path), {"steps": 64}, 10, 3, ".x")
    open(other.path(0), "w").close()
    with pytest.raises(ValueError, match="shards of another run configuration"):
        shards.ShardPlan(str(tmp_path), {"steps": 32}, 10, 3, ".x").prepare()


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="is not writable"):
        shards.ShardPlan(str(blocker / "out"), {}, 10, 3, ".x").prepare()


def test_complete_marker_and_is_complete(tmp_path):
    plan = shards.ShardPlan(str(tmp_path), {"a": 1}, 5, 2, ".x")
    plan.prepare()
    for k in range(2):
        open(plan.path(k), "w").close()
    assert not plan.finish()
    assert not shards.is_complete(str(tmp_path), {"a": 1})
    open(plan.path(2), "w").close()
    assert plan.finish()
    assert shards.is_complete(str(tmp_path), {"a": 1})
    assert not shards.is_complete(str(tmp_path), {"a": 2})
    manifest = json.loads((tmp_path / shards.MANIFEST).read_text())
    assert manifest["num_shards"] == 3 and manifest["hash"] == plan.hash


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npz"

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        shards.atomic_write(str(target), fail)
    assert os.listdir(tmp_path) == []


def test_single_comm_is_identity():
    import numpy as np
    import torch

    comm = distributed.Comm()
    t = torch.ones(3)
    assert comm.all_reduce_sum(t) is t
    assert comm.all_gather_object("x") == ["x"]
    assert comm.block(5) == (0, 5)
    np.testing.assert_array_equal(comm.sum_array(np.arange(3)), np.arange(3))
    with pytest.raises(ValueError, match="process group"):
        distributed.Comm(rank=0, world_size=2)


def test_complete_only_after_the_final_step(tmp_path):
    plan = shards.ShardPlan(str(tmp_path), {"a": 1}, 2, 2, ".x")
    plan.prepare()
    open(plan.path(0), "w").close()

    def merge_fails():
        raise ValueError("merge failed")

    with pytest.raises(ValueError, match="merge failed"):
        plan.finish(then=merge_fails)
    assert not shards.is_complete(str(tmp_path), {"a": 1})  # a rerun finishes it
    done = []
    assert plan.finish(then=lambda: done.append(True))
    assert done == [True] and shards.is_complete(str(tmp_path), {"a": 1})


def test_auto_shard_size():
    assert [shards.auto_shard_size(n) for n in (1, 13, 64, 65, 160, 7200, 10**6)] == [
        1,
        1,
        1,
        2,
        3,
        113,
        256,
    ]
