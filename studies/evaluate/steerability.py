"""Per-question steerability (Tan et al. 2024, arXiv 2407.12404).

A question's steerability is the slope of its behaviour score - the log-odds of the matching
answer, log p / (1 - p) of its p(matching) - against the steering coef, fitted by least squares
over >= 5 coefs. Each slope carries a t interval from the fit's residuals (n - 2 degrees of
freedom). A question is anti-steerable when its slope is below 0 with the interval excluding 0.

Pattern: `slopes(coefs, scores)` with scores [n_coefs, n_questions] -> a table, one row per
question; `summary(table, unsteered)` -> the dataset's numbers with intervals.
Gotcha: p(matching) of 0 or 1 has infinite log-odds; scores are clipped to [1e-6, 1 - 1e-6].
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats as sps

from steer_trace.metrics import bootstrap_ci

CLIP = 1e-6


def log_odds(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), CLIP, 1 - CLIP)
    return np.log(p / (1 - p))


def slopes(coefs, scores, alpha: float = 0.05) -> pl.DataFrame:
    """One row per question: slope of `scores[:, q]` (log-odds) on `coefs`, its interval, intercept."""
    x = np.asarray(coefs, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    if x.size < 3 or y.shape[0] != x.size:
        raise ValueError("steerability needs at least 3 coefs, one row of scores per coef")
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = xc @ (y - y.mean(0)) / sxx
    intercept = y.mean(0) - slope * x.mean()
    residual = y - (intercept[None, :] + np.outer(x, slope))
    dof = x.size - 2
    se = np.sqrt((residual ** 2).sum(0) / dof / sxx)
    t = float(sps.t.ppf(1 - alpha / 2, dof))
    lo, hi = slope - t * se, slope + t * se
    return pl.DataFrame({"q_index": np.arange(y.shape[1]), "slope": slope, "slope_lo": lo, "slope_hi": hi,
                         "intercept": intercept, "anti_steerable": (hi < 0),
                         "steerable": (lo > 0)})


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def summary(table: pl.DataFrame) -> dict:
    """Mean slope [bootstrap 95%], its spread, share anti-steerable / steerable [Wilson 95%], and the
    Spearman correlation of slope with the unsteered log-odds (`unsteered` column) [bootstrap 95%]."""
    slope = table["slope"].to_numpy()
    n = slope.size
    lo, hi = bootstrap_ci(slope)
    k_anti, k_st = int(table["anti_steerable"].sum()), int(table["steerable"].sum())
    rho = float(sps.spearmanr(slope, table["unsteered"].to_numpy()).statistic) if n > 2 else float("nan")
    rng = np.random.default_rng(0)
    boots = []
    base = table["unsteered"].to_numpy()
    for _ in range(1000):
        idx = rng.integers(0, n, n)
        if np.ptp(slope[idx]) > 0 and np.ptp(base[idx]) > 0:
            boots.append(sps.spearmanr(slope[idx], base[idx]).statistic)
    rho_lo, rho_hi = (np.quantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan))
    return {"n_questions": n, "mean_slope": float(slope.mean()), "mean_slope_lo": lo, "mean_slope_hi": hi,
            "sd_slope": float(slope.std(ddof=1)) if n > 1 else float("nan"),
            "anti_steerable": k_anti / n if n else float("nan"),
            "anti_steerable_lo": wilson(k_anti, n)[0], "anti_steerable_hi": wilson(k_anti, n)[1],
            "n_anti_steerable": k_anti, "steerable": k_st / n if n else float("nan"),
            "steerable_lo": wilson(k_st, n)[0], "steerable_hi": wilson(k_st, n)[1],
            "spearman_unsteered": rho, "spearman_lo": float(rho_lo), "spearman_hi": float(rho_hi)}
