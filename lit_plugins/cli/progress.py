"""Progress bars for corpus runs: examples done, throughput and ETA, one line per rank."""

from __future__ import annotations

import sys

import tqdm

from lit_plugins.util import distributed

# Refresh every second or so: a long run's log stays readable and a short
# test run still shows its rate.
_MIN_INTERVAL_S = 1.0


def bar(total: int, what: str, comm: distributed.Comm = distributed.SINGLE) -> tqdm.tqdm:
    """A tqdm bar on stderr counting examples ('ex', rate in ex/s, ETA)."""
    desc = what if not comm.distributed else f"{what} [rank {comm.rank}/{comm.world_size}]"
    return tqdm.tqdm(
        total=total,
        desc=desc,
        unit="ex",
        file=sys.stderr,
        mininterval=_MIN_INTERVAL_S,
        position=comm.rank if comm.distributed else None,
        dynamic_ncols=True,
    )
