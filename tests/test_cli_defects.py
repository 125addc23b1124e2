"""Reliability defects found by the red team of 9bf8c2f, each through the real CLI (`tasks.cli:main`):
too few questions for a verdict, cache keys that drop an option, damaged files on every reader,
truncated inputs, and the messages that tell the user what to do."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from steer_trace.cache import Run
from steer_trace.stats import MIN_PER_LABEL
from tasks.cli import main
from cli_checks import one_error_line  # noqa: F401 - used by the tests below


def _ab_row(vector, direction, coef, scores, labels, layer=9, **extra):
    n = len(scores)
    return {"model": "tiny", "profile": "quick", "split_rule": "seeded", "scoring": "content",
            "vector_source": "content", "relative": True, "behaviour": "myopic", "vector": vector, "layer": layer,
            "layers": str(layer), "direction": direction, "multiplier": float(coef), "split": "test",
            "q_id": list(range(n)), "q_label": labels, "q_p_matching": [float(v) for v in scores],
            "p_matching_balanced": float(np.mean(scores)), "n_questions": n, **extra}


def _single_table(root, per_label: int, planted: float = 0.3):
    """A cached single-steering run with `per_label` questions per answer label: the vector moves every
    question by `planted`, its random control by nothing."""
    labels = ["A", "B"] * per_label
    base = np.linspace(0.2, 0.6, 2 * per_label)
    rows = [_ab_row("none", "default", 0, base, labels),
            _ab_row("myopic", "add", 1, base + planted, labels),
            _ab_row("random", "add", 1, base, labels)]
    Run("behaviours_single", {"synthetic": per_label}, root).finish([pl.DataFrame(rows)])


# -- too few questions: no interval, p-value or verdict -------------------------------------------------------


def test_report_says_too_few_questions_instead_of_a_verdict(tmp_path):
    """One question per label (`--n-test 2`): the bootstrap cannot vary; the report said 'moves' with a
    zero-width interval and p < 0.001. It must say 'too few questions' and state the minimum."""
    root = tmp_path / "results"
    _single_table(root, per_label=1)
    result = CliRunner().invoke(main, ["behaviours", "report", "--results", str(root), "--profile", "quick",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "tiny.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| myopic"))
    assert "too few questions" in row and "| moves" not in row and "< 0.001" not in row
    assert f"needs at least {MIN_PER_LABEL} questions per answer label" in text


def test_report_gives_a_verdict_at_the_minimum(tmp_path):
    root = tmp_path / "results"
    _single_table(root, per_label=MIN_PER_LABEL)
    result = CliRunner().invoke(main, ["behaviours", "report", "--results", str(root), "--profile", "quick",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    row = next(line for line in (tmp_path / "out" / "tiny.md").read_text().splitlines() if line.startswith("| myopic"))
    assert row.rstrip(" |").split("|")[-2].strip() == "moves"


def test_paired_shift_below_the_minimum_has_no_interval():
    from steer_trace.stats import paired_shift

    few = paired_shift([0.5, 0.9], [0.1, 0.2], ["A", "B"])
    assert few.too_few and few.per_label == 1 and np.isnan([few.lo, few.hi, few.p, few.mde]).all()
    assert few.shift == pytest.approx(0.55)
    base = np.random.default_rng(0).uniform(0, 1, 20)
    enough = paired_shift(base + 0.1 + np.random.default_rng(1).normal(0, 0.05, 20), base, ["A", "B"] * 10)
    assert not enough.too_few and enough.lo < enough.shift < enough.hi and enough.p < 0.01


# -- cache keys: every option that changes the work changes the key ----------------------------------------


class _Keyed(Exception):
    """Raised when the command builds its own table's Run: carries the key (no model work is done)."""


TARGETS = {"precondition": "behaviours_precondition", "single": "behaviours_single", "grid": "behaviours_grid",
           "diagnose": "behaviours_quality", "simultaneous": "behaviours_simultaneous",
           "combined": "behaviours_combined", "interference": "behaviours_interference", "tax": "behaviours_tax",
           "extract": "behaviours_vectors"}
FIXED = ["--add-mult", "4", "--subtract-mult", "4"]  # single / combined: no grid
BASE = {"single": FIXED, "combined": FIXED}
STUDY_OPTIONS = [["--n-test", "3"], ["--orders", "given"], ["--slices", "plain"], ["--split", "paper"],
                 ["--behaviours", "agreeableness"]]
