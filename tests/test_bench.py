"""Shared-prompt extraction equals the full-text reader; `steer-trace bench --quick` runs end to end.

No timing is asserted anywhere: only structure (passes, requests), exactness and output shape.
"""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from steer_trace.bench import counting_forwards
from steer_trace.data import both_orders, load_ab_file, prompt
from steer_trace.errors import UserError
from steer_trace.pairs import contrastive_vector_shared_prompt
from steer_trace.read import contrastive_vector
from steer_trace.vectors import cosine

LAYERS = [0, 7, 29]  # first, middle, last (largest activations) of smollm2-135m


@pytest.fixture(scope="module")
def myopic_items(paper_sets):
    # 3 rows in both option orders: both answer letters occur, prompts of different lengths
    return both_orders(load_ab_file(paper_sets / "myopic.json")[:3])


def _both_readers(smol, items, balanced):
    prompts = [prompt(i) for i in items]
    groups = [i.matching for i in items]
    shared = contrastive_vector_shared_prompt(
        smol, prompts, [i.matching for i in items], [i.not_matching for i in items],
        groups=groups, layers=LAYERS, batch_size=4, balanced=balanced)
    full = contrastive_vector(
        smol, [(p + i.matching, p + i.not_matching) for p, i in zip(prompts, items)],
        groups=groups, layers=LAYERS, batch_size=8, balanced=balanced)
    return shared, full


@pytest.mark.parametrize("balanced", [True, False])
def test_shared_prompt_vector_equals_full_text_vector(smol, myopic_items, balanced):
    shared, full = _both_readers(smol, myopic_items, balanced)
    assert sorted(shared.layers) == LAYERS
    for L, cos in cosine(shared, full).items():
        assert cos >= 0.99999, (L, cos)
        scale = float(full.layers[L].abs().max())
        assert float((shared.layers[L] - full.layers[L]).abs().max()) <= 1e-4 * max(scale, 1.0), L
    assert shared.meta["groups"] == full.meta["groups"] == {"A": 3, "B": 3}
    assert shared.meta["method"] == full.meta["method"]
    assert shared.meta["reader"] == "shared-prompt-kv-cache"


def test_shared_prompt_reads_each_prompt_once(smol, myopic_items):
    items = myopic_items[:4]
    with counting_forwards(smol) as passes:
        contrastive_vector_shared_prompt(smol, [prompt(i) for i in items], [i.matching for i in items],
                                         [i.not_matching for i in items], layers=[3], batch_size=2)
    assert passes[0] == 4  # 2 batches x (prompt pass + answer-token pass)


def test_shared_prompt_rejects_answers_that_are_not_one_token(smol, myopic_items):
    p = prompt(myopic_items[0])
    with pytest.raises(UserError, match="not exactly one extra token"):
        contrastive_vector_shared_prompt(smol, [p], ["A) because I say so"], ["B"], layers=[0])
    with pytest.raises(UserError, match="1 prompts, 2 positive"):
        contrastive_vector_shared_prompt(smol, [p], ["A", "B"], ["B"], layers=[0])


def test_bench_quick_smoke(tmp_path, paper_sets):
    from tasks.cli import main

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        main, ["bench", "--quick", "--results", str(tmp_path / "results"), "--json-out", str(out),
               "--dataset", str(paper_sets / "myopic.json")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = result.output.split("== summary ==\n", 1)[1].splitlines()
    assert re.fullmatch(r"steered/plain throughput ratio: \d+\.\d\d .*", summary[0])
    assert "machine:" in result.output and "torch threads" in result.output
    report = json.loads(out.read_text())
    sweep = report["sweep"]
    assert sweep["passes_batched"] == sweep["passes_batched_target"] == 2 * 2  # K=2, ceil(3/2)=2
    assert sweep["passes_naive"] == 2 * 3
    assert sweep["max_abs_dp_batched_vs_naive"] < 1e-4
    assert sweep["requests_computed"] <= sweep["requests_bound"]
    if sweep["requests_measured"] is not None:
        assert sweep["requests_measured"] == sweep["requests_computed"]
    extract = report["extract"]
    assert extract["cos_shared_vs_sv"] >= 0.9999 and extract["cos_shared_vs_full"] >= 0.99999
    assert report["steer"]["max_abs_dp_unsteered_vs_plain"] < 1e-4
    assert report["memory"]["smollm2-135m"]["peak_rss_mb"] > 100
    assert report["figures"]["returncode"] == 0


@pytest.mark.slow
def test_shared_prompt_through_the_remote_path_equals_local(smol, myopic_items):
    from steer_trace.models import load_model

    far = load_model("smollm2-135m", remote="local")  # nnsight's serialise/deserialise path, offline
    items = myopic_items[:2]
    args = ([prompt(i) for i in items], [i.matching for i in items], [i.not_matching for i in items])
    remote = contrastive_vector_shared_prompt(far, *args, layers=[0, 29], batch_size=2)
    local = contrastive_vector_shared_prompt(smol, *args, layers=[0, 29], batch_size=2)
    for L in (0, 29):
        assert float((remote.layers[L] - local.layers[L]).abs().max()) <= 1e-4
