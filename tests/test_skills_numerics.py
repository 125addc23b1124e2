"""Two numerics on the same skills points (skills_numerics): identical runs differ by exactly 0, a planted
drop in one run is found with an interval that excludes 0 and a null is not, runs over other documents are
refused, and the report puts the comparison beside the fullest run."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from steer_trace.errors import UserError
from studies.skills.numerics import numerics_table, same_but_numerics

TOKENS = 40


def _run(n_docs: int, scale: float = 1.0, seed: int = 0, dtype: str = "float32", noise_seed: int | None = None):
    """Per-document rows of one run: a baseline and one steered code-vector point at layer 5, c = 1.5, where
    code drops to 60% and text to 90%; `scale` multiplies the steered code accuracy of this run only."""
    rng = np.random.default_rng(seed)
    p = {d: np.clip(0.6 + rng.normal(0, 0.1, n_docs), 0.05, 0.95) for d in ("text", "code")}
    noise = np.random.default_rng(seed if noise_seed is None else noise_seed)
    rows = []
    for layer, target, coef, rel in ((-1, "", 0.0, {"text": 1.0, "code": 1.0}),
                                     (5, "code", 1.5, {"text": 0.9, "code": 0.6 * scale})):
        for domain in p:
            correct = noise.binomial(TOKENS, np.clip(p[domain] * rel[domain], 0, 1))
            rows += [{"doc": i, "domain": domain, "language": domain, "correct": int(c), "count": TOKENS,
                      "model": "m", "points_run": dtype, "dtype": dtype, "target": target, "control": "none",
                      "layer": layer, "coef": coef, "size": "sweep"} for i, c in enumerate(correct)]
    return pl.DataFrame(rows)


def _row(table, layer, domain):
    return table.filter((pl.col("layer") == layer) & (pl.col("domain") == domain)).row(0, named=True)


def test_identical_runs_differ_by_exactly_zero():
    run = _run(50)
    table = numerics_table(run, run.with_columns(pl.lit("bfloat16").alias("dtype")), n_boot=200)
    assert table.height == 4  # baseline and the steered point, two domains each
    assert (table["difference"] == 0).all() and (table["difference_lo"] == 0).all()
    assert (table["difference_hi"] == 0).all()
    steered = _row(table, 5, "code")
    assert steered["reference"] == pytest.approx(0.6, abs=0.05) and steered["n_tokens"] == 50 * TOKENS


def test_a_planted_drop_is_found_and_a_null_is_not():
    reference = _run(200, noise_seed=1)
    dropped = numerics_table(reference, _run(200, scale=0.8, noise_seed=2), n_boot=400)
    hit = _row(dropped, 5, "code")  # planted: 0.6 x 0.8 - 0.6 = -0.12 relative
    assert hit["difference"] == pytest.approx(-0.12, abs=0.04) and hit["difference_hi"] < 0
    covered = [row["difference_lo"] <= 0 <= row["difference_hi"]  # a null: independent noise in each run
               for seed in range(2, 12) for row in numerics_table(reference, _run(200, noise_seed=seed),
                                                                  n_boot=300).iter_rows(named=True)]
    assert np.mean(covered) >= 0.85  # nominal 0.95, over 40 intervals


def test_runs_over_other_documents_are_refused():
    other = _run(30).with_columns(pl.when(pl.col("doc") == 0).then(TOKENS - 1).otherwise(pl.col("count"))
                                  .alias("count"))
    with pytest.raises(UserError, match="different token counts"):
        numerics_table(_run(30), other)


def test_only_runs_that_differ_in_numerics_alone_are_compared():
    base = {"model": "m", "vectors": "v", "documents": {"sweep": "d"}, "dtype": "float32", "device": "cpu"}
    assert same_but_numerics(base, {**base, "dtype": "bfloat16"})
    assert not same_but_numerics(base, dict(base))  # the same run
    assert not same_but_numerics(base, {**base, "dtype": "bfloat16", "vectors": "w"})  # other vectors


def _two_runs(root, bigger_run: bool = False):
    """Two points runs of one model "m", float32 (1 steered point) and bfloat16 (2), at layer 5; with
    `bigger_run` a third, bfloat16 over other documents, with 3 points (the fullest)."""
    import torch

    from steer_trace.cache import Run
    from studies.skills import run as skills

    eset = skills.EvalSet("sweep", ["text", "code", "python"] * 2, ["text", "cpp", "python"] * 2, list("abcdef"))
    counts = torch.full((6,), TOKENS)
    runs = [("float32", {1.5: [20, 20, 20, 10, 11, 12]}),
            ("bfloat16", {1.5: [21, 20, 20, 10, 11, 12], 2.0: [10, 10, 10, 5, 5, 5]})]
    if bigger_run:
        runs.append(("bfloat16", {1.0: [25] * 6, 1.5: [9] * 6, 2.0: [8] * 6}))
    for i, (dtype, points) in enumerate(runs):
        config = {"model": "m", "vectors": "v", "dtype": dtype, "device": "cpu", **({"documents": 2} if i > 1 else {})}
        store = Run(skills.POINTS, config, root)
        skills._write_config(store, config)
        base = skills._documents_frame(eset, torch.tensor([30, 30, 30, 20, 20, 20]), counts)
        store.point({"kind": "baseline", "size": "sweep"}, lambda frame=base: frame)
        for coef, correct in points.items():
            frame = skills._documents_frame(eset, torch.tensor(correct), counts)
            store.point({"kind": "steered", "target": "code", "layer": 5, "coef": coef, "control": "none",
                         "size": "sweep"}, lambda frame=frame: frame)


def test_report_compares_a_bfloat16_run_with_the_float32_points(tmp_path):
    """The report is the fullest run's (bfloat16, said in its title), checked against float32 on the point
    both scored."""
    from studies.skills import report as skills_report

    _two_runs(tmp_path)
    written = skills_report.write(tmp_path, tmp_path / "out", n_boot=50)
    text = (tmp_path / "out" / "m.md").read_text()
    assert text.startswith("# Skills: m (bfloat16;")
    assert "## Numerics: bfloat16 against float32 on the points both scored" in text
    table = pl.read_csv(tmp_path / "out" / "m_numerics_bfloat16_float32.csv")
    assert tmp_path / "out" / "m_numerics_bfloat16_float32.csv" in written
    assert sorted(table.filter(pl.col("layer") == 5)["coef"].unique().to_list()) == [1.5]
    text_row = table.filter((pl.col("layer") == 5) & (pl.col("domain") == "text")).row(0, named=True)
    assert text_row["difference"] == pytest.approx(1 / 50)  # text docs 0 and 3: (21 + 10 - 20 - 10) / (30 + 20)


def test_figures_draw_one_run_of_a_model(tmp_path, monkeypatch):
    """Each figure of a model takes the rows of one points run (the fullest), not both numerics pooled."""
    from studies.skills import plots

    _two_runs(tmp_path)
    drawn = {}
    for name in ("curve_figure", "language_figure"):
        def capture(rows, *args, name=name, real=getattr(plots, name)):
            drawn.setdefault(name, []).append(rows)
            return real(rows, *args)
        monkeypatch.setattr(plots, name, capture)
    plots.build(tmp_path, tmp_path / "figures")
    assert set(drawn) == {"curve_figure", "language_figure"}
    for rows in (r for frames in drawn.values() for r in frames):
        assert rows["dtype"].unique().to_list() == ["bfloat16"] and rows["points_run"].n_unique() == 1


def test_a_float32_run_is_checked_against_the_bfloat16_run_of_its_documents(tmp_path):
    """The report's run (the fullest) scored other documents: float32 is compared with the bfloat16 run that
    scored its documents, not with the report's run."""
    from studies.skills import report as skills_report

    _two_runs(tmp_path, bigger_run=True)
    skills_report.write(tmp_path, tmp_path / "out", n_boot=50)
    text = (tmp_path / "out" / "m.md").read_text()
    assert "3 steered points" in text and "## Numerics: bfloat16 against float32" in text
    table = pl.read_csv(tmp_path / "out" / "m_numerics_bfloat16_float32.csv")
    text_row = table.filter((pl.col("layer") == 5) & (pl.col("domain") == "text")).row(0, named=True)
    assert text_row["difference"] == pytest.approx(1 / 50)
