"""What identifies a checkpoint: the sha256 of its weights, config and tokenizer files.

A path says where a model is, not which model it is: a checkpoint replaced
at the same path (a new ``model.safetensors``, a retrained tokenizer) must
not pass for the old one.  :func:`checkpoint_digest` hashes the files that
loading a classifier reads -- weights (``*.safetensors``, ``*.bin``, ...,
and their shard indexes), ``config.json`` and the tokenizer's files -- of a
checkpoint directory (top level only; a sentence-transformers checkpoint's
``1_Pooling/`` or a README do not change the classifier), or of one file.

Hashing ~90 MB takes a fraction of a second; each file's sha256 is cached
in memory by (absolute path, size, mtime_ns), so a long-lived process (the
served app) hashes a file again only after it was rewritten.  A file
replaced in place with the same size and the same mtime (to the nanosecond)
is not noticed -- what ``make`` and ``rsync`` assume as well.

A name that is not on disk (a hub id) is identified by its name only.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import threading

__all__ = ["CHECKPOINT_PATTERNS", "checkpoint_digest", "checkpoint_files", "file_sha256"]

# File names (fnmatch, case-sensitive) that loading a model and its tokenizer reads.
CHECKPOINT_PATTERNS = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "*.bin",
    "*.bin.index.json",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.h5",
    "*.msgpack",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "*.tiktoken",
    "preprocessor_config.json",
)

_CHUNK = 1 << 20
_cache: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def file_sha256(path: str) -> str:
    """Hex sha256 of a file's bytes, cached by (absolute path, size, mtime_ns)."""
    path = os.path.abspath(path)
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    with _lock:
        _cache[key] = value
    return value


def checkpoint_files(path: str) -> dict[str, str]:
    """{file name: sha256} of a checkpoint directory's model and tokenizer
    files (or {base name: sha256} of a single file)."""
    if os.path.isfile(path):
        return {os.path.basename(path): file_sha256(path)}
    if not os.path.isdir(path):
        raise ValueError(f"{path!r} is neither a checkpoint directory nor a file.")
    names = sorted(
        name
        for name in os.listdir(path)
        if os.path.isfile(os.path.join(path, name))
        and any(fnmatch.fnmatchcase(name, p) for p in CHECKPOINT_PATTERNS)
    )
    if not names:
        raise ValueError(
            f"{path!r} holds no model or tokenizer files (looked for "
            f"{', '.join(CHECKPOINT_PATTERNS[:4])}, ...)."
        )
    return {name: file_sha256(os.path.join(path, name)) for name in names}


def checkpoint_digest(path: str) -> dict:
    """``{"digest": "sha256:…", "files": {name: sha256}}`` of a checkpoint
    on disk; ``{"digest": "name:<path>", "files": {}}`` for a name that is
    not a path (a hub id, identified by its name only).  The digest hashes
    the sorted (name, sha256) pairs, so renaming a file changes it too."""
    if not os.path.exists(path):
        return {"digest": f"name:{path}", "files": {}}
    files = checkpoint_files(path)
    text = "\n".join(f"{name}\0{sha}" for name, sha in sorted(files.items()))
    return {"digest": "sha256:" + hashlib.sha256(text.encode()).hexdigest(), "files": files}


def clear_cache() -> None:
    """Forgets every cached file digest (tests; a process that distrusts mtimes)."""
    with _lock:
        _cache.clear()
