"""Figures of the behaviour ("multi-steering") experiments, built from the cached tables only.

Files (one set per model; `__<model>` is appended to every name when the results hold more than one model):
    single_steering_layer_{L}.png         default / add / subtract per behaviour at layer L
    single_steering_layers_{L1}_{L2}.png  the same, one panel per layer, when several layers were steered
    layer_{L}_all_results.png             combined vectors (sum, mean, weighted sum, weighted mean) x add/subtract
    simultaneous_steering.png             p(matching) vs the global coefficient, alignment tax below
    multi_steering_activation_distributions.png   histograms of the vectors' components
    interference.png                      change of each behaviour's p(matching) when another vector is injected
    grid_search_{behaviour}.png           p(matching) over layer x coefficient, add and subtract
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import polars as pl
import seaborn as sns
from matplotlib.container import BarContainer
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from steer_trace.cache import load_tables
from steer_trace.stats import bh_qvalues
from .scoring import row_shift
from ..common.plots import (
    VARIANT_COLUMNS, behaviour_order, file_name, guarded, n_text, new_figure, per_model, pretty, save, select_variant,
    slug, style, write_file,
)
from steer_trace.models import DEFAULT_MODEL

from .profiles import COMBINATION_LABELS

AB_TABLES = ("behaviours_grid", "behaviours_single", "behaviours_combined", "behaviours_simultaneous",
             "behaviours_interference")
OTHER_TABLES = ("behaviours_tax", "behaviours_components")
AB_COLUMNS = ("behaviour", "direction", "p_matching")
BAR_ORDER = ("mean", "weighted_mean", "sum", "weighted_sum")  # the combinations (profiles.COMBINATIONS) as drawn
DIRECTION_COLOURS = {"default": "#6aaad4", "add": "#5e9a60", "subtract": "#ec8a67"}
ADD_COLOURS = ["#66c18c", "#4f9470", "#8da64a", "#a9cfa5"]
SUBTRACT_COLOURS = ["#fb8a72", "#ff7043", "#e9976a", "#cc4c44"]
CONFIG_COLUMNS = {"behaviours_components": ("balanced", "split")}  # which extraction a component row is from
FAULTY_MARK = 0.05  # annotate "F" when at least this share of greedy answers is neither answer


def build(results_root, out_dir) -> list[Path]:
    """Write every behaviour figure whose tables exist; return the paths written."""
    out = Path(out_dir)
    tables = {name: load_tables(name, results_root, config_columns=CONFIG_COLUMNS.get(name, ()))
              for name in AB_TABLES + OTHER_TABLES}
    tables = {name: t for name, t in tables.items() if t is not None and _usable(name, t)}
    models = set()
    for table in tables.values():
        if "model" in table.columns:
            models |= {str(m) for m in table["model"].drop_nulls().unique().to_list()}
    several = len(models) > 1
    written: list[Path] = []
    with style():
        for label, make in (("single steering", single_figures), ("combined", combined_figures),
                            ("simultaneous", simultaneous_figures), ("activation distribution", distribution_figures),
                            ("interference", interference_figures), ("grid search", grid_figures)):
            written += guarded(label, make, tables, out, several)
    if several:  # the default model's figures also carry the paper's plain names
        suffix = f"__{slug(DEFAULT_MODEL)}.png"
        for path in [p for p in written if p.name.endswith(suffix)]:
            plain = path.with_name(path.name[: -len(suffix)] + ".png")
            write_file(plain, path.read_bytes())
            written.append(plain)
    return written


def _usable(name: str, table: pl.DataFrame) -> bool:
    needed = {"behaviours_tax": ("coef", "accuracy"),
              "behaviours_components": ("behaviour", "layer", "value")}.get(name, AB_COLUMNS)
    missing = [c for c in needed if c not in table.columns]
    if missing:
        warnings.warn(f"{name} lacks columns {missing}; its figures are skipped", stacklevel=3)
    return not missing


# ---------------------------------------------------------------- table helpers


def defaults_at(table: pl.DataFrame | None, layer=None) -> pl.DataFrame:
    """One unsteered row per behaviour (the one at `layer` when stored per layer)."""
    if table is None or "direction" not in table.columns:
        return pl.DataFrame()
    rows = table.filter(pl.col("direction") == "default")
    if layer is not None and "layer" in rows.columns:  # per behaviour: its row at `layer` first, else any
        rows = rows.sort(pl.col("layer").ne_missing(layer), maintain_order=True)
    return rows.unique(subset=["behaviour"], keep="first", maintain_order=True)


def steered(table: pl.DataFrame) -> pl.DataFrame:
    return table.filter(pl.col("direction").is_in(["add", "subtract"]))


def _row(table: pl.DataFrame, **equal) -> dict | None:
    """The last row matching all `column == value`, as a dict (None when absent)."""
    for column, value in equal.items():
        if column not in table.columns:
            return None
        table = table.filter(pl.col(column) == value)
    return table.row(table.height - 1, named=True) if table.height else None


def _ci(row: dict) -> tuple[float, float]:
    """(below, above) error-bar lengths; zero when the CI is missing."""
    p = row["p_matching"]
    lo, hi = row.get("p_matching_lo"), row.get("p_matching_hi")
    lo = p if lo is None or np.isnan(lo) else lo
    hi = p if hi is None or np.isnan(hi) else hi
    return max(p - lo, 0.0), max(hi - p, 0.0)


def _flags(row: dict) -> str:
    text = "C" if row.get("collapsed") else ""
    faulty = row.get("faulty")
    if faulty is not None and faulty >= FAULTY_MARK:
        text += "F"
    return text


def _bars(ax, xs, rows: list[dict], width, colour, label=None):
    """p(matching) bars with their CIs; collapsed bars hatched, greedy matching scores as markers."""
    if not rows:
        return
    p = [r["p_matching"] for r in rows]
    below, above = zip(*(_ci(r) for r in rows))
    bars = ax.bar(xs, p, width, color=colour, edgecolor="white", linewidth=0.6, label=label, yerr=[below, above],
                  error_kw={"elinewidth": 0.9, "capsize": 1.5, "ecolor": "#333333"})
    greedy = [(x, r["matching_score"]) for x, r in zip(xs, rows) if r.get("matching_score") is not None]
    if greedy:
        ax.scatter(*zip(*greedy), marker="D", s=12, color="black", zorder=4)
    for x, r, patch, top in zip(xs, rows, bars.patches, above):
        if r.get("collapsed"):
            patch.set_hatch("///")
        flags = _flags(r)
        if flags:
            ax.text(x, r["p_matching"] + top + 0.015, flags, ha="center", va="bottom", fontsize=7, color="#b00020")


def _marker_legend(ax, handles_labels, **kwargs):
    handles, labels = handles_labels
    # bar series: a plain swatch (the series' first bar may be hatched as collapsed)
    handles = [Patch(facecolor=h.patches[0].get_facecolor()) if isinstance(h, BarContainer) else h for h in handles]
    handles = handles + [
        Line2D([], [], marker="D", color="black", linestyle="none", markersize=4),
        Patch(facecolor="white", edgecolor="#555555", hatch="///"),
    ]
    labels = list(labels) + ["greedy matching score", "collapsed (C; F: faulty ≥ 5 %)"]
    ax.legend(handles, labels, **kwargs)


def _title(what: str, model: str, table: pl.DataFrame, chosen: dict) -> str:
    """'<what> — <model>' over a short line: how many prompts, the scoring, the coefficients' unit."""
    details = [n_text(table)]
    if chosen.get("scoring"):
        details.append(f"{chosen['scoring']} scoring")
    details.append(coef_unit(chosen))
    return f"{what} — {model}\n{', '.join(details)}"


