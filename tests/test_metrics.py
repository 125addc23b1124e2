"""Metrics on hand-built inputs: A/B matching summary, bootstrap CIs, token-weighted accuracy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from steer_trace.metrics import COLLAPSE, ab_summary, accuracy, accuracy_ci, bootstrap_ci

A_ID, B_ID, OTHER_ID = 330, 347, 9  # arbitrary vocabulary ids; OTHER is neither answer
IDS = [A_ID, B_ID]


def summary(probs, greedy, matching, **kw):
    return ab_summary(torch.tensor(probs), torch.tensor(greedy), IDS, torch.tensor(matching), **kw)


def test_ab_summary_hand_computed():
    probs = [[0.6, 0.2], [0.1, 0.3], [0.25, 0.25], [0.0, 0.5]]
    greedy = [A_ID, B_ID, OTHER_ID, B_ID]
    matching = [0, 1, 1, 0]  # matching answers: A, B, B, A
    s = summary(probs, greedy, matching)
    assert s.n == 4
    # renormalised p(matching): .6/.8, .3/.4, .25/.5, 0/.5
    assert s.p_matching == pytest.approx((0.75 + 0.75 + 0.5 + 0.0) / 4)
    # greedy matches on rows 0 and 1; row 2 is faulty (counts as not matching); row 3 answers B for A
    assert s.matching_score == pytest.approx(0.5)
    assert s.faulty == pytest.approx(0.25)
    assert s.answer_mass == pytest.approx((0.8 + 0.4 + 0.5 + 0.5) / 4)
    assert s.top_answer_share == pytest.approx(0.5)  # B twice out of 4
    assert s.collapsed is False


def test_renormalisation_ignores_mass_outside_the_answers():
    # same A:B ratio, very different answer mass -> same p(matching)
    low = summary([[0.003, 0.001]], [OTHER_ID], [0])
    high = summary([[0.6, 0.2]], [A_ID], [0])
    assert low.p_matching == pytest.approx(0.75)
    assert high.p_matching == pytest.approx(0.75)
    assert low.answer_mass == pytest.approx(0.004)
    assert low.faulty == 1.0 and low.matching_score == 0.0
    assert high.faulty == 0.0 and high.matching_score == 1.0


def test_matching_index_selects_the_column():
    probs = [[0.9, 0.1]] * 2
    s = summary(probs, [A_ID, A_ID], [1, 1])  # matching answer is B both times
    assert s.p_matching == pytest.approx(0.1)
    assert s.matching_score == 0.0


def test_all_faulty():
    s = summary([[0.01, 0.02]] * 5, [OTHER_ID] * 5, [0, 1, 0, 1, 0])
    assert s.faulty == 1.0
    assert s.matching_score == 0.0
    assert s.answer_mass == pytest.approx(0.03)


def test_collapse_onto_one_letter_on_balanced_data():
    n = 20
    matching = [0, 1] * (n // 2)
    s = summary([[0.2, 0.7]] * n, [B_ID] * n, matching)
    assert s.collapsed is True
    assert s.top_answer_share == 1.0
    assert s.matching_score == pytest.approx(0.5)  # the paper's "collapse gives about 0.5"
    assert s.faulty == 0.0


@pytest.mark.parametrize("n_b, collapsed", [(19, True), (18, False)])
def test_collapse_threshold(n_b, collapsed):
    n = 20
    assert COLLAPSE == 0.95
    greedy = [B_ID] * n_b + [A_ID] * (n - n_b)
    s = summary([[0.5, 0.5]] * n, greedy, [0] * n)
    assert s.top_answer_share == pytest.approx(n_b / n)
    assert s.collapsed is collapsed


def test_p_matching_ci_and_as_dict():
    rng = np.random.default_rng(1)
    probs = torch.tensor(rng.uniform(0.01, 1, size=(50, 2)))
    matching = torch.tensor(rng.integers(0, 2, size=50))
    greedy = torch.where(probs[:, 0] > probs[:, 1], A_ID, B_ID)
    s = ab_summary(probs, greedy, IDS, matching)
    lo, hi = s.p_matching_ci
    assert lo < s.p_matching < hi
    assert hi - lo < 0.3
    d = s.as_dict()
    assert "p_matching_ci" not in d
    assert (d["p_matching_lo"], d["p_matching_hi"]) == (lo, hi)
    assert d["n"] == 50 and d["matching_score"] == s.matching_score


def test_bootstrap_ci_constant_and_empty():
    assert bootstrap_ci([0.3] * 10) == pytest.approx((0.3, 0.3))
    lo, hi = bootstrap_ci([])
    assert math.isnan(lo) and math.isnan(hi)


def test_bootstrap_ci_width_matches_normal_theory():
    rng = np.random.default_rng(0)
    values = rng.normal(2.0, 1.0, size=400)
    lo, hi = bootstrap_ci(values, n_boot=2000, seed=3)
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert lo < values.mean() < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_ci(values, n_boot=2000, seed=3) == (lo, hi)  # seeded: reproducible
    assert bootstrap_ci(values, n_boot=2000, seed=4) != (lo, hi)


def test_bootstrap_ci_is_weighted():
    values = np.array([0.0] * 10 + [1.0] * 10)
    weights = np.array([1.0] * 10 + [9.0] * 10)  # weighted mean 0.9
    lo, hi = bootstrap_ci(values, weights, n_boot=2000)
    assert lo < 0.9 < hi
    assert lo > 0.6  # the unweighted mean (0.5) is far outside


def test_accuracy_is_token_weighted():
    correct, counts = [1, 90], [10, 100]
    assert accuracy(correct, counts) == pytest.approx(91 / 110)
    assert accuracy(np.array(correct), np.array(counts)) == pytest.approx(91 / 110)
    assert accuracy(correct, counts) != pytest.approx((0.1 + 0.9) / 2)
    assert math.isnan(accuracy([0], [0]))


def test_accuracy_ci_contains_accuracy():
    rng = np.random.default_rng(2)
    counts = rng.integers(20, 200, size=40)
    correct = rng.binomial(counts, 0.6)
    acc = accuracy(correct, counts)
    lo, hi = accuracy_ci(correct, counts)
    assert lo < acc < hi
    assert 0.5 < lo and hi < 0.7
    # a document with no predicted tokens does not count
    assert accuracy_ci([3, 0], [4, 0]) == pytest.approx((0.75, 0.75))
