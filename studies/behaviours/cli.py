"""`steer-trace behaviours ...`: the paper's behaviour experiments (myopia, wealth seeking,
sycophancy, agreeableness, anti-immigration). Thin: options -> studies.behaviours."""
from __future__ import annotations

import functools
import math
import time

import click

from tasks.common import (DEFAULT_METHOD, EXTRACTION_METHODS, OldNames, model_options, open_model, parse_numbers,
                          steering_options)

from .profiles import PROFILES, make_profile



def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def study_options(func):
    """Options every behaviours command shares; passes `study_args`."""

    @click.option("--profile", type=click.Choice(list(PROFILES)), default="quick", show_default=True,
                  help="quick: minutes on 2 CPU cores; paper: the paper's sizes.")
    @click.option("--results", "results_dir", default=None, type=click.Path(),
                  help="Results root (default: $STEER_TRACE_RESULTS or ./results).")
    @click.option("--data-dir", default=None, type=click.Path(),
                  help="Folder with the behaviour files (paper's processed sets, Anthropic evals layout, or "
                       "<name>.jsonl); default $STEER_TRACE_DATA, else the project's small sets (quick) "
                       "or the hub (paper).")
    @click.option("--dataset", "dataset_files", multiple=True, type=click.Path(),
                  help="A custom behaviour file (Anthropic JSONL / CAA JSON); repeatable. Named by its file stem, "
                       "hyphens as underscores (my-set.jsonl: my_set).")
    @click.option("--behaviours", default=None,
                  help="Comma-separated behaviours (default: all five, or only the --dataset files).")
    @click.option("--prompt-style", type=click.Choice(["paper", "chat"]), default="paper", show_default=True,
                  help="paper: 'Human: ... AI: Out of (A) and (B), I choose ('; chat: the model's chat template.")
    @click.option("--orders", type=click.Choice(["both", "given"]), default="both", show_default=True,
                  help="Ask each question in every rotation of its options (both orders of two), or as given.")
    @click.option("--slices", type=click.Choice(["balanced", "plain"]), default="balanced", show_default=True,
                  help="Validation / test questions: as many matching with each answer label, or as split.")
    @click.option("--split", "split_rule", type=click.Choice(["seeded", "paper"]), default="seeded",
                  show_default=True, help="seeded: Random(13) per behaviour; paper: the paper's exact splits "
                                          "(its processed files, one seed for the five in sequence).")
    @click.option("--scoring", type=click.Choice(["letter", "content"]), default="letter", show_default=True,
                  help="letter: p(answer letter); content: length-normalised log p(option text | question).")
    @click.option("--vector-source", type=click.Choice(["letter", "content"]), default="letter", show_default=True,
                  help="Vectors from the answer letter, or from the answer texts' tokens (content).")
    @click.option("--plain-mean", is_flag=True, help="Paper's plain mean over pairs instead of letter-balanced.")
    @click.option("--method", type=click.Choice(EXTRACTION_METHODS), default=DEFAULT_METHOD, show_default=True,
                  help="Extraction method of letter vectors: mean difference, or pca / pca-center / pca-diff "
                       "(README 'Extraction methods'); results of a non-default method get their own keys.")
    @click.option("--relative", is_flag=True, help="Coefficients are fractions of the layer's residual-stream norm.")
    @click.option("--n-vector", type=int, default=None, help="Cap on vector pairs (profile default).")
    @click.option("--n-validation", type=int, default=None, help="Cap on validation questions.")
    @click.option("--n-test", type=int, default=None, help="Cap on test questions (before both orders).")
    @click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Prompts per forward pass.")
    @click.option("--tax-docs", type=click.IntRange(min=1), default=None,
                  help="Plain-text documents for the alignment tax (profile default; paper: 200).")
    @click.option("--skip-bad-rows", is_flag=True,
                  help="Leave out dataset rows that cannot be parsed (one warning with their count) instead of "
                       "stopping at the first.")
    @functools.wraps(func)
    def wrapper(*args, profile, results_dir, data_dir, dataset_files, behaviours, prompt_style, orders, slices,
                split_rule, scoring, vector_source, plain_mean, method, relative, n_vector, n_validation, n_test,
                batch_size, tax_docs, skip_bad_rows, **kwargs):
        kwargs["study_args"] = dict(
            profile=profile, root=results_dir, data_dir=data_dir, dataset_files=tuple(dataset_files),
            behaviours=tuple(b.strip() for b in behaviours.split(",") if b.strip()) if behaviours else None,
            prompt_style=prompt_style, orders=orders, balanced=not plain_mean, relative=relative, slices=slices,
            split=split_rule, scoring=scoring, vector_source=vector_source, method=method,
            sizes=(n_vector, n_validation, n_test), batch_size=batch_size, tax_docs=tax_docs,
            skip_bad_rows=skip_bad_rows)
        return func(*args, **kwargs)

    return wrapper


