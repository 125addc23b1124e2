"""The committed figures are exactly what `steer-trace figures` builds from the committed results."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tasks.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_committed_figures_come_from_committed_results(tmp_path):
    result = CliRunner().invoke(main, ["figures", "--results", str(REPO / "results"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    built = {p.name for p in tmp_path.glob("*.png")}
    committed = {p.name for p in (REPO / "figures").glob("*.png")}
    assert built == committed
    assert {"single_steering_layer_14.png", "simultaneous_steering.png", "interference.png",
            "general_coding.png", "python_ability.png"} <= built
