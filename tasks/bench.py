"""`steer-trace bench`: steering overhead, sweep cost, extraction, memory, figures — as ratios."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click

MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b")
SECTIONS = ("steer", "sweep", "extract", "memory", "figures")

# sizes per the targets; --quick shrinks everything for a smoke test (smollm2 only)
FULL = dict(score_prompts=24, score_batch=8, rounds=3, extract_rounds=2, sweep_k=5, sweep_n=16, sweep_batch=8, ppr=4,
            pairs=64, extract_batch=8, mem_caps=(8, 4, 4), mem_pairs=32, mem_prompts=48, mem_models=MODELS)
QUICK = dict(score_prompts=4, score_batch=2, rounds=1, extract_rounds=1, sweep_k=2, sweep_n=3, sweep_batch=2, ppr=2,
             pairs=4, extract_batch=2, mem_caps=(2, 2, 2), mem_pairs=2, mem_prompts=2, mem_models=("smollm2-135m",))


def _say(line: str = ""):
    click.echo(line)
    sys.stdout.flush()


def _ab_items(dataset: str, start: int, n: int):
    from steer_trace.data import load_ab_file
    from steer_trace.errors import UserError

    items = load_ab_file(dataset)
    if len(items) < start + n:
        raise UserError(f"{dataset} has {len(items)} rows; the benchmark needs {start + n}")
    return items[start: start + n]


@click.command("bench")
@click.option("--quick", is_flag=True, help="Tiny sizes, smollm2-135m only (a smoke test; ratios mean nothing).")
@click.option("--only", "only", multiple=True, type=click.Choice(SECTIONS), help="Run only these sections (repeatable).")
@click.option("--score-model", default=None, help="Model for the steering-overhead section [qwen2.5-coder-0.5b].")
@click.option("--rounds", default=None, type=int, help="Repeats of every interleaved comparison [3].")
@click.option("--remote-local/--no-remote-local", default=True, show_default=True,
              help="Count sweep requests through nnsight's in-process remote path (remote='local').")
@click.option("--dataset", default=None, type=click.Path(),
              help="A/B dataset [../shared/data/.../myopic.json].")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Results cache for the figures timing (default: $STEER_TRACE_RESULTS or ./results).")
@click.option("--json-out", default=None, type=click.Path(), help="Also write every number as JSON here.")
def bench_cmd(quick, only, score_model, rounds, remote_local, dataset, results_dir, json_out):
    """Benchmark side by side in one process; print ratios and the machine.

    1 steering overhead (answer_probs with a plan vs a plain transformers forward),
    2 sweep cost (batched plans vs one trace per prompt per multiplier; passes, requests),
    3 extraction (shared-prompt reader vs steering-vectors, time ratio and cosine),
    4 peak memory of a quick behaviour-shaped workload per embedded model (subprocess),
    5 `steer-trace figures` wall time on the results cache (subprocess).
    """
    import torch

    from steer_trace import bench
    from steer_trace.cache import results_root
    from steer_trace.data import prompt
    from steer_trace.models import load_model
    from steer_trace.pairs import answer_token_ids_after

    size = dict(QUICK if quick else FULL)
    if rounds:
        size["rounds"] = size["extract_rounds"] = max(1, rounds)
    sections = set(only or SECTIONS)
    score_model = score_model or ("smollm2-135m" if quick else "qwen2.5-coder-0.5b")
    dataset = dataset or str(_default_dataset())
    started = time.perf_counter()
    report: dict = {"command": "steer-trace " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": quick, "sizes": {**size, "mem_models": list(size["mem_models"])}}
    info = bench.machine()
    report["machine"] = info
    _say(f"machine: {info['cpu']}, {info['cores']} cores, torch threads {info['torch_threads']} "
         f"(interop {info['torch_interop_threads']}), load average {info['load_average']}")
    _say("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    torch.manual_seed(0)

    def ids_for(model, prompts):
        return answer_token_ids_after(model.tokenizer, [prompts[0], prompts[0]], ["A", "B"])

    loaded: dict = {}

    def model_named(name):
        if name not in loaded:
            loaded.clear()  # one model in memory at a time
            loaded[name] = load_model(name)
        return loaded[name]

    if "steer" in sections:
        items = _ab_items(dataset, 100, size["score_prompts"])
        model = model_named(score_model)
        prompts = [prompt(i) for i in items]
        _say(f"\n[1] steering overhead: {model.name}, {len(prompts)} prompts, batch {size['score_batch']}, "
             f"{size['rounds']} interleaved rounds per batch")
        r = bench.steering_overhead(model, prompts, ids_for(model, prompts), size["score_batch"], size["rounds"])
        report["steer"] = r
        for label, value in r["throughput_prompts_per_s"].items():
            _say(f"    {label:<30} {value:7.2f} prompts/s")
        for label in r["ratio"]:
            _say(f"    {label}: steered/plain {r['ratio'][label]:.3f}  "
                 f"(vs plain all-position-logits forward {r['ratio_vs_all_position_plain'][label]:.3f})")
        _say(f"    plain forward options (same as answer_probs): {r['forward_kwargs'] or 'none'}; "
             f"unsteered trace vs plain max|dp| {r['max_abs_dp_unsteered_vs_plain']:.1e}")

    if "sweep" in sections:
        items = _ab_items(dataset, 200, size["sweep_n"])
        model = model_named("smollm2-135m")
        prompts = [prompt(i) for i in items]
        k = size["sweep_k"]
        multipliers = [-4.0 + 8.0 * j / max(1, k - 1) for j in range(k)]
        remote_model = None
        remote_error = ""
        if remote_local:
            try:
                remote_model = load_model("smollm2-135m", remote="local")
            except Exception as error:  # noqa: BLE001 - reported, not fatal
                remote_error = f"remote='local' did not load ({type(error).__name__})"
        _say(f"\n[2] sweep cost: {model.name}, K={k} multipliers x N={len(prompts)} prompts, batch {size['sweep_batch']}")
        r = bench.sweep_cost(model, prompts, ids_for(model, prompts), multipliers, size["sweep_batch"], size["ppr"],
                             size["rounds"], remote_model)
        if remote_error:
            r["remote_note"] = remote_error + "; count computed from score's packing"
        del remote_model
        report["sweep"] = r
        _say(f"    forward passes: batched {r['passes_batched']} (target K*ceil(N/B) = {r['passes_batched_target']}), "
             f"naive {r['passes_naive']} (K*N)")
        _say(f"    wall time: naive/batched {r['speedup']:.2f}x  (median {r['seconds_naive']:.2f}s vs {r['seconds_batched']:.2f}s); "
             f"batched vs naive max|dp| {r['max_abs_dp_batched_vs_naive']:.1e}")
        measured = r["requests_measured"]
        _say(f"    remote requests at {r['points_per_request']} traces per request: "
             f"{'measured ' + str(measured) if measured is not None else 'not measured'}, computed {r['requests_computed']}, "
             f"bound ceil(K*N/points) = {r['requests_bound']} — {r['remote_note']}")

    if "extract" in sections:
        items = _ab_items(dataset, 0, size["pairs"])
        model = model_named("smollm2-135m")
        prompts = [prompt(i) for i in items]
        _say(f"\n[3] extraction: {model.name}, {len(items)} pairs, all {model.n_layers} layers, batch {size['extract_batch']}, "
             f"{size['extract_rounds']} interleaved rounds")
        r = bench.extraction(model, prompts, [i.matching for i in items], [i.not_matching for i in items],
                             [i.matching for i in items], size["extract_batch"], size["extract_rounds"])
        report["extract"] = r
        for label, seconds in r["seconds"].items():
            _say(f"    {label:<20} median {seconds:6.2f}s  ({r['passes'][label]} forward passes)")
        _say(f"    shared-prompt / steering-vectors time {r['ratio_shared_vs_sv']:.2f}; contrastive_vector / steering-vectors "
             f"{r['ratio_full_vs_sv']:.2f}; steering-vectors / plain forward {r['ratio_sv_vs_plain']:.2f}")
        _say(f"    cosine shared vs steering-vectors {r['cos_shared_vs_sv']:.6f} (max|d| {r['maxdiff_shared_vs_sv']:.1e}); "
             f"vs contrastive_vector {r['cos_shared_vs_full']:.7f} (max|d| {r['maxdiff_shared_vs_full']:.1e}); "
             f"largest component {r['max_abs_component']:.1f}")

    loaded.clear()
    if "memory" in sections:
        report["memory"] = {}
        caps = size["mem_caps"]
        _say(f"\n[4] peak memory (subprocess per command): quick behaviour run — `behaviours extract` then "
             f"`behaviours single`, --profile quick capped at {caps[0]}/{caps[1]}/{caps[2]} questions, myopic")
        for name in size["mem_models"]:
            report["memory"][name] = _memory_of_behaviour_run(name, caps, dataset, size)
            got = report["memory"][name]
            if got.get("peak_rss_mb") is None:
                _say(f"    {name}: failed ({got.get('error', '?')[:200]})")
            else:
                _say(f"    {name}: peak RSS {got['peak_rss_mb']:.0f} MB ({got['workload']}), {got['wall_s']:.1f}s")

    if "figures" in sections:
        root = results_root(results_dir)
        n_tables = len(list(Path(root).rglob("*.parquet"))) if Path(root).exists() else 0
        with tempfile.TemporaryDirectory(prefix="steer-trace-bench-") as out:
            cmd = [sys.executable, "-m", "tasks.cli", "figures", "--results", str(root), "--out", out]
            first = bench.measured_subprocess(cmd)  # imports and font cache warm up here
            second = first if quick else bench.measured_subprocess(cmd)
        written = sum(1 for line in second["stdout_tail"].splitlines() if line.startswith("wrote "))
        report["figures"] = {"results": str(root), "parquet_tables": n_tables, "figures": written,
                             "wall_s_first": first["wall_s"], "wall_s_warm": second["wall_s"],
                             "returncode": second["returncode"]}
        _say(f"\n[5] figures: {root} ({n_tables} parquet tables) -> {written} figures; wall {first['wall_s']:.1f}s first, "
             f"{second['wall_s']:.1f}s warm (exit {second['returncode']})")

    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_s"] = time.perf_counter() - started
    lines = summary(report)
    report["summary"] = lines
    _say("\n== summary ==")
    for line in lines:
        _say(line)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=1, default=str))


def summary(report: dict) -> list[str]:
    """The summary block; its first line is the steering throughput ratio."""
    lines = []
    s = report.get("steer")
    if s:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in s["ratio"].items())
        lines.append(f"steered/plain throughput ratio: {s['headline']:.2f}  ({parts}; {s['model']}, batch {s['batch_size']}, "
                     f"median of {s['paired_samples']} paired batches; target >= 0.95: {_ok(s['headline'] >= 0.95)})")
    else:
        lines.append("steered/plain throughput ratio: n/a (section not run)")
    w = report.get("sweep")
    if w:
        lines.append(f"sweep K={w['multipliers']} x N={w['prompts']}: {w['passes_batched']} passes (target {w['passes_batched_target']}: "
                     f"{_ok(w['passes_batched'] <= w['passes_batched_target'])}) vs naive {w['passes_naive']}; "
                     f"naive/batched wall {w['speedup']:.2f}x; remote requests "
                     f"{w['requests_measured'] if w['requests_measured'] is not None else str(w['requests_computed']) + ' (computed)'}"
                     f" <= {w['requests_bound']}: {_ok((w['requests_measured'] if w['requests_measured'] is not None else w['requests_computed']) <= w['requests_bound'])}")
    e = report.get("extract")
    if e:
        lines.append(f"extraction shared-prompt/steering-vectors time: {e['ratio_shared_vs_sv']:.2f} (target <= 0.6: "
                     f"{_ok(e['ratio_shared_vs_sv'] <= 0.6)}); cosine {e['cos_shared_vs_sv']:.6f} (target >= 0.9999: "
                     f"{_ok(e['cos_shared_vs_sv'] >= 0.9999)}); vs contrastive_vector cos {e['cos_shared_vs_full']:.7f}")
    m = report.get("memory")
    if m:
        lines.append("peak RSS of a quick behaviour run: " + ", ".join(
            f"{k} {v['peak_rss_mb']:.0f} MB" if v.get("peak_rss_mb") else f"{k} failed" for k, v in m.items()))
    f = report.get("figures")
    if f:
        lines.append(f"figures: {f['wall_s_warm']:.1f}s warm for {f['figures']} figures from {f['parquet_tables']} tables "
                     f"(target < 30 s: {_ok(f['wall_s_warm'] < 30 and f['returncode'] == 0)})")
    mach = report["machine"]
    lines.append(f"machine: {mach['cpu']}, {mach['cores']} cores, torch threads {mach['torch_threads']}, "
                 f"load {mach['load_average'][0]:.1f} -> {mach['load_average_end'][0]:.1f}; total {report['wall_s']:.0f}s")
    return lines


def _memory_of_behaviour_run(name: str, caps, dataset: str, size: dict) -> dict:
    """Peak RSS of `behaviours extract` + `behaviours single` (quick profile, capped) on
    `name`, each in its own process; if those commands fail, of the library workload they
    amount to (extract pairs + score prompts x 3 plans), and say so."""
    from steer_trace import bench

    cli = [sys.executable, "-m", "tasks.cli", "behaviours"]
    common = ["--model", name, "--profile", "quick", "--n-vector", str(caps[0]), "--n-validation", str(caps[1]),
              "--n-test", str(caps[2]), "--behaviours", "myopic"]
    runs = []
    with tempfile.TemporaryDirectory(prefix="steer-trace-bench-") as results:
        for step in ("extract", "single"):
            runs.append(bench.peak_of_command(cli + [step, *common, "--results", results]))
            if runs[-1]["returncode"] != 0:
                break
    if all(r["returncode"] == 0 and r["peak_rss_mb"] for r in runs):
        return {"workload": "behaviours extract + single", "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                "peak_rss_mb_by_step": {"extract": runs[0]["peak_rss_mb"], "single": runs[1]["peak_rss_mb"]},
                "wall_s": sum(r["wall_s"] for r in runs), "returncode": 0}
    error = (runs[-1]["stderr_tail"].strip().splitlines() or ["?"])[-1]
    fallback = bench.peak_of_command([sys.executable, "-m", "steer_trace.bench", "memory", name, dataset,
                                      str(size["mem_pairs"]), str(size["mem_prompts"])])
    ok = fallback["returncode"] == 0 and fallback["peak_rss_mb"]
    return {"workload": f"library workload: extract {size['mem_pairs']} pairs + score {size['mem_prompts']} prompts x 3 "
                        f"plans (behaviours commands failed: {error[:120]})",
            "peak_rss_mb": fallback["peak_rss_mb"] if ok else None, "wall_s": fallback["wall_s"],
            "returncode": fallback["returncode"],
            "error": "" if ok else (fallback["stderr_tail"].strip().splitlines() or ["?"])[-1]}


def _ok(flag: bool) -> str:
    return "met" if flag else "MISSED"


def _default_dataset() -> Path:
    repo = Path(__file__).resolve().parents[1]
    shared = Path(os.environ.get("STEER_TRACE_SHARED_DATA", repo.parent / "shared" / "data"))
    return shared / "extending-activation-addition" / "data" / "datasets" / "myopic.json"


COMMANDS = [bench_cmd]
