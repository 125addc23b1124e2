"""A vector's shift ranked among the shifts of many random directions of its norm.

What it is for: the paired "vector − random" test holds one random direction fixed, so it only asks
whether the vector beats *that* draw. At the residual stream's norm, random directions move content
scores by ±0.15 on their own (smollm2, myopia), so one draw is not a null distribution. Here every
distinct random direction of equal norm scored on the same questions is one draw: its shift against
unsteered; the vector's shift gets its rank among them (one-sided, the way the steering asks) and a z-score.

Pattern: `spread_rows(pools, relative)` with the single table first and the combined and interference
tables of the same protocol variant (each tagged with its experiment) -> one row per single-steering row:
distinct directions, their mean / SD / range, z, rank p, verdict.

Counting draws: a draw is a random *direction*, named by the seed that made it (`direction_of`): a
direction and its negative (its row at -coef) are ONE draw, and the interference run's `random:<name>` is
the single run's `random` direction for behaviour <name> (same seed, same vector shape: the same rows to
3e-6), so it is not another. For a row at +coef each direction gives its shift at +coef; a direction
scored only at -coef (the combined run draws one per sign) gives that shift, the draw of its negative at
+coef (random directions are symmetric, so -d is as much a draw as d).

Gotchas: with relative coefs every vector is rescaled to coef x the residual norm, so random rows
of all three experiments at one layer and |coef| are draws of one null; with absolute coefs only
the single run's own draws (`random`, `random#2`, ...) have the vector's norm. A rank p cannot go below
1 / (directions + 1): 19 distinct directions are needed for 0.05 (`behaviours single --more-random`).
"""

from __future__ import annotations

import math
import statistics

import polars as pl

from .scoring import row_shift

SINGLE, COMBINED, INTERFERENCE = "behaviours_single", "behaviours_combined", "behaviours_interference"
ALPHA = 0.05


def direction_of(experiment: str, row: dict) -> str | None:
    """The seed text of the random direction a row steered with (None: not a random direction), as the
    experiments seed them (behaviours.py): single 'random' -> the behaviour, 'random#k' -> '<behaviour>#k';
    interference 'random:<vector>' -> the vector's name; combined 'random:<how>' -> '<how>|<direction>|<layer>'."""
    vector = row["vector"]
    if experiment == SINGLE:
        if vector == "random":
            return row["behaviour"]
        if vector.startswith("random#"):
            return f"{row['behaviour']}#{vector.removeprefix('random#')}"
        return None
    if not vector.startswith("random:"):
        return None
    name = vector.removeprefix("random:")
    return f"{name}|{row['direction']}|{row['layer']}" if experiment == COMBINED else name


def _defaults(frame: pl.DataFrame) -> dict[str, dict]:
    return {r["behaviour"]: r for r in frame.filter(pl.col("direction") == "default").iter_rows(named=True)}


def draws_for(pools: list[tuple[str, pl.DataFrame, dict]], behaviour: str, layer: int, coef: float, q_id,
              pooled: bool) -> dict[str, float]:
    """{direction seed: its shift against unsteered} for every distinct random direction at `layer` x
    |`coef`| on `behaviour` whose questions are `q_id` (each table paired with its own unsteered rows):
    the shift at `coef`'s sign where the direction was scored there, else at the other sign."""
    same, other = {}, {}
    for experiment, frame, defaults in pools if pooled else pools[:1]:
        default = defaults.get(behaviour)
        if default is None or default["q_id"] != q_id:
            continue
        rows = frame.filter((pl.col("behaviour") == behaviour) & (pl.col("layer") == layer)
                            & (pl.col("coef").abs() - abs(coef)).abs().lt(1e-9))
        for r in rows.iter_rows(named=True):
            seed = direction_of(experiment, r)
            if seed is None or r["q_id"] != q_id:
                continue
            found = same if (r["coef"] > 0) == (coef > 0) else other
            found.setdefault(seed, row_shift(r, default).shift)
    return {**other, **same}  # same sign wins


def rank_p(shift: float, draws: list[float], up: bool) -> float:
    """One-sided rank p of `shift` among `draws`: (1 + draws at least as far the asked way) / (n + 1)."""
    beyond = sum(1 for d in draws if (d >= shift if up else d <= shift))
    return (1 + beyond) / (len(draws) + 1)


def spread_verdict(shift: float, draws: list[float], up: bool) -> str:
    n = len(draws)
    if n == 0:
        return "no random draws"
    p, p_other = rank_p(shift, draws, up), rank_p(shift, draws, not up)
    if p <= ALPHA:
        return "beyond the random spread"
    if p_other <= ALPHA:
        return "beyond the random spread, wrong way"
    if p == 1 / (n + 1):
        return f"beyond all {n} distinct directions (p can't reach {ALPHA} below 19)"
    if p_other == 1 / (n + 1):
        return f"beyond all {n} distinct directions, wrong way (p can't reach {ALPHA} below 19)"
    return "within the random spread"


def spread_rows(pools: list[tuple[str, pl.DataFrame]], relative: bool, vectors=None) -> list[dict]:
    """Per steered row of the first table in `pools` ((experiment, table) pairs of one protocol variant): each
    behaviour's own vector, or the rows whose vector is in `vectors` (e.g. the combined table's combinations):
    its shift, the distinct random directions' summary, z, rank p and verdict. The other tables' directions
    join the pool only when `relative` (then every direction has the vector's norm)."""
    tagged = [(experiment, frame, _defaults(frame)) for experiment, frame in pools]
    _, main, defaults = tagged[0]
    out = []
    own = main.filter(pl.col("vector") == pl.col("behaviour")) if vectors is None else \
        main.filter(pl.col("vector").is_in(list(vectors)))
    for r in own.sort("behaviour", "layer", "coef", "vector").iter_rows(named=True):
        default = defaults.get(r["behaviour"])
        if default is None or default["q_id"] != r["q_id"]:
            continue
        shift = row_shift(r, default).shift
        draws = list(draws_for(tagged, r["behaviour"], r["layer"], r["coef"], r["q_id"], relative).values())
        up = r["direction"] == "add"
        mean = statistics.fmean(draws) if draws else math.nan
        sd = statistics.stdev(draws) if len(draws) > 1 else math.nan
        out.append({"behaviour": r["behaviour"], "vector": r["vector"], "layer": r["layer"],
                    "coef": r["coef"],
                    "direction": r["direction"], "shift": shift, "n_draws": len(draws), "mean": mean, "sd": sd,
                    "min": min(draws) if draws else math.nan, "max": max(draws) if draws else math.nan,
                    "z": (shift - mean) / sd if sd and sd == sd else math.nan,
                    "p": rank_p(shift, draws, up) if draws else math.nan,
                    "verdict": spread_verdict(shift, draws, up)})
    return out
