"""`steer-trace demo` (the README's first command) end to end on the project's own data: the first result, the
small pipeline, the content step's verdict lines and the figures; a second run computes nothing."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from tasks.cli import main


@pytest.mark.slow
def test_demo_runs_then_reads_everything_from_the_cache(smol, tmp_path, monkeypatch):
    monkeypatch.delenv("STEER_TRACE_DATA", raising=False)  # a user's clone: the project's own data/behaviours
    monkeypatch.setattr("tasks.demo.open_model", lambda spec: smol)
    out = tmp_path / "demo"
    first = CliRunner().invoke(main, ["demo", "--out", str(out)])
    assert first.exit_code == 0, (first.output, first.exception)
    text = first.output
    assert "first result" in text and "p(matching) on 12 held-out prompts" in text
    assert "== content:" in text
    lines = re.findall(r"what it means, x([+-]1): .*vector - random ([+-]\d\.\d+) .*: (.+)", text)
    assert {sign for sign, _, _ in lines} == {"+1", "-1"}
    # content scoring of a letter set is a plain mean (no label to balance): 6 questions in one stratum; the
    # table's verdict column says the same as the line under it
    assert all(verdict.startswith("too few questions (6 in a label") for _, _, verdict in lines)
    table_verdicts = re.findall(r"^myopic +myopic .*(too few questions \(\d+ in a label[^)]*\))$", text, re.M)
    assert len(table_verdicts) == 2 and all(v.startswith("too few questions (6 in a label") for v in table_verdicts)
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == [
        "multi_steering_activation_distributions.png", "simultaneous_steering.png", "single_steering_layer_14.png"]
    computed = [int(n) for n in re.findall(r"(\d+) points computed", text)]
    assert len(computed) == 4 and all(n > 0 for n in computed)  # extract, single, simultaneous, content

    again = CliRunner().invoke(main, ["demo", "--out", str(out)])
    assert again.exit_code == 0, (again.output, again.exception)
    assert [int(n) for n in re.findall(r"(\d+) points computed", again.output)] == [0, 0, 0, 0]
    assert re.findall(r"what it means, .*", again.output) == re.findall(r"what it means, .*", text)
