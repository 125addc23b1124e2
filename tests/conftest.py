"""Shared fixtures: real embedded models, the public data in ../shared, temp result folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("STEER_TRACE_SHARED_DATA", REPO.parent / "shared" / "data"))
PAPER_SETS = SHARED_DATA / "extending-activation-addition" / "data" / "datasets"
PROJECT_DATA = REPO / "data"  # the project's own small sets: always there, also in a user's clone


FALLBACK_FIXTURES = ("behaviour_sets", "behaviour_file", "skills_data_args")


def pytest_collection_modifyitems(config, items):
    """Mark the tests whose data depends on whether ../shared/data is there (`-m clone_data`): CI runs them a
    second time with it hidden, as a user's clone has it. Every other test reads the same data either way,
    or is skipped without ../shared."""
    for item in items:
        if any(name in FALLBACK_FIXTURES for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.clone_data)


@pytest.fixture(scope="session")
def smol():
    from steer_trace.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public sets (for tests about those files themselves); the skip says so."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the public datasets (Anthropic evals, the paper's processed sets, WikiText-2, "
                    f"HumanEval) at {SHARED_DATA}, or $STEER_TRACE_SHARED_DATA; not found")
    return SHARED_DATA


@pytest.fixture(scope="session")
def paper_sets(shared_data) -> Path:
    """The paper's processed behaviour sets (tests of their rows, sizes and prompts)."""
    return PAPER_SETS


@pytest.fixture(scope="session")
def behaviour_sets() -> Path:
    """A folder with the five behaviour files, for tests that need *some* behaviour data: the paper's processed
    sets when ../shared/data is there, else the project's own (data/behaviours). Files: `behaviour_file`."""
    return PAPER_SETS if PAPER_SETS.is_dir() else PROJECT_DATA / "behaviours"


@pytest.fixture(scope="session")
def behaviour_file(behaviour_sets):
    """behaviour_file("myopic") -> that behaviour's file in `behaviour_sets` (.json or .jsonl)."""
    from studies.behaviours.data import find_file

    return lambda name: find_file(behaviour_sets, name)


@pytest.fixture(scope="session")
def skills_data_args() -> list[str]:
    """`--data-dir` for the skills commands: the public corpora when there, else [] (the project's data/skills)."""
    return ["--data-dir", str(SHARED_DATA)] if SHARED_DATA.is_dir() else []


@pytest.fixture
def results_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "results"
    monkeypatch.setenv("STEER_TRACE_RESULTS", str(path))
    return path
