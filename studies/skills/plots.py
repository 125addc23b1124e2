"""Figures of the skills experiment, built from the cached tables only (never a model or a vector file).

Files (per model; with several models in the results each name gets `__<model>`, and the default
model — smollm2-135m, else the first alphabetically — also keeps the plain name):
    general_coding.png                    relative code accuracy vs relative text accuracy, text - code vector
    python_ability.png                    relative Python accuracy vs relative text accuracy, text - Python vector
    skills_language_matrix.png            relative accuracy per language (text, Python, C++, Go, Java, JS, Rust)
                                          under the code and the Python vector, middle layer, c = 1-2
    activation_distribution_layer_{L}.png histograms of the per-domain mean activation components at layer L

The sweep curves come from the cached points (`skills_points`, finished sweep or not), else from finished
sweep tables of the earlier format (one `permuted` flag: the norm-matched control).

As in the paper's figures, the target skill is on x and text on y: one curve per layer (points in
coefficient order, from (100, 100) at c = 0 towards the origin) plus both permuted controls
(black dashed: permuted components, norm-matched; black dotted: the paper's permuted means), the diagonal
(equal damage) and the 100 % text line, both thin grey and labelled. \
A curve above the diagonal removes the skill more than it removes text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from matplotlib import colormaps

from steer_trace.cache import load_tables
from steer_trace.models import DEFAULT_MODEL
from ..common.plots import guarded, new_figure, save, slug, style
from . import profiles
from . import run as skills
from .corpora import LANGUAGES


PREFERRED = {"profile": ["paper", "default", "quick"], "data": ["hub", "shared", "project"]}
CONTROL_LABELS = {"components": "(permuted components)", "means": "(permuted means, paper)"}
CONTROL_STYLES = {"components": ("black", "--", "x"), "means": ("black", ":", "+")}
LAYER_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">")
FIGURES = {"code": ("general_coding", "Relative Code Accuracy (%)"),
           "python": ("python_ability", "Relative Python Accuracy (%)")}
DIST_DOMAINS = ("all", "text", "code", "python")


def build(results_root, out_dir) -> list[Path]:
    """Write every skills figure whose table exists; return the paths written."""
    out = Path(out_dir)
    sweep, languages = _sweep_tables(results_root)
    extract = load_tables("skills_extract", results_root)
    return guarded("skills", _build, sweep, languages, extract, out)


def _build(sweep: pl.DataFrame | None, languages: pl.DataFrame | None, extract: pl.DataFrame | None,
           out: Path) -> list[Path]:
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
            if languages is not None:
                rows = one_run(languages.filter(pl.col("model") == model))
                fig = language_figure(rows, model)
                if fig is not None:
                    written += _write(fig, "skills_language_matrix", names, out)
            if extract is not None:
                rows = one_run(extract.filter(pl.col("model") == model))
                for layer in sorted(rows.filter(pl.col("figure_layer"))["layer"].unique().to_list()):
                    fig = distribution_figure(rows.filter(pl.col("layer") == layer), model, layer)
                    written += _write(fig, f"activation_distribution_layer_{layer}", names, out)
    return written


def _sweep_tables(results_root) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """(per-domain summary, per-language summary) from the cached points; else the finished sweep tables."""
    docs = skills.load_points(results_root)
    if docs is not None and docs.filter(pl.col("layer") >= 0).height:  # some steered point, not baselines only
        return skills.summarise(docs, 300), skills.summarise(docs, 300, by="language")
    table = load_tables("skills_sweep", results_root)
    if table is not None and "control" not in table.columns and "permuted" in table.columns:
        table = table.with_columns(pl.when(pl.col("permuted")).then(pl.lit("components")).otherwise(pl.lit("none"))
                                   .alias("control"))
    return table, None


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
    for run in ("run", "points_run"):
        if run in table.columns and table.height:
            counts = table.group_by(run).len().sort(["len", run], descending=[True, False])
            table = table.filter(pl.col(run) == counts[run][0])
    return table


def curves(rows: pl.DataFrame, target: str) -> list[tuple[str, str, pl.DataFrame]]:
    """[(label, control, frame with coef, x = relative target %, y = relative text %)] per curve, controls last."""
    part = rows.filter((pl.col("target") == target) | (pl.col("layer") == -1))
    if "size" in part.columns:  # a point's own size; c = 0 of a curve is the sweep-size baseline
        part = part.filter((pl.col("layer") >= 0) | (pl.col("size") == "sweep"))
    steered = part.filter(pl.col("layer") >= 0)
    index = ["layer", "control", "coef"]
    wide = steered.pivot(on="domain", index=index, values="relative")
    wide = wide.with_columns((pl.col(target) * 100).alias("x"), (pl.col("text") * 100).alias("y")).sort("coef")
    for bound in ("lo", "hi"):  # the points' 95% intervals, when the table has them
        if f"relative_{bound}" in steered.columns:
            ends = steered.pivot(on="domain", index=index, values=f"relative_{bound}")
            wide = wide.join(ends.select(*index, (pl.col(target) * 100).alias(f"x_{bound}"),
                                         (pl.col("text") * 100).alias(f"y_{bound}")), on=index, how="left")
    out = []
    for control in ("none", "components", "means"):
        for layer in sorted(wide.filter(pl.col("control") == control)["layer"].unique().to_list()):
            label = f"Layer {layer}" + (f"\n{CONTROL_LABELS[control]}" if control != "none" else "")
            frame = wide.filter((pl.col("control") == control) & (pl.col("layer") == layer))
            if frame.filter(pl.col("coef") == 0).height == 0:
                keep = [c for c in ("coef", "x", "y", "x_lo", "x_hi", "y_lo", "y_hi") if c in frame.columns]
                frame = pl.concat([pl.DataFrame({"coef": [0.0], "x": [100.0], "y": [100.0]}),
                                   frame.select(keep)], how="diagonal_relaxed")
            out.append((label, control, frame.sort("coef")))
    return out


def curve_figure(rows: pl.DataFrame, target: str, model: str):
    """One curve per layer (colour by depth, each its own marker), the permuted controls in black (dashed /
    dotted, their own markers), the reference lines thin and unmarked (equal damage: the diagonal; text kept:
    100 %), each in the legend, so no two lines look alike."""
    fig, ax = new_figure(figsize=(6.4, 6.4))
    lines = curves(rows, target)
    n = max(1, sum(1 for _, control, _ in lines if control == "none"))
    depth = colormaps["viridis"]
    k = 0
    for label, control, frame in lines:
        if control == "none":
            colour, style_, marker = depth(0.9 * k / max(1, n - 1)), "-", LAYER_MARKERS[k % len(LAYER_MARKERS)]
            k += 1
        else:
            colour, style_, marker = CONTROL_STYLES[control]
        x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
        ax.plot(x, y, marker=marker, markersize=4.5, label=label.replace("\n", " "), color=colour,
                linestyle=style_, alpha=0.9, linewidth=1.4)
        if "x_lo" in frame.columns:
            lo_x, hi_x, lo_y, hi_y = (frame[c].fill_null(np.nan).to_numpy() for c in ("x_lo", "x_hi", "y_lo", "y_hi"))
            ax.errorbar(x, y, xerr=[x - lo_x, hi_x - x], yerr=[y - lo_y, hi_y - y], fmt="none", ecolor=colour,
                        alpha=0.45, capsize=1.5, linewidth=0.8)
    ax.plot([0, 100], [0, 100], linestyle=(0, (1, 2)), color="0.65", linewidth=0.9,
            label="equal damage (diagonal)")
    ax.axhline(100, linestyle=(0, (5, 3)), color="0.8", linewidth=0.9, label="text unharmed (100 %)")
    ax.set_xlabel(FIGURES[target][1])
    ax.set_ylabel("Relative Text Accuracy (%)")
    base = rows.filter(pl.col("coef") == 0)
    sizes = sorted(set(base["size"].to_list())) if "size" in base.columns else [None]
    parts = []
    for size in sizes:  # one baseline per evaluation set (each point is relative to its own set's)
        part = base if size is None else base.filter(pl.col("size") == size)
        acc = {r["domain"]: r["accuracy"] for r in part.unique("domain").iter_rows(named=True)}
        parts.append(("" if size is None else f"{size} set: ") + f"text {acc.get('text', float('nan')):.1%}, "
                     f"{target} {acc.get(target, float('nan')):.1%}")
    profile = rows["profile"][0] if "profile" in rows.columns else "default"
    data = rows["data"][0] if "data" in rows.columns else "cached points"
    if "dtype" in rows.columns and rows["dtype"][0] != "float32":
        data += f", {rows['dtype'][0]}"
    ax.set_title(f"Text − {target} vector, {model}\nbaseline top-1: {'; '.join(parts)}", fontsize=8.5)
    ax.text(0.01, 0.01, f"{profile} profile, {data}; bars: 95 % CI", transform=ax.transAxes, fontsize=6.5,
            color="0.35", va="bottom")
    top = max(105.0, float(np.nanmax([f["y"].max() for _, _, f in lines] + [f["x"].max() for _, _, f in lines])) + 3)
    ax.set_xlim(-3, top)
    ax.set_ylim(-3, top)
    ax.legend(loc="lower right", fontsize=6.5, ncol=2)
    return fig


def language_figure(rows: pl.DataFrame, model: str):
    """Heat map: relative accuracy (%) per language, one row per (vector, c) at the middle layer, c in 1-2."""
    steered = rows.filter((pl.col("control") == "none") & (pl.col("layer") >= 0))
    if not steered.height:
        return None
    layers = steered["layer"].unique().to_list()
    mid = max(layers, key=lambda L: (steered.filter(pl.col("layer") == L).height, L))
    part = steered.filter((pl.col("layer") == mid) & pl.col("coef").is_between(*profiles.HEADLINE_COEFS))
    if not part.height:
        return None
    keys = sorted(part.select("target", "coef").unique().iter_rows(), key=lambda k: (k[0], k[1]))
    grid = np.full((len(keys), len(LANGUAGES)), np.nan)
    for i, (target, coef) in enumerate(keys):
        for j, lang in enumerate(LANGUAGES):
            cell = part.filter((pl.col("target") == target) & (pl.col("coef") == coef) & (pl.col("language") == lang))
            if cell.height:
                grid[i, j] = 100 * cell["relative"][0]
    fig, ax = new_figure(figsize=(8, 1.2 + 0.45 * len(keys)))
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=110, aspect="auto")
    ax.grid(False)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < 60 else "black")
    ax.set_xticks(range(len(LANGUAGES)), LANGUAGES)
    ax.set_yticks(range(len(keys)), [f"text − {t}, c = {c:g}" for t, c in keys])
    ax.set_title(f"relative top-1 accuracy (%) per language, layer {mid}, {model}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
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