def build_study(model_spec: dict, study_args: dict):
    from .config import open_study  # deferred (CLI start-up): torch

    args = dict(study_args)
    profile = make_profile(args.pop("profile"), *args.pop("sizes"), batch_size=args.pop("batch_size"),
                           tax_docs=args.pop("tax_docs"))
    return open_study(lambda: open_model(model_spec), profile, **args)


def layers_option(help_text: str):
    return click.option("--layers", default=None, help=help_text + " Given: this model's own layer numbers (0 to its "
                        "layer count - 1), comma-separated; only the defaults are the paper's layers (of Llama-2-7B's "
                        "32) mapped to the same relative depth.")


def _layers(study, text, default_paper_layers):
    given = parse_numbers(text, int)
    if given:
        return sorted({study.model.check_layer(L) for L in given})
    return study.layers(default_paper_layers)


def _done(study, started: float) -> None:
    _echo_err(f"{study.computed} points computed (the rest from the cache) in {time.time() - started:.1f}s; "
              f"results under {study.root}")


def _picks(study, layers, add_coef, subtract_coef, grid_coefs, grid_layers=None):
    from . import run as exp  # deferred (CLI start-up): torch

    if add_coef is not None or subtract_coef is not None:
        if add_coef is None or subtract_coef is None:
            raise click.UsageError("give both --add-coef and --subtract-coef, or neither (grid picks)")
        return exp.fixed_picks(study, layers, add_coef, subtract_coef)
    searched = [study.model.check_layer(L) for L in parse_numbers(grid_layers, int) or ()]
    return exp.grid_picks(study, layers, parse_numbers(grid_coefs), _echo_err, grid_layers=searched)


def picks_options(func):
    func = click.option("--add-coef", "--add-mult", "add_coef", cls=OldNames, type=float, default=None,
                        help="Fixed add coefficient for every behaviour (default: the grid's picks).")(func)
    func = click.option("--subtract-coef", "--subtract-mult", "subtract_coef", cls=OldNames, type=float,
                        default=None, help="Fixed subtract coefficient.")(func)
    func = click.option("--grid-coefs", "--grid-multipliers", "grid_coefs", cls=OldNames, default=None,
                        help="Coefficients for the grid that picks them (profile default).")(func)
    func = click.option("--grid-layers", default=None,
                        help="Layers the grid searches besides --layers (model numbers; default: the "
                             "profile's grid layers).")(func)
    return func


def _row(values, widths) -> str:
    out = []
    for value, width in zip(values, widths):
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        out.append(text.rjust(width) if isinstance(value, (int, float)) else text.ljust(width))
    return "  ".join(out)


