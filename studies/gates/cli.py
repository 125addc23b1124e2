"""`steer-trace gates fit / experiment / report`: fit a projection gate on labelled prompts; gated vs ungated
steering on held-out documents; the docs page and the README's block from the tables."""
from __future__ import annotations

from pathlib import Path

import click

from tasks.common import model_options, open_model, parse_numbers

REPO = Path(__file__).resolve().parents[2]
SUMMARY = "gates_summary"  # results/gates_summary/<model>.csv: the committed table the README reads
DEFAULT_DATA = REPO / "data" / "conditions" / "code_vs_prose.jsonl"


@click.group("gates")
def group():
    """Conditional steering: gates that decide per prompt whether a vector applies."""


@group.command("fit")
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
        f1, sep = result.fit_f1_by_layer, result.fit_separation_by_layer
        best = sorted(f1, key=lambda L: (-round(f1[L], 9), -sep[L], L))[:5]
        click.echo("fit F1 (d') by layer, best 5: " + ", ".join(f"L{L} {f1[L]:.3f} ({sep[L]:.2f})" for L in best))
    click.echo(f"fit F1 {result.fit_f1:.3f}; held-out F1 {result.heldout_f1:.3f} [{result.heldout_lo:.3f}, "
               f"{result.heldout_hi:.3f}] (95% bootstrap, {result.n_heldout} prompts; precision "
               f"{result.heldout_precision:.3f}, recall {result.heldout_recall:.3f})")
    click.echo(f"wrote {out}")



@group.command("experiment")
@model_options
@click.option("--vector", type=click.Path(), default=None,
              help="Vector file (default: results/vectors/<model>/skills_text_minus_code.safetensors).")
@click.option("--layer", type=int, default=14, show_default=True, help="Layer the vector is added at.")
@click.option("--coefs", default="1,1.5", show_default=True, help="Comma-separated coefficients.")
@click.option("--gate", "gate_file", type=click.Path(), required=True, help="Gate file (steer-trace gates fit).")
@click.option("--n-docs", type=click.IntRange(min=2), default=40, show_default=True,
              help="Held-out documents per domain (text, code).")
@click.option("--max-tokens", type=click.IntRange(min=8), default=256, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--data-dir", default=None, help="Shared data folder (default: $STEER_TRACE_DATA, else data/skills).")
@click.option("--results", "results_dir", default=None, type=click.Path(), help="Results root (default: results/).")
def experiment_cmd(model_spec, vector, layer, coefs, gate_file, n_docs, max_tokens, batch_size, data_dir,
                   results_dir):
    """Top-1 accuracy on text (non-target) and code (target) documents: unsteered, steered, gated."""
    from steer_trace.cache import results_root
    from steer_trace.errors import UserError
    from steer_trace.gates import load_gate
    from steer_trace.vectors import SteeringVector

    from .experiment import Setup, run, summarise, unsteered_equal, write_summary

    name = model_spec["name"]
    vector = vector or str(REPO / "results" / "vectors" / name / "skills_text_minus_code.safetensors")
    if not Path(vector).exists():
        raise UserError(f"no vector file {vector}: give --vector")
    gate, meta = load_gate(gate_file)
    if gate.layer > layer:
        raise UserError(f"the gate reads layer {gate.layer}, above the steered layer {layer}")
    setup = Setup(name, vector, layer, parse_numbers(coefs, float, "--coefs"), gate_file, n_docs, max_tokens,
                  batch_size, data_dir)
    table = run(lambda: open_model(model_spec), setup, SteeringVector.load(vector), gate, results_dir,
                log=lambda line: click.echo(line, err=True))
    if not unsteered_equal(table):
        raise click.ClickException("documents the gate closed did not score exactly as unsteered")
    summary = summarise(table)
    written = write_summary(summary, results_root(results_dir) / SUMMARY, name.replace("/", "_"))
    show(summary)
    click.echo(f"wrote {', '.join(map(str, written))}")


def show(summary) -> None:
    for row in summary.iter_rows(named=True):
        click.echo(f"c={row['coef']:g} {row['domain']:>4} ({row['docs']} docs, {row['tokens']} tokens, gate opened "
                   f"{row['gate_opened']}): unsteered {row['acc_unsteered']:.1f}%, steered {row['acc_steered']:.1f}%, "
                   f"gated {row['acc_gated']:.1f}%; gated - steered {row['gate_gain']:+.1f} "
                   f"[{row['gate_gain_lo']:+.1f}, {row['gate_gain_hi']:+.1f}] points; gated relative "
                   f"{row['rel_gated']:.1f}% [{row['rel_gated_lo']:.1f}, {row['rel_gated_hi']:.1f}]")


@group.command("report")
@click.option("--results", "results_dir", default=None, type=click.Path(), help="Results root (default: results/).")
@click.option("--docs", "docs_dir", default=str(REPO / "docs"), show_default=True, type=click.Path())
@click.option("--readme", default=str(REPO / "README.md"), show_default=True, type=click.Path())
def report_cmd(results_dir, docs_dir, readme):
    """docs/gates.md and the README's gates block from the committed tables (no model)."""
    from steer_trace.cache import results_root

    from .report import report, update_readme

    root = results_root(results_dir)
    for path in report(root, Path(docs_dir)):
        click.echo(f"wrote {path}")
    if update_readme(Path(readme), root):
        click.echo(f"updated the gates block of {readme}")

