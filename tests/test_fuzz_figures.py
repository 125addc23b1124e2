"""Hypothesis fuzzing of `steer-trace figures`' inputs: results folders built from the committed tables, then
damaged at random (columns dropped or of another type, rows cut, nulls / NaN / inf, truncated parquet, garbage
bytes with a matching checksum, a broken sidecar, folders and junk files where tables belong). Whatever the
folder holds, the command exits 0 or 2 (never a traceback), and never writes into or deletes from it."""
from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.cli import main

COMMITTED = Path(__file__).resolve().parents[1] / "results"
EXPERIMENTS = ("behaviours_single", "behaviours_simultaneous", "behaviours_grid", "behaviours_combined",
               "behaviours_interference", "behaviours_tax", "behaviours_components", "skills_sweep", "skills_extract")
ROW_CAP = 400  # keeps each example to a few seconds


def committed(experiment: str) -> pl.DataFrame:
    frames = [pl.read_parquet(p) for p in sorted((COMMITTED / experiment).glob("*.parquet"))]
    return pl.concat(frames, how="diagonal_relaxed").head(ROW_CAP)


TABLES = {name: committed(name) for name in EXPERIMENTS if (COMMITTED / name).is_dir()}


@st.composite
def damaged_table(draw, table: pl.DataFrame) -> pl.DataFrame:
    """The table with a few random damages."""
    for _ in range(draw(st.integers(0, 3))):
        column = draw(st.sampled_from(table.columns)) if table.width else None
        how = draw(st.sampled_from(["drop", "as_text", "as_int", "nulls", "nan", "inf", "rows", "constant"]))
        if column is None:
            break
        dtype = table.schema[column]
        if how == "drop" and table.width > 1:
            table = table.drop(column)
        elif how == "as_text":  # a list or struct column becomes its printed form (polars cannot cast it)
            text = [None if v is None else str(v) for v in table[column].to_list()] if dtype.is_nested() else None
            table = table.with_columns(pl.Series(column, text, dtype=pl.String) if text is not None
                                       else pl.col(column).cast(pl.String))
        elif how == "as_int" and dtype.is_numeric():
            table = table.with_columns(pl.col(column).cast(pl.Int64, strict=False))
        elif how == "nulls":
            table = table.with_columns(pl.lit(None, dtype=dtype).alias(column))
        elif how in ("nan", "inf") and dtype.is_float():
            table = table.with_columns(pl.lit(float(how), dtype=dtype).alias(column))
        elif how == "rows":
            table = table.head(draw(st.integers(0, 3)))
        elif how == "constant":
            table = table.with_columns(pl.col(column).first().alias(column))
    return table


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


@st.composite
def entry(draw, experiment: str) -> dict:
    """One file pair under <experiment>/: a (damaged) table with its sidecar, or something broken."""
    kind = draw(st.sampled_from(["table", "table", "table", "truncated", "garbage", "bad_sidecar", "folder",
                                 "no_sidecar"]))
    data = parquet_bytes(draw(damaged_table(TABLES[experiment])))
    if kind == "truncated":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif kind == "garbage":
        data = draw(st.binary(min_size=0, max_size=64))
    sidecar = json.dumps({"config": {}, "sha256": hashlib.sha256(data).hexdigest(), "rows": 0})
    if kind == "bad_sidecar":
        sidecar = draw(st.sampled_from(["", "{", "[]", "null", '{"sha256": 5}', "\x00\xff"]))
    return {"kind": kind, "data": data, "sidecar": None if kind == "no_sidecar" else sidecar}


@st.composite
def results_folder(draw) -> dict:
    chosen = draw(st.lists(st.sampled_from(sorted(TABLES)), min_size=0, max_size=4, unique=True))
    layout = {name: draw(st.lists(entry(name), min_size=1, max_size=2)) for name in chosen}
    junk = draw(st.lists(st.sampled_from(["notes.txt", "x.parquet.tmp", ".hidden", "README"]), max_size=2,
                         unique=True))
    return {"tables": layout, "junk": junk}


def write(root: Path, spec: dict) -> None:
    root.mkdir(parents=True)
    for experiment, entries in spec["tables"].items():
        folder = root / experiment
        folder.mkdir()
        for i, e in enumerate(entries):
            path = folder / f"{i:016x}.parquet"
            if e["kind"] == "folder":
                path.mkdir()
            else:
                path.write_bytes(e["data"])
            if e["sidecar"] is not None:
                path.with_suffix(".json").write_text(e["sidecar"], errors="surrogateescape")
    for name in spec["junk"]:
        (root / name).write_bytes(b"\x00not a table\xff")


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.is_dir(), p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*"))}


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=results_folder())
def test_figures_on_any_results_folder_exit_0_or_2_and_only_read(spec):
    with tempfile.TemporaryDirectory(prefix="fuzz-figures-") as tmp:
        root, out = Path(tmp) / "results", Path(tmp) / "figures"
        write(root, spec)
        before = snapshot(root)
        result = CliRunner().invoke(main, ["figures", "--results", str(root), "--out", str(out)])
        assert result.exit_code in (0, 2), (result.exit_code, result.output, repr(result.exception))
        assert "Traceback" not in result.output
        assert snapshot(root) == before
        if result.exit_code == 0:
            assert all(p.stat().st_size > 0 for p in out.glob("*.png"))


@pytest.mark.parametrize("column", ["q_id", "q_p_matching"])
def test_figures_with_a_per_question_list_column_as_text(column, tmp_path):
    """The per-question list columns of a behaviour table, turned into their printed text: exit 0 or 2."""
    table = TABLES["behaviours_single"]
    text = [None if v is None else str(v) for v in table[column].to_list()]
    data = parquet_bytes(table.with_columns(pl.Series(column, text, dtype=pl.String)))
    sidecar = json.dumps({"config": {}, "sha256": hashlib.sha256(data).hexdigest(), "rows": 0})
    spec = {"tables": {"behaviours_single": [{"kind": "table", "data": data, "sidecar": sidecar}]}, "junk": []}
    root = tmp_path / "results"
    write(root, spec)
    before = snapshot(root)
    result = CliRunner().invoke(main, ["figures", "--results", str(root), "--out", str(tmp_path / "figures")])
    assert result.exit_code in (0, 2), (result.exit_code, result.output, repr(result.exception))
    assert snapshot(root) == before
