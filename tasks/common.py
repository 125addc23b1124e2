"""Options and helpers shared by every command."""
from __future__ import annotations

import errno
import functools
import math
import os
import sys
import warnings

import click

from steer_trace.errors import UserError, file_in_the_way, is_out_of_memory
from steer_trace.models import DEFAULT_MODEL, DEVICES, DTYPES

# The names of steer_trace.aggregators.METHODS and its default, for --method: a copy, because aggregators
# imports torch and `--help` must not (tests/test_cli_startup.py checks the copy equals the table).
EXTRACTION_METHODS = ("mean", "pca", "pca-center", "pca-diff")
DEFAULT_METHOD = "mean"


class OldNames(click.Option):
    """An option also accepted under its old names (committed run recipes use them), which --help does not
    show: `click.option("--coefs", "--multipliers", "coefs", cls=OldNames)` lists --coefs only."""

    def get_help_record(self, ctx):
        opts, self.opts = self.opts, self.opts[:1]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts


def quiet_libraries() -> None:
    """transformers' logging and progress bars off; called where a command first needs transformers."""
    from transformers.utils import logging as hf_logging  # deferred: start-up time (CLI layer)

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def parse_numbers(text: str | None, kind=float, option: str = "") -> tuple | None:
    """'1,2,-3' -> (1.0, 2.0, -3.0); None or blank -> None. A non-number, an empty item ('1,,2') or a
    non-finite value ('nan' would make every score NaN) is a one-line UserError naming `option` if given."""
    if text is None or not str(text).strip():
        return None
    given = f"{option} {text!r}" if option else repr(text)
    parts = str(text).replace(" ", "").split(",")
    if "" in parts:
        raise UserError(f"{given} has an empty item: give comma-separated numbers, e.g. 1,1.5,2")
    try:
        numbers = tuple(kind(part) for part in parts)
    except ValueError:
        raise UserError(f"cannot read {given} as a comma-separated list of numbers") from None
    if not all(math.isfinite(n) for n in numbers):
        raise UserError(f"{given}: numbers must be finite")
    return numbers


def model_options(func):
    """--model, --remote, --ndif-host, --layers-path, --device, --dtype on a command that runs a model."""

    @click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True,
                  help="Embedded name (smollm2-135m, qwen2.5-coder-0.5b; with make models-large also "
                       "qwen2.5-coder-1.5b, gemma3-270m: `steer-trace models`), a local folder, or a hub id.")
    @click.option("--remote", is_flag=True, help="Run on NDIF through nnsight's remote backend.")
    @click.option("--ndif-host", default=None, envvar="NDIF_HOST",
                  help="NDIF server URL (default: nnsight's configured host). Key: NDIF_API_KEY.")
    @click.option("--layers-path", default=None,
                  help="Dotted path of the decoder layers, e.g. model.language_model.layers (default: discovered).")
    @click.option("--device", default="auto", show_default=True, type=click.Choice(DEVICES),
                  help="auto: cuda if available, else mps, else cpu.")
    @click.option("--dtype", default="float32", show_default=True, type=click.Choice(DTYPES),
                  help="Weights and activations dtype (vectors are cast to it).")
    @functools.wraps(func)
    def wrapper(*args, model_name, remote, ndif_host, layers_path, device, dtype, **kwargs):
        kwargs["model_spec"] = dict(name=model_name, remote=remote, host=ndif_host, layers_path=layers_path,
                                    device=device, dtype=dtype)
        return func(*args, **kwargs)

    return wrapper


def steering_options(func):
    """--op and --scope on a command that steers; passes `steering` (a steer_trace.plan.Steering),
    or adds it to `study_args` when the command has them (place it below @study_options)."""

    @click.option("--op", default="add", show_default=True, metavar="OPERATOR",
                  help="add | project-out (coefficient ignored) | project-out-then-add | "
                       "set-projection (the coefficient is the value of h·v̂).")
    @click.option("--scope", "token_scope", default="all", show_default=True, metavar="SCOPE",
                  help="Token positions steered: all | prompt | generated | from:K (real tokens from index K) | last.")
    @functools.wraps(func)
    def wrapper(*args, op, token_scope, **kwargs):
        from steer_trace.plan import Steering  # deferred (CLI start-up): torch

        steering = Steering(op, token_scope)  # a bad name is a UserError before any work
        if "study_args" in kwargs:
            kwargs["study_args"] = {**kwargs["study_args"], "steering": steering}
        else:
            kwargs["steering"] = steering
        return func(*args, **kwargs)

    return wrapper


