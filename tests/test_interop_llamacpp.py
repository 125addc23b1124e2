"""llama.cpp steers with our exported control vectors as we do (studies/interop/llamacpp.py).

The comparison's arithmetic and the docs values are tested always. The check against llama.cpp itself runs
only where its binaries are: set STEER_TRACE_LLAMA_BIN to a folder holding llama-server, llama-completion and
llama-quantize (`sh runs/interop_llamacpp.sh build` makes one in /tmp/llama-build/bin). CI does not build
llama.cpp (about 14 CPU-minutes), so there these are skipped.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import polars as pl
import pytest
import torch

from steer_trace.interop import write_gguf
from steer_trace.vectors import SteeringVector
from studies.interop import llamacpp
from studies.interop.pages import pages
from tasks.vector_io import llama_cpp_use

LLAMA_BIN = os.environ.get("STEER_TRACE_LLAMA_BIN")
needs_llama = pytest.mark.skipif(not LLAMA_BIN, reason="set STEER_TRACE_LLAMA_BIN to llama.cpp's bin folder "
                                                       "(sh runs/interop_llamacpp.sh build)")
REPO = Path(__file__).resolve().parents[1]
MYOPIC = REPO / "results/vectors/smollm2-135m/myopic-753d2748f7.safetensors"


def test_compare_measures_the_difference_and_the_slope_of_the_change():
    base = [torch.tensor([-1.0, -2.0, -3.0])]
    ours = [torch.tensor([-0.5, -2.5, -3.0])]  # our steering moves token 0 by +0.5, token 1 by -0.5
    same = compare_one({0: -0.5, 1: -2.5}, ours, base)
    assert same["max_abs"] == same["mean_abs"] == 0 and same["slope"] == pytest.approx(1.0)
    double = compare_one({0: 0.0, 1: -3.0, 2: -3.1}, ours, base)  # twice our change, token 2 off by 0.1
    assert double["max_abs"] == pytest.approx(0.5) and double["mean_abs"] == pytest.approx(1.1 / 3)
    assert double["slope"] == pytest.approx(2.0) and double["n"] == 3
    assert double["our_change"] == pytest.approx(1 / 3)
    offset = compare_one({0: -0.4, 1: -2.4}, ours, base)  # every log-p 0.1 higher: a normaliser's error
    assert offset["max_abs"] == pytest.approx(0.1) and offset["max_centred"] == pytest.approx(0, abs=1e-9)
    flipped = compare_one({0: -1.5, 1: -1.5}, ours, base)
    assert flipped["slope"] == pytest.approx(-1.0)


def compare_one(got: dict, ours, base) -> dict:
    return llamacpp.compare([got], ours, base)


def test_shifted_moves_each_direction_one_layer_and_drops_what_leaves_the_model():
    v = SteeringVector({L: torch.full((4,), float(L)) for L in (1, 2, 29)}, {"name": "t"})
    down = llamacpp.shifted(v, [1, 2, 29], -1, 30)
    assert [L for _, L in down] == [0, 1, 28]
    assert [float(one[L][0]) for one, L in down] == [1.0, 2.0, 29.0]  # layer L's direction, one layer lower
    up = llamacpp.shifted(v, [1, 2, 29], +1, 30)
    assert [L for _, L in up] == [2, 3]  # 29 + 1 is past the last layer
    assert [L for _, L in llamacpp.shifted(v, [2], 0, 30)] == [2]


def test_server_flags_are_the_syntax_llama_cpp_takes(tmp_path):
    f = tmp_path / "v.gguf"
    assert llamacpp.Setting("f32", f, 8.0).args() == ["--control-vector-scaled", f"{f}:8"]
    assert llamacpp.Setting("f32", f, -0.5).args() == ["--control-vector-scaled", f"{f}:-0.5"]
    assert llamacpp.Setting("f32", f, None).args() == ["--control-vector", str(f)]
    assert llamacpp.Setting("quantised").args() == []


def _row(weights, ours, max_abs, mean_abs, slope=1.0, change=0.5, flag="scaled", coef=8.0):
    return {"model": "smollm2-135m", "weights": weights, "file": "L14.gguf", "flag": flag, "coef": coef,
            "ours": ours, "our_layers": "14", "max_abs": max_abs, "mean_abs": mean_abs, "rms": mean_abs,
            "max_centred": mean_abs,
            "slope": slope, "our_change": change, "n": 160, "server_s": 3.0}


def test_pages_take_the_floor_the_worst_match_and_the_best_control_from_the_table(tmp_path):
    rows = [_row("f32", "none", 2e-5, 1e-5, float("nan"), 0.0, "none", 0.0), _row("f32", "same", 3e-5, 1e-5),
            _row("f32", "same", 7e-5, 2e-5, 0.999), _row("f32", "shift -1", 0.4, 0.2),
            _row("f32", "shift +1", 0.3, 0.1, 0.8), _row("quantised", "none", 0.2, 0.05, float("nan"), 0.0, "none"),
            _row("quantised", "same", 0.25, 0.06)]
    folder = tmp_path / "interop_llamacpp"
    folder.mkdir()
    pl.DataFrame(rows).write_csv(folder / "smollm2-135m.csv")
    side = {"config": {"model": "smollm2-135m", "layers": [14], "coefs": [8.0], "full_coefs": [], "top_k": 20,
                       "prompts": 8, "threads": 1, "weights": ["f32", "quantised"]},
            "run": {"llama_cpp": "version: 1 (x)", "source": llamacpp.SDIST, "gguf_bytes": {"f32": 2**29},
                    "check_s": 60, "servers": 3, "load_before": "1.00", "load_after": "2.00", "host": "h",
                    "date": "2026-12-07"}}
    (folder / "smollm2-135m.json").write_text(json.dumps(side))
    v = pages(tmp_path)
    assert v["smollm2.f32.floor"] == "2.0e-05" and v["smollm2.f32.same"] == "7.0e-05"
    assert v["smollm2.f32.shift"] == "0.30" and v["smollm2.f32.shift_mean"] == "0.10"
    assert v["smollm2.f32.slope"] == "0.999–1.000" and v["smollm2.quantised.same"] == "0.25"
    assert "| f32 | L14.gguf | scaled | 8 | shift +1 |" in v["smollm2.table"]
    assert "GGUF f32 512 MiB" in v["smollm2.run"]


@pytest.fixture(scope="module")
def llama_bin() -> Path:
    return Path(LLAMA_BIN)


@pytest.mark.slow
@needs_llama
def test_llama_cpp_steers_with_our_export_as_we_do_at_the_same_layer_not_one_off(smol, llama_bin, tmp_path):
    """F32 weights (llama-quantize's dequantisation of the embedded GGUF, as we load it): llama.cpp's log-probs
    equal ours within float32 noise at the exported layer, scaled and unscaled, and not one layer off."""
    vector = SteeringVector.load(MYOPIC)
    rows = llamacpp.check(smol, llama_bin, vector, [14], [-8.0, 16.0], [], tmp_path, prompts=llamacpp.PROMPTS[:3],
                          top_k=10, weights=("f32",))
    by = {(r["flag"], r["coef"], r["ours"]): r for r in rows}
    floor = by[("none", 0.0, "none")]["max_abs"]
    assert floor < 1e-3
    for flag, coef in (("scaled", -8.0), ("scaled", 16.0), ("unscaled", 1.0)):
        same = by[(flag, coef, "same")]
        assert same["max_abs"] < 1e-3 and abs(same["slope"] - 1) < 0.01, (flag, coef, same)
        assert same["our_change"] > 10 * floor  # the steering moved the log-probs, far beyond the floor
        for control in ("shift -1", "shift +1"):
            assert by[(flag, coef, control)]["max_abs"] > 10 * same["max_abs"] + 1e-3, (flag, coef, control)


@pytest.mark.slow
@needs_llama
def test_the_llama_completion_line_the_export_prints_runs_and_steers(llama_bin, tmp_path):
    """`vectors export`'s `use:` line, with MODEL / PROMPT / COEF filled in, runs in this llama.cpp and its greedy
    text changes with the coefficient (so the vector was loaded and applied)."""
    vector = SteeringVector.load(MYOPIC)
    path = tmp_path / "myopic-L14.gguf"
    write_gguf(vector, path, [14])
    line = llama_cpp_use(str(path)).splitlines()[0].removeprefix("use: ")
    model = llamacpp.model_ggufs("smollm2-135m", llama_bin, tmp_path)["quantised"]
    texts = {}
    for coef in ("0", "40"):
        filled = (line.replace("MODEL.gguf", shlex.quote(str(model))).replace("PROMPT", shlex.quote("I think that"))
                  .replace("COEF", coef))
        argv = shlex.split(filled)
        argv[0] = str(llama_bin / argv[0])
        done = subprocess.run([*argv, "-n", "12", "--temp", "0", "-t", "1", "--no-warmup"], capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr[-2000:]
        texts[coef] = done.stdout
    assert texts["0"].startswith("I think that") and texts["0"] != texts["40"]
