"""Shared fixtures: real embedded models, the public data in ../shared, temp result folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("STEER_TRACE_SHARED_DATA", REPO.parent / "shared" / "data"))
PAPER_SETS = SHARED_DATA / "extending-activation-addition" / "data" / "datasets"


@pytest.fixture(scope="session")
def smol():
    from steer_trace.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def paper_sets(shared_data) -> Path:
    return PAPER_SETS


@pytest.fixture
def results_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "results"
    monkeypatch.setenv("STEER_TRACE_RESULTS", str(path))
    return path
