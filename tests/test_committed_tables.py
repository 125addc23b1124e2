"""Every statistic a committed behaviour table stores agrees with its own per-question scores and with its
interval: a stored shift_p, p_bal or interval is what a recompute by today's definitions gives
(behaviour_restat.py; `steer-trace behaviours restat` rewrites them when a definition changes), and
p < 0.05 exactly when the 95% interval excludes 0, up to the bootstrap's noise.

The noise bound: p and the interval come from the same 2,000 seeded resamples, p as the share of
resamples at least |shift| from the shift, the interval as their 2.5% / 97.5% quantiles. For a symmetric
resampling distribution the two agree exactly; skew and the finite count move p by about its Monte Carlo
error, sqrt(0.05 x 0.95 / 2000) = 0.005, near the boundary. A row may disagree only with p within 0.02
(four of those errors) of 0.05; a stale p (0.101 beside an interval that excludes 0) is far outside."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from steer_trace.cache import Run, finished_tables
from studies.behaviours.restat import EXPERIMENTS, restat, restated, stale

REPO = Path(__file__).resolve().parents[1]
NOISE = 0.02


def _committed() -> list[Path]:
    return [p for e in EXPERIMENTS for p in finished_tables(e, REPO / "results")
            if "q_p_matching" in pl.read_parquet_schema(p)]


def disagreeing(table: pl.DataFrame, noise: float = NOISE) -> pl.DataFrame:
    """Rows whose stored p and interval disagree on p < 0.05 beyond `noise`."""
    rows = table.filter(pl.col("shift_p").is_not_nan() & pl.col("shift_lo").is_not_nan())
    excludes = (pl.col("shift_lo") > 0) | (pl.col("shift_hi") < 0)
    return rows.filter((excludes != (pl.col("shift_p") < 0.05)) & ((pl.col("shift_p") - 0.05).abs() > noise))


def test_there_are_committed_tables_to_check():
    assert len(_committed()) >= 15


@pytest.mark.parametrize("path", _committed(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_committed_stored_statistics_are_current(path):
    table = pl.read_parquet(path)
    assert stale(table) == 0, f"{path}: stored statistics differ from a recompute: run `behaviours restat`"
    bad = disagreeing(table)
    assert bad.height == 0, bad.select("behaviour", "vector", "layer", "direction", "shift_lo", "shift_hi", "shift_p")


def test_a_stale_p_is_caught_and_restat_rewrites_it_keeping_the_run(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    base = rng.uniform(0.2, 0.6, n)
    rows = [{"behaviour": "myopic", "split": "test", "vector": v, "direction": d, "coef": m, "layer": 14,
             "scoring": "letter", "q_id": list(range(n)), "q_label": ["A", "B"] * (n // 2),
             "q_p_matching": [float(x) for x in base + s + rng.normal(0, 0.05, n)]}
            for v, d, m, s in (("none", "default", 0.0, 0.0), ("myopic", "add", 1.0, 0.03))]
    rows[0]["q_p_matching"] = [float(x) for x in base]
    run = Run("behaviours_single", {"synthetic": 1}, tmp_path)
    fresh = restated(pl.DataFrame(rows))
    assert stale(fresh) == 0 and disagreeing(fresh).height == 0
    old = fresh.with_columns(pl.when(pl.col("direction") == "add").then(0.101).otherwise(pl.col("shift_p"))
                             .alias("shift_p"))  # what an older p-value stored
    assert fresh.filter(pl.col("direction") == "add")["shift_lo"][0] > 0  # the interval excludes 0
    assert stale(old) == 1 and disagreeing(old).height == 1
    run.finish([old])
    assert restat(tmp_path) == [(run.path, 1)]
    after = run.finished()
    assert after is not None and stale(after) == 0 and after.columns == old.columns
    assert after.drop("shift_p").equals(old.drop("shift_p"))
    assert restat(tmp_path) == []


def test_restat_command_rewrites_and_refuses_an_empty_folder(tmp_path):
    from click.testing import CliRunner

    from tasks.cli import main

    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.6, 40)
    rows = [{"behaviour": "myopic", "split": "test", "vector": v, "direction": d, "coef": c, "layer": 9,
             "scoring": "content", "q_id": list(range(40)), "q_label": ["A", "B"] * 20,
             "q_p_matching": [float(x) for x in base + s]} for v, d, c, s in (("none", "default", 0.0, 0.0),
                                                                              ("myopic", "add", 1.0, 0.1))]
    run = Run("behaviours_single", {"synthetic": 2}, tmp_path)
    run.finish([restated(pl.DataFrame(rows)).with_columns(pl.lit(0.9).alias("shift_p"))])
    result = CliRunner().invoke(main, ["behaviours", "restat", "--results", str(tmp_path)])
    assert result.exit_code == 0 and "restated" in result.output and "2 rows" in result.output
    assert stale(run.finished()) == 0
    again = CliRunner().invoke(main, ["behaviours", "restat", "--results", str(tmp_path)])
    assert again.exit_code == 0 and "every stored statistic is current" in again.output
    empty = CliRunner().invoke(main, ["behaviours", "restat", "--results", str(tmp_path / "none")])
    assert empty.exit_code == 2 and empty.output.startswith("error: no finished behaviour tables")
