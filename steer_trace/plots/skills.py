"""Figures of the skills experiment, built from the cached tables only (never a model or a vector file).

Files (per model; with several models in the results each name gets `__<model>`, and the default
model — smollm2-135m, else the first alphabetically — also keeps the plain name):
    general_coding.png                    relative code accuracy vs relative text accuracy, text - code vector
    python_ability.png                    relative Python accuracy vs relative text accuracy, text - Python vector
    activation_distribution_layer_{L}.png histograms of the per-domain mean activation components at layer L

As in the paper's figures, the target skill is on x and text on y: one curve per layer (points in
coefficient order, from (100, 100) at c = 0 towards the origin) plus the permuted-vector control,
and the diagonal. A curve above the diagonal removes the skill more than it removes text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from ..cache import load_tables
from .common import guarded, new_figure, save, slug, style

DEFAULT_MODEL = "smollm2-135m"
PREFERRED = {"profile": ["paper", "quick"], "data": ["hub", "shared", "project"]}
FIGURES = {"code": ("general_coding", "Relative Code Accuracy (%)"),
           "python": ("python_ability", "Relative Python Accuracy (%)")}
DIST_DOMAINS = ("all", "text", "code", "python")


def build(results_root, out_dir) -> list[Path]:
    """Write every skills figure whose table exists; return the paths written."""
    out = Path(out_dir)
    sweep = load_tables("skills_sweep", results_root)
    extract = load_tables("skills_extract", results_root)
    return guarded("skills", _build, sweep, extract, out)


def _build(sweep: pl.DataFrame | None, extract: pl.DataFrame | None, out: Path) -> list[Path]:
    models = set()
    for table in (sweep, extract):
        if table is not None and "model" in table.columns:
            models |= set(table["model"].unique().to_list())
    if not models:
        return []
    plain = DEFAULT_MODEL if DEFAULT_MODEL in models else sorted(models)[0]
    written: list[Path] = []
    with style():
        for model in sorted(models):
            names = _names(model, plain, len(models) > 1)
            if sweep is not None:
                rows = one_run(sweep.filter(pl.col("model") == model))
                if rows.height:
                    for target in FIGURES:
                        if rows.filter(pl.col("target") == target).height:
                            written += _write(curve_figure(rows, target, model), FIGURES[target][0], names, out)
            if extract is not None:
                rows = one_run(extract.filter(pl.col("model") == model))
                for layer in sorted(rows.filter(pl.col("figure_layer"))["layer"].unique().to_list()):
                    fig = distribution_figure(rows.filter(pl.col("layer") == layer), model, layer)
                    written += _write(fig, f"activation_distribution_layer_{layer}", names, out)
    return written


def _names(model: str, plain: str, several: bool) -> list[str]:
    """File-name suffixes for a model's figures: '' (plain) and/or '__<model>'."""
    if not several:
        return [""]
    return [""] * (model == plain) + [f"__{slug(model)}"]


def _write(fig, stem: str, suffixes: list[str], out: Path) -> list[Path]:
    return [save(fig, out / f"{stem}{suffix}.png") for suffix in suffixes]


def one_run(table: pl.DataFrame) -> pl.DataFrame:
    """The rows of one run: preferred profile and data source, then the run with the most rows."""
    for column, order in PREFERRED.items():
        if column in table.columns and table.height:
            present = set(table[column].unique().to_list())
            wanted = next((v for v in order if v in present), sorted(present, key=str)[0])
            table = table.filter(pl.col(column) == wanted)
    if "run" in table.columns and table.height:
        counts = table.group_by("run").len().sort(["len", "run"], descending=[True, False])
        table = table.filter(pl.col("run") == counts["run"][0])
    return table


def curves(rows: pl.DataFrame, target: str) -> list[tuple[str, pl.DataFrame]]:
    """[(label, frame with coef, x = relative target %, y = relative text %)] per layer, control last."""
    part = rows.filter(pl.col("target") == target)
    wide = part.pivot(on="domain", index=["layer", "permuted", "coef"], values="relative")
    wide = wide.with_columns((pl.col(target) * 100).alias("x"), (pl.col("text") * 100).alias("y")).sort("coef")
    out = []
    for permuted in (False, True):
        for layer in sorted(wide.filter(pl.col("permuted") == permuted)["layer"].unique().to_list()):
            label = f"Layer {layer}" + ("\n(Permuted)" if permuted else "")
            out.append((label, wide.filter((pl.col("permuted") == permuted) & (pl.col("layer") == layer))))
    return out


def curve_figure(rows: pl.DataFrame, target: str, model: str):
    import seaborn as sns

    fig, ax = new_figure(figsize=(6, 6))
    lines = curves(rows, target)
    colours = sns.color_palette("tab10", n_colors=max(1, sum(1 for label, _ in lines if "Permuted" not in label)))
    k = 0
    for label, frame in lines:
        permuted = "Permuted" in label
        colour = "0.45" if permuted else colours[k % len(colours)]
        k += 0 if permuted else 1
        ax.plot(frame["x"].to_numpy(), frame["y"].to_numpy(), marker=".", label=label, color=colour,
                linestyle="--" if permuted else "-", alpha=0.9)
    ax.plot([0, 100], [0, 100], linestyle="--", color="0.6", linewidth=1)
    ax.axhline(100, linestyle="--", color="0.6", linewidth=1)
    ax.set_xlabel(FIGURES[target][1])
    ax.set_ylabel("Relative Text Accuracy (%)")
    base = rows.filter(pl.col("coef") == 0).unique("domain")
    acc = {r["domain"]: r["accuracy"] for r in base.iter_rows(named=True)}
    profile = rows["profile"][0] if "profile" in rows.columns else "?"
    data = rows["data"][0] if "data" in rows.columns else "?"
    ax.set_title(f"text − {target} vector, {model} ({profile}, {data} data)\n"
                 f"baseline top-1: text {acc.get('text', float('nan')):.1%}, "
                 f"{target} {acc.get(target, float('nan')):.1%}", fontsize=9)
    top = max(105.0, float(np.nanmax([f["y"].max() for _, f in lines] + [f["x"].max() for _, f in lines])) + 3)
    ax.set_xlim(-3, top)
    ax.set_ylim(-3, top)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def domain_means(rows: pl.DataFrame) -> dict[str, np.ndarray]:
    """Mean activation components per domain at one layer, plus 'all' (document-weighted mean of the three)."""
    out = {}
    weights = {}
    for domain in ("text", "code", "python"):
        part = rows.filter(pl.col("domain") == domain).sort("component")
        if part.height:
            out[domain] = part["value"].to_numpy().astype(np.float64)
            weights[domain] = float(part["n_docs"][0]) if "n_docs" in part.columns else 1.0
    if out:
        total = sum(weights.values())
        out = {"all": sum(out[d] * weights[d] for d in out) / total, **out}
    return out


def distribution_figure(rows: pl.DataFrame, model: str, layer: int):
    fig, axes = new_figure(2, 2, figsize=(8, 6), sharex=True, sharey=True)
    means = domain_means(rows)
    values = np.concatenate(list(means.values())) if means else np.zeros(1)
    bins = np.linspace(values.min(), values.max(), 150)
    for ax, domain in zip(axes.flat, DIST_DOMAINS):
        if domain in means:
            ax.hist(means[domain], bins=bins, color="#1f77b4", edgecolor="#1f77b4", linewidth=0.7)
        ax.set_yscale("log")
        ax.set_title(domain)
    fig.suptitle(f"mean last-token activation components, layer {layer}, {model}", fontsize=10)
    return fig
