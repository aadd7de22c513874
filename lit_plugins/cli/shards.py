"""Resumable output: a run's configuration, its fixed shards, atomic writes.

A corpus run splits the examples into fixed shards of `shard_size` (shard k
holds examples [k * shard_size, (k + 1) * shard_size)); the shard is the unit
of work, of checkpointing and of distribution:

* rank r of N computes the shards k with k % N == r that are not written yet,
  so the ranks' parts are disjoint, cover every example once whatever the
  example count, and a rerun -- with any number of ranks -- computes only
  what an interrupted run left;
* a shard file is written to a temporary name and renamed (atomic on POSIX),
  so a killed process leaves a complete shard or none;
* ``run.json`` records the configuration (flags, models, a fingerprint of the
  examples, and under ``checkpoints`` the sha256 of each model's weights,
  config and tokenizer files -- `lit_plugins.util.digest`) and its hash,
  which every shard's name carries: an output directory that holds another
  configuration's run -- or the same flags run with a checkpoint since
  replaced at the same path -- is refused before any work, with what
  changed, instead of mixing two runs' (or two models') rows;
* ``COMPLETE`` is written once every shard is there: a rerun then does nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from lit_plugins.cli import progress
from lit_plugins.util import distributed
from lit_plugins.util.run_files import RUN_MANIFEST as MANIFEST

CHECKPOINTS_KEY = "checkpoints"  # config entry: {role: checkpoint_digest or None}
COMPLETE = "COMPLETE"
_FORMAT = "lit_plugins.corpus.run/1"
_SHARD_RE = re.compile(r"^shard-([0-9a-f]{12})-(\d{6})-of-(\d{6})\.")


# Auto shard size: at least this many shards (so up to ~16 ranks get
# balanced work; shards go round-robin) and at most this many examples each.
_MIN_SHARDS = 64
_MAX_SHARD_SIZE = 256


def auto_shard_size(num_items: int) -> int:
    """min(256, ceil(n / 64)): a function of the data only, so the same run
    resumed on another number of ranks has the same shards."""
    return max(1, min(_MAX_SHARD_SIZE, -(-int(num_items) // _MIN_SHARDS)))


def config_hash(config: dict) -> str:
    """12 hex digits of the sha256 of the canonical JSON of `config`."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_writable(out_dir: str) -> None:
    """Creates `out_dir` if needed; a ValueError when it cannot be written."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(
            f"Output directory {out_dir!r} is not writable ({e.strerror or e}); "
            "pass --output_dir=<a directory you can write>."
        ) from None


def check_output_dir(out_dir: str, comm: distributed.Comm = distributed.SINGLE) -> None:
    """`check_writable` on rank 0, its ValueError raised on every rank (no rank waits
    in a collective for one that failed)."""
    problem = None
    if comm.is_main:
        try:
            check_writable(out_dir)
        except ValueError as e:
            problem = str(e)
    problem = comm.broadcast_object(problem)
    if problem:
        raise ValueError(problem)


def read_manifest(out_dir: str) -> dict | None:
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def is_complete(out_dir: str, config: dict) -> bool:
    """True when `out_dir` holds a finished run of exactly `config`."""
    manifest = read_manifest(out_dir)
    return (
        manifest is not None
        and manifest.get("hash") == config_hash(config)
        and os.path.exists(os.path.join(out_dir, COMPLETE))
    )


def atomic_write(path: str, write: Callable[[str], Any]) -> None:
    """`write(tmp_path)`, then an atomic rename to `path` (no partial files)."""
    folder, name = os.path.split(path)
    # The temporary name keeps the extension: np.savez appends ".npz" otherwise.
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f".{name}.", suffix=".tmp" + os.path.splitext(name)[1]
    )
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, value: Any) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2, sort_keys=True, default=str)
            f.write("\n")

    atomic_write(path, write)


@dataclasses.dataclass
class ShardPlan:
    """The shards of one run in one output directory.

    Attributes:
      out_dir: where shards, ``run.json`` and ``COMPLETE`` go.
      config: the run's configuration (JSON-able); `hash` is its config_hash.
      num_items: examples in the corpus.
      shard_size: examples per shard (the last one may be shorter).
      suffix: the shard files' extension, e.g. ".parquet".
    """

    out_dir: str
    config: dict
    num_items: int
    shard_size: int
    suffix: str

    def __post_init__(self):
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}.")
        if self.num_items < 1:
            raise ValueError("The corpus has no examples.")
        self.hash = config_hash(self.config)

    @property
    def num_shards(self) -> int:
        return -(-self.num_items // self.shard_size)

    def bounds(self, k: int) -> tuple[int, int]:
        start = k * self.shard_size
        return start, min(start + self.shard_size, self.num_items)

    def path(self, k: int) -> str:
        name = f"shard-{self.hash}-{k:06d}-of-{self.num_shards:06d}{self.suffix}"
        return os.path.join(self.out_dir, name)

    def paths(self) -> list[str]:
        return [self.path(k) for k in range(self.num_shards)]

    def done(self, k: int) -> bool:
        return os.path.exists(self.path(k))

    def pending(self, comm: distributed.Comm = distributed.SINGLE) -> list[int]:
        """This rank's shards (k % world == rank) that are not written yet."""
        return [k for k in range(comm.rank, self.num_shards, comm.world_size) if not self.done(k)]

    def work(
        self, what: str, comm: distributed.Comm = distributed.SINGLE
    ) -> Iterator[tuple[int, int, int, Any]]:
        """(k, start, stop, progress bar) for each of this rank's pending
        shards; the bar counts this rank's examples (update it as they are done)."""
        pending = self.pending(comm)
        todo = sum(self.bounds(k)[1] - self.bounds(k)[0] for k in pending)
        with progress.bar(todo, what, comm) as bar:
            for k in pending:
                yield (k, *self.bounds(k), bar)

    def prepare(self, comm: distributed.Comm = distributed.SINGLE) -> None:
        """Checks the directory and claims it for this configuration (rank 0
        writes ``run.json``); a ValueError, on every rank, before any work when
        the directory holds another configuration's output."""
        problem = None
        if comm.is_main:
            try:
                self._claim()
            except ValueError as e:
                problem = str(e)
        problem = comm.broadcast_object(problem)
        if problem:
            raise ValueError(problem)

    def _claim(self) -> None:
        check_writable(self.out_dir)
        manifest = read_manifest(self.out_dir)
        if manifest is not None and manifest.get("hash") != self.hash:
            raise ValueError(
                f"{self.out_dir!r} holds the output of another run configuration "
                f"({_config_diff(manifest.get('config', {}), self.config)}); use another "
                "--output_dir to start a new run, or delete that run's files to replace it."
            )
        foreign = sorted(
            name
            for name in os.listdir(self.out_dir)
            if (m := _SHARD_RE.match(name)) and m.group(1) != self.hash
        )
        if foreign:
            raise ValueError(
                f"{self.out_dir!r} holds shards of another run configuration (e.g. "
                f"{foreign[0]}); use another --output_dir, or delete them."
            )
        if manifest is None:
            write_json(
                os.path.join(self.out_dir, MANIFEST),
                {
                    "format": _FORMAT,
                    "hash": self.hash,
                    "config": self.config,
                    "num_items": self.num_items,
                    "shard_size": self.shard_size,
                    "num_shards": self.num_shards,
                },
            )

    def finish(
        self,
        comm: distributed.Comm = distributed.SINGLE,
        then: Callable[[], Any] | None = None,
    ) -> bool:
        """After every rank's shards: when all shards exist, rank 0 runs `then`
        (e.g. merging them) and only after it marks the run complete, so a
        crash in between leaves a run that a rerun finishes. Returns whether
        it is complete (on every rank)."""
        comm.barrier()
        complete = all(self.done(k) for k in range(self.num_shards))
        failure = None
        if complete and comm.is_main:
            try:
                if then is not None:
                    then()
                write_json(os.path.join(self.out_dir, COMPLETE), {"hash": self.hash})
            except Exception as e:  # told to every rank, none left waiting
                failure = e
        problem = comm.broadcast_object(None if failure is None else str(failure))
        if failure is not None:
            raise failure
        if problem is not None:
            raise ValueError(f"Rank 0 failed to finish the run: {problem}")
        return complete


