"""results/INDEX.md is generated from the tables' sidecars: the committed one equals its regeneration, and it
names each table's study, model, recipe and the pages citing it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from studies import results_index

REPO = Path(__file__).resolve().parents[1]


def test_committed_index_equals_the_generated_one():
    assert (REPO / "results/INDEX.md").read_text() == results_index.index_text(REPO / "results", REPO), \
        "run `steer-trace results` (results/INDEX.md differs from the tables)"


def test_every_published_table_names_an_existing_recipe():
    for name, _side, meta in results_index._sidecars(REPO / "results"):
        recipe = meta.get("run", {}).get("recipe")
        assert recipe, f"{name} has no recipe in its sidecar"
        if recipe.startswith("steer-trace "):  # a report folder records the command that wrote it
            continue
        assert (REPO / recipe.split()[0]).is_file(), f"{name}: {recipe} does not exist"


def test_an_evaluate_report_folder_is_one_row_with_its_command(tmp_path):
    folder = tmp_path / "results/evaluate_myopic"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"model": "smollm2-135m", "behaviour": "myopic",
                                                     "command": "steer-trace evaluate --dataset m.jsonl"}))
    row = next(line for line in results_index.index_text(tmp_path / "results", REPO).splitlines()
               if "evaluate_myopic" in line)
    assert "| evaluate | smollm2-135m | report: myopic |" in row and "steer-trace evaluate --dataset m.jsonl" in row


def test_the_index_follows_a_sidecar_and_counts_citations(tmp_path):
    root = tmp_path / "results"
    shutil.copytree(REPO / "results/behaviours_single", root / "behaviours_single")
    text = results_index.index_text(root, REPO)
    row = next(line for line in text.splitlines() if "a3a01ecb463a128f" in line)
    assert "| behaviours | smollm2-135m |" in row and "runs/behaviours_smollm2.sh content single" in row
    assert "docs/behaviours.md (" in row and "README.md (" in row  # the page numbers come from this kind of table
    side = root / "behaviours_single/a3a01ecb463a128f.json"
    meta = json.loads(side.read_text())
    meta["run"]["date"] = "2031-01-01"
    side.write_text(json.dumps(meta))
    assert "2031-01-01" in next(line for line in results_index.index_text(root, REPO).splitlines()
                                if "a3a01ecb463a128f" in line)
