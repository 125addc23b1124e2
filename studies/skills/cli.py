"""`steer-trace skills ...`: the paper's skills experiment (steer away from code in
general, or from Python). Thin: options -> studies.skills.run."""
from __future__ import annotations

import functools
import time

import click

from steer_trace.errors import UserError
from steer_trace.models import requested_numerics, resolve

from tasks.common import model_options, open_model, parse_numbers, progress, quiet_libraries, steering_options

from . import profiles
from .corpora import load_corpus


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def common_options(func):
    """Options shared by extract and sweep; passes `setup` (profile, corpus, lazy model, root)."""

    @click.option("--profile", type=click.Choice(list(profiles.PROFILES)), default="default", show_default=True,
                  help="default: >= 5k scored tokens per domain at every point, >= 20k at the headline points, "
                       "the paper's coefficient list and step rule (hours on 2 CPU cores); quick: the superseded "
                       "small evaluation (minutes); paper: the paper's sizes (5000 vector documents of up to "
                       "4096 tokens, ~500k scored tokens per domain).")
    @click.option("--results", "results_dir", default=None, type=click.Path(),
                  help="Results root (default: $STEER_TRACE_RESULTS or ./results).")
    @click.option("--data-dir", default=None, envvar="STEER_TRACE_DATA", type=click.Path(),
                  help="Folder with the offline stand-in data (WikiText-2, HumanEval-X, HumanEval; e.g. "
                       "../shared/data). Default $STEER_TRACE_DATA, else the project's data/skills set.")
    @click.option("--hub", is_flag=True,
                  help="Stream the paper's data (the Pile, codeparrot) through `datasets` instead (needs the hub).")
    @click.option("--seed", default=13, show_default=True, help="Seed of the vector/evaluation split.")
    @click.option("--batch-size", type=int, default=None, help="Documents per forward pass (profile default).")
    @functools.wraps(func)
    def wrapper(*args, model_spec, profile, results_dir, data_dir, hub, seed, batch_size, **kwargs):
        kwargs["setup"] = dict(model_spec=model_spec, profile=profile, root=results_dir, data_dir=data_dir, hub=hub,
                               seed=seed, batch_size=batch_size)
        return func(*args, **kwargs)

    return wrapper


def _prepare(setup: dict, **overrides):
    from . import run as skills  # deferred (CLI start-up): torch

    profile = profiles.make_profile(setup["profile"], batch_size=setup["batch_size"], **overrides)
    spec = setup["model_spec"]
    name, revision = skills.model_identity(spec["name"], spec["remote"])
    numerics = requested_numerics(spec.get("device", "auto"), spec.get("dtype", "float32"), spec["remote"])
    model = skills.LazyModel(lambda: _open(spec), name, revision, numerics, lambda: _tokenizer(spec))
    corpus = load_corpus(setup["data_dir"], setup["hub"], profile.n_vector, profile.n_eval, setup["seed"])
    return profile, corpus, model


def _tokenizer(spec):
    """The tokenizer without the weights (local and embedded models; others load the model)."""
    from transformers import AutoTokenizer  # deferred: start-up time of --help (CLI layer)

    if spec["remote"]:
        return open_model(spec).tokenizer
    quiet_libraries()
    return AutoTokenizer.from_pretrained(resolve(spec["name"])[0])


def _open(spec):
    started = time.time()
    model = open_model(spec)
    _echo_err(f"loaded {model.name} ({model.n_layers} layers, d={model.d_model}) in {time.time() - started:.0f}s")
    return model


@click.group("skills")
def group():
    """Broad vs narrow skill suppression: steer away from code in general (text - code) or from
    Python (text - Python) and measure next-token accuracy on held-out text, code and Python.

    \b
    steer-trace skills extract --data-dir ../shared/data      # vectors -> results/vectors/<model>/
    steer-trace skills sweep --data-dir ../shared/data        # accuracy table -> results/skills_sweep/
    steer-trace figures                                       # general_coding.png, python_ability.png, ...
    """


@group.command("extract")
@model_options
@common_options
@click.option("--n-vector", type=int, default=None, help="Documents per domain (profile default).")
@click.option("--max-tokens", type=int, default=None, help="Truncate documents to this many tokens (profile default).")
@click.option("--permute-seed", default=0, show_default=True, help="Seed of the permuted-component control.")
def extract_cmd(setup, n_vector, max_tokens, permute_seed):
    """Mean last-token activation per domain and layer; save text-code and text-Python vectors."""
    from . import run as skills  # deferred (CLI start-up): torch

    started = time.time()
    profile, corpus, model = _prepare(setup, n_vector=n_vector, vector_tokens=max_tokens)
    total = sum(len(corpus.get("vector", d)) for d in ("text", "code", "python"))
    with progress(total, "documents") as bar:
        out = skills.extract(model, corpus, profile, setup["root"], setup["seed"], permute_seed, _echo_err, bar.update)
    sizes = ", ".join(f"{d} {len(corpus.get('vector', d))}" for d in ("text", "code", "python"))
    click.echo(f"vectors from {corpus.origin} data ({sizes} documents, <= {profile.vector_tokens} tokens); "
               f"{out.computed_points} domains read, {3 - out.computed_points} cached")
    for (target, control), vec in sorted(out.vectors.items()):
        norms = vec.norms()
        shown = ", ".join(f"L{L} {norms[L]:.2f}" for L in profiles.sweep_layers(len(norms)))
        click.echo(f"text-{target} ({skills.CONTROLS[control][1]}): norms {shown}")
    for path in out.paths:
        click.echo(f"saved {path}")
    click.echo(f"done in {time.time() - started:.0f}s")


