"""Named values for the gates docs page, from the committed gates tables (studies/pages.py renders them).

`page`: the whole page `steer-trace gates report` writes (docs/gates.md), so both writers agree; `block`: its
table and fit lines alone.
"""
from __future__ import annotations

from pathlib import Path

from .report import PAGE, block, summaries


def _interval(row: dict, name: str) -> str:
    return f"{row[name]:+.1f} [{row[name + '_lo']:+.1f}, {row[name + '_hi']:+.1f}]"


def pages(results_root: Path) -> dict[str, str]:
    """`page`, `block`, and per model, layer, coef and domain (`<model>.L<layer>.c<coef>.<domain>.<name>`): the
    side effect of steering (points), what the gate gives back, and the gated arm relative to unsteered (%)."""
    text = block(Path(results_root))
    out = {"block": text, "page": PAGE.format(block=text).rstrip("\n")}
    summary = summaries(Path(results_root))
    for row in ([] if summary is None else summary.iter_rows(named=True)):
        key = f"{row['model']}.L{row['layer']}.c{row['coef']:g}.{row['domain']}"
        out[f"{key}.side_effect"] = _interval(row, "side_effect")
        out[f"{key}.gate_gain"] = _interval(row, "gate_gain")
        out[f"{key}.rel_gated"] = f"{row['rel_gated']:.1f} [{row['rel_gated_lo']:.1f}, {row['rel_gated_hi']:.1f}]"
        out[f"{key}.opened"] = f"{row['gate_opened']} of {row['docs']}"
    return out