def coef_unit(chosen: dict) -> str:
    """What a coef multiplies: the layer's residual norm (relative runs) or the vector as extracted."""
    return "coef × the layer's residual norm" if chosen.get("relative") else "coef × the vector as extracted"


# ---------------------------------------------------------------- single steering


def single_figures(tables: dict, out: Path, several: bool) -> list[Path]:
    table = tables.get("behaviours_single")
    written = []
    for model, rows in per_model(table):
        rows, chosen = select_variant(rows)
        controls = rows.filter(pl.col("vector") == "random") if "vector" in rows.columns else rows.clear()
        if "vector" in rows.columns:  # single steering: each behaviour scored under its own vector
            rows = rows.filter((pl.col("vector") == pl.col("behaviour")) | (pl.col("direction") == "default"))
        moved = steered(rows)
        if moved.height == 0 or "layer" not in moved.columns:
            continue
        layers = sorted(moved["layer"].unique().to_list())
        behaviours = behaviour_order(rows["behaviour"].unique().to_list())
        for layer in layers:
            fig, ax = new_figure(figsize=(8, 4.8))
            _single_panel(ax, rows, layer, behaviours, legend=True, controls=controls)
            ax.set_title(_title(f"Single steering at layer {layer}", model, rows, chosen))
            written.append(save(fig, out / file_name(f"single_steering_layer_{layer}", model, several)))
        if len(layers) > 1:
            fig, axes = new_figure(1, len(layers), figsize=(6.5 * len(layers), 4.8), sharey=True, squeeze=False)
            for i, (ax, layer) in enumerate(zip(axes[0], layers)):
                _single_panel(ax, rows, layer, behaviours, legend=i == len(layers) - 1, controls=controls)
                ax.set_title(f"Layer {layer}")
                if i:
                    ax.set_ylabel("")
            fig.suptitle(_title("Single steering", model, rows, chosen))
            stem = "single_steering_layers_" + "_".join(str(x) for x in layers)
            written.append(save(fig, out / file_name(stem, model, several)))
    return written


