"""`steer-trace gates fit`: a projection gate (CAST) fitted on labelled prompts, with its held-out F1."""
from __future__ import annotations

from pathlib import Path

import click

from .common import model_options, open_model, parse_numbers

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "data" / "conditions" / "code_vs_prose.jsonl"


@click.group("gates")
def gates_group():
    """Conditional steering: gates that decide per prompt whether a vector applies."""


@gates_group.command("fit")
@model_options
@click.option("--condition-data", type=click.Path(), default=str(DEFAULT_DATA), show_default=True,
              help='JSONL rows {"text": ..., "condition": true|false}: prompts with and without the condition.')
@click.option("--layer", "layers", default=None,
              help="Layer Lc read by the gate, or a comma-separated list: the best fit-split F1 wins "
                   "(default: every layer).")
@click.option("--pool", type=click.Choice(["mean", "last"]), default="mean", show_default=True,
              help="mean: of the prompt's real tokens (CAST); last: the last prompt token.")
@click.option("--fit-fraction", type=float, default=0.5, show_default=True,
              help="Share of each label's prompts used to fit; the rest is held out for F1.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split and of the bootstrap.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Gate file to write (.safetensors).")
def gates_fit(model_spec, condition_data, layers, pool, fit_fraction, seed, batch_size, out):
    """Fit the condition vector and threshold on a fit split; report F1 on the held-out prompts (95% interval)."""
    from steer_trace.gate_fit import fit_gate, load_condition_data, split
    from steer_trace.gates import save_gate
    from steer_trace.read import content_hash

    texts, labels = load_condition_data(condition_data)
    split(labels, fit_fraction, seed)  # a bad fraction fails before the model loads
    chosen = parse_numbers(layers, int, "--layer")
    model = open_model(model_spec)
    result = fit_gate(model, texts, labels, chosen if chosen else range(model.n_layers), pool, fit_fraction, seed,
                      batch_size)
    g = result.gate
    meta = {"model": model.name, "condition_data": Path(condition_data).name, "data_hash": content_hash(
        zip(texts, labels)), "seed": seed, "fit_fraction": fit_fraction, **result.provenance()}
    save_gate(g, out, meta)
    click.echo(f"gate: cos(layer {g.layer} output, {pool} over the prompt; c) > {g.threshold:.4f}  "
               f"(c = mean with - mean without the condition, {result.n_fit} fit prompts)")
    if len(result.fit_f1_by_layer) > 1:
        best = sorted(result.fit_f1_by_layer.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        click.echo("fit F1 by layer (best 5): " + ", ".join(f"L{L} {f:.3f}" for L, f in best))
    click.echo(f"fit F1 {result.fit_f1:.3f}; held-out F1 {result.heldout_f1:.3f} [{result.heldout_lo:.3f}, "
               f"{result.heldout_hi:.3f}] (95% bootstrap, {result.n_heldout} prompts; precision "
               f"{result.heldout_precision:.3f}, recall {result.heldout_recall:.3f})")
    click.echo(f"wrote {out}")


def _register() -> None:
    from studies.gates.cli import COMMANDS as STUDY_COMMANDS

    for command in STUDY_COMMANDS:
        gates_group.add_command(command)


_register()
COMMANDS = [gates_group]
