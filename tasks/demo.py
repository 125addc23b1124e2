"""`steer-trace demo`: a first steered result in seconds, then the behaviour pipeline, offline.

1. first result: one behaviour vector (agreeableness, from the project's own set), then the same prompt
   unsteered and steered side by side, and p(matching) on held-out questions, with one line on what it means;
2. the pipeline, small: extract -> single (fixed coefs, one layer) -> simultaneous (three coefficients)
   -> content (myopia scored by its answer texts, beside a random direction) -> figures, on the project's
   small behaviour sets (data/behaviours);
   `--full` runs it at the quick profile's size instead (validation grids over two layers, seven coefficients).

Everything goes into a folder of its own (results cache + figures), so it never mixes with the committed
results; a second run reads everything back from the cache.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from steer_trace.data import both_orders, prompt, split
from studies.behaviours import cli as behaviours
from studies.behaviours.data import load_from_folder, project_data_dir
from studies.behaviours.profiles import model_layer

from . import figures
from .common import model_options, open_model

STEPS = ("extract", "single", "simultaneous")
# the small pipeline: single at one layer with fixed coefs (no validation grid), three global coefficients
# on every step: vectors from 12 pairs and 6 test questions per behaviour (12 prompts with both orders), where the
# quick profile reads 20 / 12 on the project's sets
SMALL_SIZES = ["--n-vector", "12", "--n-test", "6"]
SMALL = {"single": ["--layers", "{layer}", "--add-coef", "16", "--subtract-coef", "16"],
         "simultaneous": ["--coefs=-8,0,8"]}
FIRST = {"behaviour": "agreeableness", "paper_layer": 15, "mult": 16.0, "tokens": 24,
         "question": "Do you enjoy helping other people?"}
# the measurement that works where letters do not: myopia scored by its answer texts, x+-1 of the residual norm
CONTENT = ["--behaviours", "myopic", "--scoring", "content", "--vector-source", "content", "--relative",
           "--layers", "{layer}", "--add-coef", "1", "--subtract-coef", "1"]


def _say(text: str) -> None:
    click.echo(click.style(f"\n== {text}", bold=True))


@click.command("demo")
@model_options
@click.option("--out", "out_dir", default="demo", show_default=True, type=click.Path(),
              help="Folder for the demo's results cache and figures.")
@click.option("--data-dir", default=None, type=click.Path(),
              help="Behaviour files (default: the project's small offline sets in data/behaviours).")
@click.option("--full", is_flag=True,
              help="The whole quick pipeline (validation grids at two layers, seven coefficients; ~20 min on 2 cores).")
def demo_cmd(model_spec, out_dir, data_dir, full):
    """A first steered result in seconds, then extract -> single -> simultaneous -> figures, offline."""
    started = time.time()
    out = Path(out_dir)
    model = open_model(model_spec)
    click.echo(f"model {model.name} loaded in {time.time() - started:.0f}s")
    layer = first_result(model, data_dir)
    click.echo(f"first result {time.time() - started:.0f}s after the start")

    common = ["--model", model_spec["name"], "--profile", "quick", "--results", str(out / "results")]
    if model_spec["remote"]:
        common.append("--remote")
    if model_spec["host"]:
        common += ["--ndif-host", model_spec["host"]]
    if data_dir:
        common += ["--data-dir", str(data_dir)]
    explain = {
        "extract": f"CAA vectors at every layer for the five behaviours (letter-balanced mean difference "
                   f"at the answer token, {'20' if full else '12'} pairs each), with the letter-bias diagnostics",
        "single": (f"each behaviour steered alone at layer {layer}, x+16 and x-16, on 6 test questions asked "
                   "in both option orders") if not full else
                  ("each behaviour steered alone at two layers (the paper's 10 and 15 of 32 at this depth): "
                   "a small validation grid picks the add / subtract coefs, then the test split is "
                   "scored with each question asked in both option orders"),
        "simultaneous": f"all five vectors at once, each at its own layer (paper: 11..15 of 32), one global "
                        f"coefficient ({'seven values' if full else '-8, 0, +8'}), plus the alignment tax on "
                        "plain text",
    }
    ctx = click.get_current_context()
    with _reusing(model):  # the steps use the model loaded above
        for step in STEPS:
            _say(f"{step}: {explain[step]}")
            command = behaviours.group.commands[step]
            extra = [] if full else SMALL_SIZES + [a.format(layer=layer) for a in SMALL.get(step, [])]
            ctx.invoke(command, **_parsed(command, common + extra))
        _say(f"content: what letters cannot measure here - myopia scored by its answer texts (no letters): a "
             f"content vector from the answer texts, added at layer {layer} at x+1 and x-1 of the residual norm, "
             "beside a random direction of the same norm")
        command = behaviours.group.commands["single"]
        table = ctx.invoke(command, **_parsed(command, common + [a.format(layer=layer) for a in CONTENT]))
        content_meaning(table, layer)
    _say("figures: rebuilt from the cached tables, no model")
    figure_dir = out / "figures"
    ctx.invoke(figures.figures_cmd, results_dir=str(out / "results"), out_dir=str(figure_dir))
    click.echo(f"\ndemo done in {time.time() - started:.0f}s: results under {out / 'results'}, "
               f"figures under {figure_dir}. Run it again: everything comes from the cache."
               + ("" if full else " The whole quick pipeline: steer-trace demo --full."))


def first_result(model, data_dir=None) -> int:
    """One vector, one prompt unsteered and steered, p(matching) on held-out questions; returns the layer."""
    import torch  # deferred (CLI start-up): torch

    from steer_trace import Plan, answer_probs, answer_token_ids, contrastive_vector  # deferred (CLI start-up): torch
    from steer_trace.metrics import ab_summary  # deferred (CLI start-up): torch
    from steer_trace.generation import steered_generate  # deferred (CLI start-up): torch

    name, mult = FIRST["behaviour"], FIRST["mult"]
    layer = model_layer(FIRST["paper_layer"], model.n_layers)
    [(items, _)] = load_from_folder(data_dir or project_data_dir(), [name]).values()
    parts = split(items)
    train, test = parts["vector"][:12], both_orders(parts["test"][:6])  # small: the result comes in seconds
    _say(f"first result: the {name} vector (mean difference of {len(train)} answer pairs), "
         f"added at layer {layer} x{mult:+g} and x{-mult:+g}")
    pairs = [(prompt(i) + i.matching, prompt(i) + i.not_matching) for i in train]
    vector = contrastive_vector(model, pairs, groups=[i.matching for i in train], layers=[layer])
    plans = [Plan.none(), Plan.single(vector, layer, mult), Plan.single(vector, layer, -mult)]
    text = f"Human: {FIRST['question']}\n\nAI:"
    click.echo(f"prompt: {FIRST['question']!r}")
    for plan in plans:
        said = steered_generate(model, [text], plan, FIRST["tokens"])[0]
        click.echo(f"  {plan.describe():>10}: {' '.join(said.split())!r}")
    ids = answer_token_ids(model.tokenizer, list(test[0].options))
    matching = torch.tensor([i.matching_index for i in test])
    scored = answer_probs(model, [prompt(i) for i in test], ids, plans, batch_size=len(test))
    p = [ab_summary(probs, greedy, ids, matching).p_matching for probs, greedy in scored]
    click.echo(f"p(matching) on {len(test)} held-out prompts ({len(test) // 2} questions, both option orders): "
               f"unsteered {p[0]:.3f}, x{mult:+g} {p[1]:.3f}, x{-mult:+g} {p[2]:.3f}")
    if p[1] > p[0] > p[2]:
        click.echo(f"what it means: the vector changes what the model writes, and adding it raises p(matching) "
                   f"by {p[1] - p[0]:.3f} while subtracting lowers it by {p[0] - p[2]:.3f}; on this few questions "
                   "shifts under ~0.1 are within noise (the pipeline below measures more).")
    else:
        click.echo("what it means: the vector changes what the model writes, but p(matching) does not follow its "
                   "sign: on a small model a CAA vector shifts the text's style more than its answers "
                   "(README, Behaviours).")
    return layer


def content_meaning(table, layer: int) -> None:
    """One line per direction: the vector's paired shift against the random direction's, and the verdict."""
    import polars as pl  # deferred (CLI start-up)

    from studies.behaviours.report import steered_rows  # deferred (CLI start-up): torch

    default = table.filter((pl.col("behaviour") == "myopic") & (pl.col("direction") == "default")).row(0, named=True)
    for entry in steered_rows(table, "myopic", "myopic", "random", layer, None, default):
        if entry["random"] is None:
            continue
        shift, random, against = entry["shift"], entry["random"], entry["against"]

        def interval(s) -> str:
            return "(too few questions for an interval)" if s.too_few else f"[{s.lo:+.3f}, {s.hi:+.3f}]"

        click.echo(f"what it means, x{entry['row']['coef']:+g}: p(matching) moves {shift.shift:+.3f} "
                   f"{interval(shift)}, the random direction {random.shift:+.3f}; vector - random "
                   f"{against.shift:+.3f} {interval(against)} on {shift.n} questions: {entry['verdict']}")
    click.echo("  (a handful of questions: a demonstration of the measurement, not evidence - the paper-size run "
               "in the README has 100 per behaviour and 20 random directions)")


class _reusing:
    """Within the block, the behaviour commands use `model` instead of loading their own."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.saved = behaviours.open_model
        behaviours.open_model = lambda spec: self.model
        return self

    def __exit__(self, *exc):
        behaviours.open_model = self.saved


def _parsed(command: click.Command, argv: list[str]) -> dict:
    """Option values for `command` as its own parser reads `argv` (defaults filled in)."""
    ctx = command.make_context(command.name, list(argv), resilient_parsing=False)
    return dict(ctx.params)


COMMANDS = [demo_cmd]
