"""Shared-prompt extraction equals the full-text reader; `steer-trace bench --quick` runs end to end.

No timing is asserted anywhere: only structure (passes, requests), exactness and output shape.
"""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from benchmarks.harness import counting_forwards
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


def test_bench_quick_smoke(tmp_path):
    """`steer-trace bench --quick` on the project's own data: every section runs, the counts are exact."""
    from tasks.cli import main

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        main, ["bench", "--quick", "--results", str(tmp_path / "results"), "--json-out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = result.output.split("== summary ==\n", 1)[1].splitlines()
    assert re.fullmatch(r"steered/plain throughput ratio: \d+\.\d\d .*", summary[0])
    assert "machine:" in result.output and "torch threads" in result.output
    assert "data: data/behaviours/*.jsonl (200 questions)" in result.output
    report = json.loads(out.read_text())
    sweep = report["sweep"]
    # K=2 at one layer x N=3, batch 2: ceil(6/2) = 3 mixed passes + 2 prefix passes (one per chunk of prompts)
    assert sweep["passes_batched"] == sweep["passes_batched_target"] == 3 + 2
    assert sweep["passes_naive"] == 2 * 3
    assert sweep["max_abs_dp_batched_vs_naive"] < 1e-4
    assert sweep["requests_computed"] <= sweep["requests_bound"]
    if sweep["requests_measured"] is not None:
        assert sweep["requests_measured"] == sweep["requests_computed"] == 2  # 3 passes, 2 per request
    hetero = report["hetero"]  # K=3 plans x N=2 prompts, batch 4: 2 mixed passes vs 3 (one call per plan)
    assert hetero["passes"] == {"mixed": 2, "separate": 3} and hetero["passes_target"] == 2
    assert hetero["max_abs_dp"] <= 1e-5 and hetero["ideal_time_per_pass"] == pytest.approx(2 / 3)
    prefix = report["prefix"]
    assert sorted(prefix["layers"], key=int) == ["7", "15", "22"]
    for L, row in prefix["layers"].items():
        n, k = 30, 3
        assert row["ideal"] == pytest.approx((int(L) + k * (n - int(L))) / (k * n))
        assert row["passes"] == {"shared": 1 + 2, "naive": 2}  # a prefix pass + 6 rows in 2 passes of 4
        assert row["max_abs_dp"] <= 1e-5
    extract = report["extract"]
    assert extract["cos_shared_vs_sv"] >= 0.9999 and extract["cos_shared_vs_full"] >= 0.99999
    assert extract["cos_command_vs_sv"] >= 0.9999
    assert report["steer"]["max_abs_dp_unsteered_vs_plain"] < 1e-4
    assert report["memory"]["smollm2-135m"]["peak_rss_mb"] > 100
    assert report["figures"]["returncode"] == 0
    startup = report["startup"]  # `--help` and a study command's `--help` in fresh processes, this checkout
    assert set(startup["median_ms"]["now"]) == {"--help", "behaviours single --help"}
    assert set(startup["exit_codes"].values()) == {0}


def test_gpu_script_runs_on_the_cpu_in_quick_mode(tmp_path):
    from benchmarks.gpu import main

    out = tmp_path / "gpu.json"
    with pytest.raises(SystemExit) as done:
        main(["--device", "cpu", "--dtype", "float32", "--model", "smollm2-135m", "--quick", "--json-out", str(out)])
    assert done.value.code == 0
    report = json.loads(out.read_text())
    assert sorted(report["steer"], key=int) == ["1", "2"]
    assert report["hetero"]["max_abs_dp"] <= 1e-5
    assert all(row["max_abs_dp"] <= 1e-5 for row in report["prefix"]["layers"].values())


def test_bench_refuses_a_device_load_model_does_not_take():
    import inspect

    from benchmarks.cli import load_kwargs
    from steer_trace.models import load_model

    if "device" in inspect.signature(load_model).parameters:
        assert load_kwargs("cuda", None) == {"device": "cuda"}
    else:
        with pytest.raises(UserError, match="--device cuda: this version's load_model has no device option"):
            load_kwargs("cuda", None)
    assert load_kwargs("cpu", "float32") in ({}, {"device": "cpu", "dtype": "float32"}, {"device": "cpu"})


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


def test_throughput_times_several_models_side_by_side(smol, monkeypatch, tmp_path, capsys):
    """`benchmarks.throughput --model a,b` loads both, times them in one run and prints each model's rows with
    its time over the last model's (the last model's own ratio is 1)."""
    from benchmarks import throughput

    loaded = []
    monkeypatch.setattr(throughput, "load_model", lambda name, **kw: loaded.append(name) or smol)
    out = tmp_path / "t.json"
    throughput.main(["--model", "first,second", "--rows", "1", "--new-tokens", "2", "--scored", "2",
                     "--batch-size", "2", "--repeats", "1", "--dtype", "float32", "--json-out", str(out)])
    assert loaded == ["first", "second"]
    report = json.loads(out.read_text())
    assert list(report["models"]) == ["first", "second"]
    for name in ("first", "second"):
        rows = report["models"][name]["workloads"]
        assert set(rows) == set(throughput.WORKLOADS)
        median = rows["generate plain"]["median_s"]  # both rounded (0.01 s, 0.1 tokens/s): equal to that precision
        assert rows["generate plain"]["tokens_per_s"] == pytest.approx(2 / median, rel=0.01 / median, abs=0.06)
    assert all(r["time_over_second"] == 1.0 for r in report["models"]["second"]["workloads"].values())
    printed = capsys.readouterr().out
    assert printed.count("first ") >= 4 and printed.count("second ") >= 4 and "x second" in printed
