"""Committed results stay valid after the vocabulary became one (`coef`, not `multiplier`):

- every committed table still loads, and a behaviour table that says `multiplier` on disk reads as `coef`
  (cache.RENAMED_COLUMNS), its bytes and checksum untouched;
- the cache keys the code builds now equal the committed ones: every sidecar's key is the hash of its config,
  each committed point's key is rebuilt from the new-vocabulary fields (`point_fields` + `key_fields`), and the
  alignment-tax runs' point lists too. Without the key mapping the rebuilt keys differ (checked: the test can
  fail). Reads only results/, no model.
"""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from steer_trace.cache import key_of, load_tables, with_current_names
from studies.behaviours.scoring import key_fields, point_fields

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
BEHAVIOUR_EXPERIMENTS = sorted(p.name for p in RESULTS.glob("behaviours_*") if p.is_dir() and any(p.glob("*.json")))


def sidecars(pattern: str):
    return sorted(RESULTS.glob(pattern))


def test_there_are_committed_results_to_check():
    assert {"behaviours_single", "behaviours_interference", "behaviours_tax"} <= set(BEHAVIOUR_EXPERIMENTS)
    assert len(sidecars("behaviours_*/*.points/*.json")) >= 10


@pytest.mark.parametrize("experiment", BEHAVIOUR_EXPERIMENTS)
def test_committed_behaviour_tables_load_with_coef(experiment):
    on_disk = {name for path in (RESULTS / experiment).glob("*.parquet") for name in pl.read_parquet_schema(path)}
    table = load_tables(experiment, RESULTS)
    assert table is not None and table.height
    assert "multiplier" not in table.columns
    assert ("coef" in table.columns) == bool({"multiplier", "coef"} & on_disk)


def test_the_rename_at_load_leaves_a_new_table_alone():
    old = pl.DataFrame({"multiplier": [1.0], "p": [0.5]})
    assert with_current_names(old).columns == ["coef", "p"]
    both = pl.DataFrame({"multiplier": [1.0], "coef": [2.0]})
    assert with_current_names(both).columns == ["multiplier", "coef"]


NAMED_BY_MODEL = {"interop_llamacpp"}


def test_every_committed_key_is_the_hash_of_its_config():
    checked = 0
    for side in sidecars("*/*.json") + sidecars("*/*.points/*.json"):
        meta = json.loads(side.read_text())
        if not isinstance(meta, dict) or "config" not in meta:
            continue
        if side.parent.name in NAMED_BY_MODEL:  # one table per model, replaced by a recompute
            assert meta["config"]["model"] == side.stem, side
            continue
        assert key_of(meta["config"]) == side.stem, side
        checked += 1
    assert checked > 100


def _rebuilt(config: dict) -> dict:
    """A committed point's params, built again the way score_points builds them now."""
    layers = [int(x) for x in config["layers"].split(",")] if config["layers"] else []
    fields = point_fields(config["vector"], config["direction"], config["multiplier"], layers)
    extra = {k: v for k, v in config.items() if k in ("behaviour", "split")}
    return key_fields({**extra, **fields})


def test_committed_point_keys_are_rebuilt_from_coef():
    points = [json.loads(p.read_text())["config"] for p in sidecars("behaviours_*/*.points/*.json")]
    with_strength = [c for c in points if "multiplier" in c]
    assert with_strength
    for side in sidecars("behaviours_*/*.points/*.json"):
        config = json.loads(side.read_text())["config"]
        if "multiplier" not in config:
            continue
        params = _rebuilt(config)
        assert params == config
        assert key_of(params) == side.stem
        unmapped = {("coef" if k == "multiplier" else k): v for k, v in params.items()}
        assert key_of(unmapped) != side.stem  # what the key would be without key_fields


def test_committed_tax_runs_key_their_points_as_before():
    runs = [json.loads(p.read_text())["config"] for p in sidecars("behaviours_tax/*.json")]
    assert runs
    for config in runs:
        for point in config["points"]:
            layers = [int(x) for x in point["layers"].split(",")] if point["layers"] else []
            assert key_fields(point_fields(point["vector"], point["direction"], point["multiplier"], layers)) == point
