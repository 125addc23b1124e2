"""Shared helpers for figures: style, file naming, picking one variant of a result table, labels."""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from pathlib import Path

import matplotlib
import polars as pl
import seaborn as sns
from matplotlib.figure import Figure

from steer_trace.errors import UserError

# When a table holds several variants of the same experiment, a figure shows one: the first preferred value present
# (a column not listed here, or no preferred value present: the value with the most rows).
PREFERRED = {
    "profile": ["paper", "quick", "test"],
    "split": ["test", "validation"],
    "orders": ["both", "given"],
    "split_rule": ["paper", "seeded"],
    "slices": ["balanced", "plain"],
    "scoring": ["content", "letter"],  # the mode that can measure a behaviour on a model answering by position
    "vector_source": ["content", "letter"],
}
VARIANT_COLUMNS = ("profile", "prompt_style", "split", "orders", "split_rule", "slices", "scoring", "vector_source",
                   "relative")


@contextlib.contextmanager
def style():
    """Seaborn's darkgrid look for figures made inside the block, without touching global settings."""
    rc = {**sns.axes_style("darkgrid"), **sns.plotting_context("notebook", font_scale=0.85)}
    with matplotlib.rc_context(rc):
        yield


def new_figure(*args, **kwargs):
    """(figure, axes) drawn by Agg without pyplot: no global figure state, no display needed."""
    fig = Figure(figsize=kwargs.pop("figsize", (8, 5)), layout=kwargs.pop("layout", "constrained"))
    return fig, fig.subplots(*args, **kwargs)


def save(fig, path: Path, dpi: int = 110) -> Path:
    for ax in fig.axes:  # annotations inside axes need no room of their own: skip them when laying out (faster)
        for text in ax.texts:
            text.set_in_layout(False)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    return write_file(path, buffer.getvalue())


def write_file(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary name beside `path`, then rename: a full or read-only disk leaves the old
    file or none, never a truncated one, and the error names the file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as error:
        raise UserError(f"cannot write figure {path} ({error.strerror or error})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def guarded(label: str, make, *args) -> list[Path]:
    """The figures `make(*args)` writes. Tables whose contents a figure cannot use (a column of another type,
    values that do not fit) cost that group of figures, with a warning, not the whole command; a file that
    cannot be written (UserError) still stops it."""
    try:
        return make(*args)
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - damaged or foreign tables, reported and skipped
        warnings.warn(f"{label} figures skipped: their tables have unexpected contents "
                      f"({type(error).__name__}: {' '.join(str(error).split())[:200]})", stacklevel=2)
        return []


def slug(text) -> str:
    """A file-name-safe version of a model name or value."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "none"


def file_name(stem: str, model: str, several_models: bool) -> str:
    """The naming rule: `<stem>.png`, or `<stem>__<model>.png` when the results hold more than one model."""
    return f"{stem}__{slug(model)}.png" if several_models else f"{stem}.png"


def per_model(table: pl.DataFrame | None):
    """[(model, rows of that model)], sorted by model; a table without a model column counts as one model."""
    if table is None or table.height == 0:
        return []
    if "model" not in table.columns:
        return [("model", table)]
    return [(m, table.filter(pl.col("model") == m)) for m in sorted(table["model"].drop_nulls().unique().to_list())]


def select_variant(table: pl.DataFrame, like: dict | None = None) -> tuple[pl.DataFrame, dict]:
    """Rows of one variant (profile, prompt style, split, orders) and the values chosen.

    `like` (values chosen for another table) wins when present. Rows with a null in a variant column are kept
    (e.g. unsteered defaults stored once for all variants).
    """
    chosen = {}
    for column in VARIANT_COLUMNS:
        if column not in table.columns:
            continue
        values = table[column].drop_nulls()
        if values.len() == 0:
            continue
        present = set(values.unique().to_list())
        wanted = (like or {}).get(column)
        if wanted not in present:
            wanted = next((v for v in PREFERRED.get(column, []) if v in present), None)
        if wanted is None:
            counts = values.value_counts(sort=True)
            top = counts[counts.columns[1]].max()
            wanted = sorted(counts.filter(pl.col(counts.columns[1]) == top)[column].to_list(), key=str)[0]
        chosen[column] = wanted
        table = table.filter((pl.col(column) == wanted) | pl.col(column).is_null())
    return table, chosen


BEHAVIOURS = ["myopic", "wealth_seeking", "sycophancy", "agreeableness", "anti_immigration"]
PRETTY = {
    "myopic": "Myopia", "wealth_seeking": "Wealth Seeking", "sycophancy": "Sycophancy",
    "agreeableness": "Agreeableness", "anti_immigration": "Anti-Immigration",
}


def pretty(name: str) -> str:
    """One display name per behaviour (PRETTY), everywhere; 'random:<vector>' (a control seeded by the vector's
    name) as 'random (for <its display name>)', so no figure shows a second spelling of a behaviour."""
    name = str(name)
    if name.startswith("random:"):
        return f"random (for {pretty(name.removeprefix('random:'))})"
    return PRETTY.get(name, name.replace("_", " ").title())


def behaviour_order(names) -> list[str]:
    """The paper's order of the five behaviours, any others after them alphabetically."""
    names = set(names)
    return [b for b in BEHAVIOURS if b in names] + sorted(names - set(BEHAVIOURS), key=str)


def n_text(table: pl.DataFrame) -> str:
    """'n=300', or 'n=285–300' when behaviours were scored on different numbers of questions."""
    if "n" not in table.columns or table["n"].drop_nulls().len() == 0:
        return "n=?"
    lo, hi = int(table["n"].min()), int(table["n"].max())
    return f"n={lo}" if lo == hi else f"n={lo}–{hi}"


def variant_text(chosen: dict) -> str:
    """'orders=both, split=test, profile=paper' for titles."""
    keys = [k for k in ("orders", "split", "profile", "prompt_style", "scoring", "relative") if k in chosen]
    return ", ".join(f"{k}={chosen[k]}" for k in keys)
