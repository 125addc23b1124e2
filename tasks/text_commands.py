"""`steer-trace text eval`: what a steered model writes, measured against its controls (steer_trace.text_eval)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from steer_trace.errors import UserError

from .common import model_options, open_model, parse_numbers, progress

DEFAULT_OUT = "results/text_eval"


@click.group("text")
def text_group():
    """Open-ended evaluation of steered text: samples, a validated detector, fluency and relevance."""


@text_group.command("eval")
@model_options
@click.option("--dataset", required=True, type=click.Path(),
              help="A/B file of the behaviour: its held-out questions are asked without options, and its "
                   "answer texts (another held-out part) validate the detector.")
@click.option("--vector", required=True, type=click.Path(), help="Vector file to steer with.")
@click.option("--layer", required=True, type=int, help="Layer to steer at.")
@click.option("--coef", type=float, default=None, help="Steering coefficient (x the residual norm with --relative).")
@click.option("--coefs", default=None, metavar="A,B,...",
              help="Several coefficients of one sign: they share the unsteered and prompted samples.")
@click.option("--relative", is_flag=True, help="--coef is x the residual norm at --layer (recorded with the vector).")
@click.option("--behaviour", default=None, help="Behaviour name (judge question, prompted baseline); default: "
                                                  "the dataset file's name.")
@click.option("--n-questions", default=20, show_default=True, type=click.IntRange(min=1),
              help="Test questions (label-balanced, held out from the vector's and the detector's rows).")
@click.option("--samples", default=4, show_default=True, type=click.IntRange(min=1), help="Samples per question.")
@click.option("--max-new-tokens", default=48, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(min=0))
@click.option("--top-p", default=0.95, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--n-random", default=2, show_default=True, type=click.IntRange(min=0),
              help="Equal-norm random directions (distinct draws), each its own condition.")
@click.option("--no-prompted", is_flag=True, help="Leave out the 'prompted for the behaviour' baseline.")
@click.option("--prompt-style", type=click.Choice(["paper", "chat"]), default="paper", show_default=True)
@click.option("--detector-layer", default=None, type=int, help="Reader layer of the DiffMean detector "
                                                                "(default: --layer).")
@click.option("--reader-model", default=None, help="Model whose activations the DiffMean detector reads "
                                                    "(default: the steered model).")
@click.option("--judge-model", default=None, help="Use a judge model (yes/no question, p(yes)) instead of DiffMean.")
@click.option("--detector-texts", default=100, show_default=True, type=click.IntRange(min=10),
              help="Held-out questions whose answer texts fit (half) and validate (half) the detector.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(),
              help="Folder for the tables (samples, paired, summary as parquet + a markdown report).")
def text_eval(model_spec, dataset, vector, layer, coef, coefs, relative, behaviour, n_questions, samples,
              max_new_tokens, temperature, top_p, seed, n_random, no_prompted, prompt_style, detector_layer,
              reader_model, judge_model, detector_texts, batch_size, out):
    """Steered, unsteered, random-direction and prompted samples of held-out questions, measured."""
    from steer_trace.cache import key_of  # deferred (CLI start-up): polars
    from steer_trace.generation import GenerationOptions  # deferred (CLI start-up): torch
    from steer_trace.text_eval import open_ended  # deferred (CLI start-up): torch
    from steer_trace.text_report import held_out_parts, make_detector, write_report  # deferred (CLI start-up): torch
    from steer_trace.vectors import SteeringVector  # deferred (CLI start-up): torch

    coef_list = parse_numbers(coefs, option="--coefs") or ((coef,) if coef is not None else None)
    if coef_list is None:
        raise UserError("give --coef C or --coefs A,B,...")
    options = GenerationOptions(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                                samples=samples, chat=prompt_style == "chat", batch_size=batch_size)
    v = SteeringVector.load(vector)
    name = behaviour or Path(dataset).stem.replace("-", "_")
    questions, labelled, split = held_out_parts(dataset, n_questions, detector_texts)
    config = {"model": model_spec["name"], "remote": bool(model_spec.get("remote")), "dtype": model_spec.get("dtype"),
              "dataset": Path(dataset).name, "data": [labelled.texts, questions], "vector": v.meta,
              "vector_norm": v.norms().get(layer), "layer": layer, "coefs": coef_list, "relative": relative,
              "behaviour": name, "options": options.key(), "n_random": n_random, "prompted": not no_prompted,
              "prompt_style": prompt_style, "detector": [detector_layer, reader_model, judge_model]}
    stem = f"{model_spec['name']}-{name}-L{layer}-c{'_'.join(f'{c:g}' for c in coef_list)}" \
           f"{'rel' if relative else ''}-{key_of(config)[:10]}"
    done = Path(out) / f"{stem}.md"
    if done.exists():
        click.echo(f"already done: {done} (delete its files to recompute)")
        return
    Path(out).mkdir(parents=True, exist_ok=True)  # an unwritable --out fails before the work
    model = open_model(model_spec)
    layer = model.check_layer(layer)
    detector = make_detector(model, labelled, name, detector_layer if detector_layer is not None else layer,
                             reader_model, judge_model, model_spec, open_model)
    click.echo(f"detector {detector.name}: {detector.validation.describe()}")
    total = len(questions) * samples * (1 + len(coef_list) * (1 + n_random) + (0 if no_prompted else 1))
    with progress(total, "samples") as bar:
        result = open_ended(model, questions, v, layer, list(coef_list), detector=detector, behaviour=name,
                            relative=relative, options=options, n_random=n_random, prompted=not no_prompted,
                            prompt_style=prompt_style, progress=bar.update)
    result.meta.update({"model": model.name, "dataset": Path(dataset).name, "vector": Path(vector).name,
                        "behaviour": name, "split": split,
                        "run": {"recipe": "steer-trace " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d")}})
    for path in write_report(result, Path(out), stem):
        click.echo(f"wrote {path}")


@text_group.command("report")
@click.option("--results", "folder", default=DEFAULT_OUT, show_default=True, type=click.Path(),
              help="Folder of `text eval` reports.")
@click.option("--out", default=None, type=click.Path(), help="Write the table here (default: print it).")
@click.option("--rebuild", is_flag=True, help="First rewrite every report from its samples table (no model).")
@click.option("--data-dir", default=None, type=click.Path(),
              help="With --rebuild: where the datasets are, for reports that keep no questions.")
def text_report_cmd(folder, out, rebuild, data_dir):
    """One table over every open-ended report: concept, fluency and combined shifts, with the detector's AUROC."""
    from steer_trace.text_report import rebuild as rebuild_report  # deferred (CLI start-up): polars, torch
    from steer_trace.text_report import summarize  # deferred (CLI start-up): polars, torch

    if not Path(folder).is_dir():
        raise UserError(f"no open-ended reports: {folder} is not a folder (run `steer-trace text eval` first)")
    if rebuild:
        for meta_path in sorted(Path(folder).glob("*.json")):
            if meta_path.with_suffix(".samples.parquet").exists():
                for path in rebuild_report(meta_path, Path(data_dir) if data_dir else None):
                    click.echo(f"rebuilt {path}")
    table = summarize(Path(folder))
    if out:
        Path(out).write_text(table)
        click.echo(f"wrote {out}")
    else:
        click.echo(table, nl=False)


COMMANDS = [text_group]
