"""Ad-hoc commands: models, vectors extract/info, generate, demo."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .common import (DEFAULT_METHOD, EXTRACTION_METHODS, model_options, open_model, progress, steering_options,
                     warn_if_overflows)


@click.command("models")
def models_cmd():
    """List the embedded models: layers, width, cache state, where the weights come from."""
    from steer_trace.models import EMBEDDED, cache_damage, cache_state, embedded_dir, is_installed

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
    import random
    import warnings

    from steer_trace.data import load_ab_file, prompt
    from studies.behaviours.data import clean
    from studies.behaviours.vectors import NORM_PROMPTS
    from steer_trace.pairs import extract_vector
    from steer_trace.read import content_hash, residual_norms

    items = clean(load_ab_file(dataset))  # the behaviour commands' checks: one answer family per file
    random.Random(13).shuffle(items)
    items = items[:limit] if limit else items
    answers = sorted({i.matching for i in items})
    if not plain_mean and len(answers) < 2:
        warnings.warn(f"all {len(items)} pair(s) of {dataset} match with {answers[0]!r}, so the vector cannot be "
                      "letter-balanced: it is the mean of that one group (use rows with both answers, or "
                      "--plain-mean)", stacklevel=1)
    from steer_trace.vectors import check_writable

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
    from steer_trace.vectors import SteeringVector

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


@click.command("generate")
@model_options
@click.argument("prompt_text")
@click.option("--vector", type=click.Path(), default=None, help="Vector file to steer with.")
@click.option("--layer", type=int, default=None, help="Layer to add the vector at.")
@click.option("--coef", type=float, default=4.0, show_default=True, help="Multiplier of the vector added at --layer.")
@click.option("--max-new-tokens", default=40, show_default=True, type=click.IntRange(min=1),
              help="Tokens to generate (greedy).")
@click.option("--chat/--no-chat", default=True, show_default=True, help="Wrap the prompt in the chat template.")
@click.option("--gate", "gate_file", type=click.Path(), default=None,
              help="Gate file (steer-trace gates fit): steer only if the prompt (as the model sees it, chat template "
                   "included) passes the gate.")
@steering_options
def generate_cmd(model_spec, prompt_text, vector, layer, coef, max_new_tokens, chat, gate_file, steering):
    """Greedy text, unsteered and steered, side by side."""
    from steer_trace.errors import UserError
    from steer_trace.gates import load_gate
    from steer_trace.plan import Plan, steered_generate
    from steer_trace.vectors import SteeringVector

    if (vector is None) != (layer is None):  # check options before the slow model load
        raise UserError("--vector and --layer go together: give both or neither")
    if not prompt_text and not chat:
        raise UserError("the prompt is empty: give some text (without --chat there is nothing to continue)")
    if gate_file and not vector:
        raise UserError("--gate needs --vector and --layer: it decides whether that vector applies")
    v = SteeringVector.load(vector) if vector else None
    gate = load_gate(gate_file)[0] if gate_file else None
    model = open_model(model_spec)
    plan = steering.apply(Plan.single(v, model.check_layer(layer), coef)).check(model) if v else None
    if plan and gate:
        plan = plan.gated(gate).check(model)
    text = prompt_text
    if chat and not getattr(model.tokenizer, "chat_template", None):
        import warnings

        warnings.warn(f"{model.name} has no chat template: the prompt goes in as plain text (--no-chat does this "
                      "without this warning)", stacklevel=1)
    elif chat:
        text = model.tokenizer.apply_chat_template([{"role": "user", "content": prompt_text}], tokenize=False,
                                                   add_generation_prompt=True)
    click.echo(f"unsteered: {steered_generate(model, [text], Plan.none(), max_new_tokens)[0]!r}")
    if plan:
        click.echo(f"steered ({plan.describe()}): {steered_generate(model, [text], plan, max_new_tokens)[0]!r}")
        warn_if_overflows(model, text, plan)


COMMANDS = [models_cmd, vectors_group, generate_cmd]