def _shift(row: dict | None) -> tuple[float, float, float] | None:
    """(shift, below, above) of a row's paired shift against unsteered as the table stores it (kept current by
    `behaviours restat`; the committed-tables test checks it against a recompute), None when absent."""
    if row is None or row.get("shift") is None or np.isnan(row["shift"]):
        return None
    s, lo, hi = row["shift"], row.get("shift_lo", np.nan), row.get("shift_hi", np.nan)
    return s, max(s - lo, 0.0) if lo == lo else 0.0, max(hi - s, 0.0) if hi == hi else 0.0


def _single_panel(ax, rows: pl.DataFrame, layer, behaviours: list[str], legend: bool,
                  controls: pl.DataFrame | None = None):
    """Per behaviour, the paired shift of p(matching) against unsteered (steered − unsteered on the same
    questions, 95 % paired bootstrap interval: the statistic the verdicts rest on) when adding and when
    subtracting its vector, and beside each the equal-norm random direction's paired shift (black, its
    interval grey): the vector's bar clear of 0 and of the black marker is what 'moves' needs."""
    at_layer = steered(rows).filter(pl.col("layer") == layer)
    width = 0.36
    marked = set()
    for j, direction in enumerate(("add", "subtract")):
        source = at_layer.filter(pl.col("direction") == direction)
        for i, b in enumerate(behaviours):
            row = _row(source, behaviour=b)
            found = _shift(row)
            if found is None:
                continue
            x = i + (j - 0.5) * width
            s, below, above = found
            ax.bar(x - width * 0.18, s, width * 0.58, color=DIRECTION_COLOURS[direction], edgecolor="white",
                   yerr=[[below], [above]], error_kw={"elinewidth": 0.9, "capsize": 2, "ecolor": "#333333"},
                   label=None if direction in marked else f"{direction.title()} the vector", hatch=
                   "///" if row.get("collapsed") else None)
            marked.add(direction)
            ax.text(x, -0.012 if s >= 0 else 0.012, f"×{row['coef']:+g}".replace("-", "−"), ha="center",
                    va="top" if s >= 0 else "bottom", fontsize=6.5, color="#222222")
            control = None if controls is None else _shift(_row(controls, behaviour=b, layer=layer,
                                                                coef=row["coef"]))
            if control is not None:
                c, c_below, c_above = control
                ax.errorbar([x + width * 0.24], [c], yerr=[[c_below], [c_above]], fmt="s", color="black",
                            ecolor="#8a8a8a", markersize=3.5, capsize=1.5, elinewidth=0.9, zorder=5,
                            label=None if "random" in marked else "random direction, same norm", gid="random-control")
                marked.add("random")
    ax.axhline(0, color="#555555", linewidth=0.9, zorder=0.8)
    ax.set_xticks(range(len(behaviours)), [pretty(b) for b in behaviours])
    ax.set_ylabel("shift in p(matching) vs unsteered\n(paired, 95 % bootstrap interval)")
    if legend:
        ax.legend(loc="best", fontsize=7, framealpha=0.9)


# ---------------------------------------------------------------- combined vectors


