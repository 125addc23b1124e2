"""Docs pages are rendered from the committed tables: a page that differs from its rendering fails, and a
changed table value changes the page."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from steer_trace.cache import _write_atomic
from steer_trace.errors import UserError
from studies import pages

REPO = Path(__file__).resolve().parents[1]


def test_render_fills_every_placeholder_and_refuses_unknown_or_missing_names():
    named = {"a.b": "0.363", "c.L14.c1.5": "+0.2"}
    assert pages.render("p {{a.b}} and {{ c.L14.c1.5 }}.", named) == "p 0.363 and +0.2."
    with pytest.raises(UserError, match="no value named 'a.c'"):
        pages.render("{{a.c}}", {"a.b": "1"}, "docs/src/x.md")
    with pytest.raises(UserError, match="missing"):
        pages.render("{{a.b}}", {"a.b": None})


def test_every_template_has_a_page_and_the_readme_is_one(tmp_path):
    found = pages.targets(REPO)
    assert REPO / "docs/src/README.md" in found and found[REPO / "docs/src/README.md"] == REPO / "README.md"
    assert all(page.is_file() for page in found.values())


def test_build_writes_only_what_differs_and_check_writes_nothing(tmp_path):
    (tmp_path / "docs/src").mkdir(parents=True)
    (tmp_path / "docs/src/page.md").write_text("value {{s.x}}\n")
    study = [("s", lambda root: {"x": "0.5"})]
    page = tmp_path / "docs/page.md"
    assert pages.build(tmp_path, named=pages.values(tmp_path, study)) == [page]
    assert page.read_text() == "value 0.5\n"
    assert pages.build(tmp_path, named=pages.values(tmp_path, study)) == []
    changed = pages.values(tmp_path, [("s", lambda root: {"x": "0.6"})])
    assert pages.build(tmp_path, check=True, named=changed) == [page]
    assert page.read_text().endswith("value 0.5\n")  # check writes nothing


@pytest.mark.slow
def test_committed_pages_equal_their_rendering_from_the_committed_tables():
    differing = [page.relative_to(REPO).as_posix() for page, text in pages.rendered(REPO).items()
                 if not page.is_file() or page.read_text() != text]
    assert not differing, f"re-render with `steer-trace docs`: {differing} differ from the tables"


@pytest.mark.slow
def test_a_changed_table_value_changes_the_rendered_page(tmp_path):
    from studies.behaviours.pages import pages as behaviour_pages

    root = tmp_path / "results"
    for experiment in ("behaviours_precondition", "behaviours_single"):
        shutil.copytree(REPO / "results" / experiment, root / experiment)
    template = "myopia's answers follow the text in {{behaviours.smollm2.pre.myopic}} of the rotations\n"
    before = pages.render(template, pages.values(root, [("behaviours", behaviour_pages)]))
    # the precondition table of smollm2: myopia's order consistency rewritten (with a valid checksum)
    for path in sorted((root / "behaviours_precondition").glob("*.parquet")):
        frame = pl.read_parquet(path)
        hit = (pl.col("model") == "smollm2-135m") & (pl.col("behaviour") == "myopic")
        if frame.filter(hit).height:
            import json
            config = json.loads(path.with_suffix(".json").read_text())["config"]
            frame = frame.with_columns(pl.when(hit).then(pl.lit(0.75)).otherwise(pl.col("order_consistency"))
                                       .alias("order_consistency"))
            _write_atomic(path, frame, config)
    after = pages.render(template, pages.values(root, [("behaviours", behaviour_pages)]))
    assert "0.00 of the rotations" in before and "0.75 of the rotations" in after


def test_the_api_reference_lists_every_public_module_of_the_core_library():
    listed = set(re.findall(r"^::: (steer_trace\.\w+)$", (REPO / "docs/api.md").read_text(), re.M))
    modules = {f"steer_trace.{p.stem}" for p in (REPO / "steer_trace").glob("*.py") if not p.stem.startswith("_")}
    assert listed == modules, f"docs/api.md: add {sorted(modules - listed)}, drop {sorted(listed - modules)}"


def test_the_site_config_names_every_page_and_excludes_the_templates():
    config = (REPO / "mkdocs.yml").read_text()
    pages_on_disk = {p.name for p in (REPO / "docs").glob("*.md")}
    named = set(re.findall(r":\s+(\w+\.md)\s*$", config, re.M))
    missing, extra = sorted(pages_on_disk - named), sorted(named - pages_on_disk)
    assert named == pages_on_disk, f"mkdocs.yml nav: add {missing}, drop {extra}"
    assert "src/" in config  # the templates are not pages