def _f(value, digits=3) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def show_precondition(table) -> None:
    """Order consistency of the unsteered greedy answers, per behaviour (letter scoring; content
    scoring has no positions and says so)."""
    if "order_consistency" not in table.columns:
        return
    base = table.filter(table["direction"] == "default").unique("behaviour", keep="first", maintain_order=True)
    for r in base.iter_rows(named=True):
        if r.get("scoring", "letter") != "letter":
            click.echo(f"precondition {r['behaviour']}: not needed - content scoring reads each option's text "
                       "after the question stem alone (no option list, no letters, so no position to answer by); "
                       "compare each shift with its random-direction row")
            continue
        consistent, chance = r["order_consistency"], r["consistency_chance"]
        if math.isnan(consistent):  # options asked in one order only
            click.echo(f"precondition {r['behaviour']}: not checked (options asked in one order: --orders both)")
            continue
        n = int(r["n_questions"])
        # one-sided: consistency above chance by more than two binomial standard errors
        margin = 2 * (chance * (1 - chance) / max(n, 1)) ** 0.5
        yes_no = set(r.get("q_label") or ()) <= {"Yes", "No"} and bool(r.get("q_label"))
        if consistent > chance + margin:
            verdict = "ok: answers follow the content"
        elif consistent > chance + margin / 2:
            verdict = (f"UNDECIDED: above chance, but not by two standard errors at {n} questions; more test "
                       "questions (--n-test, or --profile paper) decide it")
        elif yes_no:
            verdict = ("AT CHANCE: this model answers by position, so letter scoring cannot measure the behaviour "
                       "here; content scoring cannot either (a Yes/No option has no text beyond its label): try a "
                       "larger model or --prompt-style chat")
        else:
            verdict = ("AT CHANCE: this model answers by position, so letter scoring cannot measure the behaviour "
                       "here (use --scoring content)")
        click.echo(f"precondition {r['behaviour']}: greedy answer picks the same option text in every rotation "
                   f"for {consistent:.2f} of {n} questions (chance {chance:.2f}) - {verdict}")


def _verdicts(table) -> dict:
    """(behaviour, vector, layer, coef) -> (vector − random Shift or None, verdict) for each steered row
    that has its equal-norm random control ('random:<vector>' or 'random') scored on the same questions."""
    from .report import passes, verdict  # deferred (CLI start-up): polars
    from .scoring import row_shift  # deferred (CLI start-up): torch

    rows = list(table.iter_rows(named=True))
    index = {(r["behaviour"], r["vector"], r["layer"], r["coef"]): r for r in rows}
    defaults = {r["behaviour"]: r for r in rows if r["direction"] == "default"}
    out = {}
    for r in rows:
        base = defaults.get(r["behaviour"])
        if r["direction"] == "default" or r["vector"].startswith("random") or base is None:
            continue
        control = index.get((r["behaviour"], f"random:{r['vector']}", r["layer"], r["coef"])) or \
            index.get((r["behaviour"], "random", r["layer"], r["coef"]))
        testable = passes(base) if r.get("scoring", "letter") == "letter" else None
        shift = row_shift(r, base)  # balanced as the row's scoring mode says, as the report
        if control is None or control["q_id"] != r["q_id"]:
            out[(r["behaviour"], r["vector"], r["layer"], r["coef"])] = (None, "no control scored")
            continue
        against = row_shift(r, control)
        out[(r["behaviour"], r["vector"], r["layer"], r["coef"])] = (
            against, verdict(r["direction"], against, testable, shift))
    return out


def _interval_text(shift) -> str:
    if shift is None:
        return ""
    if shift.too_few:
        return f"{shift.shift:+.3f} (too few q)"
    return f"{shift.shift:+.3f} [{_f(shift.lo)}, {_f(shift.hi)}]"


