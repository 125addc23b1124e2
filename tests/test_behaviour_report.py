"""`behaviours report`: verdicts from cached per-question scores, no model. A planted shift beyond
the random control is found, a null is not, and a letter table whose precondition fails is
'not testable'."""
from __future__ import annotations

import numpy as np
import pytest
import polars as pl
from click.testing import CliRunner

from steer_trace.cache import Run
from studies.behaviours import report
from tasks.cli import main

N = 60


def _row(behaviour, vector, direction, mult, scores, labels, scoring="content", layer=14, **extra):
    return {"model": "tiny", "profile": "paper", "split_rule": "paper", "scoring": scoring,
            "vector_source": scoring, "relative": True, "behaviour": behaviour, "vector": vector, "layer": layer,
            "layers": str(layer), "direction": direction, "coef": float(mult), "split": "test",
            "q_id": list(range(N)), "q_label": labels, "q_p_matching": [float(v) for v in scores],
            "p_matching_balanced": float(np.mean(scores)), "n_questions": N, **extra}


def _tables(root):
    rng = np.random.default_rng(0)
    labels = ["A", "B"] * (N // 2)
    base = rng.uniform(0.2, 0.6, N)
    rows = []
    for behaviour, planted in (("myopic", 0.2), ("sycophancy", 0.0)):
        rows.append(_row(behaviour, "none", "default", 0, base, labels))
        for layer in (9, 14):
            rows.append(_row(behaviour, behaviour, "add", 1, base + planted + rng.normal(0, 0.05, N), labels,
                             layer=layer))
            rows.append(_row(behaviour, "random", "add", 1, base + rng.normal(0, 0.05, N), labels, layer=layer))
    # letter scoring on a model that answers by position: greedy text changes with every rotation
    chance = {"order_consistency": 0.45, "consistency_chance": 0.5}
    rows.append(_row("agreeableness", "none", "default", 0, base, labels, scoring="letter", **chance))
    rows.append(_row("agreeableness", "agreeableness", "add", 1, base + 0.3, labels, scoring="letter", **chance))
    rows.append(_row("agreeableness", "random", "add", 1, base, labels, scoring="letter", **chance))
    Run("behaviours_single", {"synthetic": 1}, root).finish([pl.DataFrame(rows)])


def _verdicts(text: str) -> dict:
    out = {}
    mode = None
    for line in text.splitlines():
        if line.startswith("## Single steering"):
            mode = "letter" if "letter scoring" in line else "content"
        if line.startswith("Layer "):
            layer = int(line.split()[1].rstrip(":"))
        if line.startswith("| behaviour"):
            header = [c.strip() for c in line.strip("|").split("|")]
        elif line.startswith("| ") and mode and "random draws" not in header:  # not the spread table
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[(mode, layer, cells[0])] = cells[header.index("verdict")]
    return out


def test_report_finds_the_planted_shift_and_not_the_null(tmp_path):
    root = tmp_path / "results"
    _tables(root)
    [path] = report.write(root, tmp_path / "out")
    verdicts = _verdicts(path.read_text())
    assert verdicts[("content", 14, "myopic")] == "moves"
    assert verdicts[("content", 9, "myopic")] == "moves"
    assert verdicts[("content", 14, "sycophancy")].startswith("no effect beyond control (detectable")
    assert verdicts[("letter", 14, "agreeableness")] == "not testable (answers by position)"
    assert "Layer 9 (the paper's 10)" in path.read_text() and "Layer 14 (the paper's 15)" in path.read_text()


def test_a_shift_where_the_model_stopped_answering_gets_no_verdict(tmp_path):
    """Letter scoring, precondition passing: the same planted shift beyond the control is 'moves' while the
    letters keep their probability, and no verdict once the steered row keeps under half of it or its greedy
    answers collapse onto one letter."""
    root = tmp_path / "results"
    rng = np.random.default_rng(1)
    labels = ["A", "B"] * (N // 2)
    base = rng.uniform(0.3, 0.6, N)
    passing = {"order_consistency": 0.9, "consistency_chance": 0.5, "answer_mass": 0.98, "collapsed": False}
    rows = [_row("myopic", "none", "default", 0, base, labels, scoring="letter", **passing)]
    for layer, mass, top in ((9, 0.9, 0.7), (14, 0.3, 0.7), (19, 0.95, 1.0)):
        rows.append(_row("myopic", "myopic", "add", 1, base + 0.2 + rng.normal(0, 0.05, N), labels, scoring="letter",
                         layer=layer, answer_mass=mass, top_answer_share=top, collapsed=top >= 0.95))
        rows.append(_row("myopic", "random", "add", 1, base + rng.normal(0, 0.05, N), labels, scoring="letter",
                         layer=layer, answer_mass=0.95))
    Run("behaviours_single", {"synthetic": 2}, root).finish([pl.DataFrame(rows)])
    [path] = report.write(root, tmp_path / "out")
    verdicts = _verdicts(path.read_text())
    assert verdicts[("letter", 9, "myopic")] == "moves"
    assert verdicts[("letter", 14, "myopic")].startswith("no verdict: the model no longer answers (answer mass 0.30")
    assert verdicts[("letter", 19, "myopic")] == \
        "no verdict: the answers collapsed onto one option (1.00 of the prompts)"


def test_verdict_signs():
    from steer_trace.stats import Shift

    up, down, none = (Shift(0.1, 0.05, 0.15, 0.001, 50, 0.1, 0.04), Shift(-0.1, -0.15, -0.05, 0.001, 50, 0.1, 0.04),
                      Shift(0.0, -0.02, 0.02, 0.9, 50, 0.1, 0.04))
    assert report.verdict("add", up, True) == "moves" and report.verdict("subtract", down, None) == "moves"
    assert report.verdict("add", down, True) == "moves, wrong way"
    # below the control the wrong way, but the vector's own shift is not clear of 0
    assert report.verdict("add", down, True, shift=none).startswith("trails the control only")
    assert report.verdict("subtract", up, True, shift=up) == "moves, wrong way"
    assert report.verdict("add", none, True) == "no effect beyond control (detectable 0.04)"
    assert report.verdict("add", up, False).startswith("not testable")
    # beyond the control, but the vector's own shift is not clear of 0: the control moved the other way
    assert report.verdict("add", up, True, shift=none).startswith("beats the control only")
    assert report.verdict("add", up, True, shift=up) == "moves"


def test_false_discovery_rate_over_a_section():
    from steer_trace.stats import Shift, bh_qvalues

    assert np.allclose(bh_qvalues([0.01, 0.04, 0.03, 0.2]), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2])
    assert np.isnan(bh_qvalues([float("nan"), 0.5])[0]) and bh_qvalues([float("nan"), 0.5])[1] == 0.5
    # 20 rows: one strong effect, one at p = 0.04, eighteen nulls: alone both "move", after BH only the strong one
    strong, weak = Shift(0.2, 0.1, 0.3, 0.0005, 50, 0.1, 0.04), Shift(0.05, 0.01, 0.09, 0.04, 50, 0.1, 0.04)
    null = Shift(0.0, -0.02, 0.02, 0.6, 50, 0.1, 0.04)
    entries = [{"shift": s, "against": s, "verdict": "moves" if s.p < 0.05 else "no effect"}
               for s in [strong, weak] + [null] * 18]
    verdicts = [e["verdict"] for e in report.with_fdr(entries)]
    assert verdicts[0] == "moves" and verdicts[1] == "moves at p < 0.05, not after FDR (q 0.40)"
    assert set(verdicts[2:]) == {"no effect"}
    # a wrong-way row is a claim too: the same correction applies
    wrong = [{"shift": weak, "against": weak, "verdict": "moves, wrong way"}] + entries[2:]
    assert report.with_fdr(wrong)[0]["verdict"] == "moves, wrong way at p < 0.05, not after FDR (q 0.60)"


def test_report_command_without_results_says_so(tmp_path):
    result = CliRunner().invoke(main, ["behaviours", "report", "--results", str(tmp_path / "results")])
    assert result.exit_code == 2 and "does not exist" in result.output  # as `figures` and `skills report`
    (tmp_path / "results").mkdir()
    result = CliRunner().invoke(main, ["behaviours", "report", "--results", str(tmp_path / "results")])
    assert result.exit_code == 0 and "no behaviour results" in result.output


def test_refreshed_shifts_replace_stale_stored_statistics():
    from studies.behaviours.scoring import refreshed_shifts
    from steer_trace.stats import paired_shift

    rng = np.random.default_rng(1)
    labels = ["Yes", "No"] * (N // 2)
    base = rng.uniform(0.3, 0.7, N)
    moved = base + np.where(np.array(labels) == "Yes", 0.15, -0.15) + 0.02
    table = pl.DataFrame([_row("agreeableness", "none", "default", 0, base, labels),
                          _row("agreeableness", "agreeableness", "add", 1, moved, labels)]).with_columns(
        shift_p=pl.lit(0.65), shift_mde=pl.lit(0.12), split=pl.lit("test"))  # what an older statistic stored
    row = refreshed_shifts(table).filter(pl.col("direction") == "add").row(0, named=True)
    expected = paired_shift(moved, base, labels)
    assert row["shift_p"] == pytest.approx(expected.p) and row["shift_p"] < 0.01
    assert row["shift_mde"] == pytest.approx(expected.mde) and row["shift_mde"] < 0.12


def test_variants_get_their_own_sections_and_other_files_and_interference_are_reported(tmp_path):
    """A plain-mean given-order run beside the default one is never paired with it; a --dataset behaviour
    (not one of the paper's five) and an interference table are reported with their controls."""
    root = tmp_path / "results"
    rng = np.random.default_rng(2)
    labels = ["A", "B"] * (N // 2)
    base = rng.uniform(0.2, 0.6, N)
    plain = {"plain_mean": True, "orders": "given", "slices": "plain"}
    rows = [_row("myopic", "none", "default", 0, base, labels, scoring="letter"),
            _row("myopic", "myopic", "add", 1, base + 0.2, labels, scoring="letter"),
            _row("myopic", "random", "add", 1, base, labels, scoring="letter"),
            _row("myopic", "none", "default", 0, base + 0.3, labels, scoring="letter", **plain),
            _row("myopic", "myopic", "add", 1, base + 0.3, labels, scoring="letter", **plain),
            _row("myopic", "random", "add", 1, base + 0.3, labels, scoring="letter", **plain)]
    Run("behaviours_single", {"synthetic": 2}, root).finish([pl.DataFrame(rows)])
    seeded = {"split_rule": "seeded"}
    inter = [_row("survival_instinct", "none", "default", 0, base, labels, **seeded),
             _row("survival_instinct", "survival_instinct", "add", 1, base + 0.2, labels, **seeded),
             _row("survival_instinct", "random:survival_instinct", "add", 1, base, labels, **seeded)]
    Run("behaviours_interference", {"synthetic": 3}, root).finish([pl.DataFrame(inter)])
    text = report.write(root, tmp_path / "out")[0].read_text()
    single = [line for line in text.splitlines() if line.startswith("## Single steering")]
    assert len(single) == 2 and any("the paper's plain mean over pairs, questions in their given order" in line
                                    for line in single)
    myopic = [line for line in text.splitlines() if line.startswith("| myopic |") and line.count("|") != 11]
    assert len(myopic) == 2 and all("moves" in line for line in myopic[:1])
    assert any("+0.000 [" in line and "no effect beyond control" in line for line in myopic)  # the plain run: null
    assert "## Interference — content scoring, content vectors" in text and "seeded split" in text
    [survival] = [line for line in text.splitlines() if "survival_instinct (its own)" in line]
    assert survival.split("|")[-2].strip() == "moves"


def test_vector_quality_shows_the_rows_measured_on_the_vector_as_built(tmp_path):
    """A letter-balanced variant shows the group-balanced quality rows, not an older table that measured a
    plain mean of the same pairs; content and plain-mean letter variants show plain-mean rows."""
    root = tmp_path / "results"

    def quality(source, norm, **extra):
        return {"model": "tiny", "profile": "paper", "behaviour": "myopic", "layer": 14, "vector_source": source,
                "n_pairs": 500, "norm": norm, "norm_null_mean": 1.0, "norm_null_95": 2.0, "norm_p": 0.5,
                "reliability": 0.1, "reliability_null_95": 0.2, "reliability_p": 0.5, "heldout_auc": 0.5, **extra}

    Run("behaviours_quality", {"old": 1}, root).finish([pl.DataFrame([quality("letter", 11.0),
                                                                       quality("content", 33.0)])])
    Run("behaviours_quality", {"new": 1}, root).finish(
        [pl.DataFrame([quality("letter", 22.0, estimator="group-balanced")])])
    # rows cached before the column existed take it from their run's config
    Run("behaviours_quality", {"new": 2, "estimator": "group-balanced"}, root).finish(
        [pl.DataFrame([quality("letter", 44.0, behaviour="wealth_seeking"),
                       quality("letter", 55.0, behaviour="sycophancy", estimator="group-balanced")])])
    lines = report.quality_section(root, "tiny", "paper", "letter", ["wealth_seeking", "sycophancy"])
    assert [line.split("|")[4].strip() for line in lines if line.startswith("| ")][1:] == ["55.00", "44.00"]
    norm = {True: "11.00", False: "22.00"}
    for plain_mean in (False, True):
        lines = report.quality_section(root, "tiny", "paper", "letter", ["myopic"], plain_mean)
        rows = [line for line in lines if line.startswith("| myopic")]
        assert len(rows) == 1 and rows[0].split("|")[4].strip() == norm[plain_mean]
    [content] = [ln for ln in report.quality_section(root, "tiny", "paper", "content", ["myopic"]) if "myopic" in ln]
    assert content.split("|")[4].strip() == "33.00"


def test_a_model_with_only_its_precondition_gets_a_report_and_page_values(tmp_path):
    """A model measured only for the precondition (no steering yet) is reported, with the order consistency's
    Wilson interval and exact binomial p against chance (checked against scipy), and a verdict as the command's:
    above chance by two standard errors passes, by one is undecided, less is at chance."""
    from scipy.stats import binomtest

    from studies.behaviours import pages

    root = tmp_path / "results"
    labels, base = ["A", "B"] * (N // 2), np.full(N, 0.5)
    rows = [_row(behaviour, "none", "default", 0, base, labels, scoring="letter", layer=-1, model="big",
                 order_consistency=k / N, consistency_chance=0.5)
            for behaviour, k in (("myopic", 48), ("wealth_seeking", 37), ("sycophancy", 33))]
    Run("behaviours_precondition", {"synthetic": 2}, root).finish([pl.DataFrame(rows)])
    [path] = report.write(root, tmp_path / "out")
    text = path.read_text()
    assert text.startswith("# Behaviours on big")
    values = pages.pages(root)
    words = {"passes": "ok", "undecided": "UNDECIDED", "at chance": "AT CHANCE"}
    for behaviour, k, verdict in (("myopic", 48, "passes"), ("wealth_seeking", 37, "undecided"),
                                  ("sycophancy", 33, "at chance")):
        test = binomtest(k, N, 0.5, alternative="greater")
        ci = binomtest(k, N, 0.5).proportion_ci(method="wilson")  # two-sided 95%
        lo, hi, p = report.consistency_interval({"order_consistency": k / N, "consistency_chance": 0.5,
                                                 "n_questions": N})
        assert (lo, hi, p) == pytest.approx((ci.low, ci.high, test.pvalue), abs=1e-6)
        assert values[f"big.pre.{behaviour}"] == f"{k / N:.2f}"
        assert values[f"big.pre.{behaviour}.ci"] == f"{ci.low:.2f}–{ci.high:.2f}"
        assert values[f"big.pre.{behaviour}.passes"] == verdict
        row = next(line for line in text.splitlines() if line.startswith(f"| {behaviour} "))
        assert f"{ci.low:.2f}–{ci.high:.2f}" in row and words[verdict] in row


def test_page_values_say_whether_the_steered_model_still_answers(tmp_path):
    """A steered row's answer mass and commonest-answer share, and its random control's, reach the page values
    (a collapse to one letter under the vector and under random directions alike is visible in the docs), named
    with the coefficient where a layer has two."""
    from studies.behaviours import pages

    root = tmp_path / "results"
    labels, base = ["A", "B"] * (N // 2), np.full(N, 0.5)
    fine = {"order_consistency": 0.8, "consistency_chance": 0.5}
    rows = [_row("myopic", "none", "default", 0, base, labels, scoring="letter", answer_mass=0.99,
                 top_answer_share=0.52, **fine),
            _row("myopic", "myopic", "add", 1, base, labels, scoring="letter", answer_mass=0.9, top_answer_share=1.0,
                 **fine),
            _row("myopic", "random", "add", 1, base, labels, scoring="letter", answer_mass=0.6,
                 top_answer_share=0.97, **fine)]
    # a second coefficient at the same layer: its values are named with the coefficient too
    rows += [_row("myopic", vector, "add", 0.4, base, labels, scoring="letter", answer_mass=mass,
                  top_answer_share=0.5, **fine) for vector, mass in (("myopic", 0.95), ("random", 0.97))]
    Run("behaviours_single", {"synthetic": 3}, root).finish([pl.DataFrame(rows)])
    values = pages.pages(root)
    prefix = "tiny.letter.L14.myopic"
    assert values[f"{prefix}.unsteered_top"] == "0.52"
    assert (values[f"{prefix}.add.x1.mass"], values[f"{prefix}.add.x1.top"]) == ("0.90", "1.00")
    assert (values[f"{prefix}.add.x1.random_mass"], values[f"{prefix}.add.x1.random_top"]) == ("0.60", "0.97")
    assert (values[f"{prefix}.add.x0.4.mass"], values[f"{prefix}.add.x0.4.random_mass"]) == ("0.95", "0.97")
    assert values[f"{prefix}.add.x0.4.coef"] == "+0.4" and values[f"{prefix}.add.x1.coef"] == "+1"


def test_verdict_counts_name_the_testable_rows():
    """The page's tally of a section: 'not testable' rows are left out, each kind of outcome counted and named."""
    from studies.behaviours import pages

    def entry(verdict, coef):
        return {"verdict": verdict, "row": {"coef": coef}}

    found = [(13, "wealth_seeking", entry("moves", 0.1)), (13, "wealth_seeking", entry("moves, wrong way", -0.2)),
             (9, "myopic", entry("not testable (answers by position)", 0.05)),
             (9, "agreeableness", entry("no verdict: the answers collapsed onto one option (1.00 of the prompts)", 1)),
             (9, "agreeableness", entry("no effect beyond control (detectable 0.02)", -1))]
    counts = pages._verdict_counts("m.letter.single", found)
    assert counts["m.letter.single.n_testable"] == "4" and counts["m.letter.single.n_other"] == "1"
    assert counts["m.letter.single.moves"] == "wealth_seeking L13 ×+0.1"
    assert counts["m.letter.single.wrong"] == "wealth_seeking L13 ×-0.2"
    assert counts["m.letter.single.no_verdict"] == "agreeableness L9 ×+1"
