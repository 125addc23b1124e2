"""Statistics for paired, per-question scores and for the quality of a mean-difference vector.

- `per_question`: scores of the prompts of one question (its rotations) averaged to one;
- `paired_shift`: steered minus unsteered on the same questions, label-balanced (the mean
  of the per-label mean shifts), a bootstrap interval resampling questions within each
  label, and a two-sided p-value from the same resamples (how often the resampled shift
  strays from the observed one by as much as the observed one from 0). Resampling within
  labels keeps a push on one answer label (+x on Yes-, -x on No-matching questions) out of
  the uncertainty of the balanced shift, where a sign-flip test would count it as noise;
- `MIN_PER_LABEL`: below this many questions in any label, `paired_shift` gives the shift but no
  interval, p-value or detectable shift (`too_few`), and no verdict may be drawn from it;
- `mde`: the smallest true shift a paired test at level alpha finds with the given power;
- vector quality: `split_half` (cosine between the means of two disjoint halves of the pair
  differences), `sign_flip_null` (the same statistics when each pair's labels are swapped
  at random: the vector a label-free dataset would give), `auc` (Mann-Whitney).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np


def per_question(values, qids) -> tuple[np.ndarray, np.ndarray]:
    """(unique question ids in sorted order, mean of `values` per question)."""
    values = np.asarray(values, dtype=np.float64)
    qids = np.asarray(qids)
    unique, inverse = np.unique(qids, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=unique.size)
    counts = np.bincount(inverse, minlength=unique.size)
    return unique, sums / np.maximum(counts, 1)


def _label_index(labels, n: int) -> list[np.ndarray]:
    labels = np.zeros(n, dtype=int) if labels is None else np.asarray(labels)
    return [np.flatnonzero(labels == value) for value in np.unique(labels)]


def balanced_mean(values, labels=None) -> float:
    """Mean of the per-label means (the plain mean when there are no labels)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    return float(np.mean([values[g].mean() for g in _label_index(labels, values.size)]))


def mde(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable mean shift of a two-sided paired test on n questions whose
    shifts have standard deviation `sd` (normal approximation)."""
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    z = NormalDist().inv_cdf
    return float((z(1 - alpha / 2) + z(power)) * sd / np.sqrt(n))


# Measured (no true shift, two labels, 400 draws each, uniform scores + N(0, 0.1) noise): the stratified
# percentile bootstrap's 95% interval covers 0 in 63% / 79% / 87% / 90% / 93% of the draws with 2 / 3 / 5 / 8 / 10
# questions per label (false "moves" 37% / 22% / 13% / 10% / 7.5%); one per label cannot vary at all.
MIN_PER_LABEL = 10


@dataclass
class Shift:
    shift: float  # label-balanced mean of steered - unsteered
    lo: float
    hi: float
    p: float  # two-sided, from the stratified bootstrap
    n: int  # questions
    sd: float  # per-question spread of the balanced shift: its standard error x sqrt(n)
    mde: float  # detectable shift at this n and sd (alpha 0.05, power 0.8)
    per_label: int = MIN_PER_LABEL  # questions in the smallest label group

    @property
    def too_few(self) -> bool:
        """Fewer than MIN_PER_LABEL questions in some label: no interval, p or verdict (all NaN)."""
        return self.per_label < MIN_PER_LABEL

    def as_dict(self, prefix: str = "shift") -> dict:
        d = asdict(self)
        return {prefix if k == "shift" else f"{prefix}_{k}": v for k, v in d.items()}


def paired_shift(steered, unsteered, labels=None, n_boot: int = 2000, seed: int = 0,
                 alpha: float = 0.05) -> Shift:
    """Paired shift of per-question scores (same questions, same order in both arrays).

    The statistic is label-balanced: the mean over labels of the mean shift of the questions
    with that label. The interval resamples questions within each label (percentile
    bootstrap); the p-value is the share of resamples at least |shift| away from the shift
    (the resampled distribution moved to 0: a test of "balanced shift = 0"). The spread and
    the detectable shift use the stratified standard error, sqrt(sum_g var_g / n_g) / G.

    With fewer than MIN_PER_LABEL questions in any label, only the shift itself is given: interval, p,
    spread and detectable shift are NaN and `too_few` is True (the bootstrap cannot be trusted there).
    """
    diff = np.asarray(steered, dtype=np.float64) - np.asarray(unsteered, dtype=np.float64)
    n = diff.size
    if n == 0:
        nan = float("nan")
        return Shift(nan, nan, nan, nan, 0, nan, nan, 0)
    groups = _label_index(labels, n)
    weights = np.zeros(n)
    for g in groups:
        weights[g] = 1.0 / (len(groups) * g.size)
    observed = float(weights @ diff)
    smallest = min(g.size for g in groups)
    if smallest < MIN_PER_LABEL:
        nan = float("nan")
        return Shift(observed, nan, nan, nan, n, nan, nan, smallest)
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    for g in groups:  # stratified: each label keeps its count in every resample
        picks = g[rng.integers(0, g.size, size=(n_boot, g.size))]
        boot += diff[picks].mean(1) / len(groups)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    p = (1 + np.count_nonzero(np.abs(boot - observed) >= abs(observed) - 1e-12)) / (1 + n_boot)
    variances = [diff[g].var(ddof=1) if g.size > 1 else np.nan for g in groups]
    se = float(np.sqrt(sum(v / g.size for v, g in zip(variances, groups))) / len(groups))
    sd = se * np.sqrt(n) if n > 1 else float("nan")
    return Shift(observed, float(lo), float(hi), float(min(1.0, p)), n, sd, mde(sd, n, alpha), smallest)


# -- vector quality -----------------------------------------------------------------------


def bh_qvalues(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q): reject where q <= alpha to keep the false-discovery rate of
    the family at alpha. NaN p-values stay NaN and do not count toward the family."""
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if not m:
        return q
    order = np.argsort(p[ok])
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    q[ok] = out
    return q


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float("nan")


def _labels(groups) -> np.ndarray | None:
    return None if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]