def _config_diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not keys:
        return "a different configuration"
    parts = []
    for k in keys:
        if k == CHECKPOINTS_KEY:
            parts.extend(_checkpoints_diff(old.get(k), new.get(k)))
        else:
            parts.append(f"{k}: {old.get(k)!r} there vs {new.get(k)!r} now")
    shown = ", ".join(parts[:3])
    return shown + (f", and {len(parts) - 3} more" if len(parts) > 3 else "")


def _checkpoints_diff(old, new) -> list[str]:
    """What changed in the checkpoints' digests, in words."""
    if not isinstance(old, dict):
        return ["that run has no checkpoint digests (it predates them)"]
    out = []
    new = new if isinstance(new, dict) else {}
    for role in sorted(set(old) | set(new)):
        a, b = old.get(role) or {}, new.get(role) or {}
        if a.get("digest") == b.get("digest"):
            continue
        fa, fb = a.get("files") or {}, b.get("files") or {}
        changed = sorted(n for n in set(fa) & set(fb) if fa[n] != fb[n])
        added, removed = sorted(set(fb) - set(fa)), sorted(set(fa) - set(fb))
        what = (
            "; ".join(
                f"{label} {', '.join(names)}"
                for label, names in (("changed:", changed), ("new:", added), ("gone:", removed))
                if names
            )
            or f"{a.get('digest')!r} there vs {b.get('digest')!r} now"
        )
        out.append(f"the {role} checkpoint's files differ from that run's ({what})")
    return out
