"""The contract every study follows: config -> vectors -> points (cached) -> tables -> report -> figures.

A study is a package `studies/<name>/` whose `__init__.py` defines `STUDY = Study(...)`. Its hooks are
"module:attr" strings, resolved only when used, so listing the studies (`steer-trace --help`) imports no
study code and none of torch / polars / matplotlib.

Gotcha: `__init__.py` must stay light (it is imported to list the study): define STUDY there and import
nothing heavy.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Study:
    name: str          # CLI group `steer-trace <name> ...`; its result folders are named `<name>_*`
    summary: str       # one line for `steer-trace --help` (listing must not import the study's heavy code)
    cli: str           # "module:attr" of its click command/group, imported only when that command runs
    report: str | None = None   # "module:attr": fn(results_root: Path, out_dir: Path) -> list[Path]; tables, no model
    figures: str | None = None  # "module:attr": fn(results_root: Path, out_dir: Path) -> list[Path]; tables, no model
    pages: str | None = None    # "module:attr": fn(results_root: Path) -> dict[str, str]: named values for docs pages


def resolve(ref: str) -> Any:
    """The object a "module:attr" reference names (attr may be dotted), imported now."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{ref!r} is not a 'module:attr' reference")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def hook(study: Study, which: str) -> Callable[..., Any] | None:
    """The study's `report`, `figures` or `pages` function, or None when the study has none."""
    if which not in ("cli", "report", "figures", "pages"):
        raise ValueError(f"unknown hook {which!r}")
    ref = getattr(study, which)
    return None if ref is None else resolve(ref)


def run_outputs(study: Study, which: str, results_root: Path, out_dir: Path) -> list[Path]:
    """Call the study's `report` or `figures` hook; [] when it has none."""
    fn = hook(study, which)
    return [] if fn is None else list(fn(Path(results_root), Path(out_dir)))
