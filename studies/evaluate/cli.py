"""`steer-trace evaluate --dataset F [--model M] [--remote] [--out DIR]`: thin, options -> run.py -> report.py."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import click

from tasks.common import model_options, open_model, parse_numbers


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


@click.command("evaluate")
@model_options
@click.option("--dataset", required=True, type=click.Path(),
              help="A behaviour file: Anthropic JSONL (2-8 options, A/B or Yes/No), CAA JSON, or the paper's JSON.")
@click.option("--out", "out_dir", default=None, type=click.Path(),
              help="Report folder (default: <results>/evaluate_<model>_<file stem>).")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Cache root (default: $STEER_TRACE_RESULTS or ./results).")
@click.option("--n-vector", type=click.IntRange(min=1), default=60, show_default=True,
              help="Questions whose pairs build the vector.")
@click.option("--n-validation", type=click.IntRange(min=1), default=20, show_default=True,
              help="Questions that choose layer and coef.")
@click.option("--n-test", type=click.IntRange(min=1), default=40, show_default=True,
              help="Held-out questions every claim is tested on.")
@click.option("--layers", default=None, help="Layers searched (default: 30%, 45% and 60% of the depth).")
@click.option("--coefs", default="0.2,0.4,0.8,1.6,3.2", show_default=True,
              help="Coefs searched, x the residual norm; each also negated.")
@click.option("--n-random", type=click.IntRange(min=10), default=10, show_default=True,
              help="Distinct equal-norm random directions at each pick.")
@click.option("--steer-fractions", default="-1,-0.5,0,0.5,1", show_default=True,
              help="Steerability coefs as fractions of the add pick's coef (>= 5).")
@click.option("--scoring", type=click.Choice(["auto", "letter", "content"]), default="auto", show_default=True,
              help="auto: letters if the model answers by content (the precondition), else option texts.")
@click.option("--prompt", "prompt_text", default=None,
              help="Instruction asking for the behaviour (prompting baseline).")
@click.option("--anti-prompt", default=None, help="Instruction asking for its opposite.")
@click.option("--max-loss", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Guard: largest share of the unsteered next-token accuracy a pick may lose.")
@click.option("--min-distinct", type=click.FloatRange(0, 1), default=0.6, show_default=True,
              help="Guard: smallest distinct-token ratio of greedy text, as a share of unsteered.")
@click.option("--tax-docs", type=click.IntRange(min=1), default=8, show_default=True,
              help="Plain-text documents for next-token accuracy.")
@click.option("--tax-tokens", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--gen-tokens", type=click.IntRange(min=2), default=24, show_default=True,
              help="Greedy tokens per fixed prompt (the guard's text check).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--orders", type=click.Choice(["both", "given"]), default="both", show_default=True,
              help="Ask each question in every rotation of its options, or as given.")
@click.option("--prompt-style", type=click.Choice(["paper", "chat"]), default="paper", show_default=True)
@click.option("--vector", "vector_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Evaluate this vector (.safetensors) instead of extracting one from the file.")
@click.option("--skip-bad-rows", is_flag=True, help="Leave out rows that cannot be parsed (one warning).")
@click.option("--text-questions", type=click.IntRange(min=0), default=10, show_default=True,
              help="Held-out test questions asked without options at the picks, the text measured (0: no text stage; "
                   "below 10 the shifts carry no interval).")
@click.option("--text-samples", type=click.IntRange(min=1), default=2, show_default=True,
              help="Samples per question and condition.")
@click.option("--text-tokens", type=click.IntRange(min=1), default=24, show_default=True, help="Tokens per sample.")
@click.option("--text-random", type=click.IntRange(min=1), default=2, show_default=True,
              help="Equal-norm random directions (distinct draws) in the text.")
@click.option("--text-detector", type=click.IntRange(min=4), default=40, show_default=True,
              help="Validation questions whose answer texts fit (half) and validate (half) the behaviour detector.")
def command(model_spec, dataset, out_dir, results_dir, n_vector, n_validation, n_test, layers, coefs, n_random,
            steer_fractions, scoring, prompt_text, anti_prompt, max_loss, min_distinct, tax_docs, tax_tokens,
            gen_tokens, batch_size, orders, prompt_style, vector_file, skip_bad_rows, text_questions, text_samples,
            text_tokens, text_random, text_detector):
    """Does steering work on this model for this behaviour - at which layer and coef, at what cost, and better
    than prompting? Writes report.md, report.html, tables and figures to --out."""
    from steer_trace.cache import results_root
    from steer_trace.errors import UserError
    from studies.common.plots import slug

    from . import report
    from .guard import GuardBounds
    from .run import Options, evaluate

    if not Path(dataset).is_file():
        raise UserError(f"--dataset {dataset}: no such file")
    opts = Options(n_vector=n_vector, n_validation=n_validation, n_test=n_test,
                   layers=parse_numbers(layers, int, "--layers") or (),
                   coefs=parse_numbers(coefs, float, "--coefs") or (),
                   n_random=n_random, fractions=parse_numbers(steer_fractions, float, "--steer-fractions") or (),
                   scoring=scoring, prompt=prompt_text, anti_prompt=anti_prompt,
                   bounds=GuardBounds(max_loss, min_distinct), tax_docs=tax_docs, tax_tokens=tax_tokens,
                   gen_tokens=gen_tokens, batch_size=batch_size, orders=orders, prompt_style=prompt_style,
                   vector_file=vector_file, skip_bad_rows=skip_bad_rows, text_questions=text_questions,
                   text_samples=text_samples, text_tokens=text_tokens, text_random=text_random,
                   text_detector=text_detector)
    opts.check()
    root = results_root(results_dir)
    out = Path(out_dir) if out_dir else root / f"evaluate_{slug(Path(model_spec['name']).name)}_{Path(dataset).stem}"
    started = time.time()
    ev = evaluate(lambda: open_model(model_spec), dataset, opts, root, _echo_err)
    ev.summary["command"] = "steer-trace " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
    ev.summary["load"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    ev.summary["wall_s"] = time.time() - started
    report.save_tables(ev.tables, ev.summary, out)
    for path in report.write(out):
        click.echo(f"wrote {path}")
    click.echo("")
    from .verdicts import verdicts

    for line in verdicts(ev.tables):
        click.echo("- " + line.replace("**", ""))
    _echo_err(f"{ev.study.computed} points computed (the rest from the cache) in {time.time() - started:.1f}s")