def open_model(spec: dict):
    from steer_trace.models import load_model  # deferred: transformers (start-up time, CLI layer)

    quiet_libraries()
    remote = False
    if spec["remote"]:
        from steer_trace.remote import configure  # deferred: nnsight (start-up time, CLI layer)

        remote = configure(spec["host"])
    return load_model(spec["name"], remote=remote, layers_path=spec.get("layers_path"),
                      device=spec.get("device", "auto"), dtype=spec.get("dtype", "float32"))


def progress(total: int, label: str):
    """A tqdm bar on stderr (off when not a terminal unless STEER_TRACE_PROGRESS=1)."""
    from tqdm import tqdm  # deferred: ~0.2 s of `--help` (it reads package metadata), CLI layer

    disable = not (sys.stderr.isatty() or os.environ.get("STEER_TRACE_PROGRESS") == "1")
    return tqdm(total=total, desc=label, unit="item", disable=disable, leave=False)


def warn_if_overflows(model, text: str, plan) -> bool:
    """Warn (and return True) when `plan` overflows the residual stream on `text`: its mean square (what every
    norm layer computes) or the logits are inf/NaN, or the logits are all equal. A coefficient that large shows
    up otherwise only as empty or garbage text. One extra forward pass, once per command (never in a sweep)."""
    import torch  # deferred (CLI start-up): torch

    from steer_trace.batching import encode  # deferred (CLI start-up): torch
    from steer_trace.plan import apply_plan  # deferred (CLI start-up): torch

    kwargs = {**model.last_logits(), **model.trace_kwargs()}
    with torch.no_grad(), model.lm.trace(encode(model.tokenizer, [text]), **kwargs):
        apply_plan(model, plan)
        last = model.layers()[-1].output[:, -1, :].float()
        residual_ok = torch.isfinite(last.pow(2).mean()).save()
        logits = model.lm.output.logits[:, -1, :].float()
        logits_ok = (torch.isfinite(logits).all() & (logits.max() > logits.min())).save()
    if bool(residual_ok) and bool(logits_ok):
        return False
    warnings.warn(f"steering with {plan.describe()} overflows the residual stream (inf/NaN or constant logits): "
                  "the steered text is meaningless; use a smaller --coef", stacklevel=2)
    return True


_USER_ERRNOS = {  # failures of the user's disk or paths, not of the program
    errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR,
    errno.EEXIST, errno.ENAMETOOLONG, errno.EFBIG,
}


def _explain(error: BaseException) -> str | None:
    """The one-line explanation of a failure the user can fix, or None for a bug."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, click.ClickException):  # bad option values, unknown commands
        where = f" (see '{error.ctx.command_path} --help')" if getattr(error, "ctx", None) else ""
        return error.format_message() + where
    if isinstance(error, (ConnectionError, TimeoutError)) and not isinstance(error, BrokenPipeError):
        return f"cannot reach the server: {error.strerror or error}"
    if isinstance(error, OSError) and error.errno in _USER_ERRNOS:
        blocker = file_in_the_way(error.filename) if error.filename and error.errno in (errno.EEXIST,
                                                                                         errno.ENOTDIR) else None
        if blocker is not None:
            return f"{blocker} is a file, not a folder: give another path or move the file"
        target = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{target}"
    if is_out_of_memory(error):
        return "out of memory: lower --batch-size (or --max-tokens), or use a smaller model"
    return None


EXIT_USER_ERROR = 2  # a mistake the user can fix: one `error:` line
EXIT_INTERRUPTED = 130  # stopped by the user (Ctrl-C): the shell convention 128 + SIGINT


def _fail(message: str):
    click.echo("error: " + " ".join(message.split()), err=True)
    raise click.exceptions.Exit(EXIT_USER_ERROR)


def _interrupted():
    click.echo("\ninterrupted: finished work is kept; run the same command again to resume", err=True)
    raise click.exceptions.Exit(EXIT_INTERRUPTED)


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


class CleanErrors(click.Group):
    """Turn every mistake below (UserError, bad options, full or unwritable disk, unreachable
    server, out of memory) into one line on stderr and exit code 2, and Ctrl-C into one line and
    exit code 130; anything else is a bug and keeps its traceback."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.ClickException as error:
            _fail(_explain(error))

    def invoke(self, ctx):
        shown = warnings.formatwarning
        warnings.formatwarning = _one_line_warning
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except KeyboardInterrupt:
            _interrupted()
        except Exception as error:  # noqa: BLE001 - re-raised unless the user can fix it
            message = _explain(error)
            if message is None:
                raise
            _fail(message)
        finally:
            warnings.formatwarning = shown
