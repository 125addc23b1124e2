"""A vector's shift ranked among the shifts of many random directions of its norm.

What it is for: the paired "vector − random" test holds one random direction fixed, so it only asks
whether the vector beats *that* draw. At the residual stream's norm, random directions move content
scores by ±0.15 on their own (smollm2, myopia), so one draw is not a null distribution. Here every
random-direction row of equal norm on the same questions is a draw: its shift against unsteered; the
vector's shift gets its rank among them (one-sided, the way the steering asks) and a z-score.

Pattern: `spread_rows(frames, relative)` with the single, combined and interference tables of one
protocol variant -> one row per single-steering row: draws, their mean / SD / range, z, rank p, verdict.

Gotchas: with relative coefs every vector is rescaled to coef x the residual norm, so random rows
of all three experiments at one layer and |coef| are draws of one null; with absolute coefs only
the single run's own draws (`random`, `random#2`, ...) have the vector's norm. A direction and its
negative are both draws (their shifts are anti-correlated, not independent). A rank p cannot go below
1 / (draws + 1): 19 draws are needed for 0.05 (`behaviours single --more-random`).
"""

from __future__ import annotations

import math
import statistics

import polars as pl

from steer_trace.stats import paired_shift

SINGLE_DRAWS = ("random", "random#")  # the single run's own draws: 'random', 'random#2', ...
ALPHA = 0.05


def _is_draw(vector: str, pooled: bool) -> bool:
    if pooled:
        return vector.startswith("random")
    return vector == SINGLE_DRAWS[0] or vector.startswith(SINGLE_DRAWS[1])


def _defaults(frame: pl.DataFrame) -> dict[str, dict]:
    return {r["behaviour"]: r for r in frame.filter(pl.col("direction") == "default").iter_rows(named=True)}


def draws_for(pools: list[tuple[pl.DataFrame, dict]], behaviour: str, layer: int, magnitude: float, q_id,
              pooled: bool) -> list[float]:
    """Shifts against unsteered of every random-direction row at `layer` x ±`magnitude` on `behaviour`
    whose questions are `q_id` (each table, with its unsteered rows by behaviour, paired with its own)."""
    out = []
    for frame, defaults in pools:
        default = defaults.get(behaviour)
        if default is None or default["q_id"] != q_id:
            continue
        rows = frame.filter((pl.col("behaviour") == behaviour) & (pl.col("layer") == layer)
                            & (pl.col("coef").abs() - abs(magnitude)).abs().lt(1e-9))
        for r in rows.iter_rows(named=True):
            if _is_draw(r["vector"], pooled) and r["q_id"] == q_id:
                out.append(paired_shift(r["q_p_matching"], default["q_p_matching"], r["q_label"]).shift)
    return out


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
        return f"beyond all {n} draws (p can't reach {ALPHA} below 19 draws)"
    if p_other == 1 / (n + 1):
        return f"beyond all {n} draws, wrong way (p can't reach {ALPHA} below 19 draws)"
    return "within the random spread"


def spread_rows(single: pl.DataFrame, others: list[pl.DataFrame], relative: bool, vectors=None) -> list[dict]:
    """Per steered row of `single` (each behaviour's own vector; or the rows whose vector is in `vectors`,
    e.g. the combined table's combinations): its shift, the random draws' summary, z, rank p and verdict.
    `others`: the other tables of the same variant (pooled only when `relative`)."""
    pools = [(frame, _defaults(frame)) for frame in ([single, *others] if relative else [single])]
    defaults = pools[0][1]
    out = []
    own = single.filter(pl.col("vector") == pl.col("behaviour")) if vectors is None else \
        single.filter(pl.col("vector").is_in(list(vectors)))
    for r in own.sort("behaviour", "layer", "coef", "vector").iter_rows(named=True):
        default = defaults.get(r["behaviour"])
        if default is None or default["q_id"] != r["q_id"]:
            continue
        shift = paired_shift(r["q_p_matching"], default["q_p_matching"], r["q_label"]).shift
        draws = draws_for(pools, r["behaviour"], r["layer"], r["coef"], r["q_id"], relative)
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
