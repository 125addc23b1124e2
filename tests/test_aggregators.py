"""Extraction methods on synthetic pair differences, against independent computations written here
(and steering-vectors' PCA aggregator); the real-model checks are in test_read.py and test_vectors.py."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from steer_trace.aggregators import METHODS, GroupMeans, PairDifferences, to_vector
from steer_trace.errors import UserError

MODEL = SimpleNamespace(name="toy", revision="r0")
D = 6


def toy_pairs(n: int = 9, seed: int = 0):
    """n pairs of activations [n, d], whose differences share one strong direction plus noise; groups 2:1."""
    gen = torch.Generator().manual_seed(seed)
    neg = torch.randn(n, D, generator=gen) * 3
    direction = torch.randn(D, generator=gen)
    pos = neg + (1.5 + torch.rand(n, 1, generator=gen)) * direction + 0.4 * torch.randn(n, D, generator=gen)
    groups = ["A" if i % 3 else "B" for i in range(n)]
    return pos, neg, groups


def stats_of(method: str, diffs: torch.Tensor, groups, layers=(0, 1)) -> PairDifferences:
    """Layer L holds diffs * (L + 1), added one pair at a time as the readers do."""
    stats = PairDifferences(method)
    for row, g in zip(diffs, groups):
        for L in layers:
            stats.add(g, L, (row * (L + 1)).unsqueeze(0))
        stats.count(g, 1)
    return stats


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def test_mean_is_todays_arithmetic_bit_for_bit():
    """The shared helper computes what read.py computed before it existed: float64 sums per group, the
    per-group means in float32, their mean (balanced); the float64 total / n (plain)."""
    pos, neg, groups = toy_pairs()
    diffs = (pos - neg).float()
    old = GroupMeans()
    for row, g in zip(diffs, groups):
        old.add(g, 0, row.unsqueeze(0))
        old.count(g, 1)
    means = [old.mean(g) for g in sorted(old.counts, key=str)]
    old_balanced = sum(m[0] for m in means) / len(means)
    old_plain = (sum(old.sums[g][0] for g in old.counts) / len(diffs)).to(torch.float32)
    stats = stats_of("mean", diffs, groups, layers=(0,))
    assert torch.equal(to_vector(stats, MODEL, [0], balanced=True)[0], old_balanced)
    assert torch.equal(to_vector(stats, MODEL, [0], balanced=False)[0], old_plain)
    assert not torch.allclose(old_balanced, old_plain)  # groups of 6 and 3: balancing changes the vector


def independent_pca(diffs: torch.Tensor, centred: bool) -> torch.Tensor:
    """Unit first right singular vector of the (optionally centred) difference matrix, numpy float64."""
    import numpy as np

    x = diffs.double().numpy()
    if centred:
        x = x - x.mean(0)
    return torch.from_numpy(np.linalg.svd(x, full_matrices=False)[2][0])


@pytest.mark.parametrize("layer", [0, 1])
def test_pca_equals_independent_svd_and_steering_vectors(layer):
    pos, neg, groups = toy_pairs()
    diffs = pos - neg
    vector = to_vector(stats_of("pca", diffs, groups), MODEL, [0, 1], balanced=False)[layer]
    scaled = diffs * (layer + 1)
    ref = independent_pca(scaled, centred=False)
    assert abs(cos(vector, ref)) >= 0.9999
    mean = scaled.mean(0).double()
    assert cos(vector, mean) > 0  # signed with the mean difference
    assert float(vector.double().norm()) == pytest.approx(abs(float(mean @ ref)), rel=1e-5)  # its projection
    aggregators = pytest.importorskip("steering_vectors.aggregators")
    theirs = aggregators.pca_aggregator()((pos * (layer + 1)).float(), (neg * (layer + 1)).float())
    assert cos(vector, theirs) >= 0.9999  # same direction and sign; theirs has norm 1
    assert float(theirs.norm()) == pytest.approx(1.0, abs=1e-5)


def test_pca_center_is_reppengs_construction_and_pca_diff_the_centred_pca():
    import numpy as np

    pos, neg, groups = toy_pairs()
    stats = stats_of("pca-center", pos - neg, groups, layers=(0,))
    centre = to_vector(stats, MODEL, [0], balanced=False)[0]
    # repeng's pca_center, written out: both activations of a pair minus the pair's midpoint, PCA (centred)
    h = torch.stack([pos, neg], 1).reshape(-1, D).double().numpy()  # pos0, neg0, pos1, ...
    mid = (h[::2] + h[1::2]) / 2
    points = h.copy()
    points[::2] -= mid
    points[1::2] -= mid
    u = np.linalg.svd(points - points.mean(0), full_matrices=False)[2][0]
    projected = h @ u
    if np.mean(projected[::2] > projected[1::2]) < 0.5:  # repeng's sign: most positives project higher
        u = -u
    assert cos(centre, torch.from_numpy(u)) >= 0.9999
    pca = to_vector(stats_of("pca", pos - neg, groups, layers=(0,)), MODEL, [0], balanced=False)[0]
    assert cos(centre, pca) >= 0.99999  # the centred points are +-d/2: the same direction as pca
    diff = to_vector(stats_of("pca-diff", pos - neg, groups, layers=(0,)), MODEL, [0], balanced=False)[0]
    assert abs(cos(diff, independent_pca(pos - neg, centred=True))) >= 0.9999
    assert abs(cos(diff, pca)) < 0.99  # centring removes the shared direction: pca-diff really differs


def test_balanced_pca_weighs_groups_equally():
    """Balanced PCA on groups of 6 and 3 pairs equals plain PCA after repeating group B's pairs twice."""
    pos, neg, groups = toy_pairs()
    diffs = pos - neg
    balanced = to_vector(stats_of("pca", diffs, groups, layers=(0,)), MODEL, [0], balanced=True)[0]
    is_b = torch.tensor([g == "B" for g in groups])
    repeated = torch.cat([diffs[~is_b], diffs[is_b], diffs[is_b]])
    plain = to_vector(stats_of("pca", repeated, ["x"] * len(repeated), layers=(0,)), MODEL, [0], balanced=False)[0]
    assert torch.allclose(balanced, plain, atol=1e-5)
    unbalanced = to_vector(stats_of("pca", diffs, groups, layers=(0,)), MODEL, [0], balanced=False)[0]
    assert not torch.allclose(balanced, unbalanced, atol=1e-3)


