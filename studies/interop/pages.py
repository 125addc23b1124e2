"""Named values for the interop docs page and the README, from the committed llama.cpp table (studies/pages.py).

Per model `<m>` (smollm2, qwen; results/interop_llamacpp/<model>.csv and its .json): `<m>.table` (every row),
`<m>.run` (llama.cpp's version, sizes, time and load), `<m>.layers` / `coefs` / `full_coefs`, and per weights
`<w>` (f32, quantised): `floor` (max |Δ log-p| unsteered), `same` / `same_mean` (the largest max / mean |Δ| over
every steered setting compared with ours at the same layers), `floor_centred` / `same_centred` (the same with
each prompt's mean Δ taken out: what a softmax normaliser leaves), `shift` / `shift_mean` (the smallest over the
controls one layer off), `slope` (the range of the slopes at the same layers), `change` (how far steering moves
the log-probs there: the range of the mean |change|).
"""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from .cli import FOLDER
from .llamacpp import table_text

SHORT = {"smollm2-135m": "smollm2", "qwen2.5-coder-0.5b": "qwen"}


def _g(x: float | None) -> str | None:
    """None (no such rows) stays None: a page that cites it then fails naming the value."""
    return None if x is None else f"{x:.1e}" if x < 0.01 else f"{x:.2f}"


def _range(column: pl.Series, fmt) -> str | None:
    return None if column.is_empty() else f"{fmt(column.min())}–{fmt(column.max())}"


def pages(results_root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for csv in sorted((Path(results_root) / FOLDER).glob("*.csv")):
        model = csv.stem
        key = SHORT.get(model, model)
        table = pl.read_csv(csv)
        run = json.loads(csv.with_suffix(".json").read_text())
        config, facts = run["config"], run["run"]
        out[f"{key}.table"] = table_text(table.to_dicts())
        sizes = ", ".join(f"{w} {n / 2**20:.0f} MiB" for w, n in facts["gguf_bytes"].items())
        out[f"{key}.run"] = (f"llama.cpp `{facts['llama_cpp']}` from the `{facts['source']}` sdist; {config['prompts']}"
                             f" prompts x top {config['top_k']} log-probs, {facts['servers']} llama-server runs on "
                             f"{config['threads']} thread(s) and our passes took {facts['check_s']} s at load "
                             f"{facts['load_before']} -> {facts['load_after']} ({facts['host']}); GGUF {sizes}; "
                             f"{facts['date']}")
        out[f"{key}.layers"] = ", ".join(map(str, config["layers"]))
        out[f"{key}.coefs"] = ", ".join(f"{c:g}" for c in config["coefs"])
        out[f"{key}.full_coefs"] = ", ".join(f"{c:g}" for c in config["full_coefs"])
        for w in config["weights"]:
            rows = table.filter(pl.col("weights") == w)
            floor = rows.filter(pl.col("ours") == "none")
            same = rows.filter((pl.col("ours") == "same"))
            shift = rows.filter(pl.col("ours").str.starts_with("shift"))
            out[f"{key}.{w}.floor"] = _g(floor["max_abs"].max())
            out[f"{key}.{w}.same"] = _g(same["max_abs"].max())
            out[f"{key}.{w}.same_mean"] = _g(same["mean_abs"].max())
            out[f"{key}.{w}.floor_centred"] = _g(floor["max_centred"].max())
            out[f"{key}.{w}.same_centred"] = _g(same["max_centred"].max())
            out[f"{key}.{w}.shift"] = _g(shift["max_abs"].min())
            out[f"{key}.{w}.shift_mean"] = _g(shift["mean_abs"].min())
            out[f"{key}.{w}.slope"] = _range(same["slope"], lambda x: f"{x:.3f}")
            out[f"{key}.{w}.change"] = _range(same["our_change"], _g)
    return out
