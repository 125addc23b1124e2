"""`steer-trace figures`: rebuild every figure from the result cache, without a model."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import click


@click.command("figures")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Results cache folder (default: $STEER_TRACE_RESULTS or ./results).")
@click.option("--out", "out_dir", default="figures", show_default=True, type=click.Path(),
              help="Folder for the PNG files.")
def figures_cmd(results_dir, out_dir):
    """Rebuild all figures (seaborn) from cached results; loads no model and never writes into the results."""
    import matplotlib

    matplotlib.use("Agg")
    from steer_trace.cache import existing_root
    from steer_trace.plots import behaviours, skills

    started = time.time()
    root = existing_root(results_dir)
    out = Path(out_dir)
    written = []
    for family in (behaviours, skills):
        written += family.build(root, out)
    if not written:
        warnings.warn(f"no figures drawn: {root} holds no usable result tables "
                      "(run a behaviours or skills command first, or give --results DIR)", stacklevel=1)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"{len(written)} figures in {time.time() - started:.1f}s")


COMMANDS = [figures_cmd]
