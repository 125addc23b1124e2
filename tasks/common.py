"""Options and helpers shared by every command."""
from __future__ import annotations

import functools
import os
import sys

import click

from steer_trace.errors import UserError
from steer_trace.models import DEFAULT_MODEL


def model_options(func):
    """--model, --remote, --ndif-host on a command that runs a model."""

    @click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True,
                  help="Embedded name (smollm2-135m, qwen2.5-coder-0.5b), a local folder, or a hub id.")
    @click.option("--remote", is_flag=True, help="Run on NDIF through nnsight's remote backend.")
    @click.option("--ndif-host", default=None, envvar="NDIF_HOST",
                  help="NDIF server URL (default: nnsight's configured host). Key: NDIF_API_KEY.")
    @functools.wraps(func)
    def wrapper(*args, model_name, remote, ndif_host, **kwargs):
        kwargs["model_spec"] = dict(name=model_name, remote=remote, host=ndif_host)
        return func(*args, **kwargs)

    return wrapper


def open_model(spec: dict):
    from steer_trace.models import load_model

    remote = False
    if spec["remote"]:
        from steer_trace.remote import configure

        remote = configure(spec["host"])
    return load_model(spec["name"], remote=remote)


def progress(total: int, label: str):
    """A tqdm bar on stderr (off when not a terminal unless STEER_TRACE_PROGRESS=1)."""
    from tqdm import tqdm

    disable = not (sys.stderr.isatty() or os.environ.get("STEER_TRACE_PROGRESS") == "1")
    return tqdm(total=total, desc=label, unit="item", disable=disable, leave=False)


class CleanErrors(click.Group):
    """Turn a UserError anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(2)