def combined_figures(tables: dict, out: Path, several: bool) -> list[Path]:
    table = tables.get("behaviours_combined")
    single = tables.get("behaviours_single")
    written = []
    for model, rows in per_model(table):
        rows, chosen = select_variant(rows)
        single_rows = None
        if single is not None and "model" in single.columns:
            single_rows, _ = select_variant(single.filter(pl.col("model") == model), like=chosen)
            if "vector" in single_rows.columns:
                single_rows = single_rows.filter(
                    (pl.col("vector") == pl.col("behaviour")) | (pl.col("direction") == "default"))
        moved = steered(rows)
        if moved.height == 0 or "layer" not in moved.columns:
            continue
        behaviours = behaviour_order(rows["behaviour"].unique().to_list())
        for layer in sorted(moved["layer"].unique().to_list()):
            fig, ax = new_figure(figsize=(12, 5.2))
            _combined_panel(ax, rows, single_rows, layer, behaviours)
            ax.set_title(_title(f"Combined vectors at layer {layer}", model, rows, chosen))
            written.append(save(fig, out / file_name(f"layer_{layer}_all_results", model, several)))
    return written


def _combined_panel(ax, rows, single_rows, layer, behaviours):
    at_layer = steered(rows).filter(pl.col("layer") == layer)
    defaults = defaults_at(rows, layer)
    if defaults.height == 0:
        defaults = defaults_at(single_rows, layer)
    single_at = steered(single_rows).filter(pl.col("layer") == layer) if single_rows is not None else None
    width, gap = 0.1, 0.08
    offsets = [(k - 3.5) * width - gap / 2 * (1 if k < 4 else -1) for k in range(8)]
    for k, (direction, colours) in enumerate((("add", ADD_COLOURS), ("subtract", SUBTRACT_COLOURS))):
        for c, how in enumerate(BAR_ORDER):
            name = COMBINATION_LABELS[how]
            found = [(i + offsets[4 * k + c], _row(at_layer, behaviour=b, direction=direction, vector=how))
                     for i, b in enumerate(behaviours)]
            found = [(x, row) for x, row in found if row is not None]
            if found:
                xs, rows_ = zip(*found)
                label = f"{'Added' if direction == 'add' else 'Subtracted'}: {name}"
                _bars(ax, xs, rows_, width, colours[c], label=label)
    labelled = set()
    for i, behaviour in enumerate(behaviours):
        span = (i + offsets[0] - width / 2, i + offsets[-1] + width / 2)
        xs = np.linspace(*span, 9)
        default = _row(defaults, behaviour=behaviour)
        if default is not None:
            ax.plot(span, [default["p_matching"]] * 2, color="#8a8a8a", linewidth=1.6,
                    label=None if "default" in labelled else "Default")
            labelled.add("default")
        for direction, line in (("add", {"marker": "+", "linestyle": "none"}),
                                ("subtract", {"linestyle": (0, (4, 4))})):
            row = _row(single_at, behaviour=behaviour, direction=direction) if single_at is not None else None
            if row is None:
                continue
            key = f"single {direction}"
            ax.plot(xs, [row["p_matching"]] * len(xs), color="#8a8a8a", **line,
                    label=None if key in labelled else f"Single vector, {direction}")
            labelled.add(key)
    ax.axhline(0.5, color="#777777", linestyle=":", linewidth=1, zorder=0.8)
    ax.set_xticks(range(len(behaviours)), [pretty(b) for b in behaviours])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("p(matching) (bars: mean, 95 % bootstrap CI)")
    _marker_legend(ax, ax.get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7.5)


# ---------------------------------------------------------------- simultaneous steering


