"""Named values for the gates docs page, from the committed gates tables (studies/pages.py renders them).

`page`: the whole page `steer-trace gates report` writes (docs/gates.md), so both writers agree; `block`: its
table and fit lines alone.
"""
from __future__ import annotations

from pathlib import Path

from .report import PAGE, block


def pages(results_root: Path) -> dict[str, str]:
    text = block(Path(results_root))
    return {"block": text, "page": PAGE.format(block=text).rstrip("\n")}
