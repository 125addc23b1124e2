"""Side-by-side benchmarks: ratios measured in one process, never bare times.

Each measurement runs the things it compares interleaved (rotating their order
per repeat) and reports the median of the paired ratios, so a load change on a
shared machine hits both sides of a ratio alike.

- `steering_overhead`: A/B scoring with a steering plan vs a plain transformers
  forward on the same batches;
- `sweep_cost`: a multiplier sweep as batched plans vs one trace per prompt per
  multiplier (forward passes counted, remote requests counted or computed);
- `heterogeneous_batches`: K different plans in one call (passes mix their rows) vs
  one call per plan;
- `prefix_sharing`: a K-point sweep at a layer L with layers < L run once per chunk vs
  every row through every layer, next to the ideal (L + K(n - L)) / (K n);
- `extraction`: all-layer contrastive vectors — steering-vectors'
  `train_steering_vector`, `read.contrastive_vector`, the shared-prompt reader, and
  whatever `vectors extract` calls (`command_extractor`);
- `measured_subprocess` / `peak_of_command`: wall time and peak RSS of a command
  (a quick behaviour run per model; `steer-trace figures`).

The forward-pass counter is a forward pre-hook on the top module that only
counts calls (measurement only; it touches no value).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from steer_trace.batching import chunks, encode
from steer_trace.models import Model
from steer_trace.plan import Plan
from steer_trace.row_plans import forward_equivalents, layout
from steer_trace.score import answer_probs, answer_readout, measure
from steer_trace.vectors import SteeringVector

# -- machine ------------------------------------------------------------------


def machine() -> dict:
    """CPU, cores, threads, versions, load: what a ratio was measured on."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("transformers", "nnsight", "steering_vectors"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just reported
            versions[name] = "absent"
    from steer_trace import __version__

    versions["steer_trace"] = __version__
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


