"""steer_trace.checksums: a file's sha256 is read once per change of the file, and every change is seen."""
from __future__ import annotations

import hashlib
import json
import os

from steer_trace import checksums


def _counting(monkeypatch) -> list:
    reads = []
    real = checksums.sha256_file

    def counted(path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(checksums, "sha256_file", counted)
    return reads


def test_a_digest_is_read_once_then_remembered(tmp_path, monkeypatch):
    reads = _counting(monkeypatch)
    data = os.urandom(1 << 20)
    (tmp_path / "w.bin").write_bytes(data)
    state = tmp_path / "state" / "checksums.json"
    for _ in range(3):
        assert checksums.sha256_of(tmp_path / "w.bin", state) == hashlib.sha256(data).hexdigest()
    assert len(reads) == 1
    assert list(json.loads(state.read_text())) == [str((tmp_path / "w.bin").resolve())]


def test_bytes_rewritten_in_place_at_the_same_size_and_mtime_are_seen(tmp_path, monkeypatch):
    """The damage of issue 29.1: random bytes inside the file, size unchanged; mtime even set back (touch -r)."""
    reads = _counting(monkeypatch)
    path, state = tmp_path / "w.bin", tmp_path / "checksums.json"
    path.write_bytes(bytes(1 << 20))
    before = checksums.sha256_of(path, state)
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(os.urandom(4096))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    after = checksums.sha256_of(path, state)
    assert after != before and after == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(reads) == 2


def test_a_copy_is_hashed_again_and_an_unwritable_state_still_answers(tmp_path, monkeypatch):
    reads = _counting(monkeypatch)
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    state = blocked / "checksums.json"  # its folder is a file: nothing can be remembered
    digest = hashlib.sha256(b"weights").hexdigest()
    assert checksums.sha256_of(path, state) == checksums.sha256_of(path, state) == digest
    assert len(reads) == 2
    good = tmp_path / "checksums.json"
    checksums.sha256_of(path, good)
    copy = tmp_path / "copy.bin"
    copy.write_bytes(path.read_bytes())
    assert checksums.sha256_of(copy, good) == digest
    assert len(reads) == 4


def test_a_damaged_state_file_is_ignored(tmp_path):
    path, state = tmp_path / "w.bin", tmp_path / "checksums.json"
    path.write_bytes(b"abc")
    for junk in ("{not json", "[1, 2]", json.dumps({str(path.resolve()): {"signature": "x", "sha256": 3}})):
        state.write_text(junk)
        assert checksums.sha256_of(path, state) == hashlib.sha256(b"abc").hexdigest()
