"""`steer-trace demo`: the quick behaviour pipeline on the embedded default model, offline.

extract -> single -> simultaneous -> figures, on the project's own small behaviour sets
(data/behaviours), into a folder of its own so it never mixes with the committed results.
A second run reads everything back from its cache.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from .common import model_options

STEPS = ("extract", "single", "simultaneous")


def _say(text: str) -> None:
    click.echo(click.style(f"\n== {text}", bold=True))


@click.command("demo")
@model_options
@click.option("--out", "out_dir", default="demo", show_default=True, type=click.Path(),
              help="Folder for the demo's results cache and figures.")
@click.option("--data-dir", default=None, type=click.Path(),
              help="Behaviour files (default: the project's small offline sets in data/behaviours).")
def demo_cmd(model_spec, out_dir, data_dir):
    """The quick behaviour pipeline (extract -> single -> simultaneous -> figures), offline, in minutes."""
    from . import behaviours, figures

    started = time.time()
    out = Path(out_dir)
    common = ["--model", model_spec["name"], "--profile", "quick", "--results", str(out / "results")]
    if model_spec["remote"]:
        common.append("--remote")
    if model_spec["host"]:
        common += ["--ndif-host", model_spec["host"]]
    if data_dir:
        common += ["--data-dir", str(data_dir)]
    explain = {
        "extract": "CAA vectors at every layer for the five behaviours (letter-balanced mean difference "
                   "at the answer token), with the letter-bias diagnostics",
        "single": "each behaviour steered alone at two layers (the paper's 10 and 15 of 32 at this depth): "
                  "a small validation grid picks the add / subtract multipliers, then the test split is "
                  "scored with each question asked in both option orders",
        "simultaneous": "all five vectors at once, each at its own layer (paper: 11..15 of 32), one "
                        "global coefficient, plus the alignment tax on plain text",
    }
    ctx = click.get_current_context()
    for step in STEPS:
        _say(f"{step}: {explain[step]}")
        command = behaviours.group.commands[step]
        ctx.invoke(command, **_parsed(command, common))
    _say("figures: rebuilt from the cached tables, no model")
    figure_dir = out / "figures"
    ctx.invoke(figures.figures_cmd, results_dir=str(out / "results"), out_dir=str(figure_dir))
    click.echo(f"\ndemo done in {time.time() - started:.0f}s: results under {out / 'results'}, "
               f"figures under {figure_dir}. Run it again: everything comes from the cache.")


def _parsed(command: click.Command, argv: list[str]) -> dict:
    """Option values for `command` as its own parser reads `argv` (defaults filled in)."""
    ctx = command.make_context(command.name, list(argv), resilient_parsing=False)
    return dict(ctx.params)


COMMANDS = [demo_cmd]