@group.command("sweep")
@model_options
@common_options
@click.option("--n-eval", type=int, default=None, help="Held-out documents per domain, all scored at every point "
                                                         "(instead of the profile's token targets).")
@click.option("--sweep-tokens", type=int, default=None, help="Scored tokens per domain at every point (profile "
                                                              "default).")
@click.option("--headline-tokens", type=int, default=None, help="Scored tokens per domain at the headline points "
                                                                 "(middle layer, layer 0, controls; c in 1-2).")
@click.option("--rule", type=click.Choice(["paper", "max"]), default=None,
              help="Skip/stop rule on the target domain's relative accuracy (paper, the default) or on the largest "
                   "of the three domains (max).")
@click.option("--max-tokens", type=int, default=None, help="Truncate scored documents to this many tokens.")
@click.option("--layers", default=None, help="Layers, comma-separated (default: the paper's 0,5,...,30 of 32 "
                                             "at the same relative depth).")
@click.option("--coefs", default=None, help="Coefficients in schedule order, comma-separated (profile default).")
@click.option("--targets", default="code,python", show_default=True, help="Vectors to sweep: code, python.")
@click.option("--no-control", is_flag=True, help="Skip the permuted-vector control at the middle layer.")
@steering_options
def sweep_cmd(setup, n_eval, sweep_tokens, headline_tokens, rule, max_tokens, layers, coefs, targets, no_control,
              steering):
    """Accuracy on held-out text/code/Python per layer and coefficient (adaptive schedule)."""
    import polars as pl  # deferred (CLI start-up): torch

    from . import run as skills  # deferred (CLI start-up): torch

    started = time.time()
    profile, corpus, model = _prepare(setup, n_eval=n_eval, eval_tokens=max_tokens,
                                      coefs=parse_numbers(coefs, option="--coefs"),
                                      sweep_tokens=sweep_tokens, headline_tokens=headline_tokens, rule=rule)
    wanted = tuple(t.strip() for t in targets.split(",") if t.strip())
    bad = [t for t in wanted if t not in skills.TARGETS]
    if bad or not wanted:
        raise UserError(f"unknown target(s) {', '.join(bad) or '(none)'} (code, python)")
    layers = parse_numbers(layers, int, "--layers")
    vectors = skills.load_vectors(setup["root"], model.name)
    if vectors is None:
        for L in layers or ():  # before extracting: a typo should not cost an extraction
            model().check_layer(L)
        _echo_err("no saved skills vectors for this model: extracting them first")
        vectors = skills.extract(model, corpus, profile, setup["root"], setup["seed"], log=_echo_err).vectors
    skills.check_vectors_match(vectors, model.name, corpus, setup["seed"], _echo_err)
    meta = vectors[("code", "none")].meta
    if meta.get("profile") != profile.name:
        _echo_err(f"note: using vectors extracted with the {meta.get('profile')} profile")
    with progress(None, "documents") as bar:
        out = skills.sweep(model, corpus, profile, vectors, setup["root"], layers, wanted,
                           not no_control, setup["seed"], _echo_err, bar.update, steering=steering)
    click.echo(f"{out.computed_points} points computed, {out.cached_points} cached, {out.table.height} rows "
               f"in {time.time() - started:.0f}s")
    base = out.table.filter(pl.col("layer") == -1).sort("size", "domain")
    for size, part in base.group_by("size", maintain_order=True):
        click.echo(f"baseline ({size[0]}): " + ", ".join(
            f"{r['domain']} {r['accuracy']:.3f} [{r['accuracy_lo']:.3f}, {r['accuracy_hi']:.3f}] "
            f"({r['n_docs']} documents, {r['n_tokens']} tokens)" for r in part.iter_rows(named=True)))


@group.command("report")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Results root (default: $STEER_TRACE_RESULTS or ./results).")
@click.option("--out", "out_dir", default=None, type=click.Path(),
              help="Where the tables go (default: <results>/skills_report).")
@click.option("--n-boot", default=1000, show_default=True, help="Bootstrap resamples of documents.")
def report_cmd(results_dir, out_dir, n_boot):
    """Tables (markdown + csv) from every cached skills point, finished sweep or not: baselines,
    headline points, layer 0, both permuted controls, the language matrix, the full sweep."""
    from steer_trace.cache import existing_root  # deferred (CLI start-up): polars

    from . import report as skills_report  # deferred (CLI start-up): torch

    written = skills_report.write(existing_root(results_dir), out_dir, n_boot)
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo("no skills points cached yet (run `steer-trace skills sweep` first)")


COMMANDS = [group]
