"""Skills sweeps in lockstep: the curves of one layer advance one schedule step at a time and each step's
missing points are scored in one `token_accuracy` call per evaluation-set size. Against the one-plan-per-call
sweep (`lockstep=False`, the previous code path) on smollm2-135m with tiny documents: the same points, the same
per-document counts and summary table, fewer calls; a sweep with some points cached scores only the others."""
from __future__ import annotations

import json
from dataclasses import replace

import polars as pl
import pytest
import torch

from steer_trace import score
from steer_trace.cache import Run
from studies.skills.corpora import load_corpus
from studies.skills import profiles
from studies.skills import run as skills
from steer_trace.plan import Steering
from steer_trace.vectors import SteeringVector

# random directions of growing norm: at c = 1 the short ones leave accuracy near the baseline and the long ones
# collapse it, so curves of one layer go on, skip or stop at different steps
NORMS = {("code", "none"): 2.0, ("python", "none"): 6.0, ("code", "components"): 15.0,
         ("python", "components"): 40.0, ("code", "means"): 120.0, ("python", "means"): 400.0}
COEFS = (0.0, 1.0, 5.0, 30.0)
LAYERS = [0, 14]  # smollm2-135m: layer 14 is the middle layer, 6 curves there with the controls, 2 at layer 0
DOC_COLUMNS = ["doc", "domain", "language", "correct", "count"]


@pytest.fixture(scope="module")
def vectors(smol):
    gen = torch.Generator().manual_seed(3)
    out = {}
    for key, norm in NORMS.items():
        layers = {}
        for L in range(smol.n_layers):
            v = torch.randn(smol.d_model, generator=gen)
            layers[L] = v / v.norm() * norm
        out[key] = SteeringVector(layers, {"name": f"random {key}"})
    return out


@pytest.fixture(scope="module")
def setting(smol, vectors):
    """(lazy model, corpus, profile, vectors): both sizes (sweep 20, headline 40 scored tokens per domain)."""
    corpus = load_corpus(n_vector=2)  # the project's own data/skills
    profile = profiles.make_profile("quick", eval_tokens=16, sweep_tokens=20, headline_tokens=40, batch_size=8,
                                  coefs=COEFS, n_boot=50)
    return skills.LazyModel(lambda: smol, "smollm2-135m", "test"), corpus, profile, vectors


def counted_sweep(monkeypatch, setting, root, layers=LAYERS, **options):
    """(Swept, plans per token_accuracy call as [(layer, size)] lists)."""
    model, corpus, profile, vectors = setting
    sizes = {len(s.texts): size for size, s in skills.eval_sets(corpus, profile, model.tokenizer()).items()}
    real = score.token_accuracy
    calls = []

    def spy(m, docs, plans, *args, **kwargs):
        calls.append([(min((i.layer for i in p.injections), default=-1), sizes[len(docs)]) for p in plans])
        return real(m, docs, plans, *args, **kwargs)

    monkeypatch.setattr(score, "token_accuracy", spy)
    out = skills.sweep(model, corpus, profile, vectors, root, layers=layers, **options)
    monkeypatch.setattr(score, "token_accuracy", real)
    return out, calls


