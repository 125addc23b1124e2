"""The same skills points scored in two numerics (say float32 and bfloat16): is the faster one a faithful
stand-in for the other?

What it is for: a sweep run in bfloat16 (on a CPU with AMX, 3–4× faster than float32 end to end) is checked
against the float32 points of the same model, vectors and documents that both runs scored.

Pattern: per point (target, control, layer, coefficient, set) and domain, each run's relative accuracy (its
own steered / its own unsteered accuracy on the same documents) and their difference, other − reference,
with a document bootstrap that resamples the same documents for all four counts (paired). Baselines
(layer −1) compare accuracy instead.

Gotchas: the two runs must have scored the same documents with the same token counts (same tokenizer,
corpus, seed, truncation), else a difference would be the documents', not the numerics'; `numerics_table`
refuses otherwise.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from steer_trace.errors import UserError
from .run import POINT_KEYS

# config keys that may differ between two runs compared here (everything else must match)
NUMERICS_KEYS = ("dtype", "device")


def numerics_of(config: dict) -> tuple:
    return tuple(config.get(k, "") for k in NUMERICS_KEYS)


def same_but_numerics(a: dict, b: dict) -> bool:
    """Two points-run configs that differ at most in numerics (and do differ there)."""
    rest = [{k: v for k, v in c.items() if k not in NUMERICS_KEYS} for c in (a, b)]
    return rest[0] == rest[1] and numerics_of(a) != numerics_of(b)


def _with_base(docs: pl.DataFrame) -> pl.DataFrame:
    base = docs.filter(pl.col("layer") == -1).select("size", "domain", "doc", pl.col("correct").alias("base"))
    return docs.join(base, on=["size", "domain", "doc"], how="inner")


def numerics_table(reference: pl.DataFrame, other: pl.DataFrame, n_boot: int = 1000,
                   seed: int = 13) -> pl.DataFrame:
    """One row per point both runs scored and domain: `reference`, `other` (relative accuracy; accuracy for
    baselines, layer −1), `difference` = other − reference and its paired 95% interval, documents and tokens."""
    keys = [*POINT_KEYS, "domain", "doc"]
    ref = _with_base(reference).select(*keys, "count", "correct", "base")
    oth = _with_base(other).select(*keys, pl.col("count").alias("count_o"), pl.col("correct").alias("correct_o"),
                                   pl.col("base").alias("base_o"))
    joined = ref.join(oth, on=keys, how="inner")
    if joined.filter(pl.col("count") != pl.col("count_o")).height:
        raise UserError("the two runs scored different token counts on the same documents: not the same "
                        "evaluation set, so their difference would not be the numerics'")
    rows = []
    rng = np.random.default_rng(seed)
    for group, part in joined.sort(keys).group_by([*POINT_KEYS, "domain"], maintain_order=True):
        n = part["count"].to_numpy()
        c, b, co, bo = (part[col].to_numpy().astype(np.float64) for col in ("correct", "base", "correct_o", "base_o"))
        baseline = group[POINT_KEYS.index("layer")] == -1
        idx = rng.integers(0, len(n), size=(n_boot, len(n)))

        def value(cs, bs, ns):
            return cs.sum(-1) / (ns.sum(-1) if baseline else bs.sum(-1))

        ref_v, oth_v = value(c, b, n), value(co, bo, n)
        diffs = value(co[idx], bo[idx], n[idx]) - value(c[idx], b[idx], n[idx])
        lo, hi = np.quantile(diffs[np.isfinite(diffs)], [0.025, 0.975])
        rows.append({**dict(zip([*POINT_KEYS, "domain"], group)), "reference": ref_v, "other": oth_v,
                     "difference": oth_v - ref_v, "difference_lo": lo, "difference_hi": hi,
                     "n_docs": len(n), "n_tokens": int(n.sum())})
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows).sort([*POINT_KEYS, "domain"])