def simultaneous_figures(tables: dict, out: Path, several: bool) -> list[Path]:
    table = tables.get("behaviours_simultaneous")
    tax = tables.get("behaviours_tax")
    written = []
    for model, rows in per_model(table):
        rows, chosen = select_variant(rows)
        if "vector" in rows.columns:  # the random-direction control rows are not a curve of their own
            rows = rows.filter(pl.col("vector") != "random")
        layers = None
        if "layers" in rows.columns and rows["layers"].drop_nulls().len():
            counts = rows["layers"].drop_nulls().value_counts(sort=True)
            layers = counts[0, "layers"]
            rows = rows.filter((pl.col("layers") == layers) | pl.col("layers").is_null())
        if "coef" not in rows.columns:
            continue
        rows = rows.with_columns(pl.when(pl.col("direction") == "default").then(0.0)
                                 .otherwise(pl.col("coef")).alias("coef"))
        tax_rows = _tax_rows(tax, model, layers, chosen)
        heights = [3, 1.3] if tax_rows is not None else [1]
        fig, axes = new_figure(len(heights), 1, figsize=(10, 6.5 if tax_rows is not None else 5), sharex=True,
                               squeeze=False, gridspec_kw={"height_ratios": heights})
        ax = axes[0][0]
        palette = _palette(len(behaviour_order(rows["behaviour"].unique().to_list())))
        for colour, behaviour in zip(palette, behaviour_order(rows["behaviour"].unique().to_list())):
            line = (rows.filter(pl.col("behaviour") == behaviour).unique(subset=["coef"], keep="last")
                    .sort("coef"))
            x, p = line["coef"].to_numpy(), line["p_matching"].to_numpy()
            ax.plot(x, p, color=colour, linewidth=1.8, label=pretty(behaviour))
            if {"p_matching_lo", "p_matching_hi"} <= set(line.columns):
                ax.fill_between(x, line["p_matching_lo"].to_numpy(), line["p_matching_hi"].to_numpy(),
                                color=colour, alpha=0.15, linewidth=0)
            if "collapsed" in line.columns:
                bad = line.filter(pl.col("collapsed").cast(pl.Boolean, strict=False).fill_null(False))
                ax.scatter(bad["coef"], bad["p_matching"], marker="x", s=14, color=colour, zorder=4)
        ax.axhline(0.5, color="#777777", linestyle="--", linewidth=1, zorder=0.8)
        ax.axvline(0, color="#555555", linestyle="--", linewidth=1, zorder=0.8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("p(matching) (95 % bootstrap band)")
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], marker="x", color="#444444", linestyle="none"))
        labels.append("collapsed (≥ 95 % one answer)")
        ax.legend(handles, labels, loc="best", fontsize=7.5, framealpha=0.9)
        where = f"layers {layers}" if layers else "several layers"
        ax.set_title(_title(f"Simultaneous steering ({where}, one global coefficient)", model, rows, chosen))
        if tax_rows is not None:
            bottom = axes[1][0]
            x = tax_rows["coef"].to_numpy()
            bottom.plot(x, tax_rows["accuracy"].to_numpy(), color="#8c564b", linestyle=":", linewidth=2.2,
                        label="Alignment tax: top-1 accuracy")
            if {"accuracy_lo", "accuracy_hi"} <= set(tax_rows.columns):
                bottom.fill_between(x, tax_rows["accuracy_lo"].to_numpy(), tax_rows["accuracy_hi"].to_numpy(),
                                    color="#8c564b", alpha=0.15, linewidth=0)
            bottom.axvline(0, color="#555555", linestyle="--", linewidth=1, zorder=0.8)
            tokens = ""
            if "n_tokens" in tax_rows.columns and tax_rows["n_tokens"].drop_nulls().len():
                tokens = f" ({int(tax_rows['n_tokens'].max())} tokens)"
            bottom.set_ylabel("top-1 accuracy\n(95 % bootstrap)")
            bottom.legend([f"Alignment tax: next-token accuracy{tokens}"], loc="lower center", fontsize=7.5)
            bottom.set_xlabel(f"Global injection coefficient ({coef_unit(chosen)})")
        else:
            ax.set_xlabel(f"Global injection coefficient ({coef_unit(chosen)})")
        written.append(save(fig, out / file_name("simultaneous_steering", model, several)))
    return written


def _tax_rows(tax, model, layers, chosen) -> pl.DataFrame | None:
    if tax is None:
        return None
    rows = tax.filter(pl.col("model") == model) if "model" in tax.columns else tax
    rows, _ = select_variant(rows, like=chosen)
    if "vector" in rows.columns and rows.filter(pl.col("vector") == "simultaneous").height:
        rows = rows.filter(pl.col("vector").is_in(["simultaneous", "none"]))
    if layers and "layers" in rows.columns and rows.filter(pl.col("layers") == layers).height:
        rows = rows.filter((pl.col("layers") == layers) | pl.col("layers").is_null() | (pl.col("layers") == ""))
    rows = rows.unique(subset=["coef"], keep="last").sort("coef")
    return rows if rows.height else None


def _palette(n: int):
    return sns.color_palette("tab10", max(n, 1))


# ---------------------------------------------------------------- component histograms

MAX_HISTOGRAM_LAYERS = 4