def show_ab(table, title: str, group=("behaviour", "vector", "layer", "direction", "coef")) -> None:
    """Precondition, then scores: label-balanced p(matching), its paired shift against
    unsteered [95% interval] and p-value, the vector − random paired difference, the verdict (as
    `behaviours report`), greedy matching score; letter scoring adds answer mass and faulty share."""
    from steer_trace.stats import MIN_PER_LABEL, Shift  # deferred (CLI start-up): numpy

    from .scoring import refreshed_shifts  # deferred (CLI start-up): torch

    table = refreshed_shifts(table)
    show_precondition(table)
    letter = "scoring" not in table.columns or (table["scoring"] == "letter").all()
    verdicts = _verdicts(table) if "q_p_matching" in table.columns else {}
    click.echo(title)
    header = ["behaviour", "vector", "layer", "direction", "coef", "p_bal", "shift [95% CI]", "p",
              "vector − random", "score", *(["mass", "fault"] if letter else []), "top", "n_q", "verdict"]
    widths = [16, 14, 5, 9, 9, 7, 23, 6, 23, 6, *([6, 6] if letter else []), 6, 5, 0]
    click.echo(_row(header, widths))
    rows = table.sort(list(group)).unique(list(group), keep="first", maintain_order=True)
    for r in rows.iter_rows(named=True):
        top = f"{r['top_answer_share']:.2f}{'*' if r['collapsed'] else ''}"
        p_bal = r.get("p_matching_balanced", r["p_matching"])
        steered = r["direction"] != "default"
        own = Shift(r.get("shift", math.nan), r.get("shift_lo", math.nan), r.get("shift_hi", math.nan),
                    r.get("shift_p", math.nan), 0, math.nan, math.nan,
                    MIN_PER_LABEL if r.get("shift_per_label") is None or math.isnan(r["shift_per_label"])
                    else int(r["shift_per_label"]))
        against, said = verdicts.get((r["behaviour"], r["vector"], r["layer"], r["coef"]), (None, ""))
        n_q = int(r.get("n_questions") or r["n"])
        cells = [r["behaviour"], r["vector"], int(r["layer"]), r["direction"], float(r["coef"]), p_bal,
                 _interval_text(own) if steered else "", _f(own.p) if steered and not own.too_few else "",
                 _interval_text(against),
                 r["matching_score"], *([r["answer_mass"], r["faulty"]] if letter else []), top, n_q, said]
        click.echo(_row(cells, widths))
    click.echo("(p_bal: p(matching) averaged per answer label then over labels; shift: paired against unsteered "
               "on the same questions, label-balanced, bootstrap over questions within labels; p from the same "
               "resamples; vector − random: the vector's row minus its equal-norm random direction's, paired; "
               f"an interval or verdict needs {MIN_PER_LABEL} questions per answer label ('too few q' below); "
               "* = collapsed: one answer for >= 95% of prompts)")
    if "shift_mde" in table.columns:
        for (name,), part in table.filter(table["direction"] != "default").group_by(["behaviour"],
                                                                                   maintain_order=True):
            mdes = [v for v in part["shift_mde"].to_list() if not math.isnan(v)]
            n_q = int(part["shift_n"].fill_nan(0).max())
            if mdes:
                click.echo(f"detectable shift {name} (n={n_q} questions, alpha 0.05, power 0.8): "
                           f"{min(mdes):.3f}-{max(mdes):.3f} in p(matching) at the observed spreads")


@click.group("behaviours")
def group():
    """The paper's behaviour experiments: extract, grid, single, combined, simultaneous, interference, tax, diagnose,
    precondition.

    Every command caches its points under the results root; running it again recomputes nothing.
    """


def _extract_content(study) -> None:
    from .sources import content_vector_path, study_vectors  # deferred (CLI start-up): torch

    vectors = study_vectors(study, _echo_err)
    widths = (16, 5, 8, 9, 8)
    click.echo(_row(("behaviour", "layer", "norm", "residual", "ratio"), widths))
    for name, vector in vectors.items():
        for L in study.layers(study.profile.report_layers):
            residual = float(vector.meta["residual_norms"][str(L)])
            click.echo(_row((name, L, float(vector[L].norm()), residual, float(vector[L].norm()) / residual), widths))
    for name in study.names:
        click.echo(f"content vector {name}: {content_vector_path(study, name)}")


