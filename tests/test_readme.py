"""The README's quickstart and the library page's example run as written and print what the pages show."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _blocks(after: str, page: str = "docs/library.md") -> tuple[str, str]:
    """The first ```python block after the heading `after` in `page`, and the plain ``` block following it."""
    text = (REPO / page).read_text().split(after, 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S)
    shown = re.search(r"```\n(.*?)```", text[code.end():], re.S)
    return code.group(1), shown.group(1)


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+", line)]


@pytest.mark.slow
def test_library_example_runs_and_prints_the_readme_output(tmp_path):
    code, shown = _blocks("# The library in a page")
    (tmp_path / "data").symlink_to(REPO / "data")
    (tmp_path / "example.py").write_text(code)
    run = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    got = run.stdout.strip().splitlines()
    want = shown.strip().splitlines()
    assert [line.split()[0] for line in got] == [line.split()[0] for line in want]  # same plans, same order
    for g, w in zip(got, want):
        assert _numbers(g) == pytest.approx(_numbers(w), abs=2e-3), (g, w)
    assert (tmp_path / "agreeableness.safetensors").is_file()


@pytest.mark.slow
def test_readme_quickstart_steers_the_users_own_model_and_prints_what_the_readme_shows(tmp_path):
    code, shown = _blocks("### In Python", "README.md")
    (tmp_path / "data").symlink_to(REPO / "data")
    (tmp_path / "quickstart.py").write_text(code)
    run = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    got, want = run.stdout.strip().splitlines(), shown.strip().splitlines()
    assert [line.split("p(")[0] for line in got] == [line.split("p(")[0] for line in want]
    for g, w in zip(got, want, strict=True):
        assert _numbers(g) == pytest.approx(_numbers(w), abs=2e-3), (g, w)