@pytest.mark.parametrize("method", ["pca", "pca-center", "pca-diff"])
def test_second_moments_fold_past_2d_pairs_without_changing_the_vector(method):
    """40 pairs of width 6 fold into a d x d matrix (at 12 kept rows); the result equals the all-rows SVD."""
    pos, neg, groups = toy_pairs(n=40, seed=3)
    diffs = pos - neg
    folded = stats_of(method, diffs, groups, layers=(0,))
    assert folded.moments["A"][0].gram is not None and folded.moments["A"][0].kept < 2 * D
    for balanced in (True, False):
        got = to_vector(folded, MODEL, [0], balanced=balanced)[0]
        kept = PairDifferences(method, fold_at=10**9)
        for row, g in zip(diffs, groups):  # the same rows, never folded: one SVD of all of them
            kept.add(g, 0, row.unsqueeze(0))
            kept.count(g, 1)
        want = to_vector(kept, MODEL, [0], balanced=balanced)[0]
        assert kept.moments["A"][0].gram is None
        assert torch.allclose(got, want, atol=1e-5), (balanced, got, want)


def test_provenance_is_one_dict_for_every_method():
    pos, neg, groups = toy_pairs()
    for name in METHODS:
        vector = to_vector(stats_of(name, pos - neg, groups), MODEL, [0, 1], balanced=True, reader="some-reader",
                           meta={"name": "toy-set"})
        meta = vector.meta
        assert meta["method"] == f"{METHODS[name].label}-balanced"
        assert meta["n_pairs"] == 9 and meta["groups"] == {"A": 6, "B": 3} and meta["reader"] == "some-reader"
        assert meta["model"] == "toy" and meta["model_revision"] == "r0" and meta["steer_trace_version"]
        assert meta["name"] == "toy-set" and ("scale" in meta) == (name != "mean")


def test_bad_methods_and_empty_stats_are_user_errors():
    with pytest.raises(UserError, match="unknown extraction method 'lda'"):
        PairDifferences("lda")
    with pytest.raises(UserError, match="no contrastive pairs"):
        to_vector(PairDifferences("pca"), MODEL, [0])
    pos, neg, groups = toy_pairs()
    with pytest.raises(UserError, match="did not keep"):
        to_vector(stats_of("mean", pos - neg, groups), MODEL, [0], method="pca")


def test_version_has_one_source():
    import importlib.metadata
    from pathlib import Path

    import tomllib

    import steer_trace
    from steer_trace import _version

    assert steer_trace.__version__ is _version.__version__
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "steer_trace._version.__version__"
    assert importlib.metadata.version("steer-trace") == _version.__version__  # the installed package agrees
