"""One exception type for every mistake a user can make, and out-of-memory handling.

The CLI turns a `UserError` into one line on stderr and exit code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import gc
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


class UserError(Exception):
    """Bad input or an unreachable service: say what is wrong in one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def file_in_the_way(folder) -> Path | None:
    """The first of `folder` and its parents that exists as something other than a folder (what makes
    mkdir say "File exists" or "Not a directory"), or None."""
    folder = Path(folder)
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's OutOfMemoryError, Python's MemoryError and allocator failures."""
    if isinstance(error, MemoryError):
        return True
    torch = sys.modules.get("torch")  # not imported: the error is not torch's (and `--help` stays light)
    if torch is not None and isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error).lower() for m in _OOM_MARKERS)


def _release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")  # not imported: nothing of torch's to release
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def halve_on_oom(run: Callable[[Sequence], T], batch: Sequence, join: Callable[[list[T]], T],
                 option: str = "--batch-size") -> T:
    """`run(batch)`; if that runs out of memory, run each half (recursively) and `join` the parts.

    Results come back in the original order. One item that still does not fit is a
    UserError that names `option`.
    """
    try:
        return run(batch)
    except Exception as error:  # noqa: BLE001 - re-raised unless it is out-of-memory
        if not is_out_of_memory(error):
            raise
        # leave the except block before retrying, so the failed attempt's tensors can be freed
    _release_memory()
    if len(batch) <= 1:
        raise UserError(
            f"out of memory on a single item even at {option} 1: use shorter inputs (--max-tokens) "
            "or a smaller model"
        )
    half = len(batch) // 2
    warnings.warn(f"out of memory at batch size {len(batch)}; retrying in halves (set {option} {half} or lower)",
                  stacklevel=2)
    return join([halve_on_oom(run, batch[:half], join, option), halve_on_oom(run, batch[half:], join, option)])
