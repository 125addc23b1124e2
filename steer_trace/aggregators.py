"""Extraction methods: how the pair differences of every layer become one direction, and its provenance.

A reader (`read.contrastive_vector`, `pairs.contrastive_vector_shared_prompt`, `pairs.extract_vector`)
streams each pair's difference d = act(positive) - act(negative) into a `PairDifferences`; `to_vector`
turns it into a `SteeringVector` with one provenance dict, whichever the reader and the method.

With `balanced`, each group (e.g. the matching answer letter) weighs the same, whatever its size: a pair of
group g has weight 1 / (G * n_g) instead of 1 / n. Methods (`METHODS`):

- ``mean``: the weighted mean difference m (balanced: the mean of the per-group means; CAA's vector).
- ``pca``: the first principal component of the differences, uncentred (the top eigenvector of
  sum_i w_i d_i d_i^T; steering-vectors' `pca_aggregator`).
- ``pca-center``: repeng's ``pca_center``: each pair's two activations centred on the pair's midpoint
  (the points +d/2 and -d/2), then the first principal component of those points. Their mean is 0, so in
  exact arithmetic this is the same direction as ``pca`` (tests: cos 1 to float rounding).
- ``pca-diff``: repeng's default ``pca_diff``: the first principal component of the differences centred
  on their mean, i.e. the main direction along which pairs *disagree*; it can be far from m.

Every PCA direction u is signed so that m . u > 0 and scaled to the mean difference's projection on it,
(m . u) u, so a coefficient means about what it means for ``mean`` (|(m . u) u| <= |m|).

Memory: ``mean`` streams (one float64 sum per group and layer, O(d)). The PCA methods keep every
difference, n x d float32 per layer (n pairs, d the width: n x d x layers floats in all); once a group
holds 2d of them they fold into a d x d float64 second moment (the same bytes), which then streams, so
memory stops growing at 8 d^2 bytes per group and layer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch

from ._version import __version__
from .errors import UserError
from .vectors import SteeringVector


class GroupMeans:
    """Streaming per-group, per-layer sums (float64)."""

    def __init__(self):
        self.sums: dict[Hashable, dict[int, torch.Tensor]] = {}
        self.counts: dict[Hashable, int] = {}

    def add(self, group: Hashable, layer: int, rows: torch.Tensor, sign: float = 1.0):
        bucket = self.sums.setdefault(group, {})
        total = rows.to(torch.float64).sum(0) * sign
        bucket[layer] = bucket[layer] + total if layer in bucket else total

    def count(self, group: Hashable, n: int):
        self.counts[group] = self.counts.get(group, 0) + n

    def mean(self, group: Hashable) -> dict[int, torch.Tensor]:
        n = self.counts[group]
        return {L: (s / n).to(torch.float32) for L, s in self.sums[group].items()}

    def ordered(self) -> list[Hashable]:
        return sorted(self.counts, key=str)


@dataclass
class _Moments:
    """One group's differences at one layer: kept rows (float32) and the folded part (float64)."""

    rows: list[torch.Tensor]
    kept: int = 0
    gram: torch.Tensor | None = None  # sum of x x^T over the folded rows


class PairDifferences(GroupMeans):
    """`GroupMeans` of pair differences, plus (for the PCA methods) the differences themselves."""

    def __init__(self, method: str = "mean", fold_at: int | None = None):
        super().__init__()
        self.method = method_of(method)
        self.fold_at = fold_at  # kept rows per group and layer before they fold (default 2 d)
        self.moments: dict[Hashable, dict[int, _Moments]] = {}

    def add(self, group: Hashable, layer: int, rows: torch.Tensor, sign: float = 1.0):
        super().add(group, layer, rows, sign)
        if not self.method.keeps_rows:
            return
        rows = (rows.reshape(-1, rows.shape[-1]) * sign).to(torch.float32)
        m = self.moments.setdefault(group, {}).setdefault(layer, _Moments([]))
        m.rows.append(rows)
        m.kept += len(rows)
        if m.kept >= (self.fold_at or 2 * rows.shape[-1]):  # 2d float32 rows weigh as much as d x d float64
            block = torch.cat(m.rows).to(torch.float64)
            m.gram = block.T @ block if m.gram is None else m.gram + block.T @ block
            m.rows, m.kept = [], 0

    def only(self, group: Hashable) -> PairDifferences:
        """The same statistics for one group (per-group vectors)."""
        part = PairDifferences(self.method.name, self.fold_at)
        part.sums, part.counts = {group: self.sums[group]}, {group: self.counts[group]}
        part.moments = {group: self.moments[group]} if group in self.moments else {}
        return part

    @property
    def n_pairs(self) -> int:
        return sum(self.counts.values())


# -- the methods ------------------------------------------------------------------------------------------


def _weights(stats: PairDifferences, balanced: bool) -> dict[Hashable, float]:
    """Weight of one pair of each group: 1 / (G n_g) balanced, 1 / n plain."""
    groups = stats.ordered()
    if balanced:
        return {g: 1.0 / (len(groups) * stats.counts[g]) for g in groups}
    return {g: 1.0 / stats.n_pairs for g in groups}


def mean_difference(stats: PairDifferences, layer: int, balanced: bool) -> torch.Tensor:
    """Balanced: the mean of the per-group means (float32, the order of today's files); plain: sum / n."""
    if balanced:
        means = [(stats.sums[g][layer] / stats.counts[g]).to(torch.float32) for g in stats.ordered()]
        return sum(means) / len(means)
    return (sum(stats.sums[g][layer] for g in stats.counts) / stats.n_pairs).to(torch.float32)


