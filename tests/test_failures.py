"""Failures a user hits outside the usual paths, reproduced for real: a full disk (a real size-limited tmpfs)
during a point write and during figure writes, a read-only results folder (a real read-only mount), a damaged
table, a missing results folder, an empty prompt, Ctrl-C (a real SIGINT to a real process), a coefficient that
overflows the residual stream. Each is one line (exit 2, or 130 for Ctrl-C) and loses nothing finished."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from steer_trace import cache
from tasks.cli import main
from cli_checks import one_error_line

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "results"


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A real size-limited file system at `folder` (root and mount permission needed, else the test skips)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root and mount permission): "
                    f"{(done.stderr or done.stdout).strip()[:120]}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


def snapshot(folder: Path) -> dict:
    """Every file under `folder` with its size and content hash (to prove a command wrote nothing there)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def fill(folder: Path) -> None:
    """Fill the file system under `folder` to the last byte."""
    with contextlib.suppress(OSError), open(folder / "ballast", "wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()


def small_results(root: Path) -> Path:
    """A copy of two committed behaviour tables (with their sidecars): enough for a few figures."""
    for experiment in ("behaviours_single", "behaviours_simultaneous"):
        src = COMMITTED / experiment
        (root / experiment).mkdir(parents=True, exist_ok=True)
        for path in sorted(src.glob("*.parquet")):
            for file in (path, path.with_suffix(".json")):
                (root / experiment / file.name).write_bytes(file.read_bytes())
    return root


def figures(results: Path | None, out: Path):
    argv = ["figures", "--out", str(out)] + (["--results", str(results)] if results else [])
    return CliRunner().invoke(main, argv)


# -- disk full during a point write (issue 14.1) -----------------------------------------------------------


@pytest.mark.slow
def test_disk_full_during_a_point_write_is_one_line_and_keeps_finished_points(smol, tmp_path, monkeypatch):
    monkeypatch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)
    argv = ["behaviours", "grid", "--profile", "test", "--behaviours", "myopic"]
    with tmpfs(tmp_path / "small", "240k") as root:
        full = CliRunner().invoke(main, [*argv, "--results", str(root)])
        one_error_line(full, "cannot write results to", "No space left on device")
        points = sorted(root.glob("behaviours_grid/*.points/*.parquet"))
        assert points, "no finished point before the disk filled up"
        kept = {p.name: cache._read_checked(p) for p in points}
        assert all(frame is not None and frame.height for frame in kept.values())  # whole and checksummed
        assert not list(root.rglob(".*.tmp"))  # no temporary file left behind
        remount(root, "size=8m")  # space again: the same command resumes from the finished points
        again = CliRunner().invoke(main, [*argv, "--results", str(root)])
        assert again.exit_code == 0, again.output
        computed = int(re.search(r"(\d+) points computed", again.stderr).group(1))
        table = cache.load_tables("behaviours_grid", root)  # one row per grid point
        assert computed == table.height - len(kept) > 0  # the kept points were not computed again


# -- figures only read (issue 14.4) -------------------------------------------------------------------------


def test_figures_on_a_damaged_table_warn_skip_and_delete_nothing(tmp_path):
    root = small_results(tmp_path / "results")
    damaged = sorted((root / "behaviours_single").glob("*.parquet"))[0]
    damaged.write_bytes(damaged.read_bytes()[:-100])  # a real truncated file
    before = snapshot(root)
    with pytest.warns(UserWarning, match="damaged or unreadable") as caught:
        result = figures(root, tmp_path / "figures")
    assert result.exit_code == 0, result.output
    assert not any("recomputing" in str(w.message) for w in caught)
    assert snapshot(root) == before  # nothing deleted, nothing written
    assert any(line.startswith("wrote ") for line in result.stdout.splitlines())  # the other table is drawn


def test_figures_on_a_read_only_results_folder_draw_everything(tmp_path):
    with tmpfs(tmp_path / "ro", "16m") as root:
        small_results(root)
        damaged = sorted((root / "behaviours_simultaneous").glob("*.parquet"))[0]
        damaged.write_bytes(damaged.read_bytes()[:-100])
        remount(root, "ro")
        with pytest.raises(OSError):
            (root / "probe").write_text("")  # really read-only, also for root
        before = snapshot(root)
        with pytest.warns(UserWarning, match="damaged or unreadable"):
            result = figures(root, tmp_path / "figures")
        assert result.exit_code == 0, result.output
        assert "single_steering" in result.stdout  # the readable table's figures are drawn
        assert snapshot(root) == before


