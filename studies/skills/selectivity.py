"""Selectivity at equal damage, with document-bootstrap intervals.

"Text kept at equal damage": along one curve (target, control, layer; points in coefficient order, starting
from (1, 1) unsteered), the relative text accuracy where the target's relative accuracy first falls to a
level (linear interpolation). The paper's broad-vs-narrow claim compares this number between the code and
the Python vectors, so it needs an interval, and the comparison a paired one.

Pattern: every (evaluation set, domain) gets one fixed set of document resamples, shared by every point
scored on that set, so all points and both vectors are resampled together (text documents are the same for
both vectors: their difference is paired); a curve whose points come from two sets (headline and sweep
sizes) combines their independent resamples. Draw 0 is the full sample (the point estimate).

Which documents a number stands on: a crossing interpolates between two measured points, and where the
headline and sweep sizes mix along a curve, the two may be from different sets. Each row names the sets of
the points its crossing (the full sample's) lies between and their text tokens (`at_sets`, `text_tokens`):
"sweep 5,361" says the number rests on the small set, whatever the curve's other points used.

Gotchas: a draw whose curve never reaches the level has no value; an interval is given only when at least
95% of the draws have one (the share is reported). The interval covers document sampling, not the linear
interpolation between measured coefficients: a curve with few points can be off by more than it says.
"""

from __future__ import annotations

import numpy as np
import polars as pl

CURVE = ("target", "control", "layer")


def _resamples(docs: pl.DataFrame, n_boot: int, seed: int) -> dict[tuple[str, str], np.ndarray]:
    """(size, domain) -> [1 + n_boot, n_docs] document positions; row 0 is the identity."""
    out = {}
    base = docs.filter(pl.col("layer") == -1)
    for k, ((size, domain), part) in enumerate(sorted(base.group_by(["size", "domain"]), key=lambda g: g[0])):
        n = part.height
        rng = np.random.default_rng([seed, k])
        out[(size, domain)] = np.vstack([np.arange(n)[None, :], rng.integers(0, n, size=(n_boot, n))])
    return out


def relative_draws(docs: pl.DataFrame, n_boot: int = 1000, seed: int = 13) -> dict[tuple, dict[str, tuple]]:
    """curve -> {domain: (coefs [k], relative accuracy draws [1 + n_boot, k], the set of each point [k])},
    coefficients ascending."""
    draws = _resamples(docs, n_boot, seed)
    base = {key: part.sort("doc")["correct"].to_numpy()
            for key, part in docs.filter(pl.col("layer") == -1).group_by(["size", "domain"])}
    curves: dict[tuple, dict[str, tuple]] = {}
    steered = docs.filter(pl.col("layer") >= 0)
    for key, part in steered.group_by([*CURVE, "domain"]):
        *curve, domain = key
        points = {}  # coef -> (size, point); a coefficient scored at both sizes counts at the larger one
        for (coef, size), point in part.group_by(["coef", "size"]):
            if coef not in points or size == "headline":
                points[coef] = (size, point)
        coefs, columns = sorted(points), []
        for coef in coefs:
            size, point = points[coef]
            idx, b = draws[(size, domain)], base[(size, domain)]
            columns.append(point.sort("doc")["correct"].to_numpy()[idx].sum(1) / b[idx].sum(1))
        curves.setdefault(tuple(curve), {})[domain] = (np.array(coefs), np.stack(columns, axis=1),
                                                       [points[c][0] for c in coefs])
    return curves


def crossing(target: np.ndarray, level: float) -> int | None:
    """The index j of the segment (from point j to point j + 1 of the curve with the unsteered (1, 1) as point
    0) where `target` (one draw, [k]) first falls to `level`; None where it never does."""
    xs = np.concatenate([[1.0], target])
    for j in range(xs.size - 1):
        if xs[j] >= level >= xs[j + 1] and xs[j] != xs[j + 1]:
            return j
    return None


def text_tokens(docs: pl.DataFrame) -> dict[str, int]:
    """Set (size) -> text tokens scored in it (its unsteered text documents)."""
    base = docs.filter((pl.col("layer") == -1) & (pl.col("domain") == "text"))
    return {size: int(part["count"].sum()) for (size,), part in base.group_by(["size"])}