def one_extraction(rows: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """The component rows of one extraction run (never several pooled into one histogram): the
    letter-balanced one of the paper's profile and split when present; and its label for the title."""
    keys = [c for c in ("profile", "balanced", "split") if c in rows.columns]
    if not keys:
        return rows, ""
    runs = rows.select(keys).unique()

    def rank(run: dict) -> tuple:
        return (run.get("balanced") is not False, run.get("profile") == "paper", run.get("split") == "paper",
                str(run.get("profile")))

    best = max(runs.iter_rows(named=True), key=rank)
    picked = rows.filter(pl.all_horizontal([pl.col(k).is_null() if best[k] is None else pl.col(k) == best[k]
                                            for k in keys]))
    label = f", profile {best.get('profile')}" + (", plain mean" if best.get("balanced") is False else "")
    return picked, label


def distribution_figures(tables: dict, out: Path, several: bool) -> list[Path]:
    table = tables.get("behaviours_components")
    written = []
    for model, rows in per_model(table):
        rows, chosen = one_extraction(rows)
        layers = sorted(rows["layer"].unique().to_list())
        if len(layers) > MAX_HISTOGRAM_LAYERS:
            picks = np.linspace(0, len(layers) - 1, MAX_HISTOGRAM_LAYERS).round().astype(int)
            layers = [layers[i] for i in sorted(set(picks))]
        behaviours = behaviour_order(rows["behaviour"].unique().to_list())
        values = rows.filter(pl.col("layer").is_in(layers))["value"].to_numpy()
        limit = float(np.nanquantile(np.abs(values), 0.999)) if values.size else 1.0
        bins = np.linspace(-limit, limit, 81)
        fig, axes = new_figure(len(layers), len(behaviours), figsize=(2.5 * len(behaviours), 2.2 * len(layers) + 0.5),
                               sharex=True, sharey=True, squeeze=False)
        d = 0
        for r, layer in enumerate(layers):
            for c, behaviour in enumerate(behaviours):
                ax = axes[r][c]
                v = rows.filter((pl.col("layer") == layer) & (pl.col("behaviour") == behaviour))["value"].to_numpy()
                d = max(d, v.size)
                if v.size:
                    counts, _ = np.histogram(np.clip(v, -limit, limit), bins=bins)
                    ax.stairs(counts, bins, fill=True, color="#1f77b4")
                    ax.text(0.97, 0.95, f"‖v‖={np.linalg.norm(v):.2f}\nsd={v.std():.3f}", transform=ax.transAxes,
                            ha="right", va="top", fontsize=6.5)
                if r == 0:
                    ax.set_title(pretty(behaviour))
                if c == 0:
                    ax.set_ylabel(f"layer {layer}\ncount")
        fig.suptitle(f"Steering-vector components — {model}, d={d}{chosen} (values beyond ±{limit:.2g} clipped)")
        written.append(save(fig, out / file_name("multi_steering_activation_distributions", model, several)))
    return written


# ---------------------------------------------------------------- interference


def interference_deltas(rows: pl.DataFrame, defaults: pl.DataFrame) -> pl.DataFrame:
    """Per steered row: delta = its paired shift against unsteered (tables without per-question scores: p_matching
    minus the scored behaviour's default), and `clear` when it survives the report's test after Benjamini-Hochberg
    over every cell of the table (interference_marks)."""
    base = defaults.select("behaviour", pl.col("p_matching").alias("p_default"))
    moved = steered(rows).join(base, on="behaviour", how="inner")
    if "shift" in moved.columns and "q_p_matching" in moved.columns:
        moved = moved.with_columns(pl.col("shift").alias("delta"))
        return moved.with_columns(pl.Series("clear", interference_marks(moved, rows), dtype=pl.Boolean))
    return moved.with_columns((pl.col("p_matching") - pl.col("p_default")).alias("delta"), pl.lit(False).alias("clear"))


def interference_marks(moved: pl.DataFrame, rows: pl.DataFrame, alpha: float = 0.05) -> list[bool]:
    """Per row of `moved`: a vector's cell when its shift and its shift against its own random direction
    (`random:<vector>`, paired) both exclude 0 in one sign with q <= alpha after Benjamini-Hochberg over the
    vector cells (evidence: the larger p) - the report's interference verdicts, "moves" either way; a random
    direction's cell when its shift excludes 0 with q <= alpha over the random cells (a family of its own)."""
    evidence, sign, family = [], [], []
    for r in moved.iter_rows(named=True):
        own = (r["shift_lo"] > 0) - (r["shift_hi"] < 0)
        p = r["shift_p"]
        is_random = str(r["vector"]).startswith("random")
        if not is_random:
            control = _row(rows, behaviour=r["behaviour"], vector=f"random:{r['vector']}", layer=r["layer"],
                           coef=r["coef"])
            if control is None or control["q_id"] != r["q_id"]:
                own, p = 0, float("nan")
            else:
                against = row_shift(r, control)
                own = own if own == (against.lo > 0) - (against.hi < 0) else 0
                p = max(p, against.p)
        evidence.append(p)
        sign.append(own)
        family.append(is_random)
    evidence, family = np.array(evidence, dtype=float), np.array(family)
    q = np.full(evidence.shape, np.nan)
    for members in (family, ~family):
        q[members] = bh_qvalues(evidence[members])
    return [bool(s != 0 and value <= alpha) for s, value in zip(sign, q)]


def widest_runs(rows: pl.DataFrame) -> pl.DataFrame:
    """The rows of the variants that scored the most behaviours: interference compares behaviours, and a
    one-file run (e.g. a --dataset of its own) would otherwise win the variant choice with a 1 × 1 grid."""
    keys = [c for c in VARIANT_COLUMNS if c in rows.columns]
    if not keys or "behaviour" not in rows.columns:
        return rows
    counts = rows.group_by(keys).agg(pl.col("behaviour").n_unique().alias("n_behaviours"))
    widest = counts.filter(pl.col("n_behaviours") == counts["n_behaviours"].max()).drop("n_behaviours")
    return rows.join(widest, on=keys, how="semi", nulls_equal=True)


def interference_figures(tables: dict, out: Path, several: bool) -> list[Path]:
    table = tables.get("behaviours_interference")
    written = []
    for model, rows in per_model(table):
        rows, chosen = select_variant(widest_runs(rows))
        if "vector" not in rows.columns:
            continue
        defaults = defaults_at(rows)
        if defaults.height == 0 and tables.get("behaviours_single") is not None:
            single = tables["behaviours_single"]
            single = single.filter(pl.col("model") == model) if "model" in single.columns else single
            defaults = defaults_at(select_variant(single, like=chosen)[0])
        deltas = interference_deltas(rows, defaults)
        if deltas.height == 0:
            continue
        if "layer" not in deltas.columns:
            deltas = deltas.with_columns(pl.lit(None).alias("layer"))
        layers = sorted(deltas["layer"].unique().to_list(), key=lambda x: (x is None, x))
        directions = [d for d in ("add", "subtract") if deltas.filter(pl.col("direction") == d).height]
        behaviours = behaviour_order(deltas["behaviour"].unique().to_list())
        vectors = behaviour_order(deltas["vector"].unique().to_list())
        bound = max(float(deltas["delta"].abs().max()), 0.05)
        fig, axes = new_figure(len(layers), len(directions),
                               figsize=(1.3 * len(behaviours) * len(directions) + 2.5,
                                        0.55 * len(vectors) * len(layers) + 1.8),
                               squeeze=False)
        for r, layer in enumerate(layers):
            for c, direction in enumerate(directions):
                ax = axes[r][c]
                part = deltas.filter((pl.col("direction") == direction)
                                     & (pl.col("layer").is_null() if layer is None else pl.col("layer") == layer))
                grid = np.full((len(vectors), len(behaviours)), np.nan)
                notes = np.full(grid.shape, "", dtype=object)
                for item in part.iter_rows(named=True):
                    i, j = vectors.index(item["vector"]), behaviours.index(item["behaviour"])
                    grid[i, j] = item["delta"]
                    notes[i, j] = f"{item['delta']:+.2f}" + ("*" if item["clear"] else "") + (
                        "\n" + _flags(item) if _flags(item) else "")
                ylabels = []
                for v in vectors:
                    mult = part.filter(pl.col("vector") == v)["coef"] if "coef" in part.columns else None
                    times = f"×{mult[0]:+g}".replace("-", "−") if mult is not None and mult.len() else ""
                    ylabels.append(f"{pretty(v)} ({times})" if times else pretty(v))
                sns.heatmap(grid, ax=ax, cmap="vlag", center=0, vmin=-bound, vmax=bound, annot=notes, fmt="",
                            annot_kws={"fontsize": 7.5}, linewidths=0.5, linecolor="white",
                            xticklabels=[pretty(b) for b in behaviours], yticklabels=ylabels,
                            cbar=c == len(directions) - 1,
                            cbar_kws={"label": "shift in p(matching) vs unsteered"} if c == len(directions) - 1
                            else None)
                ax.grid(False)
                ax.tick_params(axis="x", rotation=20)
                ax.tick_params(axis="y", rotation=0)
                where = f"layer {layer}, " if layer is not None else ""
                ax.set_title(f"{where}{direction} vector", fontsize=9)
                ax.set_xlabel("behaviour scored")
                ax.set_ylabel("vector injected" if c == 0 else "")
        fig.suptitle(_title("Interference: paired shift of each behaviour", model, rows, chosen) + "\n"
                     "* q ≤ 0.05 after Benjamini–Hochberg (vector cells: shift and vector − its random direction "
                     "clear of 0, as the report's 'moves'; random cells: their own family); C collapsed; "
                     "F faulty ≥ 5 %", fontsize=9)
        written.append(save(fig, out / file_name("interference", model, several)))
    return written


# ---------------------------------------------------------------- grid search


def grid_figures(tables: dict, out: Path, several: bool) -> list[Path]:
    table = tables.get("behaviours_grid")
    written = []
    for model, rows in per_model(table):
        rows, chosen = select_variant(rows)
        if not {"layer", "coef"} <= set(rows.columns):
            continue
        for behaviour in behaviour_order(rows["behaviour"].unique().to_list()):
            own = rows.filter(pl.col("behaviour") == behaviour)
            if "vector" in own.columns:
                own = own.filter((pl.col("vector") == behaviour) | (pl.col("direction") == "default"))
            moved = steered(own)
            if moved.height == 0:
                continue
            moved = moved.with_columns(pl.col("coef").abs().alias("size"))
            layers = sorted(moved["layer"].unique().to_list())
            sizes = sorted(moved["size"].unique().to_list())
            directions = [d for d in ("add", "subtract") if moved.filter(pl.col("direction") == d).height]
            fig, axes = new_figure(1, len(directions), figsize=(5.2 * len(directions) + 0.8, 0.32 * len(sizes) + 2.2),
                                   squeeze=False)
            for c, direction in enumerate(directions):
                ax = axes[0][c]
                grid = np.full((len(sizes), len(layers)), np.nan)
                collapsed = np.zeros(grid.shape, dtype=bool)
                for item in moved.filter(pl.col("direction") == direction).iter_rows(named=True):
                    i, j = sizes.index(item["size"]), layers.index(item["layer"])
                    grid[i, j] = item["p_matching"]
                    collapsed[i, j] = bool(item.get("collapsed"))
                notes = np.where(np.isnan(grid), "", np.char.mod("%.2f", np.nan_to_num(grid)))
                notes = np.where(collapsed, "C", notes)
                # collapsed cells: above vmax, drawn in the colour map's "over" colour (blue, as in the paper)
                sns.heatmap(np.where(collapsed, 2.0, grid), ax=ax, vmin=0, vmax=1, annot=notes, fmt="",
                            cmap=sns.color_palette("rocket", as_cmap=True).with_extremes(over="#1f3cff"),
                            annot_kws={"fontsize": 6}, xticklabels=layers, yticklabels=[f"{s:g}" for s in sizes],
                            cbar=c == len(directions) - 1, cbar_kws={"label": "p(matching)"})
                ax.grid(False)
                ax.set_title(f"{'Adding' if direction == 'add' else 'Subtracting'} the vector", fontsize=9)
                ax.set_xlabel("layer")
                ax.set_ylabel("|injection coefficient|" if c == 0 else "")
                ax.tick_params(axis="y", rotation=0)
            default = _row(defaults_at(own), behaviour=behaviour)
            base = f", default p={default['p_matching']:.3f}" if default else ""
            fig.suptitle(_title(f"Grid search, {pretty(behaviour)}{base}", model, own, chosen) + "\n"
                         "blue/C: collapsed (≥ 95 % one answer); blank: not run (search stopped)", fontsize=9.5)
            written.append(save(fig, out / file_name(f"grid_search_{behaviour}", model, several)))
    return written
