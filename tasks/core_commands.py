"""Ad-hoc commands: models, vectors extract/info, generate, demo."""
from __future__ import annotations

import dataclasses
import functools
import json
import random
import warnings
from pathlib import Path

import click

from steer_trace.data import load_ab_file, prompt
from steer_trace.errors import UserError
from steer_trace.models import EMBEDDED, cache_damage, cache_state, embedded_dir, is_installed
from studies.behaviours.data import clean

from .common import (DEFAULT_METHOD, EXTRACTION_METHODS, model_options, open_model, parse_numbers, progress,
                     steering_options, warn_if_overflows)


@click.command("models")
def models_cmd():
    """List the embedded models: layers, width, cache state, where the weights come from."""
    click.echo(f"{'name':<22}{'layers':>7}{'width':>7}  {'cached':<8} source")
    damaged, notes = [], []
    for spec in EMBEDDED.values():
        state = {"cached": "yes"}.get(cache_state(spec.name), cache_state(spec.name))  # yes, no or damaged
        if state == "damaged":
            damaged.append(f"{spec.name} ({cache_damage(spec.name)})")
        installed = is_installed(spec.name)
        if spec.large and not installed and state != "yes":
            notes.append(f"{spec.name}: not installed (large: make models-large, or pip install "
                         f"'steer-trace[models-large]')")
        if not spec.chat_template:
            notes.append(f"{spec.name}: a base model without a chat template (use --prompt-style paper / --no-chat)")
        click.echo(f"{spec.name:<22}{spec.n_layers:>7}{spec.d_model:>7}  {state:<8} "
                   f"pip: {' '.join(spec.pip_names[:1])}{' …' if len(spec.pip_names) > 1 else ''} ({spec.hub_id})")
    click.echo(f"cache: {embedded_dir('x').parent}")
    for line in damaged:
        click.echo(f"damaged {line}; the next load rebuilds it from the installed GGUF package")
    for line in notes:
        click.echo(line)


class _VectorsGroup(click.Group):
    """`vectors`: its export/import commands (tasks/vector_io.py, whose option help reads the core's
    conventions table, torch and all) are added only when `steer-trace vectors ...` runs."""

    def _complete(self):
        if "export" not in self.commands:
            from .vector_io import register  # deferred: start-up time of `steer-trace --help`

            register(self)

    def list_commands(self, ctx):
        self._complete()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        self._complete()
        return super().get_command(ctx, name)


@click.group("vectors", cls=_VectorsGroup)
def vectors_group():
    """Extract and inspect steering vectors (safetensors + provenance)."""


@vectors_group.command("extract")
@model_options
@click.option("--dataset", "dataset", required=True, type=click.Path(),
              help="Contrastive A/B file: Anthropic evals JSONL, CAA JSON or the paper's JSON.")
@click.option("--out", required=True, type=click.Path(), help="Output .safetensors file.")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="Use only the first N rows (after the seed-13 shuffle).")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Texts per forward pass (a shared prompt is one text, a full-text pair two).")
@click.option("--prompt-style", type=click.Choice(["paper", "chat"]), default="paper", show_default=True,
              help="paper: Human:/AI: text; chat: the tokenizer's chat template around the question.")
@click.option("--plain-mean", is_flag=True, help="Paper's plain mean over pairs instead of the letter-balanced mean.")
@click.option("--method", type=click.Choice(EXTRACTION_METHODS), default=DEFAULT_METHOD, show_default=True,
              help="mean: mean difference; pca: first principal component of the differences; pca-center / "
                   "pca-diff: repeng's (README 'Extraction methods').")
