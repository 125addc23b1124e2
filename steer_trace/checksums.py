"""sha256 of large files, read once per change of the file.

What it is for: checking a model's weights against a recorded checksum on every load without reading
gigabytes each time (a converted embedded-model cache, a local model folder).

Pattern: `sha256_of(path, state)` returns the file's sha256 and remembers it in the JSON file `state`
under the file's absolute path, with the file's stat signature (size, mtime_ns, ctime_ns, inode, device).
While the signature is unchanged the remembered digest is returned without reading the file; any change
reads and hashes it again.

Gotchas: ctime cannot be set back from user space (``touch -r`` restores mtime only), so bytes rewritten in
place, even at the same size and mtime, are always seen. A copy, or a file on another file system, has a new
inode and is hashed once more. An unwritable state file only means hashing on every call. Two processes
writing the state at once may lose each other's entries (the next call hashes again), never corrupt it
(atomic replace).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes (read in 16 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def signature(path: Path) -> list[int]:
    """What changes whenever the file's bytes can have changed: size, mtime, ctime, inode, device."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _read_state(state: Path) -> dict:
    try:
        data = json.loads(state.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(state: Path, data: dict) -> None:
    tmp = state.with_name(f".{state.name}.{os.getpid()}.tmp")
    try:
        state.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
        os.replace(tmp, state)
    except OSError:
        pass  # a read-only cache: hash again next time
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def sha256_of(path: Path, state: Path) -> str:
    """The sha256 of `path`, hashed only when its stat signature differs from the one remembered in `state`."""
    key = str(Path(path).resolve())
    before = signature(path)
    known = _read_state(state).get(key)
    if isinstance(known, dict) and known.get("signature") == before and isinstance(known.get("sha256"), str):
        return known["sha256"]
    digest = sha256_file(path)
    if signature(path) != before:  # written while we read: do not remember a digest of mixed bytes
        return digest
    data = _read_state(state)  # again: another process may have added entries meanwhile
    data[key] = {"signature": before, "sha256": digest}
    _write_state(state, data)
    return digest