@dataclass
class _Block:
    """Weighted points for a PCA: weight per point, kept points [k, d], folded second moment, sum of points."""

    weight: float
    rows: torch.Tensor
    gram: torch.Tensor | None
    total: torch.Tensor
    count: int


def _difference_blocks(stats: PairDifferences, layer: int, balanced: bool) -> list[_Block]:
    out = []
    for g, w in _weights(stats, balanced).items():
        m = stats.moments[g][layer]
        rows = torch.cat(m.rows).to(torch.float64) if m.rows else torch.zeros(0, stats.sums[g][layer].numel(),
                                                                                dtype=torch.float64)
        out.append(_Block(w, rows, m.gram, stats.sums[g][layer], stats.counts[g]))
    return out


def _first_component(blocks: list[_Block], centred: bool) -> torch.Tensor:
    """Unit top principal direction of the weighted points (weights sum to 1), centred on their mean or not."""
    centre = sum(b.weight * b.total for b in blocks) if centred else None
    if all(b.gram is None for b in blocks):  # every point kept: one SVD of the n x d points
        points = torch.cat([b.weight ** 0.5 * (b.rows - centre if centred else b.rows) for b in blocks])
        return torch.linalg.svd(points, full_matrices=False).Vh[0]
    d = blocks[0].total.numel()
    second = torch.zeros(d, d, dtype=torch.float64)
    for b in blocks:
        second += b.weight * (b.rows.T @ b.rows + (b.gram if b.gram is not None else 0))
    if centred:
        second -= torch.outer(centre, centre)
    return torch.linalg.eigh(second).eigenvectors[:, -1]


def _aligned(unit: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """`unit` signed and scaled so that it is the mean difference's projection on its line."""
    return ((mean.to(torch.float64) @ unit) * unit).to(torch.float32)


def pca_direction(stats: PairDifferences, layer: int, balanced: bool) -> torch.Tensor:
    unit = _first_component(_difference_blocks(stats, layer, balanced), centred=False)
    return _aligned(unit, mean_difference(stats, layer, balanced))


def pca_center_direction(stats: PairDifferences, layer: int, balanced: bool) -> torch.Tensor:
    """Each pair's activations centred on their midpoint are +d/2 and -d/2 (half the pair's weight each);
    their first principal component, centred on the points' mean."""
    points = []
    for b in _difference_blocks(stats, layer, balanced):
        for sign in (0.5, -0.5):
            gram = b.gram * 0.25 if b.gram is not None else None
            points.append(_Block(b.weight / 2, sign * b.rows, gram, sign * b.total, b.count))
    unit = _first_component(points, centred=True)
    return _aligned(unit, mean_difference(stats, layer, balanced))


def pca_diff_direction(stats: PairDifferences, layer: int, balanced: bool) -> torch.Tensor:
    unit = _first_component(_difference_blocks(stats, layer, balanced), centred=True)
    return _aligned(unit, mean_difference(stats, layer, balanced))


@dataclass(frozen=True)
class Method:
    name: str
    label: str  # provenance "method" (plus "-balanced")
    direction: Callable[[PairDifferences, int, bool], torch.Tensor]
    keeps_rows: bool  # needs every difference (memory grows with the pairs), not only sums
    summary: str


METHODS = {m.name: m for m in (
    Method("mean", "mean-difference", mean_difference, False, "mean difference (streams, O(d) per layer)"),
    Method("pca", "pca", pca_direction, True, "first principal component of the differences (uncentred)"),
    Method("pca-center", "pca-center", pca_center_direction, True,
           "repeng's pca_center: PCA of each pair centred on its midpoint"),
    Method("pca-diff", "pca-diff", pca_diff_direction, True,
           "repeng's pca_diff: PCA of the differences centred on their mean"),
)}
DEFAULT_METHOD = "mean"


def method_of(name: str) -> Method:
    if name not in METHODS:
        raise UserError(f"unknown extraction method {name!r} (one of {', '.join(METHODS)})")
    return METHODS[name]


# -- groups and provenance ------------------------------------------------------------------------------------


def check_groups(groups: Sequence[Hashable] | None, n: int) -> list[Hashable]:
    """The group of each of `n` pairs ("all" without groups)."""
    groups = list(groups) if groups is not None else ["all"] * n
    if len(groups) != n:
        raise UserError(f"{len(groups)} groups for {n} pairs")
    return groups


def to_vector(stats: PairDifferences, model, layers: Sequence[int], balanced: bool = True, reader: str = "full-text",
              meta: dict | None = None, position: str = "last", method: str | None = None) -> SteeringVector:
    """The vector of `stats` by its method (or `method`, e.g. "mean" for per-group vectors of a PCA run),
    with the provenance every extraction records: method, reader, pairs, groups, model, version."""
    if not stats.counts:
        raise UserError("no contrastive pairs to read")
    method = stats.method if method is None else method_of(method)
    if method.keeps_rows and not stats.method.keeps_rows:
        raise UserError(
            f"method {method.name!r} needs the differences, which a {stats.method.name!r} read did not keep"
        )
    vector = {L: method.direction(stats, L, balanced) for L in layers}
    info = {
        "method": method.label + ("-balanced" if balanced else ""),
        "site": "decoder-layer-output",
        "position": position,
        "reader": reader,
        "n_pairs": stats.n_pairs,
        "groups": {str(g): stats.counts[g] for g in stats.ordered()},
        "model": model.name,
        "model_revision": model.revision,
    }
    if method.keeps_rows:
        info["scale"] = "projection of the mean difference"
    info.update(meta or {})
    info["steer_trace_version"] = __version__
    return SteeringVector(vector, info)