def test_figures_on_a_full_output_disk_name_the_file_and_leave_no_empty_png(tmp_path):
    root = small_results(tmp_path / "results")
    with tmpfs(tmp_path / "out", "64k") as out:
        fill(out)
        result = figures(root, out)
        line = one_error_line(result, "cannot write figure", "No space left on device")
        assert re.search(r"cannot write figure \S+\.png", line)
        assert not [p for p in out.iterdir() if p.name != "ballast"]  # no 0-byte PNG, no temporary file


def test_figures_without_a_results_folder_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default ./results does not exist here
    monkeypatch.delenv("STEER_TRACE_RESULTS", raising=False)
    one_error_line(figures(None, tmp_path / "figures"), "results folder results does not exist", "--results")
    one_error_line(figures(tmp_path / "nowhere", tmp_path / "figures"), "nowhere does not exist")


# -- generate (issues 14.5 and 14.9) ------------------------------------------------------------------------


def test_empty_prompt_without_the_chat_template_is_one_line():
    one_error_line(CliRunner().invoke(main, ["generate", "", "--no-chat", "--max-new-tokens", "3"]),
                   "the prompt is empty")


def test_coefficient_that_overflows_the_residual_stream_warns(smol, tmp_path, monkeypatch):
    from steer_trace.vectors import SteeringVector

    monkeypatch.setattr("tasks.core_commands.open_model", lambda spec: smol)
    vector = tmp_path / "v.safetensors"
    SteeringVector.load(next((COMMITTED / "vectors" / "smollm2-135m").glob("myopic-*.safetensors"))).save(vector)
    base = ["generate", "Hello", "--vector", str(vector), "--layer", "14", "--max-new-tokens", "2"]
    with pytest.warns(UserWarning, match=r"steering with L14x1e\+30 overflows the residual stream"):
        huge = CliRunner().invoke(main, [*base, "--coef", "1e30"])
    assert huge.exit_code == 0, huge.output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fine = CliRunner().invoke(main, [*base, "--coef", "4"])
    assert fine.exit_code == 0 and not [w for w in caught if "overflows" in str(w.message)]


# -- Ctrl-C (issue 14.9) ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    root = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "STEER_TRACE_PROGRESS": "0"}
    argv = [sys.executable, "-m", "tasks.cli", "behaviours", "grid", "--profile", "test", "--behaviours", "myopic",
            "--results", str(root)]
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(root.glob("behaviours_grid/*.points/*.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before a point landed"
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("interrupted: finished work is kept"), stderr
    assert "Traceback" not in stderr and "Aborted!" not in stderr
    # (what survives a SIGINT mid-sweep is tested in test_resume; here: the exit code and the one line)


def test_load_tables_never_deletes(tmp_path):
    run = cache.Run("exp", {"a": 1}, tmp_path)
    run.finish([pl.DataFrame({"x": [1.0, 2.0]})])
    run.path.write_bytes(run.path.read_bytes()[:-5])
    before = snapshot(tmp_path)
    with pytest.warns(UserWarning, match="damaged or unreadable"):
        assert cache.load_tables("exp", tmp_path) is None
    assert snapshot(tmp_path) == before


def test_figures_skip_a_table_of_the_wrong_types_with_a_warning(tmp_path):
    """A table whose columns exist but hold the wrong type (p_matching and the paired shift as text) costs its
    figures, not the run."""
    root = tmp_path / "results"
    small_results(root)
    for path in (root / "behaviours_single").glob("*.parquet"):
        frame = pl.read_parquet(path)
        frame = frame.with_columns(pl.col(c).cast(pl.String) for c in ("p_matching", "shift") if c in frame.columns)
        cache._write_atomic(path, frame, {})  # a valid entry (checksummed) with foreign contents
    before = snapshot(root)
    with pytest.warns(UserWarning, match="single steering figures skipped: their tables have unexpected contents"):
        result = figures(root, tmp_path / "figures")
    assert result.exit_code == 0, result.output
    assert "simultaneous_steering" in result.stdout  # the other table's figure is drawn
    assert snapshot(root) == before
