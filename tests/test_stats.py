"""Paired shifts, detectable effects and vector-quality statistics on synthetic data with known truth."""
from __future__ import annotations

import numpy as np
import pytest

from steer_trace.stats import (
    auc,
    balanced_mean,
    group_mean,
    heldout_auc,
    mde,
    paired_shift,
    per_question,
    sign_flip_null,
    split_half,
)


def test_per_question_averages_rotations():
    qids, means = per_question([0.2, 0.4, 1.0, 0.0, 0.5, 0.5], [3, 3, 1, 1, 2, 2])
    assert list(qids) == [1, 2, 3] and np.allclose(means, [0.5, 0.5, 0.3])


def test_known_shift_is_found_with_a_covering_interval():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.8, 60)
    steered = base + 0.05 + rng.normal(0, 0.04, 60)
    s = paired_shift(steered, base, seed=0)
    assert s.p < 0.001 and s.lo < 0.05 < s.hi and abs(s.shift - 0.05) < 0.02
    assert s.n == 60 and s.mde == pytest.approx(2.8016 * s.sd / np.sqrt(60), rel=1e-3)
    # paired: the interval is far narrower than the spread of the scores themselves
    assert s.hi - s.lo < 0.2 * (base.max() - base.min())


def test_null_rejects_at_about_the_nominal_rate():
    rejections = 0
    covered = 0
    seeds = 300
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        base = rng.uniform(0, 1, 30)
        steered = base + rng.normal(0, 0.1, 30)  # no true shift
        s = paired_shift(steered, base, n_boot=500, seed=seed)
        rejections += s.p < 0.05
        covered += s.lo <= 0 <= s.hi
    assert 0.02 <= rejections / seeds <= 0.09
    assert 0.90 <= covered / seeds <= 0.98


def test_label_balanced_shift_cancels_a_label_push():
    # a "Yes" push: +0.15 on Yes-matching questions, -0.15 on No-matching, 34 / 14 of them
    labels = np.array(["Yes"] * 34 + ["No"] * 14)
    base = np.full(48, 0.5)
    steered = base + np.where(labels == "Yes", 0.15, -0.15)
    assert np.mean(steered - base) > 0.06
    s = paired_shift(steered, base, labels)
    assert abs(s.shift) < 1e-12 and s.p > 0.5
    assert balanced_mean(steered, labels) == pytest.approx(0.5)


def test_small_balanced_shift_under_a_label_push_is_found_and_its_p_agrees_with_the_interval():
    # a "Yes" push of +-0.15 plus a real +0.02 on every question: the push cancels in the balanced
    # shift, and resampling within labels keeps it out of the uncertainty (the test and the interval agree)
    rng = np.random.default_rng(3)
    labels = np.array(["Yes", "No"] * 50)
    base = rng.uniform(0.3, 0.7, 100)
    steered = base + np.where(labels == "Yes", 0.15, -0.15) + 0.02 + rng.normal(0, 0.02, 100)
    s = paired_shift(steered, base, labels)
    assert s.lo < 0.02 < s.hi and s.lo > 0 and s.p < 0.01
    assert s.mde < 0.02 < 2.8 * np.std(steered - base) / np.sqrt(100)  # the stratified spread, not the push


def test_mde_shrinks_as_one_over_root_n():
    assert mde(0.1, 100) == pytest.approx(mde(0.1, 25) / 2)
    assert mde(0.1, 1) != mde(0.1, 1)  # nan


def planted(n, d=32, strength=1.0, seed=0):
    rng = np.random.default_rng(seed)
    direction = np.zeros(d)
    direction[0] = 1.0
    return rng.normal(0, 1, (n, d)) + strength * direction


def test_split_half_and_null_find_a_planted_direction():
    diffs = planted(128, strength=1.5)
    q = sign_flip_null(diffs, n_null=100)
    assert q.reliability > 0.7 and q.reliability > q.reliability_null_95
    assert q.norm > q.norm_null_95 and q.norm_p < 0.02 and q.reliability_p < 0.02


def test_split_half_and_null_find_nothing_without_one():
    diffs = planted(128, strength=0.0, seed=3)
    q = sign_flip_null(diffs, n_null=100)
    assert abs(split_half(diffs)) < 0.3
    assert q.norm_p > 0.05 and q.reliability_p > 0.05


def letter_dominated(n, d=32, behaviour=0.0, seed=0):
    """CAA letter pairs: each difference is the answer-letter direction (size 30), signed by which letter
    matches, plus noise and a planted behaviour direction of size `behaviour`."""
    rng = np.random.default_rng(seed)
    matching = rng.choice(np.array(["A", "B"]), size=n)
    sign = np.where(matching == "A", 1.0, -1.0)[:, None]
    letter, content = np.eye(d)[1] * 30.0, np.eye(d)[0] * behaviour
    diffs = sign * letter + content + rng.normal(0, 1, (n, d))
    return diffs, matching, np.where(matching == "A", "B", "A")


def test_the_balanced_null_finds_a_behaviour_under_the_letter_direction():
    diffs, groups, swapped = letter_dominated(200, behaviour=0.8)
    q = sign_flip_null(diffs, n_null=100, groups=groups, swapped=swapped)
    assert q.norm_p < 0.02 and q.reliability_p < 0.02 and q.reliability > 0.6
    assert q.reliability_null_95 < 0.6  # the null's half-vectors are noise, not the letter direction
    # the plain sign-flip null on the same differences has no power: its half-vectors are the letter direction
    plain = sign_flip_null(diffs, n_null=100)
    assert plain.reliability_null_95 > 0.9 and plain.reliability_p > 0.05


def test_the_balanced_null_finds_nothing_under_the_letter_direction_alone():
    diffs, groups, swapped = letter_dominated(200, behaviour=0.0, seed=4)
    q = sign_flip_null(diffs, n_null=100, groups=groups, swapped=swapped)
    assert q.norm_p > 0.05 and q.reliability_p > 0.05 and abs(q.reliability) < 0.3
    assert abs(group_mean(diffs, groups)[1]) < 0.3  # the letter direction cancels between the groups


def test_the_balanced_vector_is_the_mean_of_the_group_means():
    diffs = np.array([[1.0, 0], [3.0, 0], [0, 2.0]])
    assert np.allclose(group_mean(diffs, ["A", "A", "B"]), [1.0, 1.0])
    assert np.allclose(group_mean(diffs), [4 / 3, 2 / 3])
    with pytest.raises(ValueError):
        sign_flip_null(diffs, groups=["A", "A", "B"])


def test_auc():
    assert auc([1, 2, 3], [0, 0.5]) == 1.0 and auc([0], [1]) == 0.0 and auc([1], [1]) == 0.5
    rng = np.random.default_rng(0)
    d = 16
    shift = np.eye(d)[0] * 1.5
    train = rng.normal(0, 1, (200, d)) + 2 * shift  # differences: matching - non-matching
    pos = rng.normal(0, 1, (100, d)) + shift
    neg = rng.normal(0, 1, (100, d)) - shift
    assert heldout_auc(train, pos, neg) > 0.9
    noise = rng.normal(0, 1, (200, d))
    assert abs(heldout_auc(noise, rng.normal(0, 1, (100, d)), rng.normal(0, 1, (100, d))) - 0.5) < 0.15
