"""`steer-trace docs` and `steer-trace results`: the pages and the results index, written from the tables."""
from __future__ import annotations

import time
from pathlib import Path

import click


@click.command("docs")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Results folder the numbers come from (default: the repository's results/).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 naming every page that differs from its tables.")
def docs_cmd(results_dir, check):
    """Render README.md and docs/*.md from their templates (docs/src/) with numbers from the result tables."""
    from studies import pages

    started = time.time()
    changed = pages.build(pages.REPO, Path(results_dir) if results_dir else None, check=check)
    for page in changed:
        click.echo(f"{'differs' if check else 'wrote'} {page.relative_to(pages.REPO)}")
    click.echo(f"{len(pages.targets())} pages, {len(changed)} {'differ' if check else 'rewritten'} "
               f"in {time.time() - started:.1f}s")
    if check and changed:
        raise SystemExit(1)


@click.command("results")
@click.option("--results", "results_dir", default=None, type=click.Path(),
              help="Results folder to index (default: the repository's results/).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when INDEX.md differs from the tables.")
def results_cmd(results_dir, check):
    """Write results/INDEX.md: every table with its study, model, sizes, recipe (runs/), date and citations."""
    from studies import pages, results_index

    root = Path(results_dir) if results_dir else pages.REPO / "results"
    differs = results_index.write(root, pages.REPO, check=check)
    click.echo(f"{root / 'INDEX.md'} {'differs' if differs and check else 'written' if differs else 'up to date'}")
    if check and differs:
        raise SystemExit(1)


COMMANDS = [docs_cmd, results_cmd]
