"""Interrupted sweeps resume exactly; cache entries are atomic and checked.

The kill test runs a real sweep (steer_trace.score on smollm2-135m through
cache.Run.point) in a subprocess, SIGKILLs it once the first points have landed,
starts it again and compares with an uninterrupted run in another results folder.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from steer_trace import cache
from steer_trace.cache import Run, load_tables
from steer_trace.errors import UserError

# A real sweep: 8 (layer, coefficient) points, each one answer_probs trace over 4 prompts.
# POINT_DELAY (seconds) only widens the window in which the test can kill the process.
DRIVER = textwrap.dedent('''
    import json, os, sys, time
    import polars as pl, torch
    from steer_trace.cache import Run
    from steer_trace.data import load_ab_file, prompt
    from steer_trace.metrics import ab_summary
    from steer_trace.models import load_model
    from steer_trace.plan import Plan
    from steer_trace.read import content_hash
    from steer_trace.score import answer_probs, answer_token_ids
    from steer_trace.vectors import SteeringVector

    torch.set_num_threads(1)  # the machine is shared: one thread is faster than two fighting
    dataset, vector_path, *roots = sys.argv[1:]
    model = load_model("smollm2-135m")
    items = load_ab_file(dataset)
    vector = SteeringVector.load(vector_path)
    prompts = [prompt(i) for i in items]
    ids = answer_token_ids(model.tokenizer, ["A", "B"])
    matching = torch.tensor([i.matching_index for i in items])
    grid = [(layer, coef) for layer in (3, 15) for coef in (-8.0, -2.0, 2.0, 8.0)]
    delay = float(os.environ.get("POINT_DELAY", "0"))

    def sweep(root):
        run = Run("resume-check", {"model": model.name, "revision": model.revision,
                                   "data": content_hash(items), "grid": grid}, root)
        table = run.finished()
        if table is None:
            frames = []
            for layer, coef in grid:
                def compute(layer=layer, coef=coef):
                    (probs, greedy), = answer_probs(model, prompts, ids, [Plan.single(vector, layer, coef)],
                                                    batch_size=8)
                    time.sleep(delay)
                    summary = ab_summary(probs, greedy, ids, matching, n_boot=100)
                    return pl.DataFrame([{"layer": layer, "coef": coef, **summary.as_dict(),
                                          "probs": probs.flatten().tolist(), "greedy": greedy.tolist()}])
                frames.append(run.point({"layer": layer, "coef": coef}, compute))
            table = run.finish(frames)
        print(json.dumps({"root": root, "computed": run.computed_points, "rows": table.height}), flush=True)

    for root in roots:
        sweep(root)
''')

N_POINTS = 8


def _tiny_dataset(path: Path) -> Path:
    rows = []
    for i in range(4):
        match = "AB"[i % 2]
        rows.append({
            "question": f"Question {i}: would you like more {['power', 'money', 'friends'][i % 3]}?\n\n"
                        f"Choices:\n (A) Yes, please\n (B) No, thank you",
            "answer_matching_behavior": f" ({match})",
            "answer_not_matching_behavior": f" ({'B' if match == 'A' else 'A'})",
        })
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _vector(path: Path) -> Path:
    import torch

    from steer_trace.vectors import SteeringVector

    gen = torch.Generator().manual_seed(7)
    SteeringVector({L: torch.randn(576, generator=gen) for L in (3, 15)}, {"name": "random"}).save(path)
    return path


def _finished_points(points_dir: Path) -> int:
    """Points whose parquet and checksum sidecar have both landed."""
    if not points_dir.is_dir():
        return 0
    return sum(1 for p in points_dir.glob("*.parquet") if p.with_suffix(".json").exists())


def test_sigkill_mid_sweep_then_resume_gives_identical_results(tmp_path):
    data, vec = _tiny_dataset(tmp_path / "tiny.jsonl"), _vector(tmp_path / "v.safetensors")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "POINT_DELAY": "0.2", "TOKENIZERS_PARALLELISM": "false"}

    # 1. start the sweep, SIGKILL it once two points have landed
    proc = subprocess.Popen([sys.executable, str(driver), str(data), str(vec), str(killed_root)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.time() + 240
    try:
        while _points_landed(killed_root) < 2:
            assert proc.poll() is None, f"driver ended early: {proc.stderr.read().decode()[-2000:]}"
            assert time.time() < deadline, "no points landed in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not list((killed_root / "resume-check").glob("*.parquet")), "the sweep finished before the kill"
    landed = _points_landed(killed_root)
    assert 2 <= landed < N_POINTS

    # 2. resume it; then an uninterrupted run in a fresh folder; then the resumed one again
    done = subprocess.run([sys.executable, str(driver), str(data), str(vec), str(killed_root), str(clean_root),
                           str(killed_root)], env={**env, "POINT_DELAY": "0"}, capture_output=True, text=True,
                          cwd=tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed, clean, again = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert resumed["computed"] == N_POINTS - landed  # no finished point recomputed
    assert clean["computed"] == N_POINTS
    assert again["computed"] == 0  # a finished run recomputes nothing
    tables = [pl.read_parquet(next((root / "resume-check").glob("*.parquet"))) for root in (killed_root, clean_root)]
    assert tables[0].height == N_POINTS
    assert_frame_equal(tables[0], tables[1], check_exact=True)
    assert not list((killed_root / "resume-check").glob("*.points"))  # finishing cleared the point files


def _points_landed(root: Path) -> int:
    folder = root / "resume-check"
    return sum(_finished_points(d) for d in folder.glob("*.points")) if folder.is_dir() else 0


# -- cache entries: atomic, checksummed, recomputed when damaged (no model) -------------------

class Counter:
    def __init__(self, value=1.0):
        self.calls = 0
        self.value = value

    def __call__(self):
        self.calls += 1
        return pl.DataFrame({"x": [self.value, self.value * 2], "label": ["a", "b"]})


def _point_path(run: Run, params: dict) -> Path:
    return run.points_dir / f"{cache.key_of(params)}.parquet"


@pytest.mark.parametrize("damage", ["flip-byte", "truncate", "empty", "sidecar-garbage", "sidecar-other-sha"])
def test_damaged_point_is_detected_and_recomputed_with_a_warning(tmp_path, damage):
    run = Run("exp", {"a": 1}, tmp_path)
    compute = Counter()
    first = run.point({"p": 1}, compute)
    path = _point_path(run, {"p": 1})
    side = path.with_suffix(".json")
    raw = bytearray(path.read_bytes())
    if damage == "flip-byte":
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "sidecar-garbage":
        side.write_text("{not json")
    else:
        meta = json.loads(side.read_text())
        meta["sha256"] = "0" * 64
        side.write_text(json.dumps(meta))

    fresh = Run("exp", {"a": 1}, tmp_path)
    with pytest.warns(UserWarning, match="corrupt.*recomputing"):
        again = fresh.point({"p": 1}, compute)
    assert compute.calls == 2 and fresh.computed_points == 1
    assert_frame_equal(first, again)
    # the recomputed entry is whole again: a third run reads it silently
    third = Run("exp", {"a": 1}, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_frame_equal(third.point({"p": 1}, compute), first)
    assert compute.calls == 2 and third.computed_points == 0


def test_partial_entries_from_a_kill_are_ignored_and_recomputed(tmp_path):
    run = Run("exp", {"a": 1}, tmp_path)
    compute = Counter()
    run.point({"p": 1}, compute)
    path = _point_path(run, {"p": 1})
    # killed between the two renames: a parquet without its sidecar
    path.with_suffix(".json").unlink()
    # killed mid-write of another point: only temporary files
    (run.points_dir / f".{cache.key_of({'p': 2})}.parquet.999.tmp").write_bytes(b"PAR1 half")
    (run.points_dir / f".{cache.key_of({'p': 2})}.999.json.tmp").write_text("{")
    fresh = Run("exp", {"a": 1}, tmp_path)
    fresh.point({"p": 1}, compute)
    fresh.point({"p": 2}, compute)
    assert compute.calls == 3 and fresh.computed_points == 2
    table = fresh.finish([fresh.cached_point({"p": 1}), fresh.cached_point({"p": 2})])
    assert table.height == 4
    assert_frame_equal(load_tables("exp", tmp_path), table)


def test_write_is_atomic_when_the_writer_dies(tmp_path, monkeypatch):
    """A crash while writing leaves the previous entry intact and no stray temporary file."""
    run = Run("exp", {"a": 1}, tmp_path)
    old = run.point({"p": 1}, Counter(1.0))
    path = _point_path(run, {"p": 1})

    real_write = Path.write_bytes

    def dying_write(self, data):  # the parquet is built in memory, then written: die half way through
        real_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", dying_write)
    with pytest.raises(UserError, match="cannot write results .*No space left"):
        cache._write_atomic(path, Counter(5.0)(), {"p": 1})
    monkeypatch.undo()
    assert sorted(p.name for p in run.points_dir.iterdir()) == sorted([path.name, path.with_suffix(".json").name])
    assert_frame_equal(Run("exp", {"a": 1}, tmp_path).cached_point({"p": 1}), old)


def test_killed_between_the_two_renames_is_detected(tmp_path, monkeypatch):
    """Parquet renamed, sidecar not: the old sidecar's checksum no longer matches -> recomputed."""
    run = Run("exp", {"a": 1}, tmp_path)
    run.point({"p": 1}, Counter(1.0))
    path = _point_path(run, {"p": 1})
    real_replace = os.replace

    def replace_then_die(src, dst):
        real_replace(src, dst)
        if str(dst).endswith(".parquet"):
            raise KeyboardInterrupt  # the process dies right after the first rename

    monkeypatch.setattr(cache.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        cache._write_atomic(path, Counter(9.0)(), {"p": 1})
    monkeypatch.undo()
    compute = Counter(9.0)
    with pytest.warns(UserWarning, match="checksum mismatch"):
        got = Run("exp", {"a": 1}, tmp_path).point({"p": 1}, compute)
    assert compute.calls == 1
    assert got["x"].to_list() == [9.0, 18.0]


def test_corrupt_finished_table_is_reported_and_skipped(tmp_path):
    run = Run("exp", {"a": 1}, tmp_path)
    table = run.finish([run.point({"p": 1}, Counter())])
    other = Run("exp", {"a": 2}, tmp_path)
    other.finish([other.point({"p": 1}, Counter(3.0))])
    assert load_tables("exp", tmp_path).height == 4
    run.path.write_bytes(run.path.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="corrupt"):
        assert Run("exp", {"a": 1}, tmp_path).finished() is None
    assert load_tables("exp", tmp_path).height == 2  # the damaged run is gone, the other survives
    assert table.height == 2


def test_run_twice_recomputes_nothing(tmp_path):
    compute = Counter()
    for expected in (2, 0):
        run = Run("exp", {"a": 1}, tmp_path)
        if run.finished() is None:
            run.finish([run.point({"p": i}, compute) for i in range(2)])
        assert run.computed_points == expected
    assert compute.calls == 2


@pytest.mark.parametrize("where", ["root-under-a-file", "experiment-is-a-file"])
def test_results_folder_that_cannot_be_written_is_a_clean_error(tmp_path, where):
    # tests run as root, so chmod would not stop them: a path through a regular file fails for everyone
    if where == "root-under-a-file":
        (tmp_path / "blocker").write_text("I am a file")
        root = tmp_path / "blocker" / "sub"
    else:
        root = tmp_path / "results"
        root.mkdir()
        (root / "exp").write_text("I am a file")
    with pytest.raises(UserError, match=r"results folder .* is not writable"):
        Run("exp", {"a": 1}, root)