@group.command("extract")
@model_options
@study_options
def extract_cmd(model_spec, study_args):
    """CAA vectors for every layer and behaviour (safetensors) + vectors / cosines / components tables."""
    from .vectors import run_extract, vector_path  # deferred (CLI start-up): torch

    started = time.time()
    study = build_study(model_spec, study_args)
    if study.vector_source == "content":
        _extract_content(study)
        _done(study, started)
        return
    tables = run_extract(study, _echo_err)
    layers = study.layers(study.profile.report_layers)
    shown = tables["vectors"].filter(tables["vectors"]["layer"].is_in(layers)).sort(["behaviour", "layer"])
    widths = (16, 5, 8, 9, 8, 9)
    click.echo(_row(("behaviour", "layer", "norm", "residual", "ratio", "letter_cos"), widths))
    for r in shown.iter_rows(named=True):
        click.echo(_row((r["behaviour"], r["layer"], r["norm"], r["residual_norm"], r["norm"] / r["residual_norm"],
                         r["letter_cosine"]), widths))
    for name in study.names:
        click.echo(f"vector {name}: {vector_path(study, name)}")
    _done(study, started)


@group.command("grid")
@model_options
@study_options
@steering_options
@layers_option("Layers to search (default: the paper's 0,5,10,15,20,25,29,31 of 32 at this depth; quick: 10,15).")
@click.option("--coefs", "--multipliers", "coefs", cls=OldNames, default=None,
              help="Positive coefficients, each also tried negated (profile default).")
def grid_cmd(model_spec, study_args, layers, coefs):
    """Layer x coefficient on the validation split; stops a direction at collapse; picks coefficients."""
    from . import run as exp  # deferred (CLI start-up): torch

    started = time.time()
    study = build_study(model_spec, study_args)
    chosen = _layers(study, layers, study.profile.grid_layers)
    picks = exp.grid_picks(study, chosen, parse_numbers(coefs), _echo_err)
    click.echo("picked coefficients (behaviour, layer: subtract / add)")
    for name in study.names:
        for L in chosen:
            click.echo(f"  {name:<16} L{L:<3} {picks[(name, L, 'subtract')]:>8g} / {picks[(name, L, 'add')]:<8g}")
    _done(study, started)


@group.command("single")
@model_options
@study_options
@steering_options
@layers_option("Layers (default: the paper's 10 and 15 of 32 at this depth).")
@picks_options
@click.option("--more-random", type=click.IntRange(min=0), default=0, show_default=True,
              help="Score N more random directions of each vector's norm per point, and only those (the vector "
                   "and its paired control come from the run without it): the spread `behaviours report` ranks "
                   "the vector's shift in (one draw per distinct direction; 19 for a rank p of 0.05).")
@click.option("--random-signs", type=click.Choice(["both", "add"]), default="both", show_default=True,
              help="With --more-random: score each further direction at +c and -c (both), or at +c only (add: "
                   "half the points; direction d at +c is direction -d at -c, so one sign gives a draw for the "
                   "add and the subtract rows alike).")
def single_cmd(model_spec, study_args, layers, add_coef, subtract_coef, grid_coefs, grid_layers, more_random,
               random_signs):
    """Each behaviour alone at a layer: default / add / subtract on the test split."""
    from . import run as exp  # deferred (CLI start-up): torch

    started = time.time()
    study = build_study(model_spec, study_args)
    chosen = _layers(study, layers, study.profile.report_layers)
    picks = _picks(study, chosen, add_coef, subtract_coef, grid_coefs, grid_layers)
    table = exp.run_single(study, chosen, picks, _echo_err, more_random=more_random, random_signs=random_signs)
    orders = "" if study.scoring == "content" else f" ({study.orders} orders)"  # content: no option order
    show_ab(table, f"single steering, test split{orders}")
    _done(study, started)
    return table


