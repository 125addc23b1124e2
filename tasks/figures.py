"""`steer-trace figures` and `steer-trace report`: every registered study's figures / report tables, rebuilt
from the result cache without a model (each study's `figures` / `report` hook, studies/protocol.py)."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import click

from steer_trace.errors import UserError

from studies.protocol import run_outputs
from studies.registry import all_studies


def _root(results_dir):
    from steer_trace.cache import existing_root  # deferred: polars; start-up time (CLI layer)

    return existing_root(results_dir)  # a missing folder: the same error as every report


def _chosen(names: tuple[str, ...]):
    known = {s.name: s for s in all_studies()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown study {', '.join(unknown)} (one of {', '.join(known)})")
    return [known[n] for n in names] if names else list(known.values())


@click.command("figures")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Results cache folder (default: $STEER_TRACE_RESULTS or ./results).")
@click.option("--out", "out_dir", default="figures", show_default=True, type=click.Path(),
              help="Folder for the PNG files.")
def figures_cmd(results_dir, out_dir):
    """Rebuild all figures (seaborn) from cached results; loads no model and never writes into the results."""
    import matplotlib  # deferred: start-up time (CLI layer)

    matplotlib.use("Agg")
    started = time.time()
    root = _root(results_dir)
    out = Path(out_dir)
    written = []
    for study in all_studies():
        written += run_outputs(study, "figures", root, out)
    if not written:
        warnings.warn(f"no figures drawn: {root} holds no usable result tables "
                      "(run a study's commands first, or give --results DIR)", stacklevel=1)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"{len(written)} figures in {time.time() - started:.1f}s")


@click.command("report")
@click.argument("study_names", nargs=-1, metavar="[STUDY]...")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Results cache folder (default: $STEER_TRACE_RESULTS or ./results).")
@click.option("--out", "out_dir", default=None, type=click.Path(),
              help="Folder for the tables (default: <results>/<study>_report); a study's tables go into "
                   "<out>/<study>_report.")
def report_cmd(study_names, results_dir, out_dir):
    """Every study's report tables (or the named studies'), from cached results; loads no model.

    Each study's own `steer-trace <study> report` takes its options (e.g. behaviours' --profile)."""
    root = _root(results_dir)
    written = []
    for study in _chosen(study_names):
        out = (Path(out_dir) if out_dir else root) / f"{study.name}_report"
        written += run_outputs(study, "report", root, out)
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo(f"no report tables: {root} holds no results of "
                   f"{', '.join(s.name for s in _chosen(study_names))}")


COMMANDS = [figures_cmd, report_cmd]
