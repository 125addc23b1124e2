"""The statistics a finished behaviour table stores, recomputed from the per-question scores it also stores.

What it is for: a row keeps its per-question p(matching) (`q_p_matching`, with `q_label`, the matching
letters) and, derived from them, p_bal and the paired shift against unsteered with its interval and p.
A derived column is only as current as the code that wrote it: when a statistic's definition changes (the
bootstrap p, the balance of a scoring mode) the stored value goes stale while the report recomputes it, and
a table then disagrees with its own interval. `restat(root)` recomputes every derived column of every
finished table in place (nothing else changes: not the scores, not the run key); `stale(table)` counts
the rows whose stored value differs from a recompute, which the committed-tables test asserts is none.

Gotchas: the bootstrap is seeded, so a recompute is exact (tolerance 1e-9 for float round-off). Rows without
per-question scores (tables cached before they existed) have nothing to recompute from and stay as stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from steer_trace.cache import finished_tables, results_root, rewrite_finished
from steer_trace.metrics import strata
from steer_trace.stats import balanced_mean
from .scoring import SHIFT_COLUMNS, refreshed_shifts

# the experiments whose rows carry per-question scores and statistics derived from them
EXPERIMENTS = ("behaviours_single", "behaviours_combined", "behaviours_interference", "behaviours_simultaneous",
               "behaviours_precondition")
BALANCED = {"p_matching_balanced": "q_p_matching", "matching_balanced": "q_matching"}
DERIVED = (*BALANCED, *SHIFT_COLUMNS)
TOLERANCE = 1e-9


def _balanced(row: dict, column: str) -> float:
    values = row.get(column)
    if values is None:
        return float("nan")
    return balanced_mean(values, strata(row.get("scoring"), row["q_label"]))


def restated(table: pl.DataFrame) -> pl.DataFrame:
    """`table` with every derived column recomputed from its per-question scores, rows in their order."""
    if "q_p_matching" not in table.columns or table.height == 0:
        return table
    indexed = table.with_row_index("_order")
    fresh = refreshed_shifts(indexed).sort("_order")
    for out, source in BALANCED.items():
        if out in fresh.columns and source in fresh.columns:
            values = [_balanced(r, source) for r in fresh.iter_rows(named=True)]
            fresh = fresh.with_columns(pl.Series(out, values, dtype=pl.Float64))
    fresh = fresh.drop("_order")
    return fresh.select(table.columns + [c for c in fresh.columns if c not in table.columns])


def stale(table: pl.DataFrame) -> int:
    """How many rows store a derived value that a recompute from their per-question scores changes."""
    fresh = restated(table)
    bad = np.zeros(table.height, dtype=bool)
    for column in DERIVED:
        if column not in table.columns:
            continue
        old = table[column].cast(pl.Float64).to_numpy()
        new = fresh[column].cast(pl.Float64).to_numpy()
        both_nan = np.isnan(old) & np.isnan(new)
        bad |= ~both_nan & ~(np.abs(old - new) <= TOLERANCE)
    has_scores = table["q_p_matching"].is_not_null().to_numpy() if "q_p_matching" in table.columns else bad
    return int((bad & has_scores).sum())


def tables(root=None) -> list[Path]:
    """Every finished behaviour table under `root` that stores per-question scores."""
    root = results_root(root)
    return [path for experiment in EXPERIMENTS for path in finished_tables(experiment, root)
            if "q_p_matching" in pl.read_parquet_schema(path)]


def restat(root=None) -> list[tuple[Path, int]]:
    """Recompute the derived columns of every finished behaviour table under `root`; (path, stale rows) of
    each table that changed."""
    changed = []
    for path in tables(root):
        table = pl.read_parquet(path)
        n = stale(table)
        if n:
            rewrite_finished(path, restated(table))
            changed.append((path, n))
    return changed
