"""The benchmark command (`python -m benchmarks`, or `steer-trace bench` in a clone): steering
overhead, sweep cost, heterogeneous batches, layer-prefix sharing, extraction, memory, figures — as
ratios measured side by side in one process, each next to its ideal where one exists."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click

MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b")
SECTIONS = ("steer", "sweep", "hetero", "prefix", "extract", "memory", "figures", "startup")
REPO = Path(__file__).resolve().parents[1]
OWN_DATA = REPO / "data" / "behaviours"

# sizes per the targets; --quick shrinks everything for a smoke test (smollm2 only)
FULL = {"score_prompts": 24, "score_batch": 8, "rounds": 3, "extract_rounds": 2,
        "sweep_k": 5, "sweep_n": 16, "sweep_batch": 8, "ppr": 4,
        "hetero_k": 8, "hetero_n": 3, "hetero_batch": 8,
        "prefix_k": 13, "prefix_n": 8, "prefix_batch": 8, "prefix_rounds": 2,
        "pairs": 64, "extract_batch": 8, "mem_caps": (8, 4, 4), "mem_pairs": 32, "mem_prompts": 48,
        "mem_models": MODELS}
QUICK = {"score_prompts": 4, "score_batch": 2, "rounds": 1, "extract_rounds": 1,
         "sweep_k": 2, "sweep_n": 3, "sweep_batch": 2, "ppr": 2,
         "hetero_k": 3, "hetero_n": 2, "hetero_batch": 4,
         "prefix_k": 3, "prefix_n": 2, "prefix_batch": 4, "prefix_rounds": 1,
         "pairs": 4, "extract_batch": 2, "mem_caps": (2, 2, 2), "mem_pairs": 2, "mem_prompts": 2,
         "mem_models": ("smollm2-135m",)}
# where each section takes its items from the pool (disjoint ranges)
OFFSETS = {"extract": 0, "steer": 64, "sweep": 88, "hetero": 104, "prefix": 112}


def _say(line: str = ""):
    click.echo(line)
    sys.stdout.flush()


def _pool(dataset: str | None) -> tuple[str, list]:
    """(description, A/B items): `dataset` if given, else every file of the project's data/behaviours
    (sorted by name, concatenated: 200 questions)."""
    from steer_trace.data import load_ab_file

    if dataset:
        return str(dataset), load_ab_file(dataset)
    files = sorted(OWN_DATA.glob("*.jsonl"))
    return f"{OWN_DATA.relative_to(REPO)}/*.jsonl", [item for f in files for item in load_ab_file(f)]


def _ab_items(pool: list, start: int, n: int, what: str):
    from steer_trace.errors import UserError

    if len(pool) < start + n:
        raise UserError(f"{what} has {len(pool)} rows; the benchmark needs {start + n}")
    return pool[start: start + n]


def _public_dataset() -> Path:
    shared = Path(os.environ.get("STEER_TRACE_SHARED_DATA", REPO.parent / "shared" / "data"))
    return shared / "extending-activation-addition" / "data" / "datasets" / "myopic.json"


def load_kwargs(device: str | None, dtype: str | None) -> dict:
    """`device=` / `dtype=` for load_model, where this version's load_model takes them."""
    import inspect

    from steer_trace.errors import UserError
    from steer_trace.models import load_model

    accepted = inspect.signature(load_model).parameters
    out = {}
    for name, value in (("device", device), ("dtype", dtype)):
        if value is None or (name not in accepted and value in ("cpu", "float32")):  # today's fixed defaults
            continue
        if name not in accepted:
            raise UserError(f"--{name} {value}: this version's load_model has no {name} option (needs the "
                            "device/dtype support of issue 10.5)")
        out[name] = value
    return out