@pytest.fixture(scope="module")
def both(setting, tmp_path_factory):
    """The same sweep one plan per call and in lockstep, each in a fresh results folder, calls counted."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        one = counted_sweep(monkeypatch, setting, tmp_path_factory.mktemp("one-by-one"), lockstep=False)
        lock = counted_sweep(monkeypatch, setting, tmp_path_factory.mktemp("lockstep"))
    return one, lock


def curves_visited(documents: pl.DataFrame) -> dict[tuple, list[tuple[float, str]]]:
    """(target, layer, control) -> its (coef, size) points in the order of the points frame."""
    steered = documents.filter(pl.col("layer") >= 0).select("target", "layer", "control", "coef", "size")
    out: dict[tuple, list] = {}
    for row in steered.unique(maintain_order=True).iter_rows():
        out.setdefault(row[:3], []).append(row[3:])
    return out


@pytest.mark.slow
def test_lockstep_sweep_equals_the_one_plan_per_call_sweep(both, setting):
    (one, _), (lock, _) = both
    # the same points in the same order, and the same per-document counts, exactly: passes that mix the rows of
    # several plans change float32 sums by ~1e-6 of the logits' scale (docs/bench.md), which would flip a top-1
    # prediction only on a near-exact tie; none occurs on these documents
    assert lock.documents.equals(one.documents)
    assert lock.table.equals(one.table)  # the summary table (its run key too: the config is unchanged)
    assert lock.computed_points == one.computed_points and lock.cached_points == one.cached_points == 0
    # the visits are the paper's rule on each curve in curve order, and the curves went different ways
    _, _, profile, _ = setting
    visits = curves_visited(lock.documents)
    assert list(visits) == skills.curve_order(LAYERS, skills.TARGETS, 30, True)
    for curve, points in visits.items():
        relative = lock.table.filter((pl.col("target") == curve[0]) & (pl.col("layer") == curve[1])
                                     & (pl.col("control") == curve[2]) & (pl.col("domain") == curve[0]))
        by_coef = dict(zip(relative["coef"], relative["relative"]))
        assert [c for c, _ in points] == skills.coefficient_schedule(profile.coefs, lambda c: by_coef[c])
    assert len({len(points) for points in visits.values()}) > 1  # some curves stopped before others


@pytest.mark.slow
def test_lockstep_scores_a_step_of_one_layer_in_one_call_per_size(both):
    (one, one_calls), (lock, lock_calls) = both
    assert all(len(plans) == 1 for plans in one_calls)
    assert len(one_calls) == one.computed_points  # the two baselines, then one call per steered point
    # lockstep: per layer group and step, one call per size among that step's scored points (c = 0 with the
    # default steering is the baseline's frame, no call)
    expected = [[(-1, "sweep")], [(-1, "headline")]]
    visits = curves_visited(lock.documents)
    for layer in (14, 0):  # the middle layer's group first, as curve_order has it
        group = [points for curve, points in visits.items() if curve[1] == layer]
        for step in range(max(len(points) for points in group)):
            asked = [points[step] for points in group if step < len(points) and points[step][0] != 0]
            for size in dict.fromkeys(size for _, size in asked):
                expected.append([(layer, s) for _, s in asked if s == size])
    assert lock_calls == expected
    assert max(len(plans) for plans in lock_calls) == 6  # the 6 curves of the middle layer in one call
    assert len(lock_calls) < len(one_calls)
    assert sum(map(len, lock_calls)) == sum(map(len, one_calls))  # the same points were scored


@pytest.mark.slow
def test_resumed_lockstep_sweep_scores_only_the_missing_points(both, setting, tmp_path, monkeypatch):
    (one, _), _ = both
    model, corpus, profile, vectors = setting
    # an interrupted sweep: every other point of the finished one (baselines included) is already cached
    sets = skills.eval_sets(corpus, profile, model.tokenizer())
    store = Run(skills.POINTS, skills.points_config(model, corpus, profile, sets, vectors, 13), tmp_path)
    points = one.documents.select(*skills.POINT_KEYS).unique(maintain_order=True)
    points = points.filter(~((pl.col("coef") == 0) & (pl.col("layer") >= 0)))  # c = 0: the baseline's frame
    cached = points.gather_every(2)
    for row in cached.iter_rows(named=True):
        frame = one.documents.filter(*(pl.col(k) == row[k] for k in skills.POINT_KEYS)).select(DOC_COLUMNS)
        store.point(_params(row), lambda frame=frame: frame)
    out, calls = counted_sweep(monkeypatch, setting, tmp_path)
    assert out.cached_points == cached.height
    assert out.computed_points == points.height - cached.height == sum(map(len, calls))
    assert out.documents.equals(one.documents) and out.table.equals(one.table)


def _params(row: dict) -> dict:
    """A point's cache parameters from its row in the points frame."""
    if row["layer"] < 0:
        return {"kind": "baseline", "size": row["size"]}
    return {"kind": "steered", "target": row["target"], "layer": row["layer"], "coef": row["coef"],
            "control": row["control"], "size": row["size"]}


@pytest.mark.slow
def test_lockstep_with_project_out_scores_c0_and_equals_one_by_one(setting, tmp_path, monkeypatch):
    """Plans that are not pure adds share a call but not their passes; c = 0 still acts, so it is scored."""
    model, corpus, profile, vectors = setting
    small = (model, corpus, replace(profile, coefs=(0.0, 1.0)), vectors)
    runs = {lockstep: counted_sweep(monkeypatch, small, tmp_path / str(lockstep), layers=[14], targets=("code",),
                                    steering=Steering("project-out-then-add"), lockstep=lockstep)
            for lockstep in (False, True)}
    (one, one_calls), (lock, lock_calls) = runs[False], runs[True]
    assert lock.documents.equals(one.documents) and lock.table.equals(one.table)
    assert curves_visited(lock.documents)[("code", 14, "none")] == [(0.0, "sweep"), (1.0, "headline")]
    assert [plans for plans in lock_calls[2:]] == [[(14, "sweep")] * 3, [(14, "headline")] * 3]
    assert len(one_calls) == 2 + 6


