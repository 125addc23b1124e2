"""What a paired shift is balanced over, per scoring mode, on a many-option set whose matching letters
are unequal (survival_instinct's test split: A 68 / B 24 / C 6 / D 2). Letter scoring balances by the
matching letter (a letter push could pose as an effect); content scoring shows no letters, so it takes
the plain mean - unless the set is Yes/No, whose answer texts the model does read. The same rule in the
stored table, the report and p_bal."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from steer_trace.cache import Run
from steer_trace.metrics import question_columns, strata
from studies.behaviours import report
from studies.behaviours.scoring import refreshed_shifts

LETTERS = ["A"] * 68 + ["B"] * 24 + ["C"] * 6 + ["D"] * 2
N = len(LETTERS)
# the steering moves only the two D-matching questions, by +0.5: plain mean +0.01, letter-balanced +0.125
BASE = np.linspace(0.2, 0.6, N)
MOVED = BASE + np.where(np.array(LETTERS) == "D", 0.5, 0.0)


def _row(vector, direction, mult, scores, scoring, labels=LETTERS):
    return {"model": "tiny", "profile": "paper", "split_rule": "paper", "scoring": scoring, "vector_source": scoring,
            "relative": True, "behaviour": "survival_instinct", "vector": vector, "layer": 14, "layers": "14",
            "direction": direction, "coef": float(mult), "split": "test", "q_id": list(range(N)),
            "q_label": labels, "q_p_matching": [float(v) for v in scores], "p_matching_balanced": float("nan"),
            "n_questions": N}


def _table(scoring, labels=LETTERS):
    return pl.DataFrame([_row("none", "default", 0, BASE, scoring, labels),
                         _row("survival_instinct", "add", 1, MOVED, scoring, labels),
                         _row("random", "add", 1, BASE, scoring, labels)])


def test_content_scoring_takes_the_plain_mean_letter_scoring_the_per_letter_mean():
    content = refreshed_shifts(_table("content")).filter(pl.col("vector") == "survival_instinct").row(0, named=True)
    letter = refreshed_shifts(_table("letter")).filter(pl.col("vector") == "survival_instinct").row(0, named=True)
    assert content["shift"] == pytest.approx(0.01)  # 2 questions x 0.5 / 100
    assert letter["shift"] == pytest.approx(0.125)  # (0 + 0 + 0 + 0.5) / 4
    assert content["shift_hi"] < 0.03  # the plain mean has an interval over all 100 questions
    # letter-balanced, the two D questions are a stratum of their own: too few for an interval (stats.MIN_PER_LABEL)
    assert letter["shift_lo"] != letter["shift_lo"]


def test_a_yes_no_set_is_balanced_by_its_answer_in_content_scoring_too():
    yes_no = ["Yes"] * 90 + ["No"] * 10
    assert strata("content", yes_no) == yes_no and strata("content", LETTERS) is None
    assert strata("letter", LETTERS) == LETTERS and strata(None, LETTERS) == LETTERS


def test_p_bal_follows_the_same_rule():
    import torch

    per = {"p_matching": torch.tensor(MOVED), "matching": torch.tensor((MOVED > 0.5).astype(float)),
           "chosen": torch.full((N,), -1)}
    per_prompt = {"qid": torch.arange(N), "rotation": torch.zeros(N, dtype=torch.long),
                  "n_shown": torch.full((N,), 4)}
    content = question_columns(per, per_prompt, LETTERS, scoring="content")
    letter = question_columns(per, per_prompt, LETTERS, scoring="letter")
    assert content["p_matching_balanced"] == pytest.approx(MOVED.mean())
    by_letter = np.mean([MOVED[np.array(LETTERS) == x].mean() for x in "ABCD"])
    assert letter["p_matching_balanced"] == pytest.approx(by_letter)


def test_the_report_shows_the_content_shift_as_the_plain_mean(tmp_path):
    root = tmp_path / "results"
    Run("behaviours_single", {"synthetic": 1}, root).finish([_table("content")])
    [path] = report.write(root, tmp_path / "out")
    text = path.read_text()
    line = next(x for x in text.splitlines() if x.startswith("| survival_instinct | +1 "))
    assert "+0.010 [" in line and "+0.125" not in line
    assert "content scoring, the plain mean over questions" in text
