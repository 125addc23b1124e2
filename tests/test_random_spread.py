"""A vector's shift ranked among random directions of its norm (random_spread.py), on synthetic tables:
a planted shift beyond 24 distinct random directions is found (rank p = 1/25), one drawn like them is not;
draws are counted by distinct direction (± of one direction is one draw; interference's random:<behaviour>
repeats the single run's random and is not another); the pool is the single run's own directions with
absolute coefs and every section's with relative ones."""
from __future__ import annotations

import random

import polars as pl
import pytest

from studies.behaviours.random_spread import (COMBINED, INTERFERENCE, SINGLE, direction_of, rank_p, spread_rows,
                                              spread_verdict)

N_Q = 40
LABELS = ["A", "B"] * (N_Q // 2)
BASE = [0.3 + 0.01 * (i % 7) for i in range(N_Q)]


def _row(vector, direction, coef, shift, behaviour="myopic", layer=14, noise=0.0, seed=0):
    rng = random.Random(seed)
    scores = [b + shift + rng.gauss(0, noise) for b in BASE]
    return {"behaviour": behaviour, "vector": vector, "direction": direction, "layer": layer,
            "coef": float(coef), "q_id": list(range(N_Q)), "q_label": LABELS, "q_p_matching": scores}


def _table(rows) -> pl.DataFrame:
    return pl.DataFrame([_row("none", "default", 0, 0.0), *rows])


def _draws(n, prefix="random", sd=0.03, seed=1):
    """n directions, each scored at +1 and -1 (the single run's way: one direction, both signs)."""
    rng = random.Random(seed)
    names = ["random"] + [f"random#{k}" for k in range(2, n + 1)] if prefix == "random" else \
        [f"{prefix}{k}" for k in range(n)]
    rows = []
    for k, name in enumerate(names):
        s = rng.gauss(0, sd)
        rows += [_row(name, "add", 1, s, noise=0.01, seed=10 + k), _row(name, "subtract", -1, -s, noise=0.01,
                                                                         seed=50 + k)]
    return rows


def test_a_planted_shift_is_beyond_every_direction_and_a_null_one_is_not():
    single = _table([_row("myopic", "add", 1, 0.30), _row("myopic", "subtract", -1, 0.0), *_draws(24)])
    rows = {r["direction"]: r for r in spread_rows([(SINGLE, single)], relative=False)}
    planted, null = rows["add"], rows["subtract"]
    assert planted["n_draws"] == 24 and planted["p"] == pytest.approx(1 / 25)
    assert planted["verdict"] == "beyond the random spread" and planted["z"] > 5
    assert null["verdict"] == "within the random spread" and 0.2 < null["p"] < 0.8
    assert abs(null["mean"]) < 0.02 and 0.01 < null["sd"] < 0.06


def test_draws_are_counted_by_distinct_direction():
    """10 directions at ±1 are 10 draws, not 20; interference's random:myopic (the single run's random on
    myopia, same seed) adds none, its random:<other vector> directions add one each."""
    single = _table([_row("myopic", "add", 1, 0.30), _row("myopic", "subtract", -1, -0.3), *_draws(10)])
    repeat = [r for r in _draws(1) if r["vector"] == "random"]  # the single run's paired random, scored again
    interference = _table([{**r, "vector": "random:myopic"} for r in repeat]
                          + _draws(2, prefix="random:sycophancy", seed=7))
    rows = {r["direction"]: r for r in spread_rows([(SINGLE, single), (INTERFERENCE, interference)], relative=True)}
    assert rows["add"]["n_draws"] == rows["subtract"]["n_draws"] == 10 + 2
    alone = {r["direction"]: r for r in spread_rows([(SINGLE, single)], relative=True)}
    assert alone["add"]["n_draws"] == 10
    assert alone["add"]["verdict"].startswith("beyond all 10 distinct directions")  # p can't reach 0.05 with 10
    # a row at +1 draws each direction's +1 shift, a row at -1 its -1 shift: never both
    plus = [r["q_p_matching"][0] - BASE[0] for r in _draws(10) if r["direction"] == "add"]
    assert alone["add"]["mean"] == pytest.approx(sum(plus) / 10, abs=0.01)


def test_direction_names_follow_the_seeds_of_each_experiment():
    row = {"behaviour": "myopic", "direction": "add", "layer": 14}
    assert direction_of(SINGLE, {**row, "vector": "random"}) == direction_of(INTERFERENCE,
                                                                          {**row, "vector": "random:myopic"})
    assert direction_of(SINGLE, {**row, "vector": "random#3"}) == "myopic#3"
    assert direction_of(SINGLE, {**row, "vector": "myopic"}) is None
    add = direction_of(COMBINED, {**row, "vector": "random:sum"})
    subtract = direction_of(COMBINED, {**row, "vector": "random:sum", "direction": "subtract"})
    assert add != subtract  # the combined run seeds one direction per sign


def test_the_pool_is_every_section_only_with_relative_coefs():
    single = _table([_row("myopic", "add", 1, 0.30), *_draws(3)])
    combined = _table(_draws(5, prefix="random:sum"))  # other directions (one seed per sign), same questions
    combined = combined.vstack(_table([_row("sum", "add", 1, 0.5)]).slice(1))  # a combined vector: not a draw
    absolute = spread_rows([(SINGLE, single), (COMBINED, combined)], relative=False)[0]
    relative = spread_rows([(SINGLE, single), (COMBINED, combined)], relative=True)[0]
    assert absolute["n_draws"] == 3 and relative["n_draws"] == 3 + 10
    assert absolute["verdict"].startswith("beyond all 3 distinct directions")
    other_questions = combined.with_columns(pl.col("q_id").list.eval(pl.element() + 1000))
    assert spread_rows([(SINGLE, single), (COMBINED, other_questions)], relative=True)[0]["n_draws"] == 3


def test_rank_p_and_verdicts_on_hand_built_draws():
    draws = [-0.2, -0.1, 0.0, 0.1, 0.2]
    assert rank_p(0.3, draws, up=True) == pytest.approx(1 / 6)
    assert rank_p(0.05, draws, up=True) == pytest.approx(3 / 6)
    assert rank_p(0.05, draws, up=False) == pytest.approx(4 / 6)
    assert spread_verdict(-0.3, draws, up=True).startswith("beyond all 5 distinct directions, wrong way")
    assert spread_verdict(0.3, [0.0] * 19, up=True) == "beyond the random spread"
    assert spread_verdict(-0.3, [0.0] * 19, up=True) == "beyond the random spread, wrong way"
    assert spread_verdict(0.3, [], up=True) == "no random draws"


def test_combined_vectors_are_ranked_among_the_same_pool():
    combined = _table([_row("sum", "add", 1, 0.30), _row("mean", "add", 1, 0.0), *_draws(4, prefix="random:sum")])
    single = _table(_draws(6))
    rows = {r["vector"]: r for r in spread_rows([(COMBINED, combined), (SINGLE, single)], relative=True,
                                                vectors=("sum", "mean"))}
    assert set(rows) == {"sum", "mean"} and rows["sum"]["n_draws"] == 8 + 6
    assert rows["sum"]["p"] == pytest.approx(1 / 15)
    assert rows["sum"]["verdict"].startswith("beyond all 14 distinct directions")
    assert rows["mean"]["verdict"] == "within the random spread"