@group.command("combined")
@model_options
@study_options
@steering_options
@layers_option("Layers (default: the paper's 10 and 15 of 32 at this depth).")
@picks_options
@click.option("--coefs", default="1", show_default=True, help="Coefficients applied to each combined vector (±).")
def combined_cmd(model_spec, study_args, layers, add_coef, subtract_coef, grid_coefs, grid_layers, coefs):
    """The behaviours' vectors combined at one layer (sum, mean, weighted sum, weighted mean), ±."""
    from . import run as exp  # deferred (CLI start-up): torch

    started = time.time()
    study = build_study(model_spec, study_args)
    chosen = _layers(study, layers, study.profile.report_layers)
    picks = _picks(study, chosen, add_coef, subtract_coef, grid_coefs, grid_layers)
    table = exp.run_combined(study, chosen, picks, parse_numbers(coefs) or (1.0,), _echo_err)
    show_ab(table, "combined vectors, test split")
    _done(study, started)


@group.command("simultaneous")
@model_options
@study_options
@steering_options
@layers_option("One layer per behaviour (default: consecutive from the paper's layer 11 of 32 at this depth).")
@click.option("--coefs", default=None, help="Global coefficients (profile default; paper: -2..2 step 0.05).")
@click.option("--controls-at", default=None,
              help="Score the paired random control at these coefficients, and only it (the vector rows and the tax "
                   "come from the run without this option; default: the control at the largest coefficient each "
                   "way).")
def simultaneous_cmd(model_spec, study_args, layers, coefs, controls_at):
    """Each behaviour's vector at its own layer, one global coefficient; scores and alignment tax."""
    from . import run as exp  # deferred (CLI start-up): torch

    started = time.time()
    study = build_study(model_spec, study_args)
    placed = exp.simultaneous_layers(study, parse_numbers(layers, int))
    out = exp.run_simultaneous(study, placed, parse_numbers(coefs), _echo_err, parse_numbers(controls_at))
    click.echo("layers: " + ", ".join(f"{n}@{L}" for n, L in zip(study.names, placed)))
    show_ab(out["scores"], "simultaneous steering, test split", ("coef", "behaviour", "vector"))
    if out["tax"] is not None:
        show_tax(out["tax"])
    _done(study, started)


def show_tax(table) -> None:
    click.echo("alignment tax (top-1 next-token accuracy on plain text)")
    for r in table.sort("coef").iter_rows(named=True):
        click.echo(f"  {r['vector']:<14} layers {r['layers']:<16} x{r['coef']:>8g}  accuracy {r['accuracy']:.3f} "
                   f"[{r['accuracy_lo']:.3f}, {r['accuracy_hi']:.3f}]  ({r['n_tokens']} tokens)")


vectors_option = click.option(
    "--vectors", "vector_specs", default=None,
    help="Comma-separated behaviour names or .safetensors files (default: every behaviour).")


@group.command("interference")
@model_options
@study_options
@steering_options
@vectors_option
@layers_option("Layers (default: the paper's 15 of 32 at this depth).")
@click.option("--coefs", "--multipliers", "coefs", cls=OldNames, default=None,
              help="Signed coefficients applied to each vector (profile default).")
def interference_cmd(model_spec, study_args, vector_specs, layers, coefs):
    """How each vector moves every behaviour: change in p(matching) against unsteered."""
    from . import run as exp  # deferred (CLI start-up): torch

    started = time.time()
    study = build_study(model_spec, study_args)
    specs = [s.strip() for s in vector_specs.split(",")] if vector_specs else study.names
    vectors = exp.resolve_vectors(study, specs)
    chosen = _layers(study, layers, study.profile.report_layers[-1:])
    coefs_given = parse_numbers(coefs) or study.profile.interference_coefs
    table = exp.run_interference(study, vectors, chosen, coefs_given, _echo_err)
    click.echo("change in p(matching) of each scored behaviour (columns) by vector x layer x coefficient (rows)")
    default = {r["behaviour"]: r["p_matching"]
               for r in table.filter(table["direction"] == "default").iter_rows(named=True)}
    click.echo(" " * 34 + "".join(f"{n[:12]:>13}" for n in study.names))
    steered = table.filter(table["direction"] != "default")
    for (vec, L, m), part in steered.group_by(["vector", "layer", "coef"], maintain_order=True):
        cells = {r["behaviour"]: r["p_matching"] - default[r["behaviour"]] for r in part.iter_rows(named=True)}
        click.echo(f"{vec[:18]:<18} L{L:<3} x{m:>8g}  " + "".join(f"{cells.get(n, float('nan')):>+13.3f}"
                                                               for n in study.names))
    _done(study, started)


