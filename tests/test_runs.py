"""The run recipes in runs/: plain sequential shell, documented, one place for every committed table's recipe."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "runs").glob("*.sh"))


def test_results_hold_no_scripts_or_logs():
    assert not list((REPO / "results").glob("*.sh")) and not list((REPO / "results").glob("*.log"))
    assert RECIPES


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_a_recipe_is_plain_documented_shell(recipe):
    text = recipe.read_text()
    assert subprocess.run(["sh", "-n", str(recipe)]).returncode == 0
    lines = text.splitlines()[1:]
    header = "\n".join(lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    assert f"sh runs/{recipe.name}" in header and "Writes" in header and "Resumable" in header
    assert "pgrep" not in text and not re.search(r"[Ii]ssue \d", text) and "kill -0" not in text