def group_mean(diffs, groups=None) -> np.ndarray:
    """The vector as extracted: the plain mean of the pair differences [N, d], or with `groups` (one label per
    pair, e.g. its matching answer letter) the mean of the per-group means (the letter-balanced CAA vector)."""
    diffs = np.asarray(diffs, dtype=np.float64)
    if groups is None:
        return diffs.mean(0)
    labels = np.asarray(groups)
    return np.mean([diffs[labels == g].mean(0) for g in np.unique(labels)], axis=0)


def split_half(diffs, n_splits: int = 20, seed: int = 0, groups=None) -> float:
    """Mean cosine between the vector (`group_mean`) of one random half of the pairs and that of the other
    half (near 1: the direction is reliable; near 0: noise)."""
    diffs = np.asarray(diffs, dtype=np.float64)
    labels = _labels(groups)
    rng = np.random.default_rng(seed)
    half = diffs.shape[0] // 2
    out = []
    for _ in range(n_splits):
        order = rng.permutation(diffs.shape[0])
        a, b = order[:half], order[half : 2 * half]
        out.append(_cos(group_mean(diffs[a], None if labels is None else labels[a]),
                        group_mean(diffs[b], None if labels is None else labels[b])))
    return float(np.mean(out))


@dataclass
class VectorQuality:
    norm: float
    norm_null_mean: float
    norm_null_95: float
    norm_p: float
    reliability: float  # split-half cosine
    reliability_null_95: float
    reliability_p: float

    def as_dict(self) -> dict:
        return asdict(self)


def sign_flip_null(diffs, n_null: int = 200, n_splits: int = 4, seed: int = 0, groups=None,
                   swapped=None) -> VectorQuality:
    """The vector's norm and split-half reliability against a label-permutation null: each
    pair's (matching, non-matching) labels swapped at random, i.e. its difference's sign
    flipped. With `groups` (the vector is the mean of per-group means), a swapped pair also
    moves to the group of its other answer (`swapped`, one label per pair): a pair (A matching,
    B not) swapped is a B-matching pair, so the letter part of the differences keeps its sign
    per group and cancels in the null as it does in the vector. Without this, a difference
    dominated by the answer-letter direction makes every null half-vector the letter direction
    (null split-half ~0.98: no test at all). p-values: the share of null draws at least as large
    as observed."""
    diffs = np.asarray(diffs, dtype=np.float64)
    if (groups is None) != (swapped is None):
        raise ValueError("groups and swapped go together")
    if groups is not None:
        both = np.unique(np.concatenate([np.asarray(groups), np.asarray(swapped)]), return_inverse=True)[1]
        groups, swapped = both[: diffs.shape[0]], both[diffs.shape[0]:]
    rng = np.random.default_rng(seed)
    norm = float(np.linalg.norm(group_mean(diffs, groups)))
    reliability = split_half(diffs, n_splits=20, seed=seed, groups=groups)
    norms, rels = np.zeros(n_null), np.zeros(n_null)
    for i in range(n_null):
        signs = rng.choice(np.array([-1.0, 1.0]), size=diffs.shape[0])
        flipped = diffs * signs[:, None]
        labels = None if groups is None else np.where(signs < 0, swapped, groups)
        norms[i] = np.linalg.norm(group_mean(flipped, labels))
        rels[i] = split_half(flipped, n_splits=n_splits, seed=int(rng.integers(1 << 31)), groups=labels)
    return VectorQuality(
        norm=norm, norm_null_mean=float(norms.mean()), norm_null_95=float(np.quantile(norms, 0.95)),
        norm_p=float((1 + np.count_nonzero(norms >= norm)) / (1 + n_null)),
        reliability=reliability, reliability_null_95=float(np.quantile(rels, 0.95)),
        reliability_p=float((1 + np.count_nonzero(rels >= reliability)) / (1 + n_null)))


def auc(positive, negative) -> float:
    """P(a positive score > a negative score) + half the ties (Mann-Whitney)."""
    pos = np.asarray(positive, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def heldout_auc(train_diffs, test_pos, test_neg, groups=None) -> float:
    """AUC of the projection on the training vector (`group_mean` of `train_diffs`) separating
    held-out matching activations from non-matching ones."""
    direction = group_mean(train_diffs, groups)
    return auc(np.asarray(test_pos, dtype=np.float64) @ direction, np.asarray(test_neg, dtype=np.float64) @ direction)
