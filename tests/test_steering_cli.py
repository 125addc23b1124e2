"""--op / --scope on the CLI: `generate`, the behaviours sweeps and `skills sweep`; the cache key gains the
steering only when it is not the default (add at every position), so committed results keep their keys."""
from __future__ import annotations

import re

import click
import pytest
import torch
from cli_checks import one_error_line
from click.testing import CliRunner
from steering_reference import hook_generate

from steer_trace.batching import encode
from steer_trace.plan import Plan, Steering
from steer_trace.vectors import SteeringVector
from tasks.cli import main

SWEEPS = [("behaviours", c) for c in ("grid", "single", "combined", "simultaneous", "interference", "tax")]
SWEEPS += [("skills", "sweep"), ("generate",)]


def run(*argv):
    return CliRunner().invoke(main, [str(a) for a in argv])


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory):
    gen = torch.Generator().manual_seed(5)
    raw = {L: torch.randn(576, generator=gen) for L in range(30)}
    layers = {L: v / v.norm() * 8 for L, v in raw.items()}
    path = tmp_path_factory.mktemp("vec") / "random.safetensors"
    SteeringVector(layers, {"name": "random"}).save(path)
    return path


@pytest.mark.parametrize("path", SWEEPS, ids=" ".join)
def test_every_sweep_and_generate_takes_op_and_scope(path):
    command = main
    for name in path:
        command = command.get_command(click.Context(command), name)  # study groups load on demand
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert {"--op", "--scope"} <= options


def test_steering_key_is_empty_for_the_default():
    assert Steering().key() == {} and Steering("add", "all").is_default
    assert Steering("project-out", "from:3").key() == {"steering": {"op": "project-out", "scope": "from:3"}}
    plan = Plan.none()
    assert Steering().apply(plan) is plan


def test_generate_with_op_and_scope_equals_the_hook_reference(smol, monkeypatch, vector_file):
    monkeypatch.setattr("tasks.core_commands.open_model", lambda spec: smol)
    result = run("generate", "The weather today is", "--vector", vector_file, "--layer", 10, "--coef", 6,
                 "--op", "project-out-then-add", "--scope", "generated", "--max-new-tokens", 4, "--no-chat")
    assert result.exit_code == 0, (result.output, result.exception)
    line = next(x for x in result.output.splitlines() if x.startswith("steered ("))
    assert line.startswith("steered (L10x6:project-out-then-add@generated): ")
    v = SteeringVector.load(vector_file)[10]
    ids, _ = hook_generate(smol, encode(smol.tokenizer, ["The weather today is"]),
                           [(10, v, 6.0, "project-out-then-add", "generated")], 4)
    assert line.endswith(repr(smol.tokenizer.decode(ids[0], skip_special_tokens=True)))


@pytest.mark.parametrize("args,needle", [
    (["--op", "ablate"], "unknown operator 'ablate'"),
    (["--scope", "from:x"], "from:K must be a whole number"),
    (["--scope", "middle"], "unknown token scope 'middle'"),
])
def test_bad_op_or_scope_is_one_error_line(args, needle, vector_file):
    one_error_line(run("generate", "Hi", "--vector", vector_file, "--layer", 3, *args), needle)
    one_error_line(run("behaviours", "single", "--profile", "test", *args), needle)


def test_sweep_with_a_steering_is_its_own_cached_run(smol, paper_sets, tmp_path, monkeypatch):
    monkeypatch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)
    root = tmp_path / "results"

    def single(*extra):
        result = run("behaviours", "single", "--profile", "test", "--n-test", "2", "--results", root,
                     "--data-dir", paper_sets, "--behaviours", "myopic", "--add-coef", 8, "--subtract-coef", 8,
                     *extra)
        assert result.exit_code == 0, (result.output, result.exception)
        runs = sorted(p.name for p in (root / "behaviours_single").glob("*.json"))
        return int(re.search(r"(\d+) points computed", result.output).group(1)), runs, result.output

    default_computed, default_runs, default_out = single()
    assert default_computed >= 3 and len(default_runs) == 1
    computed, runs, out = single("--op", "project-out-then-add", "--scope", "from:5")
    # every scored point again under the new steering (a new run); the vector itself is reused from the cache
    assert computed == default_computed - 1 and len(runs) == 2
    assert out != default_out
    for extra in ((), ("--op", "add", "--scope", "all"), ("--op", "project-out-then-add", "--scope", "from:5")):
        computed, again, _ = single(*extra)
        assert computed == 0 and again == runs  # explicit defaults are the default run: nothing recomputed


@pytest.mark.slow
def test_readme_operators_example_prints_what_the_readme_shows(tmp_path):
    """The library page's "Operators and token scopes" example runs as written and prints its output."""
    import subprocess
    import sys
    from pathlib import Path

    from test_readme import _blocks

    repo = Path(__file__).resolve().parents[1]
    code, shown = _blocks("## Operators and token scopes")
    (tmp_path / "results").symlink_to(repo / "results")
    (tmp_path / "example.py").write_text(code)
    run_ = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run_.returncode == 0, run_.stderr[-2000:]
    got, want = run_.stdout.strip().splitlines(), shown.strip().splitlines()
    assert [line.split()[0] for line in got] == [line.split()[0] for line in want]
    for g, w in zip(got, want, strict=True):
        numbers = [re.findall(r"-?\d+\.\d", line.split("[")[0]) for line in (g, w)]
        assert [float(x) for x in numbers[0]] == pytest.approx([float(x) for x in numbers[1]], abs=0.2), (g, w)
        assert g.split("[", 1)[1] == w.split("[", 1)[1], (g, w)  # the same greedy text
