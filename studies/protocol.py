"""The contract every study package follows: `studies/<pkg>/__init__.py` defines `STUDY = Study(...)`.

A study is config -> vectors -> points (cached) -> tables -> report -> figures. The strings name
"module:attr" targets, imported only when used (listing the studies imports none of their heavy code).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Study:
    name: str  # CLI group `steer-trace <name> ...`; its result folders are named `<name>_*`
    summary: str  # one line for `steer-trace --help` (listing must not import the study's heavy code)
    cli: str  # "module:attr" of its click command/group, imported only when that command runs
    report: str | None = None  # "module:attr": fn(results_root: Path, out_dir: Path) -> list[Path]; tables only
    figures: str | None = None  # "module:attr": fn(results_root: Path, out_dir: Path) -> list[Path]; tables only
    pages: str | None = None  # "module:attr": fn(results_root: Path) -> dict[str, str]: named values for docs pages