@group.command("tax")
@model_options
@study_options
@steering_options
@vectors_option
@layers_option("One layer for all vectors or one per vector (default: as `simultaneous`).")
@click.option("--coefs", default=None, help="Coefficients (profile default, as `simultaneous`).")
def tax_cmd(model_spec, study_args, vector_specs, layers, coefs):
    """Top-1 next-token accuracy on plain text (WikiText-2) under a steering plan."""
    from . import run as exp  # deferred (CLI start-up): torch

    started = time.time()
    study = build_study(model_spec, study_args)
    specs = [s.strip() for s in vector_specs.split(",")] if vector_specs else study.names
    vectors = exp.resolve_vectors(study, specs)
    given = parse_numbers(layers, int)
    if given:
        placed = [study.model.check_layer(L) for L in given]
    else:
        placed = exp.simultaneous_layers(study) if list(vectors) == study.names else \
            study.layers(study.profile.report_layers[-1:])
    table = exp.run_tax(study, exp.tax_entries(study, vectors, placed, parse_numbers(coefs)), _echo_err)
    show_tax(table)
    _done(study, started)


def show_quality(table) -> None:
    built = table["estimator"][0] if "estimator" in table.columns else "plain mean"
    click.echo(f"vector quality (vector split pairs, the vector as built: {built}; null: each pair's labels swapped "
               "at random, 200 draws)")
    widths = (16, 5, 7, 8, 15, 7, 9, 11, 7, 8)
    click.echo(_row(("behaviour", "layer", "pairs", "norm", "null mean/95%", "p", "split-half", "null 95%", "p",
                     "held-AUC"), widths))
    for r in table.sort(["behaviour", "layer"]).iter_rows(named=True):
        click.echo(_row((r["behaviour"], int(r["layer"]), int(r["n_pairs"]), r["norm"],
                         f"{r['norm_null_mean']:.2f}/{r['norm_null_95']:.2f}", r["norm_p"], r["reliability"],
                         r["reliability_null_95"], r["reliability_p"], r["heldout_auc"]), widths))


@group.command("precondition")
@model_options
@study_options
def precondition_cmd(model_spec, study_args):
    """Before any vector: does the unsteered greedy answer follow the option text when the options rotate
    (test split, every rotation)? At chance, letter scoring cannot measure a behaviour on this model."""
    from .quality import run_precondition  # deferred (CLI start-up): torch

    started = time.time()
    study = build_study(model_spec, study_args)
    show_precondition(run_precondition(study, _echo_err))
    _done(study, started)


