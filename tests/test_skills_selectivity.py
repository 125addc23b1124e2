"""Selectivity at equal damage (skills_selectivity) on hand-built per-document scores: the point estimate
is the interpolation along the curve, the interval covers it and shrinks with more documents, and the
paired code − Python difference finds a planted gap and not a null one."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from studies.skills.selectivity import equal_damage_table, kept_at

TOKENS = 50


def _docs(curves: dict, n_docs: int, seed: int = 0) -> pl.DataFrame:
    """Baseline accuracy 0.6 per domain; curves: (target, layer) -> {coef: {domain: relative accuracy}}.
    Each document's correct count is binomial around its domain's accuracy at the point."""
    rng = np.random.default_rng(seed)
    base_p = {"text": 0.6, "code": 0.6, "python": 0.6}
    doc_p = {d: np.clip(p + rng.normal(0, 0.05, n_docs), 0.05, 0.95) for d, p in base_p.items()}
    rows = []

    def add(domain, layer, target, coef, scale, control="none"):
        correct = rng.binomial(TOKENS, np.clip(doc_p[domain] * scale, 0, 1))
        rows.extend({"doc": i, "domain": domain, "language": domain, "correct": int(c), "count": TOKENS,
                     "model": "m", "points_run": "r", "target": target, "control": control, "layer": layer,
                     "coef": coef, "size": "headline"} for i, c in enumerate(correct))

    for domain in base_p:
        add(domain, -1, None, 0.0, 1.0)
    for (target, layer, *control), points in curves.items():
        for coef, rel in points.items():
            for domain in base_p:
                add(domain, layer, target, coef, rel.get(domain, 1.0), *control)
    return pl.DataFrame(rows, infer_schema_length=None)


def test_kept_at_interpolates_from_the_unsteered_point():
    target = np.array([[0.8, 0.4]])
    text = np.array([[0.9, 0.7]])
    assert kept_at(target, text, 0.9)[0] == pytest.approx(0.95)  # halfway from (1, 1) to (0.8, 0.9)
    assert kept_at(target, text, 0.6)[0] == pytest.approx(0.8)  # halfway from (0.8, 0.9) to (0.4, 0.7)
    assert np.isnan(kept_at(target, text, 0.3)[0])  # never reached


def _row(table, target, level):
    return table.filter((pl.col("target") == target) & (pl.col("level") == level)).row(0, named=True)


def test_interval_covers_the_planted_value_and_narrows_with_documents():
    planted = {("code", 5): {1.0: {"code": 0.4, "text": 0.8}}}  # at 70% damage: text 0.9
    rows = [_row(equal_damage_table(_docs(planted, 30, seed), levels=(0.7,), n_boot=200), "code", 0.7)
            for seed in range(20)]
    covered = np.mean([r["kept_lo"] <= 0.9 <= r["kept_hi"] for r in rows])
    assert covered >= 0.8 and all(r["defined"] == 1.0 for r in rows)  # nominal 0.95
    large = _row(equal_damage_table(_docs(planted, 480), levels=(0.7,), n_boot=200), "code", 0.7)
    assert large["kept"] == pytest.approx(0.9, abs=0.01) and large["kept_lo"] <= large["kept"] <= large["kept_hi"]
    width = np.median([r["kept_hi"] - r["kept_lo"] for r in rows])
    assert (large["kept_hi"] - large["kept_lo"]) < 0.5 * width  # 16x the documents: about a quarter


def test_paired_difference_finds_a_planted_gap_and_not_a_null():
    gap = {("code", 5): {1.0: {"code": 0.6, "text": 0.9, "python": 0.7}},
           ("python", 5): {1.0: {"python": 0.6, "text": 0.7, "code": 0.7}}}
    same = {("code", 5): {1.0: {"code": 0.6, "text": 0.8}}, ("python", 5): {1.0: {"python": 0.6, "text": 0.8}}}
    found = _row(equal_damage_table(_docs(gap, 200), levels=(0.7,), n_boot=400), "code − python", 0.7)
    null = _row(equal_damage_table(_docs(same, 200, seed=1), levels=(0.7,), n_boot=400), "code − python", 0.7)
    assert found["kept_lo"] > 0.05  # planted: 0.925 - 0.775 = 0.15
    assert null["kept_lo"] <= 0 <= null["kept_hi"]


def test_a_curve_that_never_reaches_the_level_has_no_interval():
    mild = {("code", 5): {1.0: {"code": 0.95, "text": 0.99}}}
    row = _row(equal_damage_table(_docs(mild, 50), levels=(0.5,), n_boot=200), "code", 0.5)
    assert np.isnan(row["kept"]) and np.isnan(row["kept_lo"]) and row["defined"] < 0.95


def test_the_vector_against_its_own_control_at_equal_damage():
    curves = {("code", 5): {1.0: {"code": 0.4, "text": 0.8}},  # at 70%: text 0.9
              ("code", 5, "components"): {1.0: {"code": 0.4, "text": 0.4}}}  # at 70%: text 0.7
    table = equal_damage_table(_docs(curves, 200), levels=(0.7,), n_boot=300)
    diff = table.filter(pl.col("vector") == "(text − code) − its control").row(0, named=True)
    assert diff["kept"] == pytest.approx(0.2, abs=0.03) and diff["kept_lo"] > 0.1


def test_paper_table_puts_each_paper_row_beside_the_point_at_the_same_relative_depth():
    from studies.skills.report import paper_table

    def cell(x):
        return {"relative": x, "relative_lo": x - 0.1, "relative_hi": x + 0.1}

    idx = {("code", "none", 28, 1.5, "code"): cell(0.5), ("code", "none", 28, 1.5, "text"): cell(0.8)}
    lines = paper_table(idx, 30)
    rows = [line for line in lines if line[:3].strip("| ").isdigit()]
    assert len(rows) == 11  # the paper's eleven (layer, c) rows of real vectors
    row = next(line for line in rows if line.startswith("| 30 → 28 | 1.5 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == ["50.0 [40.0, 60.0]", "80.0 [70.0, 90.0]", "69.6 / 81.2", "—", "—", "72.6 / 81.7"]
    assert any(line.startswith("| 10 → 9 | 2 |") for line in rows)  # 10 of 32 is 9 of 30


def test_load_points_keeps_each_models_baseline(tmp_path):
    """Two models' points runs both hold a sweep baseline with the same keys and document numbers: both load
    (they were once merged into one, the first model's, which broke the second's relative accuracies)."""
    import torch

    from steer_trace.cache import Run
    from studies.skills import run as skills

    eset = skills.EvalSet("sweep", ["text", "code"], ["text", "cpp"], ["a", "b"])
    for model, correct in (("model-a", [1, 2]), ("model-b", [5, 6])):
        store = Run(skills.POINTS, {"model": model}, tmp_path)
        skills._write_config(store, {"model": model})
        frame = skills._documents_frame(eset, torch.tensor(correct), torch.tensor([10, 10]))
        store.point({"kind": "baseline", "size": "sweep"}, lambda frame=frame: frame)
    docs = skills.load_points(tmp_path)
    assert docs.height == 4
    assert {m: sorted(p["correct"].to_list()) for (m,), p in docs.group_by(["model"])} == \
        {"model-a": [1, 2], "model-b": [5, 6]}


def test_each_row_says_how_many_measured_coefficients_support_it():
    curves = {("code", 5): {1.0: {"code": 0.8, "text": 0.9}, 1.5: {"code": 0.5, "text": 0.7},
                            2.0: {"code": 0.3, "text": 0.5}},
              ("python", 5): {1.5: {"python": 0.5, "text": 0.7}}}
    table = equal_damage_table(_docs(curves, 40), levels=(0.7,), n_boot=50)
    counts = {r["vector"]: r["n_coefs"] for r in table.iter_rows(named=True)}
    assert counts == {"text − code": 3, "text − python": 1, "(text − code) − (text − python)": 1}


def test_each_crossing_names_the_set_and_text_tokens_it_rests_on():
    """A curve whose first points are on the small sweep set and later ones on the headline set: the 70%
    crossing between two sweep points says 'sweep' and the sweep's text tokens; the 50% one, between a sweep
    and a headline point, names both."""
    curves = {("code", 5): {1.0: {"code": 0.9, "text": 0.95}, 1.5: {"code": 0.6, "text": 0.8},
                            2.0: {"code": 0.3, "text": 0.5}}}
    docs = _docs(curves, 40)
    sweep = docs.filter(pl.col("coef").is_in([1.0, 1.5]) | (pl.col("layer") == -1)).with_columns(
        pl.lit("sweep").alias("size"), pl.col("count") // 5)  # fewer tokens per document
    docs = pl.concat([sweep, docs.filter((pl.col("coef") == 2.0) | (pl.col("layer") == -1))])
    table = equal_damage_table(docs, levels=(0.7, 0.5), n_boot=50)
    at = {r["level"]: (r["at_sets"], r["text_tokens"]) for r in table.iter_rows(named=True)}
    assert at[0.7] == ("sweep", f"{40 * (TOKENS // 5):,}")
    assert at[0.5] == ("sweep / headline", f"{40 * (TOKENS // 5):,} / {40 * TOKENS:,}")
