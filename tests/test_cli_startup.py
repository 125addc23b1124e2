"""The command line starts light and iterates over the study registry.

- Listing (`steer-trace --help`) and a study command's `--help` import none of torch, transformers, nnsight,
  polars or matplotlib (checked in a fresh subprocess's sys.modules, not timed: the timing is in the bench,
  `steer-trace bench startup`).
- A study registered from outside (a toy one, here) is listed by the real CLI with its summary, runs as
  `steer-trace <name> ...`, and its figures / report hooks are what `steer-trace figures` / `report` call.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from studies.protocol import Study, resolve
from studies.registry import all_studies, register, unregister
from tasks.cli import main
from tasks.common import DEFAULT_METHOD, EXTRACTION_METHODS

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "nnsight", "polars", "matplotlib")

PROBE = """
import json, sys
from click.testing import CliRunner
from tasks.cli import main
result = CliRunner().invoke(main, sys.argv[1:])
print(json.dumps({"code": result.exit_code, "output": result.output,
                  "heavy": sorted(m for m in sys.modules if m.split(".")[0] in %r)}))
""" % (HEAVY,)


def probe(*argv):
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("argv", [["--help"], ["behaviours", "single", "--help"], ["skills", "sweep", "--help"],
                                  ["behaviours", "--help"], ["figures", "--help"], ["report", "--help"]])
def test_help_imports_no_heavy_library(argv):
    seen = probe(*argv)
    assert seen["code"] == 0, seen["output"]
    assert "Usage:" in seen["output"]
    assert seen["heavy"] == []


def test_the_probe_sees_heavy_imports():  # the check can fail: a command that loads polars shows it
    seen = probe("report", "--results", str(REPO / "no-such-folder"))
    assert seen["code"] == 2
    assert "polars" in seen["heavy"]


def test_the_method_names_copy_equals_the_table():
    from steer_trace.aggregators import DEFAULT_METHOD as default
    from steer_trace.aggregators import METHODS

    assert EXTRACTION_METHODS == tuple(METHODS) and DEFAULT_METHOD == default


def test_the_paper_studies_are_registered():
    names = [s.name for s in all_studies()]
    assert {"behaviours", "skills", "evaluate", "gates"} <= set(names) and names == sorted(names)
    for study in all_studies():
        assert isinstance(resolve(study.cli), click.Command) and resolve(study.cli).name == study.name
        for hook_name in ("figures", "report", "pages"):
            if getattr(study, hook_name):
                assert callable(resolve(getattr(study, hook_name))), (study.name, hook_name)
    paper = {s.name: s for s in all_studies() if s.name in ("behaviours", "skills")}
    assert all(s.figures and s.report for s in paper.values())


# -- a toy study, registered from outside studies/ ---------------------------------------------------------------

CALLS: list[tuple] = []


@click.group("toy")
def toy_group():
    """The toy study's commands."""


@toy_group.command("hello")
def toy_hello():
    click.echo("hello from the toy study")


def toy_figures(results_root: Path, out_dir: Path) -> list[Path]:
    CALLS.append(("figures", results_root, out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "toy.png"
    path.write_bytes(b"toy")
    return [path]


def toy_report(results_root: Path, out_dir: Path) -> list[Path]:
    CALLS.append(("report", results_root, out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "toy.md"
    path.write_text("# toy\n")
    return [path]


@pytest.fixture
def toy():
    study = register(Study(name="toy", summary="A toy study registered by a test.", cli=f"{__name__}:toy_group",
                           report=f"{__name__}:toy_report", figures=f"{__name__}:toy_figures"))
    CALLS.clear()
    yield study
    unregister("toy")


def test_a_registered_study_is_listed_and_runs(toy):
    listing = CliRunner().invoke(main, ["--help"])
    assert listing.exit_code == 0
    assert "toy" in listing.output and "A toy study registered by a test." in listing.output
    result = CliRunner().invoke(main, ["toy", "hello"])
    assert result.exit_code == 0 and "hello from the toy study" in result.output


def test_unregistered_it_is_gone(toy):
    unregister("toy")
    assert "toy" not in CliRunner().invoke(main, ["--help"]).output
    assert CliRunner().invoke(main, ["toy", "hello"]).exit_code == 2


def test_figures_and_report_call_the_study_hooks(toy, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    figures = CliRunner().invoke(main, ["figures", "--results", str(results), "--out", str(tmp_path / "fig")])
    assert figures.exit_code == 0, figures.output
    assert (tmp_path / "fig" / "toy.png").read_bytes() == b"toy"
    report = CliRunner().invoke(main, ["report", "toy", "--results", str(results)])
    assert report.exit_code == 0, report.output
    assert (results / "toy_report" / "toy.md").is_file()
    assert CALLS == [("figures", results, tmp_path / "fig"), ("report", results, results / "toy_report")]


def test_report_names_an_unknown_study(tmp_path):
    result = CliRunner().invoke(main, ["report", "nosuch", "--results", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown study nosuch" in result.output


def test_a_name_is_registered_once(toy):
    with pytest.raises(ValueError, match="registered already"):
        register(Study(name="behaviours", summary="again", cli="x:y"))


def test_old_option_names_still_parse_but_are_not_shown():
    """Committed run recipes say --add-mult / --multipliers: they still run; --help shows the names of today."""
    from studies.behaviours.cli import group

    single = group.commands["single"]
    old = ["--add-mult", "2", "--subtract-mult", "3", "--grid-multipliers", "1,2"]
    params = single.make_context("single", old).params
    assert (params["add_coef"], params["subtract_coef"], params["grid_coefs"]) == (2.0, 3.0, "1,2")
    assert group.commands["interference"].make_context("interference", ["--multipliers=-1,1"]).params["coefs"] == "-1,1"
    shown = CliRunner().invoke(main, ["behaviours", "single", "--help"]).output
    assert "--add-coef" in shown and "--grid-coefs" in shown
    assert "--add-mult" not in shown and "multiplier" not in shown.lower()