@group.command("diagnose")
@model_options
@study_options
@click.option("--layers", default=None, help="Layers to show: comma-separated or 'all' (default: paper's 10, 15).")
def diagnose_cmd(model_spec, study_args, layers):
    """Vector quality (split-half reliability, label-permutation null, held-out AUC), the order-consistency
    precondition, and letter bias: per behaviour/layer the cosine of the A- and B-matching vectors, the
    vector's norm against the residual norm, and the unsteered model's preference for the first answer."""
    from .quality import run_precondition, run_quality  # deferred (CLI start-up): torch
    from .vectors import run_extract, run_letter_bias  # deferred (CLI start-up): torch

    started = time.time()
    study = build_study(model_spec, study_args)
    report = _layers(study, None if layers == "all" else layers, study.profile.report_layers)
    quality = run_quality(study, report, _echo_err)
    show_quality(quality)
    show_precondition(run_precondition(study, _echo_err))
    two_options = all(len(i.options) == 2 for name in study.names for i in study.part(name, "test"))
    if study.vector_source == "content" or not two_options:
        _done(study, started)  # the letter-cosine and first-answer tables are for two-option letter vectors
        return
    tables = run_extract(study, _echo_err)
    bias = run_letter_bias(study)
    shown = tables["vectors"]
    if layers != "all":
        shown = shown.filter(shown["layer"].is_in(_layers(study, layers, study.profile.report_layers)))
    click.echo("letter_cos: cosine between the vectors of the A-matching and the B-matching pairs "
               "(near -1: the vector is mostly the answer-letter direction)")
    widths = (16, 5, 10, 8, 9, 8, 11)
    click.echo(_row(("behaviour", "layer", "letter_cos", "norm", "residual", "ratio", "letter_norm"), widths))
    for r in shown.sort(["behaviour", "layer"]).iter_rows(named=True):
        click.echo(_row((r["behaviour"], r["layer"], r["letter_cosine"], r["norm"], r["residual_norm"],
                         r["norm"] / r["residual_norm"], r["letter_norm"]), widths))
    click.echo(f"baseline answer bias on the test split ({study.orders} orders; 0.5 = no preference)")
    for r in bias.sort("behaviour").iter_rows(named=True):
        click.echo(f"  {r['behaviour']:<16} p({r['first_answer']}) {r['p_first']:.3f}  greedy {r['first_answer']} "
                   f"{r['greedy_first']:.3f}  faulty {r['faulty']:.3f}  (n={r['n']})")
    _done(study, started)



@group.command("report")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Results root (default: $STEER_TRACE_RESULTS or ./results).")
@click.option("--out", "out_dir", default=None, type=click.Path(),
              help="Where the tables go (default: <results>/behaviours_report).")
@click.option("--profile", type=click.Choice(list(PROFILES)), default="quick", show_default=True,
              help="Which runs to report: their profile (the same default as every other behaviours command; "
                   "the committed results are --profile paper).")
@click.option("--split", "split_rule", type=click.Choice(["seeded", "paper"]), default=None,
              help="Which runs to report: their split rule (default: every one, each in its own sections).")
def report_cmd(results_dir, out_dir, profile, split_rule):
    """Markdown tables from the cached results, no model: precondition, vector quality, single,
    simultaneous (+ tax) and combined, every steered row with its paired shift, its random
    control, the vector-minus-random difference, the detectable shift and a verdict."""
    from steer_trace.cache import existing_root  # deferred (CLI start-up): polars

    from . import report as behaviour_report  # deferred (CLI start-up): torch

    written = behaviour_report.write(existing_root(results_dir), out_dir, profile, split_rule)
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        others = [p for p in PROFILES if p != profile
                  and behaviour_report.profiles_with_results(results_dir, p, split_rule)]
        click.echo(f"no behaviour results with per-question scores for profile {profile}"
                   + (f", split {split_rule}" if split_rule else "")
                   + (f"; there are for {', '.join(others)}: give --profile {others[0]}" if others else ""))


@group.command("restat")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Results root (default: $STEER_TRACE_RESULTS or ./results).")
def restat_cmd(results_dir):
    """Recompute the statistics the finished tables store (p_bal, the paired shift, its interval and p) from
    their per-question scores, in place, after a statistic's definition changed; no model, nothing else
    changes."""
    from steer_trace.cache import results_root
    from steer_trace.errors import UserError

    from . import restat as behaviour_restat

    if not behaviour_restat.tables(results_dir):
        raise UserError(f"no finished behaviour tables with per-question scores under {results_root(results_dir)}")
    changed = behaviour_restat.restat(results_dir)
    for path, n in changed:
        click.echo(f"restated {path}: {n} rows")
    if not changed:
        click.echo("every stored statistic is current")


COMMANDS = [group]