def vectors_extract(model_spec, dataset, out, limit, batch_size, prompt_style, plain_mean, method):
    """CAA vector for every layer: prompt + matching answer minus prompt + non-matching answer."""
    from steer_trace.pairs import extract_vector  # deferred (CLI start-up): torch
    from steer_trace.read import content_hash, residual_norms  # deferred (CLI start-up): torch
    from studies.behaviours.vectors import NORM_PROMPTS  # deferred (CLI start-up): torch

    items = clean(load_ab_file(dataset))  # the behaviour commands' checks: one answer family per file
    random.Random(13).shuffle(items)
    items = items[:limit] if limit else items
    answers = sorted({i.matching for i in items})
    if not plain_mean and len(answers) < 2:
        warnings.warn(f"all {len(items)} pair(s) of {dataset} match with {answers[0]!r}, so the vector cannot be "
                      "letter-balanced: it is the mean of that one group (use rows with both answers, or "
                      "--plain-mean)", stacklevel=1)
    from steer_trace.vectors import check_writable  # deferred (CLI start-up): torch

    check_writable(out)  # an unwritable --out fails before the work (the model load and the reads), not after
    model = open_model(model_spec)
    prompts = [prompt(i, prompt_style, model.tokenizer) for i in items]
    with progress(len(items), "pairs") as bar:
        vector = extract_vector(
            model, prompts, [i.matching for i in items], [i.not_matching for i in items],
            groups=[i.matching for i in items], batch_size=batch_size, method=method, balanced=not plain_mean,
            meta={"name": Path(dataset).stem, "dataset": Path(dataset).name, "dataset_hash": content_hash(items),
                  "prompt_style": prompt_style}, progress=bar.update)
    # the residual stream's norm per layer on the prompts (as `behaviours extract` records it): what a
    # coefficient is measured against (`vectors info`, `--relative`)
    norms = residual_norms(model, [p + i.matching for p, i in zip(prompts, items)][:NORM_PROMPTS],
                           batch_size=batch_size)
    vector.meta["residual_norms"] = {str(L): v for L, v in norms.items()}
    vector.save(out)
    click.echo(f"saved {out}: {len(vector.layers)} layers, {len(items)} pairs, d={vector.d_model} "
               f"({vector.meta['method']}, {vector.meta['reader']} reader)")


@vectors_group.command("info")
@click.argument("path", type=click.Path())
def vectors_info(path):
    """Show a vector file's provenance and per-layer norms, beside the residual stream's norm at each layer where
    the extraction recorded it (`vectors extract`, `behaviours extract`): a coefficient c adds c x norm, so
    norm / residual is the fraction of the residual one unit of coefficient adds (what --relative counts in)."""
    from steer_trace.vectors import SteeringVector  # deferred (CLI start-up): torch

    vector = SteeringVector.load(path)
    residual = vector.meta.get("residual_norms") or {}
    meta = {k: v for k, v in vector.meta.items() if k != "residual_norms"}
    click.echo(json.dumps(meta, indent=1, sort_keys=True))
    norms = vector.norms()
    if not residual:
        click.echo("layer  norm    (no residual norms recorded: vectors extracted before they were, or by other code)")
        for L, n in norms.items():
            click.echo(f"{L:>5}  {n:.4f}")
        return
    click.echo("layer      norm  residual  norm/residual")
    for L, n in norms.items():
        r = residual.get(str(L))
        cells = f"{r:>8.3f}  {n / r:>13.4f}" if r else f"{'—':>8}  {'—':>13}"
        click.echo(f"{L:>5}  {n:>8.4f}  {cells}")
    click.echo("(residual: mean L2 norm of the residual stream at the layer's output, last token of the extraction "
               "prompts; --relative coefficients are fractions of it)")


def generation_options(func):
    """Sampling options shared by the commands that write text; passes `options` (GenerationOptions)."""

    @click.option("--max-new-tokens", default=40, show_default=True, type=click.IntRange(min=1),
                  help="Tokens to generate (the text ends earlier at the end token or a --stop string).")
    @click.option("--temperature", default=0.0, show_default=True, type=click.FloatRange(min=0),
                  help="Sampling temperature; 0 is greedy.")
    @click.option("--top-p", default=1.0, show_default=True, type=click.FloatRange(0, 1, min_open=True),
                  help="Nucleus sampling: draw among the most likely tokens up to this probability mass.")
    @click.option("--seed", default=0, show_default=True, type=int,
                  help="Sampling seed: each (prompt, sample) draws from its own generator seeded by it, so steered "
                       "and unsteered samples of a prompt pair up, and a run repeats exactly.")
    @click.option("--samples", default=1, show_default=True, type=click.IntRange(min=1),
                  help="Samples per prompt (needs --temperature > 0).")
    @click.option("--stop", multiple=True, help="Cut the text before this string (repeatable).")
    @click.option("--stop-at-eos/--no-stop-at-eos", default=True, show_default=True,
                  help="End the text at the model's end token (--no-stop-at-eos: never choose it).")
    @click.option("--chat/--no-chat", default=True, show_default=True, help="Wrap the prompt in the chat template.")
    @click.option("--system", default=None, help="System prompt (with --chat; default: the template's own).")
    @click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
                  help="Rows (prompt x sample) per forward pass; the text does not depend on it.")
    @functools.wraps(func)
    def wrapper(*args, max_new_tokens, temperature, top_p, seed, samples, stop, stop_at_eos, chat, system,
                batch_size, **kwargs):
        from steer_trace.generation import GenerationOptions  # deferred (CLI start-up): torch

        kwargs["options"] = GenerationOptions(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, samples=samples,
            stop=tuple(stop), stop_at_eos=stop_at_eos, chat=chat, system=system, batch_size=batch_size)
        return func(*args, **kwargs)

    return wrapper