def test_point_store_scores_the_missing_points_of_a_step_in_one_call_per_size(tmp_path, monkeypatch):
    """No model: a fake token_accuracy. Cached points are read back and their plans never made."""
    sets = {size: skills.EvalSet(size, ["text"] * n, ["text"] * n, [f"{size} {i}" for i in range(n)])
            for size, n in (("sweep", 2), ("headline", 3))}
    calls = []

    def fake(model, docs, plans, *args, **kwargs):
        calls.append((len(docs), list(plans)))
        return [(torch.full((len(docs),), p), torch.full((len(docs),), 10)) for p in plans]

    monkeypatch.setattr(score, "token_accuracy", fake)
    store = Run(skills.POINTS, {"test": 1}, tmp_path)
    profile = profiles.make_profile("quick")
    points = skills.PointStore(store, sets, skills.LazyModel(lambda: "model", "m", "r"), profile, lambda _m: None)

    def steered(coef, size):
        return {"kind": "steered", "target": "code", "layer": 3, "coef": coef, "control": "none", "size": size}

    cached = steered(9.0, "sweep")
    earlier = skills._documents_frame(sets["sweep"], torch.tensor([7, 7]), torch.tensor([10, 10]))
    Run(skills.POINTS, {"test": 1}, tmp_path).point(cached, lambda: earlier)  # an earlier run's point

    def never():
        raise AssertionError("a cached point's plan was made")

    wanted = [(steered(1.0, "sweep"), lambda: 1), (steered(2.0, "headline"), lambda: 2), (cached, never),
              (steered(3.0, "sweep"), lambda: 3)]
    frames = points.get(wanted)
    assert calls == [(2, [1, 3]), (3, [2])]  # one call per size, in the order the sizes first come
    assert [f["correct"].to_list() for f in frames] == [[1, 1], [2, 2, 2], [7, 7], [3, 3]]
    assert points.cached == 1 and store.computed_points == 3
    again = points.get(wanted[:2])  # asked again: read back from the cache, no call
    assert all(a.equals(b) for a, b in zip(again, frames[:2]))
    assert len(calls) == 2 and points.cached == 3


def _configs(tmp_path, **configs):
    for key, config in configs.items():
        folder = tmp_path / skills.POINTS
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{key}.config.json").write_text(json.dumps(config))


def test_point_donors_are_runs_with_the_same_documents_at_that_size(tmp_path):
    base = {"model": "m", "vectors": "v1", "documents": {"sweep": "S", "headline": "H20"}}
    _configs(tmp_path, other_headline={**base, "documents": {"sweep": "S", "headline": "H40"}},
             sweep_only={**base, "documents": {"sweep": "S"}},
             other_sweep={**base, "documents": {"sweep": "S2", "headline": "H20"}},
             other_vectors={**base, "vectors": "v2"}, itself=base)
    assert skills.point_donors(tmp_path, base, "itself") == {"sweep": ["other_headline", "sweep_only"],
                                                             "headline": ["other_sweep"]}


def test_point_store_copies_a_donor_point_instead_of_scoring_it(tmp_path, monkeypatch):
    sets = {"sweep": skills.EvalSet("sweep", ["text"] * 2, ["text"] * 2, ["a", "b"])}
    monkeypatch.setattr(score, "token_accuracy", lambda m, docs, plans, *a, **k:
                        [(torch.full((len(docs),), p), torch.full((len(docs),), 10)) for p in plans])
    params = {"kind": "steered", "target": "code", "layer": 3, "coef": 1.0, "control": "none", "size": "sweep"}
    donor = Run(skills.POINTS, {"run": "donor"}, tmp_path)
    donor.point(params, lambda: skills._documents_frame(sets["sweep"], torch.tensor([4, 5]), torch.tensor([9, 9])))
    store = Run(skills.POINTS, {"run": "new"}, tmp_path)
    points = skills.PointStore(store, sets, skills.LazyModel(lambda: "model", "m", "r"), profiles.make_profile("quick"),
                               lambda _m: None, donors={"sweep": [donor.key]})
    other = {**params, "coef": 2.0}
    frames = points.get([(params, lambda: 1), (other, lambda: 2)])
    assert [f["correct"].to_list() for f in frames] == [[4, 5], [2, 2]]
    assert points.adopted == points.cached == 1 and store.computed_points == 1
    assert store.cached_point(params)["correct"].to_list() == [4, 5]  # now this run's own point
    assert donor.cached_point(other) is None  # the donor is only read


@pytest.mark.slow
def test_a_sweep_with_another_headline_size_reuses_the_sweep_points(setting, tmp_path, monkeypatch):
    model, corpus, profile, vectors = setting
    small = replace(profile, coefs=(0.0, 1.0, 5.0))
    first, _ = counted_sweep(monkeypatch, (model, corpus, small, vectors), tmp_path, layers=[0], targets=("code",),
                             permuted_control=False)
    bigger, calls = counted_sweep(monkeypatch, (model, corpus, replace(small, headline_tokens=60), vectors), tmp_path,
                                  layers=[0], targets=("code",), permuted_control=False)
    assert len(skills.points_configs(tmp_path)) == 2  # a second points run (its headline documents differ)
    # only the headline points are scored again (baseline and c = 1 at layer 0); the sweep ones are copied
    assert sorted(p for call in calls for p in call) == [(-1, "headline"), (0, "headline")]
    assert bigger.computed_points == 2 and bigger.cached_points == first.computed_points - 2

    def sweep_rows(out):
        return out.documents.filter(pl.col("size") == "sweep")

    assert sweep_rows(bigger).equals(sweep_rows(first))
    assert bigger.documents.filter(pl.col("size") == "headline")["count"].sum() > \
        first.documents.filter(pl.col("size") == "headline")["count"].sum()