def _support(sizes: list[str], j: int | None, tokens: dict[str, int]) -> tuple[str, str]:
    """(sets, text tokens) of the measured points a crossing in segment j lies between (point 0, the
    unsteered baseline, is relative 1 on every set: it stands for none)."""
    if j is None:
        return "—", "—"
    used = list(dict.fromkeys(sizes[max(j - 1, 0) : j + 1]))
    return " / ".join(used), " / ".join(f"{tokens.get(u, 0):,}" for u in used)


def kept_at(target: np.ndarray, text: np.ndarray, level: float) -> np.ndarray:
    """Per draw (rows of [draws, k]): text where target first falls to `level`, NaN where it never does."""
    ones = np.ones((target.shape[0], 1))
    xs, ys = np.hstack([ones, target]), np.hstack([ones, text])
    out = np.full(target.shape[0], np.nan)
    for r in range(target.shape[0]):
        for j in range(xs.shape[1] - 1):
            x0, x1 = xs[r, j], xs[r, j + 1]
            if x0 >= level >= x1 and x0 != x1:
                out[r] = ys[r, j] + (ys[r, j + 1] - ys[r, j]) * (x0 - level) / (x0 - x1)
                break
    return out


def _interval(values: np.ndarray) -> dict:
    point, rest = values[0], values[1:]
    defined = float(np.mean(~np.isnan(rest))) if rest.size else 0.0
    lo, hi = (np.nanpercentile(rest, [2.5, 97.5]) if defined >= 0.95 else (np.nan, np.nan))
    return {"kept": point, "kept_lo": float(lo), "kept_hi": float(hi), "defined": defined}


def equal_damage_table(docs: pl.DataFrame, levels=(0.7, 0.5), n_boot: int = 1000, seed: int = 13) -> pl.DataFrame:
    """One row per curve and level: text kept (point, 95% interval, share of draws defined); plus, paired, one
    row per (control, layer, level) with both targets: code-vector minus Python-vector text kept, and one per
    control curve: the real vector's text kept minus its control's."""
    curves = relative_draws(docs, n_boot, seed)
    tokens = text_tokens(docs)
    rows, kept, measured = [], {}, {}  # measured: steered coefficients of the curve (the interpolation's support)
    support = {}  # (curve, level) -> (sets, text tokens) of the points the full sample's crossing lies between
    for curve, domains in sorted(curves.items()):
        target = curve[0]
        if target not in domains or "text" not in domains:
            continue
        (coefs, t, sizes), (_, x, _) = domains[target], domains["text"]
        measured[curve] = len(coefs)
        for level in levels:
            kept[(*curve, level)] = values = kept_at(t, x, level)
            support[(*curve, level)] = at = _support(sizes, crossing(t[0], level), tokens)
            rows.append({**dict(zip(CURVE, curve)), "level": level, "vector": f"text − {target}", "difference": False,
                         "n_coefs": len(coefs), "at_sets": at[0], "text_tokens": at[1], **_interval(values)})
    for (target, control, layer, level), values in sorted(kept.items()):
        other = kept.get(("python", control, layer, level))
        if target == "code" and other is not None:
            a, b = support[(target, control, layer, level)], support[("python", control, layer, level)]
            rows.append({"target": "code − python", "control": control, "layer": layer, "level": level,
                         "vector": "(text − code) − (text − python)", "difference": True,
                         "n_coefs": min(measured[(target, control, layer)], measured[("python", control, layer)]),
                         "at_sets": f"{a[0]}; {b[0]}", "text_tokens": f"{a[1]}; {b[1]}",
                         **_interval(values - other)})
        own = kept.get((target, "none", layer, level))
        if control != "none" and own is not None:  # the vector against its own control, at equal damage
            a, b = support[(target, "none", layer, level)], support[(target, control, layer, level)]
            rows.append({"target": target, "control": control, "layer": layer, "level": level,
                         "vector": f"(text − {target}) − its control", "difference": True,
                         "n_coefs": min(measured[(target, control, layer)], measured[(target, "none", layer)]),
                         "at_sets": f"{a[0]}; {b[0]}", "text_tokens": f"{a[1]}; {b[1]}",
                         **_interval(own - values)})
    return pl.DataFrame(rows) if rows else pl.DataFrame()