@click.command("bench", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quick", is_flag=True, help="Tiny sizes, smollm2-135m only (a smoke test; ratios mean nothing).")
@click.option("--only", "only", multiple=True, type=click.Choice(SECTIONS),
              help="Run only these sections (repeatable).")
@click.option("--score-model", default=None, help="Model for the steering-overhead section [qwen2.5-coder-0.5b].")
@click.option("--rounds", default=None, type=int, help="Repeats of every interleaved comparison [3].")
@click.option("--remote-local/--no-remote-local", default=True, show_default=True,
              help="Count sweep requests through nnsight's in-process remote path (remote='local').")
@click.option("--dataset", default=None, type=click.Path(exists=True, dir_okay=False),
              help="One A/B dataset file [the project's data/behaviours/*.jsonl, 200 questions].")
@click.option("--public", is_flag=True, help="Use the paper's public myopic set from ../shared/data instead.")
@click.option("--device", default=None, help="Device for the models (e.g. cuda), passed to load_model [cpu].")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Results cache for the figures timing (default: $STEER_TRACE_RESULTS or ./results).")
@click.option("--json-out", default=None, type=click.Path(), help="Also write every number as JSON here.")
@click.option("--size", "sizes", multiple=True, metavar="KEY=N",
              help="Override one size (repeatable), e.g. --size prefix_n=2; keys as in the JSON's 'sizes'.")
def bench_cmd(quick, only, score_model, rounds, remote_local, dataset, public, device, results_dir, json_out, sizes):
    """Benchmark side by side in one process; print ratios and the machine.

    1 steering overhead (answer_probs with a plan vs a plain transformers forward),
    2 sweep cost (batched plans vs one trace per prompt per multiplier; passes, requests),
    2b heterogeneous batches (one pass mixes different plans' rows vs one call per plan),
    2c layer-prefix sharing (a K-point sweep at three layers vs every row through every layer),
    3 extraction (shared-prompt reader vs steering-vectors, time ratio and cosine),
    4 peak memory of a quick behaviour-shaped workload per embedded model (subprocess),
    5 `steer-trace figures` wall time on the results cache (subprocess),
    6 start-up: `steer-trace --help` and `steer-trace behaviours single --help`, this checkout vs the last one
      that imported torch at start-up (subprocesses, interleaved; ms).
    """
    import torch

    from steer_trace.cache import results_root
    from steer_trace.data import prompt
    from steer_trace.errors import UserError
    from steer_trace.models import load_model
    from steer_trace.pairs import answer_token_ids_after

    from . import harness as bench

    size = dict(QUICK if quick else FULL)
    if rounds:
        size["rounds"] = size["extract_rounds"] = size["prefix_rounds"] = max(1, rounds)
    for item in sizes:
        key, _, value = item.partition("=")
        if key not in size or not isinstance(size[key], int) or not value.isdigit() or int(value) < 1:
            known = ", ".join(k for k, v in size.items() if isinstance(v, int))
            raise UserError(f"--size {item}: give KEY=N with N >= 1 and KEY one of {known}")
        size[key] = int(value)
    sections = set(only or SECTIONS)
    score_model = score_model or ("smollm2-135m" if quick else "qwen2.5-coder-0.5b")
    if public and dataset:
        raise UserError("--public and --dataset both name the data: give one")
    if public:
        dataset = str(_public_dataset())
        if not Path(dataset).is_file():
            raise UserError(f"--public needs the paper's sets at {dataset} (set STEER_TRACE_SHARED_DATA)")
    data_name, pool = _pool(dataset)
    dataset = dataset or str(OWN_DATA / "myopic.jsonl")  # the memory fallback's one file
    device_kwargs = load_kwargs(device, None)
    started = time.perf_counter()
    report: dict = {"command": "steer-trace " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "quick": quick, "sizes": {**size, "mem_models": list(size["mem_models"])}}
    info = bench.machine()
    report["machine"] = info
    _say(f"machine: {info['cpu']}, {info['cores']} cores, torch threads {info['torch_threads']} "
         f"(interop {info['torch_interop_threads']}), load average {info['load_average']}")
    _say("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    _say(f"data: {data_name} ({len(pool)} questions); device {device or 'cpu'}")
    report["data"] = data_name
    torch.manual_seed(0)

    def checkpoint():
        if json_out:
            Path(json_out).parent.mkdir(parents=True, exist_ok=True)
            Path(json_out).write_text(json.dumps(report, indent=1, default=str))

    def ids_for(model, prompts):
        return answer_token_ids_after(model.tokenizer, [prompts[0], prompts[0]], ["A", "B"])

    loaded: dict = {}

    def model_named(name):
        if name not in loaded:
            loaded.clear()  # one model in memory at a time
            loaded[name] = load_model(name, **device_kwargs)
        return loaded[name]

    if "steer" in sections:
        items = _ab_items(pool, OFFSETS["steer"], size["score_prompts"], data_name)
        model = model_named(score_model)
        prompts = [prompt(i) for i in items]
        _say(f"\n[1] steering overhead: {model.name}, {len(prompts)} prompts, batch {size['score_batch']}, "
             f"{size['rounds']} interleaved rounds per batch")
        r = bench.steering_overhead(model, prompts, ids_for(model, prompts), size["score_batch"], size["rounds"])
        report["steer"] = r
        checkpoint()
        for label, value in r["throughput_prompts_per_s"].items():
            _say(f"    {label:<30} {value:7.2f} prompts/s")
        for label in r["ratio"]:
            _say(f"    {label}: steered/plain {r['ratio'][label]:.3f}  "
                 f"(vs plain all-position-logits forward {r['ratio_vs_all_position_plain'][label]:.3f})")
        _say(f"    plain forward options (same as answer_probs): {r['forward_kwargs'] or 'none'}; "
             f"unsteered trace vs plain max|dp| {r['max_abs_dp_unsteered_vs_plain']:.1e}")

    if "sweep" in sections:
        items = _ab_items(pool, OFFSETS["sweep"], size["sweep_n"], data_name)
        model = model_named("smollm2-135m")
        prompts = [prompt(i) for i in items]
        k = size["sweep_k"]
        multipliers = [-4.0 + 8.0 * j / max(1, k - 1) for j in range(k)]
        remote_model = None
        remote_error = ""
        if remote_local:
            try:
                remote_model = load_model("smollm2-135m", remote="local", **device_kwargs)
            except Exception as error:  # noqa: BLE001 - reported, not fatal
                remote_error = f"remote='local' did not load ({type(error).__name__})"
        _say(f"\n[2] sweep cost: {model.name}, K={k} multipliers x N={len(prompts)} prompts, "
             f"batch {size['sweep_batch']}")
        r = bench.sweep_cost(model, prompts, ids_for(model, prompts), multipliers, size["sweep_batch"], size["ppr"],
                             size["rounds"], remote_model)
        if remote_error:
            r["remote_note"] = remote_error + "; count computed from score's packing"
        del remote_model
        report["sweep"] = r
        checkpoint()
        _say(f"    forward passes: batched {r['passes_batched']} "
             f"(target ceil(K*N/B) + {r['prefix_passes']} prefix passes "
             f"= {r['passes_batched_target']}; one plan per pass would take {r['passes_one_plan_per_pass']}), "
             f"naive {r['passes_naive']} (K*N)")
        _say(f"    wall time: naive/batched {r['speedup']:.2f}x  "
             f"(median {r['seconds_naive']:.2f}s vs {r['seconds_batched']:.2f}s); "
             f"batched vs naive max|dp| {r['max_abs_dp_batched_vs_naive']:.1e}")
        measured = r["requests_measured"]
        _say(f"    remote requests at {r['points_per_request']} traces per request: "
             f"{'measured ' + str(measured) if measured is not None else 'not measured'}, "
             f"computed {r['requests_computed']}, "
             f"bound ceil(K*N/points) = {r['requests_bound']} — {r['remote_note']}")

    if "hetero" in sections:
        items = _ab_items(pool, OFFSETS["hetero"], size["hetero_n"], data_name)
        model = model_named("smollm2-135m")
        prompts = [prompt(i) for i in items]
        _say(f"\n[2b] heterogeneous batches: {model.name}, K={size['hetero_k']} different plans (own vector, layer, "
             f"coefficient) x N={len(prompts)} prompts, batch {size['hetero_batch']}, {size['rounds']} rounds")
        r = bench.heterogeneous_batches(model, prompts, ids_for(model, prompts), size["hetero_k"],
                                        size["hetero_batch"], size["rounds"])
        report["hetero"] = r
        checkpoint()
        _say(f"    forward passes: mixed {r['passes']['mixed']} (target ceil(K*N/B) = {r['passes_target']}), "
             f"one call per plan {r['passes']['separate']}")
        _say(f"    time mixed/separate {r['ratio']:.2f}  ideal {r['ideal_time_per_pass']:.2f} where a pass costs the "
             f"same at any batch (GPU), {r['ideal_time_per_row']:.2f} where time grows with rows (saturated CPU); "
             f"max|dp| {r['max_abs_dp']:.1e}")

    if "prefix" in sections:
        items = _ab_items(pool, OFFSETS["prefix"], size["prefix_n"], data_name)
        model = model_named("smollm2-135m")
        prompts = [prompt(i) for i in items]
        n = model.n_layers
        layers = (n // 4, n // 2, 3 * n // 4)
        _say(f"\n[2c] layer-prefix sharing: {model.name} ({n} layers), K={size['prefix_k']}-point multiplier sweep "
             f"x N={len(prompts)} prompts at layers {layers}, batch {size['prefix_batch']}, "
             f"{size['prefix_rounds']} rounds")
        r = bench.prefix_sharing(model, prompts, ids_for(model, prompts), size["prefix_k"], layers,
                                 size["prefix_batch"], size["prefix_rounds"])
        report["prefix"] = r
        checkpoint()
        for L, row in r["layers"].items():
            _say(f"    layer {L:>2}: time shared/naive {row['ratio']:.2f}  ideal {row['ideal']:.2f} "
                 f"((L + K(n-L))/(K n) = {row['ideal_formula']:.2f}); passes {row['passes']['shared']} vs "
                 f"{row['passes']['naive']}; max|dp| {row['max_abs_dp']:.1e}")

    if "extract" in sections:
        items = _ab_items(pool, OFFSETS["extract"], size["pairs"], data_name)
        model = model_named("smollm2-135m")
        prompts = [prompt(i) for i in items]
        _say(f"\n[3] extraction: {model.name}, {len(items)} pairs, all {model.n_layers} layers, "
             f"batch {size['extract_batch']}, "
             f"{size['extract_rounds']} interleaved rounds")
        r = bench.extraction(model, prompts, [i.matching for i in items], [i.not_matching for i in items],
                             [i.matching for i in items], size["extract_batch"], size["extract_rounds"])
        report["extract"] = r
        checkpoint()
        for label, seconds in r["seconds"].items():
            _say(f"    {label:<20} median {seconds:6.2f}s  ({r['passes'][label]} forward passes)")
        _say(f"    shared-prompt / steering-vectors time {r['ratio_shared_vs_sv']:.2f}; "
             "contrastive_vector / steering-vectors "
             f"{r['ratio_full_vs_sv']:.2f}; steering-vectors / plain forward {r['ratio_sv_vs_plain']:.2f}")
        _say(f"    what `vectors extract` runs ({r['command_reader']}) / steering-vectors time "
             f"{r['ratio_command_vs_sv']:.2f}, cosine {r['cos_command_vs_sv']:.6f}")
        _say(f"    cosine shared vs steering-vectors {r['cos_shared_vs_sv']:.6f} "
             f"(max|d| {r['maxdiff_shared_vs_sv']:.1e}); "
             f"vs contrastive_vector {r['cos_shared_vs_full']:.7f} (max|d| {r['maxdiff_shared_vs_full']:.1e}); "
             f"largest component {r['max_abs_component']:.1f}")

    loaded.clear()
    if "memory" in sections:
        report["memory"] = {}
        caps = size["mem_caps"]
        _say(f"\n[4] peak memory (subprocess per command): quick behaviour run — `behaviours extract` then "
             f"`behaviours single` (×±4), --profile quick capped at {caps[0]}/{caps[1]}/{caps[2]} questions, myopic")
        for name in size["mem_models"]:
            report["memory"][name] = _memory_of_behaviour_run(name, caps, dataset, size)
            got = report["memory"][name]
            if got.get("peak_rss_mb") is None:
                _say(f"    {name}: failed ({got.get('error', '?')[:200]})")
            else:
                _say(f"    {name}: peak RSS {got['peak_rss_mb']:.0f} MB ({got['workload']}), {got['wall_s']:.1f}s")

    if "figures" in sections:
        root = results_root(results_dir)
        if not Path(root).is_dir():  # nothing cached there (yet): time the repository's committed results
            root = Path(__file__).resolve().parent.parent / "results"
        n_tables = len(list(Path(root).rglob("*.parquet"))) if Path(root).exists() else 0
        with tempfile.TemporaryDirectory(prefix="steer-trace-bench-") as out:
            cmd = [sys.executable, "-m", "tasks.cli", "figures", "--results", str(root), "--out", out]
            first = bench.measured_subprocess(cmd)  # imports and font cache warm up here
            second = first if quick else bench.measured_subprocess(cmd)
        written = sum(1 for line in second["stdout_tail"].splitlines() if line.startswith("wrote "))
        report["figures"] = {"results": str(root), "parquet_tables": n_tables, "figures": written,
                             "wall_s_first": first["wall_s"], "wall_s_warm": second["wall_s"],
                             "returncode": second["returncode"]}
        _say(f"\n[5] figures: {root} ({n_tables} parquet tables) -> {written} figures; "
             f"wall {first['wall_s']:.1f}s first, "
             f"{second['wall_s']:.1f}s warm (exit {second['returncode']})")

    if "startup" in sections:
        rounds_startup = 1 if quick else 5
        with tempfile.TemporaryDirectory(prefix="steer-trace-bench-old-") as old:
            trees = {"now": str(REPO)}
            if not quick and bench.old_checkout(old):  # --quick: this checkout only (a smoke test)
                trees[f"eager ({bench.EAGER_CLI_COMMIT})"] = old
            r = bench.cli_startup(trees, rounds=rounds_startup)
        report["startup"] = r
        checkpoint()
        _say(f"\n[6] start-up: `python -m tasks.cli ARGV` in a fresh process, {rounds_startup} interleaved rounds "
             f"(medians, ms){'' if len(trees) > 1 else '; no eager checkout (--quick, or not in git)'}")
        for argv in r["median_ms"]["now"]:
            _say(f"    {argv:<28} " + "  ".join(f"{label} {by[argv]:7.0f} ms" for label, by in r["median_ms"].items()))

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
        lines.append(f"steered/plain throughput ratio: {s['headline']:.2f}  "
                     f"({parts}; {s['model']}, batch {s['batch_size']}, "
                     f"median of {s['paired_samples']} paired batches; target >= 0.95: {_ok(s['headline'] >= 0.95)})")
    else:
        lines.append("steered/plain throughput ratio: n/a (section not run)")
    w = report.get("sweep")
    if w:
        lines.append(f"sweep K={w['multipliers']} x N={w['prompts']}: {w['passes_batched']} passes "
                     f"(target {w['passes_batched_target']}: "
                     f"{_ok(w['passes_batched'] <= w['passes_batched_target'])}) vs naive {w['passes_naive']}; "
                     f"naive/batched wall {w['speedup']:.2f}x; remote requests "
                     + (f"{w['requests_measured']}" if w['requests_measured'] is not None
                        else str(w['requests_computed']) + ' (computed)')
                     + f" <= {w['requests_bound']}: "
                     + _ok((w['requests_measured'] if w['requests_measured'] is not None else w['requests_computed'])
                           <= w['requests_bound']))
    h = report.get("hetero")
    if h:
        lines.append(f"heterogeneous batches K={h['plans']} x N={h['prompts']}, batch {h['batch_size']}: "
                     f"{h['passes']['mixed']} passes vs {h['passes']['separate']}; "
                     f"time mixed/separate {h['ratio']:.2f} "
                     f"(ideal {h['ideal_time_per_pass']:.2f} per-pass cost, "
                     f"{h['ideal_time_per_row']:.2f} per-row cost); "
                     f"max|dp| {h['max_abs_dp']:.0e}")
    p = report.get("prefix")
    if p:
        lines.append(f"prefix-shared/naive sweep time, K={p['points']} x N={p['prompts']}: " + ", ".join(
            f"L{L} {row['ratio']:.2f} (ideal {row['ideal']:.2f})" for L, row in p["layers"].items())
            + f"; max|dp| {max(row['max_abs_dp'] for row in p['layers'].values()):.0e}")
    e = report.get("extract")
    if e:
        lines.append(f"extraction shared-prompt/steering-vectors time: {e['ratio_shared_vs_sv']:.2f} (target <= 0.6: "
                     f"{_ok(e['ratio_shared_vs_sv'] <= 0.6)}); cosine {e['cos_shared_vs_sv']:.6f} (target >= 0.9999: "
                     f"{_ok(e['cos_shared_vs_sv'] >= 0.9999)}); "
                     f"vs contrastive_vector cos {e['cos_shared_vs_full']:.7f}; "
                     f"`vectors extract` ({e['command_reader']}) {e['ratio_command_vs_sv']:.2f}")
    m = report.get("memory")
    if m:
        lines.append("peak RSS of a quick behaviour run: " + ", ".join(
            f"{k} {v['peak_rss_mb']:.0f} MB" if v.get("peak_rss_mb") else f"{k} failed" for k, v in m.items()))
    f = report.get("figures")
    if f:
        lines.append(f"figures: {f['wall_s_warm']:.1f}s warm for {f['figures']} figures "
                     f"from {f['parquet_tables']} tables "
                     f"(target < 30 s: {_ok(f['wall_s_warm'] < 30 and f['returncode'] == 0)})")
    u = report.get("startup")
    if u:
        now = u["median_ms"]["now"]
        eager = next((by for label, by in u["median_ms"].items() if label != "now"), None)
        lines.append("start-up: " + ", ".join(
            f"`{argv}` {ms:.0f} ms" + (f" (eager {eager[argv]:.0f} ms)" if eager else "") for argv, ms in now.items())
            + f" (target < 1000 ms: {_ok(max(now.values()) < 1000)})")
    mach = report["machine"]
    lines.append(f"machine: {mach['cpu']}, {mach['cores']} cores, torch threads {mach['torch_threads']}, "
                 f"load {mach['load_average'][0]:.1f} -> {mach['load_average_end'][0]:.1f}; "
                 f"total {report['wall_s']:.0f}s")
    return lines


def _memory_of_behaviour_run(name: str, caps, dataset: str, size: dict) -> dict:
    """Peak RSS of `behaviours extract` + `behaviours single` (quick profile, capped) on
    `name`, each in its own process; if those commands fail, of the library workload they
    amount to (extract pairs + score prompts x 3 plans), and say so."""
    from . import harness as bench

    cli = [sys.executable, "-m", "tasks.cli", "behaviours"]
    common = ["--model", name, "--profile", "quick", "--n-vector", str(caps[0]), "--n-validation", str(caps[1]),
              "--n-test", str(caps[2]), "--behaviours", "myopic"]
    runs = []
    with tempfile.TemporaryDirectory(prefix="steer-trace-bench-") as results:
        for step in ("extract", "single"):  # single at fixed multipliers: the grid adds time, not memory
            fixed = ["--add-mult", "4", "--subtract-mult", "4"] if step == "single" else []
            runs.append(bench.peak_of_command(cli + [step, *common, *fixed, "--results", results]))
            if runs[-1]["returncode"] != 0:
                break
    if all(r["returncode"] == 0 and r["peak_rss_mb"] for r in runs):
        return {"workload": "behaviours extract + single", "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                "peak_rss_mb_by_step": {"extract": runs[0]["peak_rss_mb"], "single": runs[1]["peak_rss_mb"]},
                "wall_s": sum(r["wall_s"] for r in runs), "returncode": 0}
    error = (runs[-1]["stderr_tail"].strip().splitlines() or ["?"])[-1]
    fallback = bench.peak_of_command([sys.executable, "-m", "benchmarks.harness", "memory", name, dataset,
                                      str(size["mem_pairs"]), str(size["mem_prompts"])])
    ok = fallback["returncode"] == 0 and fallback["peak_rss_mb"]
    return {"workload": f"library workload: extract {size['mem_pairs']} pairs + "
                        f"score {size['mem_prompts']} prompts x 3 "
                        f"plans (behaviours commands failed: {error[:120]})",
            "peak_rss_mb": fallback["peak_rss_mb"] if ok else None, "wall_s": fallback["wall_s"],
            "returncode": fallback["returncode"],
            "error": "" if ok else (fallback["stderr_tail"].strip().splitlines() or ["?"])[-1]}


def _ok(flag: bool) -> str:
    return "met" if flag else "MISSED"