@click.command("generate")
@model_options
@click.argument("prompt_text")
@click.option("--vector", type=click.Path(), default=None, help="Vector file to steer with.")
@click.option("--layer", type=int, default=None, help="Layer to add the vector at.")
@click.option("--coef", type=float, default=4.0, show_default=True, help="Coefficient of the vector added at --layer.")
@click.option("--coefs", default=None, metavar="A,B,...",
              help="Several coefficients, one steered text each, in one model load (overrides --coef).")
@click.option("--relative", is_flag=True,
              help="Coefficients are x the residual norm at --layer (the vector's recorded norm, else measured on "
                   "the prompt), as in the behaviour commands.")
@click.option("--gate", "gate_file", type=click.Path(), default=None,
              help="Gate file (steer-trace gates fit): steer only if the prompt (as the model sees it, chat template "
                   "included) passes the gate.")
@generation_options
@steering_options
def generate_cmd(model_spec, prompt_text, vector, layer, coef, coefs, relative, gate_file, options, steering):
    """Text unsteered and steered (one or several coefficients), side by side; greedy unless --temperature."""
    from steer_trace.gates import load_gate  # deferred (CLI start-up): torch
    from steer_trace.generation import format_prompt, generate  # deferred (CLI start-up): torch
    from steer_trace.plan import Plan  # deferred (CLI start-up): torch
    from steer_trace.read import residual_norms  # deferred (CLI start-up): torch
    from steer_trace.vectors import SteeringVector  # deferred (CLI start-up): torch

    if (vector is None) != (layer is None):  # check options before the slow model load
        raise UserError("--vector and --layer go together: give both or neither")
    if relative and vector is None:
        raise UserError("--relative needs --vector and --layer")
    if not prompt_text and not options.chat:
        raise UserError("the prompt is empty: give some text (without --chat there is nothing to continue)")
    coef_list = parse_numbers(coefs, option="--coefs") or (coef,)
    v = SteeringVector.load(vector) if vector else None
    gate = load_gate(gate_file)[0] if gate_file else None
    model = open_model(model_spec)
    if options.chat and not getattr(model.tokenizer, "chat_template", None):
        if options.system is not None:
            raise UserError(f"--system needs a chat template and {model.name} has none")
        warnings.warn(f"{model.name} has no chat template: the prompt goes in as plain text (--no-chat does this "
                      "without this warning)", stacklevel=1)
        options = dataclasses.replace(options, chat=False)
    plans = []
    if v:
        layer = model.check_layer(layer)
        plans = [steering.apply(Plan.single(v, layer, c)) for c in coef_list]
        if relative:
            norm, source = _residual_norm(v, model, layer, format_prompt(model.tokenizer, prompt_text, options.chat,
                                                                         options.system), residual_norms)
            click.echo(f"residual norm at layer {layer}: {norm:.1f} ({source}); coefficients are x this norm")
            plans = [Plan(p.relative_to({layer: norm}).injections, f"{p.describe()} rel") for p in plans]
        plans = [(p.gated(gate) if gate else p).check(model) for p in plans]

    def show(name: str, plan: Plan) -> None:
        for s in generate(model, [prompt_text], plan, options):
            tag = f" #{s.sample + 1}" if options.samples > 1 else ""
            click.echo(f"{name}{tag}: {s.text!r}")

    show("unsteered", Plan.none())
    for plan in plans:
        show(f"steered ({plan.describe()})", plan)
        warn_if_overflows(model, format_prompt(model.tokenizer, prompt_text, options.chat, options.system), plan)


def _residual_norm(vector, model, layer: int, text: str, measure) -> tuple[float, str]:
    """The residual norm at `layer`: the vector's recorded one when it was read on this model, else measured."""
    recorded = (vector.meta or {}).get("residual_norms") or {}
    if str(layer) in recorded and vector.meta.get("model") in (None, model.name):
        return float(recorded[str(layer)]), "recorded with the vector"
    return float(measure(model, [text], [layer])[layer]), "measured on the prompt's last token"


COMMANDS = [models_cmd, vectors_group, generate_cmd]