VECTOR_OPTIONS = [["--n-vector", "5"], ["--plain-mean"], ["--method", "pca"], ["--split", "paper"],
                  ["--behaviours", "agreeableness"]]
STEER_OPTIONS = [["--scoring", "content"], ["--vector-source", "content"], ["--relative"], ["--op", "project-out"],
                 ["--scope", "prompt"], ["--n-vector", "5"], ["--plain-mean"], ["--method", "pca"]]
CHANGES = {
    "precondition": STUDY_OPTIONS,
    "single": STUDY_OPTIONS + STEER_OPTIONS + [["--layers", "5"], ["--add-mult", "8"], ["--subtract-mult", "8"],
                                               ["--more-random", "2"]],
    "grid": [["--n-validation", "3"], ["--split", "paper"], ["--layers", "5"], ["--multipliers", "3"],
             ["--scoring", "content"], ["--relative"], ["--plain-mean"], ["--op", "project-out"]],
    "diagnose": VECTOR_OPTIONS + [["--layers", "5"], ["--vector-source", "content"]],
    "simultaneous": STUDY_OPTIONS + [["--coefs", "1,2"], ["--layers", "3"], ["--relative"], ["--plain-mean"],
                                     ["--scoring", "content"]],
    "combined": STUDY_OPTIONS + [["--coefs", "2"], ["--add-mult", "8"], ["--layers", "5"], ["--relative"]],
    "interference": [["--multipliers", "3"], ["--layers", "5"], ["--n-test", "3"], ["--split", "paper"],
                     ["--scoring", "content"], ["--relative"]],
    "tax": [["--tax-docs", "3"], ["--coefs", "1"], ["--layers", "5"], ["--relative"], ["--plain-mean"],
            ],
    "extract": VECTOR_OPTIONS,
}


@pytest.fixture(scope="module")
def key_of_command(smol, behaviour_sets, tmp_path_factory):
    """key_of_command(command, *args) -> the cache key of the table `command` writes, read when the command
    builds that Run, before any scoring: vectors are random stand-ins, the model is the session's smollm2."""
    import torch

    from steer_trace import cache
    from steer_trace.vectors import SteeringVector

    root = tmp_path_factory.mktemp("keys") / "results"
    patch = pytest.MonkeyPatch()
    patch.setattr("tasks.behaviours.open_model", lambda spec: smol)
    original = cache.Run.__init__
    target = {}

    def init(self, experiment, config, root=None):
        original(self, experiment, config, root)
        if experiment == target["experiment"]:
            raise _Keyed(self.key)

    def stand_ins(study, log=None):
        gen = torch.Generator().manual_seed(0)
        layers = {L: torch.randn(smol.d_model, generator=gen) for L in range(smol.n_layers)}
        return {name: SteeringVector(layers, {"name": name}) for name in study.names}

    patch.setattr(cache.Run, "__init__", init)
    patch.setattr("steer_trace.experiments.behaviours.load_vectors", stand_ins)

    def run(command, *args):
        target["experiment"] = TARGETS[command]
        argv = ["behaviours", command, "--profile", "test", "--results", str(root), "--data-dir",
                str(behaviour_sets), *(["--behaviours", "myopic"] if "--behaviours" not in args else []),
                *BASE.get(command, []), *args]
        result = CliRunner().invoke(main, argv)
        assert isinstance(result.exception, _Keyed), (argv, result.output, result.exception)
        return result.exception.args[0]

    yield run
    patch.undo()


@pytest.mark.parametrize("command,change", [(c, ch) for c, changes in CHANGES.items() for ch in changes],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_option_that_changes_the_work_changes_the_key(key_of_command, command, change):
    """`behaviours precondition --split paper` once returned the cached `--split seeded` table: its key
    overwrote the split rule with the split part ('test'). Each option here changes what is computed."""
    assert key_of_command(command, *change) != key_of_command(command)


def test_the_same_command_keeps_its_key(key_of_command):
    assert key_of_command("single", "--batch-size", "3") == key_of_command("single")  # batch size: same numbers


def test_a_config_field_given_twice_is_a_bug_not_an_overwrite():
    from steer_trace.cache import merged

    assert merged({"a": 1}, {"b": 2}, {"a": 1}) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="'split' given twice"):
        merged({"split": "paper"}, {"split": "test"})