# -- timing helpers -----------------------------------------------------------


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()  # GPU kernels run asynchronously: time them to completion


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    _sync()
    started = time.perf_counter()
    value = fn()
    _sync()
    return time.perf_counter() - started, value


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: bool = True,
                counter: Model | None = None) -> tuple[dict[str, list[float]], dict[str, object], dict[str, int]]:
    """Run each fn `repeats` times in a rotating order (after one untimed warm-up call
    each, if `warmup`). Returns (wall times, last value of each fn, forward passes of
    its last call — counted on `counter`'s local model, else 0)."""
    names = list(fns)
    if warmup:
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    values: dict[str, object] = {}
    passes: dict[str, int] = {name: 0 for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            if counter is None:
                times[name].append(timed(fns[name])[0])
                values[name] = None
                continue
            with counting_forwards(counter) as count:
                seconds, values[name] = timed(fns[name])
            times[name].append(seconds)
            passes[name] = count[0]
    return times, values, passes


def medians_line(times: dict[str, list[float]]) -> str:
    """'  median s: a 1.2, b 3.4' for the sides of an interleaved comparison."""
    return "  median s: " + ", ".join(f"{name} {statistics.median(t):.1f}" for name, t in times.items())


def load_line() -> str:
    return f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def median_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median of the paired ratios num[i] / den[i]."""
    return statistics.median(a / b for a, b in zip(num, den))


@contextmanager
def counting_forwards(model: Model):
    """Count forward passes of the (local) model inside the block: yields a one-item list."""
    count = [0]
    handle = model.lm._module.register_forward_pre_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    try:
        yield count
    finally:
        handle.remove()


def random_vector(model: Model, layers: Sequence[int], seed: int = 0, norm: float = 4.0) -> SteeringVector:
    """A fixed random direction per layer (steering cost does not depend on the values)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for L in layers:
        v = torch.randn(model.d_model, generator=gen)
        out[int(L)] = v / v.norm() * norm
    return SteeringVector(out, {"name": f"random-{seed}", "method": "random"})


OWN_QUESTIONS = Path(__file__).resolve().parent.parent / "data" / "behaviours" / "myopic.jsonl"


def question_bench_args(prog: str, argv=None, dataset: bool = False):
    """The options every question-scoring benchmark takes (model, questions, plans, repeats, batch size)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--model", default="smollm2-135m")
    if dataset:
        parser.add_argument("--dataset", type=Path, default=OWN_QUESTIONS)
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--plans", type=int, default=4, help="Unsteered + this many - 1 steered plans.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    return parser.parse_args(argv)


def middle_layer_plans(model: Model, n: int) -> list[Plan]:
    """Unsteered + n - 1 plans each adding a different random direction (norm 8) at the middle layer."""
    layer = model.n_layers // 2
    return [Plan.none()] + [Plan.single(random_vector(model, [layer], seed=k, norm=8.0), layer, 1.0)
                            for k in range(n - 1)]


# -- 1. steering overhead -----------------------------------------------------


def plain_answer_probs(model: Model, prompts: Sequence[str], answer_ids: Sequence[int], forward_kwargs: dict):
    """What a plain transformers user writes: tokenise, forward, softmax at the last token."""
    module = model.lm._module
    ids = torch.tensor(list(answer_ids))
    device = next(module.parameters()).device
    with torch.no_grad():
        enc = {k: v.to(device) for k, v in encode(model.tokenizer, prompts).items()}
        logits = module(**enc, **forward_kwargs).logits[:, -1, :]
        return torch.softmax(logits.float(), dim=-1)[:, ids.to(device)].cpu(), logits.argmax(dim=-1).cpu()


def steering_plans(model: Model) -> dict[str, Plan]:
    """A single vector at the middle layer; five vectors at five spread layers."""
    n = model.n_layers
    five = [round(n * k / 6) for k in range(1, 6)]
    vec = random_vector(model, range(n), seed=1)
    return {
        "single vector": Plan.single(vec, n // 2, 4.0),
        "five vectors at five layers": Plan.simultaneous(
            [(random_vector(model, [L], seed=10 + i), L) for i, L in enumerate(five)], 4.0
        ),
    }


def steering_overhead(
    model: Model, prompts: Sequence[str], answer_ids: Sequence[int], batch_size: int, repeats: int
) -> dict:
    """Per batch, interleaved: plain forward (same forward options as score), plain
    forward with default options (all-position logits), and answer_probs per plan."""
    forward_kwargs = model.last_logits()  # what answer_probs passes to the forward
    plans = steering_plans(model)
    batches = [list(b) for b in chunks(list(prompts), batch_size)]
    sides = ["plain", "plain (all-position logits)"] + list(plans)
    times: dict[str, list[float]] = {s: [] for s in sides}
    agree = 0.0
    for b, batch in enumerate(batches):
        fns = {
            "plain": lambda batch=batch: plain_answer_probs(model, batch, answer_ids, forward_kwargs),
            "plain (all-position logits)": lambda batch=batch: plain_answer_probs(model, batch, answer_ids, {}),
        }
        for label, plan in plans.items():
            fns[label] = lambda plan=plan, batch=batch: answer_probs(model, batch, answer_ids, [plan],
                                                                     batch_size=batch_size)
        if b == 0:  # check once that the unsteered trace is the plain forward
            p_plain, _ = plain_answer_probs(model, batch, answer_ids, {})
            (p_trace, _), = answer_probs(model, batch, answer_ids, [Plan.none()], batch_size=batch_size)
            agree = float((p_plain - p_trace.cpu()).abs().max())
        got, _, _ = interleaved(fns, repeats, warmup=(b == 0))
        for s in sides:
            times[s] += got[s]
    n = len(prompts)
    throughput = {s: n * repeats / sum(t) for s, t in times.items()}
    ratios = {label: median_ratio(times["plain"], times[label]) for label in plans}
    full_ratios = {label: median_ratio(times["plain (all-position logits)"], times[label]) for label in plans}
    return {
        "model": model.name,
        "batch_size": batch_size,
        "prompts": n,
        "batches": len(batches),
        "repeats": repeats,
        "paired_samples": len(batches) * repeats,
        "forward_kwargs": forward_kwargs,
        "throughput_prompts_per_s": throughput,
        "ratio": ratios,  # steered throughput / plain throughput (median of paired batches)
        "ratio_vs_all_position_plain": full_ratios,
        "headline": min(ratios.values()),
        "max_abs_dp_unsteered_vs_plain": agree,
    }


# -- 2. sweep cost --------------------------------------------------------------


def sweep_cost(
    model: Model, prompts: Sequence[str], answer_ids: Sequence[int], multipliers: Sequence[float],
    batch_size: int, points_per_request: int, repeats: int, remote_model: Model | None = None,
) -> dict:
    """K multipliers x N prompts: batched plans (one answer_probs call) vs the naive
    loop of one trace per prompt per multiplier."""
    vec = random_vector(model, range(model.n_layers), seed=2)
    layer = model.n_layers // 2
    plans = [Plan.single(vec, layer, c) for c in multipliers]
    k, n = len(plans), len(prompts)

    def batched():
        return answer_probs(model, prompts, answer_ids, plans, batch_size=batch_size)

    def naive():
        return [
            torch.cat([answer_probs(model, [p], answer_ids, [plan], batch_size=1)[0][0] for p in prompts])
            for plan in plans
        ]

    times, values, passes = interleaved({"batched": batched, "naive": naive}, repeats, warmup=False, counter=model)
    fast, slow = values["batched"], values["naive"]
    batched_passes, naive_passes = passes["batched"], passes["naive"]
    max_dp = max(float((f[0] - s).abs().max()) for f, s in zip(fast, slow))
    _, batches = layout(plans, n, batch_size, model.n_layers)
    prefix_passes = len({b.chunk for b in batches if b.shared_below})
    expected_requests = math.ceil(len(batches) / max(1, points_per_request))
    out = {
        "model": model.name,
        "multipliers": k,
        "prompts": n,
        "batch_size": batch_size,
        "passes_batched": batched_passes,
        "passes_batched_target": math.ceil(k * n / batch_size) + prefix_passes,
        "prefix_passes": prefix_passes,  # layers < L once per chunk of prompts (counted as passes, but partial)
        "passes_one_plan_per_pass": k * math.ceil(n / batch_size),
        "passes_naive": naive_passes,
        "speedup": median_ratio(times["naive"], times["batched"]),
        "seconds_batched": statistics.median(times["batched"]),
        "seconds_naive": statistics.median(times["naive"]),
        "max_abs_dp_batched_vs_naive": max_dp,
        "points_per_request": points_per_request,
        "requests_computed": expected_requests,
        "requests_bound": math.ceil(k * n / max(1, points_per_request)),
        "requests_measured": None,
        "remote_note": "",
    }
    if remote_model is not None:
        before = remote_model.extra.get("requests", 0)
        try:
            far = answer_probs(
                remote_model, prompts, answer_ids, plans, batch_size=batch_size, points_per_request=points_per_request
            )
            out["requests_measured"] = remote_model.extra.get("requests", 0) - before
            out["max_abs_dp_remote_vs_local"] = max(float((a[0] - b[0]).abs().max()) for a, b in zip(far, fast))
            out["remote_note"] = "measured with remote='local'"
        except Exception as error:  # noqa: BLE001 - the remote path is reported, not fatal
            first = (str(error).strip().splitlines() or [""])[-1][:160]
            out["remote_note"] = (
                f"remote='local' failed ({type(error).__name__}: {first}); count computed from score's packing"
            )
    else:
        out["remote_note"] = "remote not run; count computed from score's packing"
    return out


# -- 2b. heterogeneous batches and layer-prefix sharing ---------------------------


def _max_dp(a: list, b: list) -> float:
    return max(float((x[0] - y[0]).abs().max()) for x, y in zip(a, b))


def heterogeneous_batches(model: Model, prompts: Sequence[str], answer_ids: Sequence[int], k: int, batch_size: int,
                          repeats: int) -> dict:
    """K different plans (own vector, own layer from layer 0 up, own coefficient, so no prefix is
    shared) over N prompts: one call whose passes mix the plans' rows vs one call per plan."""
    n_layers = model.n_layers
    plans = [Plan.single(random_vector(model, [i * n_layers // k], seed=30 + i), i * n_layers // k, 2.0 + i)
             for i in range(k)]
    n = len(prompts)

    def mixed():
        return answer_probs(model, prompts, answer_ids, plans, batch_size=batch_size)

    def separate():
        return [answer_probs(model, prompts, answer_ids, [p], batch_size=batch_size)[0] for p in plans]

    times, values, passes = interleaved({"mixed": mixed, "separate": separate}, repeats, counter=model)
    return {
        "model": model.name, "plans": k, "prompts": n, "batch_size": batch_size, "repeats": repeats,
        "passes": passes, "passes_target": math.ceil(k * n / batch_size),
        "ratio": median_ratio(times["mixed"], times["separate"]),
        "ideal_time_per_pass": math.ceil(k * n / batch_size) / (k * math.ceil(n / batch_size)),
        "ideal_time_per_row": 1.0,
        "max_abs_dp": _max_dp(values["mixed"], values["separate"]),
        "seconds": {name: statistics.median(t) for name, t in times.items()},
    }


def prefix_sharing(model: Model, prompts: Sequence[str], answer_ids: Sequence[int], k: int, layers: Sequence[int],
                   batch_size: int, repeats: int) -> dict:
    """A K-point multiplier sweep at each layer L: layers < L once per chunk (score's default)
    vs every row through every layer. Ideal time ratio (L + K(n - L)) / (K n)."""
    n_layers = model.n_layers
    vec = random_vector(model, range(n_layers), seed=3)
    readout = answer_readout(answer_ids)
    out = {"model": model.name, "points": k, "prompts": len(prompts), "batch_size": batch_size,
           "repeats": repeats, "n_layers": n_layers, "layers": {}}
    for share in (True, False):  # one small untimed call of each path instead of a full warm-up round
        measure(model, prompts[:1], [Plan.single(vec, layers[0], c) for c in (1.0, 2.0)], readout, batch_size,
                share_prefix=share)
    for L in layers:
        plans = [Plan.single(vec, L, -4.0 + 8.0 * j / max(1, k - 1)) for j in range(k)]
        chunks_s, shared_batches = layout(plans, len(prompts), batch_size, n_layers)
        chunks_n, naive_batches = layout(plans, len(prompts), batch_size, n_layers, share_prefix=False)
        fns = {"shared": lambda plans=plans: measure(model, prompts, plans, readout, batch_size),
               "naive": lambda plans=plans: measure(model, prompts, plans, readout, batch_size, share_prefix=False)}
        times, values, passes = interleaved(fns, repeats, warmup=False, counter=model)
        out["layers"][int(L)] = {
            "ratio": median_ratio(times["shared"], times["naive"]),
            "ideal": forward_equivalents(shared_batches, chunks_s, n_layers)
            / forward_equivalents(naive_batches, chunks_n, n_layers),
            "ideal_formula": (L + k * (n_layers - L)) / (k * n_layers),
            "passes": passes, "max_abs_dp": _max_dp(values["shared"], values["naive"]),
            "seconds": {name: statistics.median(t) for name, t in times.items()},
        }
    return out


# -- 3. extraction --------------------------------------------------------------


def extraction(model: Model, prompts: Sequence[str], pos: Sequence[str], neg: Sequence[str], groups: Sequence,
               batch_size: int, repeats: int) -> dict:
    """All-layer vectors: steering-vectors vs read.contrastive_vector vs the shared-prompt
    reader vs a plain batched forward over the same full texts (each `batch_size` rows)."""
    from steering_vectors import train_steering_vector

    from steer_trace.pairs import contrastive_vector_shared_prompt
    from steer_trace.read import contrastive_vector

    pairs = [(p + a, p + b) for p, a, b in zip(prompts, pos, neg)]
    texts = [t for pair in pairs for t in pair]
    module = model.lm._module

    def plain():
        with torch.no_grad():
            for batch in chunks(texts, batch_size):
                module(**encode(model.tokenizer, batch))

    def sv_lib():
        return train_steering_vector(module, model.tokenizer, pairs, batch_size=batch_size)

    def full_text():
        return contrastive_vector(model, pairs, groups=groups, batch_size=batch_size, balanced=False)

    def shared():
        return contrastive_vector_shared_prompt(
            model, prompts, pos, neg, groups=groups, batch_size=batch_size, balanced=False
        )

    command_label, command_reader = command_extractor()

    def command():
        return command_reader(model, prompts, pos, neg, groups, batch_size)

    times, values, passes = interleaved(
        {"steering-vectors": sv_lib, "contrastive_vector": full_text, "shared-prompt": shared, "plain forward": plain,
         "vectors extract": command}, repeats, warmup=False, counter=model)
    ours, theirs, full = values["shared-prompt"], values["steering-vectors"], values["contrastive_vector"]

    def compare(a: dict, b: dict) -> tuple[float, float]:
        cos = min(float(torch.nn.functional.cosine_similarity(a[L], b[L], dim=0)) for L in a)
        return cos, max(float((a[L] - b[L]).abs().max()) for L in a)

    sv_layers = {int(L): v.float() for L, v in theirs.layer_activations.items()}
    cos_sv, d_sv = compare(ours.layers, sv_layers)
    cos_full, d_full = compare(ours.layers, full.layers)
    return {
        "model": model.name,
        "pairs": len(pairs),
        "layers": len(ours.layers),
        "batch_size": batch_size,
        "repeats": repeats,
        "passes": passes,
        "seconds": {k: statistics.median(v) for k, v in times.items()},
        "ratio_shared_vs_sv": median_ratio(times["shared-prompt"], times["steering-vectors"]),
        "ratio_full_vs_sv": median_ratio(times["contrastive_vector"], times["steering-vectors"]),
        "ratio_command_vs_sv": median_ratio(times["vectors extract"], times["steering-vectors"]),
        "command_reader": command_label,
        "cos_command_vs_sv": compare(values["vectors extract"].layers, sv_layers)[0],
        "ratio_sv_vs_plain": median_ratio(times["steering-vectors"], times["plain forward"]),
        "ratio_shared_vs_plain": median_ratio(times["shared-prompt"], times["plain forward"]),
        "cos_shared_vs_sv": cos_sv, "maxdiff_shared_vs_sv": d_sv,
        "cos_shared_vs_full": cos_full, "maxdiff_shared_vs_full": d_full,
        "max_abs_component": max(float(v.abs().max()) for v in full.layers.values()),
        "vectors": "unbalanced mean (steering-vectors' mean_aggregator); the balanced reader is checked in tests",
    }


def command_extractor() -> tuple[str, Callable]:
    """What `vectors extract` / `behaviours extract` call: `pairs.extract_vector` (the shared-prompt
    reader where a pair's texts share their prompt) where this version has it, else
    `read.contrastive_vector`. Returns (label, fn(model, prompts, pos, neg, groups, batch_size))."""
    from steer_trace import pairs

    if hasattr(pairs, "extract_vector"):
        def run(model, prompts, pos, neg, groups, batch_size):
            return pairs.extract_vector(model, prompts, pos, neg, groups=groups, batch_size=batch_size, balanced=False)

        return "pairs.extract_vector", run
    from steer_trace.read import contrastive_vector

    def run(model, prompts, pos, neg, groups, batch_size):
        texts = [(p + a, p + b) for p, a, b in zip(prompts, pos, neg)]
        return contrastive_vector(model, texts, groups=groups, batch_size=batch_size, balanced=False)

    return "read.contrastive_vector", run


# -- 4./5. subprocesses -----------------------------------------------------------


def measured_subprocess(cmd: list[str], timeout: float = 600, env: dict | None = None) -> dict:
    """Run `cmd`; wall time, exit code, output tail, and the JSON line it printed last (if any)."""
    started = time.perf_counter()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # children import this checkout's code
    path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=repo,
                          env={**os.environ, "PYTHONPATH": path, **(env or {})})
    wall = time.perf_counter() - started
    reported = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                reported = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    return {"cmd": cmd, "returncode": proc.returncode, "wall_s": wall, "reported": reported,
            "stdout_tail": proc.stdout[-2000:], "stderr_tail": proc.stderr[-2000:]}


_PEAK_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True)
print(json.dumps({"returncode": proc.returncode, "wall_s": time.perf_counter() - started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stdout_tail": proc.stdout[-1500:], "stderr_tail": proc.stderr[-1500:]}))
"""


def peak_of_command(cmd: list[str], timeout: float = 600) -> dict:
    """Run `cmd` under a tiny Python wrapper and return its peak RSS (MiB), wall time and
    exit code. The wrapper matters: a child's ru_maxrss starts at its parent's RSS at fork,
    so only a small parent gives the command's own peak."""
    run = measured_subprocess([sys.executable, "-c", _PEAK_WRAPPER, json.dumps(cmd)], timeout=timeout)
    if run["reported"] is None:
        return {"returncode": run["returncode"] or 1, "wall_s": run["wall_s"], "peak_rss_mb": None,
                "stdout_tail": run["stdout_tail"], "stderr_tail": run["stderr_tail"]}
    return run["reported"]


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    /proc/self/status VmHWM first: ru_maxrss survives fork+exec, so a subprocess
    started by a big parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_workload(model_name: str, dataset: str, n_pairs: int, n_prompts: int, batch_size: int = 8) -> dict:
    """A quick behaviour run's shape: extract `n_pairs` pairs (all layers), then score
    `n_prompts` prompts under 3 plans (unsteered, +4, -4 at the middle layer)."""
    from steer_trace.data import load_ab_file, prompt
    from steer_trace.models import load_model
    from steer_trace.pairs import answer_token_ids_after
    from steer_trace.read import contrastive_vector

    started = time.perf_counter()
    model = load_model(model_name)
    after_load = peak_rss_mb()
    items = load_ab_file(dataset)
    vec_items, test_items = items[:n_pairs], items[n_pairs: n_pairs + n_prompts]
    pairs = [(prompt(i) + i.matching, prompt(i) + i.not_matching) for i in vec_items]
    vec = contrastive_vector(model, pairs, groups=[i.matching for i in vec_items], batch_size=batch_size)
    L = model.n_layers // 2
    plans = [Plan.none(), Plan.single(vec, L, 4.0), Plan.single(vec, L, -4.0)]
    test_prompts = [prompt(i) for i in test_items]
    ids = answer_token_ids_after(model.tokenizer, test_prompts[:1] * 2, ["A", "B"])
    answer_probs(model, test_prompts, ids, plans, batch_size=batch_size)
    return {"model": model_name, "peak_rss_mb": peak_rss_mb(), "rss_after_load_mb": after_load,
            "seconds": time.perf_counter() - started, "pairs": len(pairs), "prompts": len(test_items), "plans": 3}


if __name__ == "__main__":  # python -m benchmarks.harness memory <model> <dataset> <pairs> <prompts>
    if len(sys.argv) == 6 and sys.argv[1] == "memory":
        print(json.dumps(memory_workload(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
    else:
        sys.exit("usage: python -m benchmarks.harness memory MODEL DATASET PAIRS PROMPTS")


# -- 6. command-line start-up -------------------------------------------------------

# the last commit whose command line imported torch / transformers / nnsight at start-up ("the old way")
EAGER_CLI_COMMIT = "9bf8c2f"
STARTUP_ARGVS = (("--help",), ("behaviours", "single", "--help"))


def old_checkout(into: str, commit: str = EAGER_CLI_COMMIT) -> str | None:
    """The library and command line of `commit` written into `into` (git archive), or None without git/the commit."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        archive = subprocess.run(["git", "-C", repo, "archive", commit, "steer_trace", "tasks"], check=True,
                                 capture_output=True, timeout=60).stdout
        subprocess.run(["tar", "-x", "-C", into], input=archive, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return into


def cli_startup(trees: dict[str, str], argvs=STARTUP_ARGVS, rounds: int = 5) -> dict:
    """Wall time in ms of `python -m tasks.cli ARGV` in a fresh process, per tree ({label: source folder}) and
    argv, the trees interleaved round by round (so load changes hit both); medians and every run."""
    runs: dict[str, dict[str, list[float]]] = {label: {" ".join(a): [] for a in argvs} for label in trees}
    codes = {}
    for _ in range(rounds):
        for argv in argvs:
            for label, tree in trees.items():
                started = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "tasks.cli", *argv], capture_output=True, timeout=300,
                                      cwd=tree, env={**os.environ, "PYTHONPATH": tree})
                runs[label][" ".join(argv)].append(1000 * (time.perf_counter() - started))
                codes[(label, " ".join(argv))] = proc.returncode
    medians = {label: {a: statistics.median(v) for a, v in by.items()} for label, by in runs.items()}
    return {"ms": runs, "median_ms": medians, "rounds": rounds,
            "exit_codes": {f"{label}: {a}": c for (label, a), c in codes.items()}}
