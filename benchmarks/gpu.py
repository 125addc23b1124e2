"""The prepared GPU benchmark: steered / plain throughput at batch 1, 8 and 64 in bfloat16, and the
sweep ratios (heterogeneous batches, layer-prefix sharing at three layers), each next to its ideal.

    python -m benchmarks.gpu                      # --device cuda --dtype bfloat16, on a GPU machine
    python -m benchmarks.gpu --device cpu --dtype float32 --quick   # the same code path in ~1 min on a CPU

Prints one line per number and, with --json-out, every number. On a GPU a forward pass costs
about the same at any small batch, so the per-pass ideals apply there (on a saturated CPU the
per-row ones do).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from tasks.common import CleanErrors

SIZES = {"batches": (1, 8, 64), "batches_quick": (1, 2), "rounds": 3, "hetero_k": 8, "hetero_n": 3,
         "prefix_k": 13, "prefix_n": 64, "prefix_batch": 64}
QUICK = {"rounds": 1, "hetero_k": 3, "hetero_n": 2, "prefix_k": 3, "prefix_n": 2, "prefix_batch": 4}


@click.command("gpu", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--device", default="cuda", show_default=True, help="Device passed to load_model.")
@click.option("--dtype", default="bfloat16", show_default=True, help="Model dtype passed to load_model.")
@click.option("--model", "model_name", default="qwen2.5-coder-0.5b", show_default=True)
@click.option("--quick", is_flag=True, help="Tiny sizes (runs on a CPU in about a minute; ratios mean nothing).")
@click.option("--json-out", default=None, type=click.Path(), help="Also write every number as JSON here.")
def gpu_cmd(device, dtype, model_name, quick, json_out):
    """Steered/plain at batch 1, 8, 64 and the sweep ratios on one device."""
    import torch

    from steer_trace.data import prompt
    from steer_trace.models import load_model
    from steer_trace.pairs import answer_token_ids_after

    from . import harness
    from .cli import _pool, load_kwargs

    size = {**SIZES, **(QUICK if quick else {})}
    batches = size["batches_quick"] if quick else size["batches"]
    started = time.perf_counter()
    model = load_model(model_name, **load_kwargs(device, dtype))
    info = harness.machine()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    report = {"command": "python -m benchmarks.gpu " + " ".join(sys.argv[1:]), "device": device, "dtype": dtype,
              "model": model_name, "machine": info, "steer": {}}
    click.echo(f"machine: {info.get('gpu', info['cpu'])}; {model_name} on {device} in {dtype}")
    _, pool = _pool(None)
    ids = answer_token_ids_after(model.tokenizer, [prompt(pool[0])] * 2, ["A", "B"])
    for b in batches:
        prompts = [prompt(i) for i in pool[: b * (1 if b >= 64 else 3)]]
        r = harness.steering_overhead(model, prompts, ids, b, size["rounds"])
        report["steer"][b] = r
        click.echo(f"batch {b:>2}: steered/plain " + ", ".join(f"{k} {v:.3f}" for k, v in r["ratio"].items())
                   + f"; plain {r['throughput_prompts_per_s']['plain']:.1f} prompts/s")
    prompts = [prompt(i) for i in pool[100: 100 + size["hetero_n"]]]
    h = harness.heterogeneous_batches(model, prompts, ids, size["hetero_k"], max(batches), size["rounds"])
    report["hetero"] = h
    click.echo(f"heterogeneous K={h['plans']} x N={h['prompts']}: passes {h['passes']['mixed']} vs "
               f"{h['passes']['separate']}; time mixed/separate {h['ratio']:.2f} (ideal {h['ideal_time_per_pass']:.2f} "
               f"per pass); max|dp| {h['max_abs_dp']:.0e}")
    n = model.n_layers
    prompts = [prompt(i) for i in pool[: size["prefix_n"]]]
    p = harness.prefix_sharing(model, prompts, ids, size["prefix_k"], (n // 4, n // 2, 3 * n // 4),
                               size["prefix_batch"], size["rounds"])
    report["prefix"] = p
    for L, row in p["layers"].items():
        click.echo(f"prefix sharing at layer {L}: time shared/naive {row['ratio']:.2f} (ideal {row['ideal']:.2f}); "
                   f"max|dp| {row['max_abs_dp']:.0e}")
    report["wall_s"] = time.perf_counter() - started
    click.echo(f"total {report['wall_s']:.0f}s")
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=1, default=str))


def main(argv=None):
    group = CleanErrors(commands={"gpu": gpu_cmd})
    group(["gpu", *(sys.argv[1:] if argv is None else argv)], prog_name="python -m benchmarks.gpu")


if __name__ == "__main__":
    main()
