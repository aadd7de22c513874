"""util.digest: a checkpoint's identity is the sha256 of its model and tokenizer files."""

import hashlib
import os

import pytest

from lit_plugins.util import digest


def _checkpoint(folder, weights=b"w" * 1000):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "vocab.txt").write_text("[PAD]\nhello\n")
    (folder / "README.md").write_text("not part of the model")
    return folder


def test_files_are_hashed_with_sha256(tmp_path):
    ckpt = _checkpoint(tmp_path / "c")
    files = digest.checkpoint_digest(str(ckpt))["files"]
    assert sorted(files) == ["config.json", "model.safetensors", "vocab.txt"]  # no README
    assert files["model.safetensors"] == hashlib.sha256(b"w" * 1000).hexdigest()
    assert files["vocab.txt"] == hashlib.sha256(b"[PAD]\nhello\n").hexdigest()


def test_replaced_weights_at_the_same_path_change_the_digest(tmp_path):
    ckpt = _checkpoint(tmp_path / "c")
    before = digest.checkpoint_digest(str(ckpt))
    st = os.stat(ckpt / "model.safetensors")
    (ckpt / "model.safetensors").write_bytes(b"v" * 1000)  # same size
    os.utime(ckpt / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    after = digest.checkpoint_digest(str(ckpt))
    assert after["digest"] != before["digest"]
    assert after["files"]["config.json"] == before["files"]["config.json"]
    # The same bytes elsewhere: the same identity (a moved cache is the same model).
    assert digest.checkpoint_digest(str(_checkpoint(tmp_path / "d")))["digest"] == before["digest"]


def test_the_cache_is_keyed_by_path_size_and_mtime(tmp_path):
    ckpt = _checkpoint(tmp_path / "c")
    path = ckpt / "model.safetensors"
    first = digest.file_sha256(str(path))
    st = os.stat(path)
    path.write_bytes(b"v" * 1000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    assert digest.file_sha256(str(path)) == first  # cached: the file was not read again
    digest.clear_cache()
    assert digest.file_sha256(str(path)) == hashlib.sha256(b"v" * 1000).hexdigest()


def test_names_and_bad_paths(tmp_path):
    assert digest.checkpoint_digest("org/some-hub-model") == {
        "digest": "name:org/some-hub-model",
        "files": {},
    }
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no model or tokenizer files"):
        digest.checkpoint_digest(str(tmp_path / "empty"))
