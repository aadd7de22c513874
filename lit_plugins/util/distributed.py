"""torch.distributed for corpus-scale runs: who am I, my part of the data, sums.

Launchers (`torchrun`, HF `accelerate launch`) start one process per rank and
set ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
`Comm.from_env` joins that process group (gloo on CPU, NCCL when the process
has a GPU) and a plain ``python`` run is a world of one where every
collective is the identity.  The math modules take a `Comm` (never
``torch.distributed`` itself), so one code path serves 1 and N processes and
N ranks give the same numbers as one.

Data are split into *contiguous* blocks in rank order (`block`): rank 0's
rows, then rank 1's, ... is the one-process row order, which is what lets a
solver that sums over rows reproduce the one-process result.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

_TIMEOUT = datetime.timedelta(minutes=30)


def block(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of `rank`'s contiguous share of n items (sizes differ by <= 1)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}.")
    base, extra = divmod(int(n), world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class Comm:
    """This process's rank in a (possibly single-process) group, and its collectives.

    All collectives must be called by every rank in the same order (as with
    torch.distributed itself); with ``world_size == 1`` they return their
    input and need no process group.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, device: torch.device | None = None):
        if world_size > 1 and not dist.is_initialized():
            raise ValueError(
                "A Comm with world_size > 1 needs an initialised torch.distributed process "
                "group; use Comm.from_env() under torchrun or accelerate launch."
            )
        self.rank = int(rank)
        self.world_size = int(world_size)
        # gloo reduces CPU tensors, NCCL CUDA ones: collectives move data there.
        self.device = device or torch.device("cpu")
        self._owns_group = False

    @classmethod
    def from_env(cls, backend: str | None = None) -> Comm:
        """Joins the launcher's process group (``WORLD_SIZE`` > 1), else a world of one."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        use_cuda = torch.cuda.is_available() and backend in (None, "nccl")
        backend = backend or ("nccl" if use_cuda else "gloo")
        device = torch.device("cpu")
        if backend == "nccl":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(backend=backend, timeout=_TIMEOUT)
        comm = cls(dist.get_rank(), dist.get_world_size(), device)
        comm._owns_group = owns
        return comm

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def block(self, n: int) -> tuple[int, int]:
        """[start, stop) of this rank's contiguous share of n items."""
        return block(n, self.rank, self.world_size)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The elementwise sum over ranks (a new tensor, on the input's device and dtype)."""
        if not self.distributed:
            return tensor
        t = tensor.detach().to(self.device, copy=True)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.to(tensor.device)

    def sum_array(self, array: np.ndarray) -> np.ndarray:
        """`all_reduce_sum` for numpy arrays (float64 sums stay float64)."""
        if not self.distributed:
            return np.asarray(array)
        return self.all_reduce_sum(torch.from_numpy(np.ascontiguousarray(array))).numpy()

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (pickled: for small metadata only)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank `src`'s `obj` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self, wait_for_peers: bool = True) -> None:
        """Leaves the process group if `from_env` created it. After a normal run
        every rank first waits for the others (`wait_for_peers`): a rank that tore
        its group down while a peer was still closing was seen to abort at exit
        (gloo: "terminate called without an active exception"). After an error a
        rank leaves at once, so it never waits on a peer that will not come."""
        if self._owns_group and dist.is_initialized():
            if wait_for_peers:
                dist.barrier()
            dist.destroy_process_group()
            self._owns_group = False


SINGLE = Comm()  # the world of one: what every `comm=None` means
