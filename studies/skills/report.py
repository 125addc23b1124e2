"""Tables of the skills experiment from the cached points (a sweep need not have finished).

`write(root)` reads every point under `<results>/skills_points/`, summarises it (document-bootstrap
intervals, tokens actually scored) and writes per model `<out>/<model>.md` (the tables beside the paper)
plus `<model>_points.csv` (one row per point and domain) and `<model>_languages.csv` (per language).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from steer_trace.cache import results_root
from .corpora import LANGUAGES
from . import profiles
from . import run as skills
from ..common.markdown import markdown_table
from .numerics import numerics_of, numerics_table, same_but_numerics
from .selectivity import equal_damage_table

# the paper's relative accuracies (Llama-2-7B, % of baseline, target / text), shared/reference/paper_notes.md
PAPER = {  # (layer, coef, control) -> {target: (target %, text %)}
    (0, 1.5, "none"): {"code": (69.3, 44.1), "python": (63.4, 40.5)},
    (5, 1.0, "none"): {"code": (67.0, 71.5), "python": (76.1, 78.8)},
    (10, 1.5, "none"): {"code": (67.7, 82.4), "python": (82.2, 91.4)},
    (10, 2.0, "none"): {"code": (24.9, 49.9), "python": (46.6, 73.8)},
    (15, 1.4, "none"): {"code": (72.9, 89.9), "python": (79.4, 92.8)},
    (15, 1.5, "none"): {"code": (66.8, 86.6), "python": (76.7, 90.1)},
    (15, 1.8, "none"): {"code": (51.3, 74.4), "python": (59.7, 79.8)},
    (15, 2.0, "none"): {"code": (40.5, 63.8), "python": (45.6, 70.5)},
    (20, 1.5, "none"): {"code": (57.5, 74.9), "python": (63.1, 71.7)},
    (25, 1.5, "none"): {"code": (66.0, 82.1), "python": (73.1, 82.8)},
    (30, 1.5, "none"): {"code": (69.6, 81.2), "python": (72.6, 81.7)},
    (15, 1.0, "means"): {"code": (82.7, 87.4), "python": (98.6, 97.6)},
    (15, 1.5, "means"): {"code": (37.7, 51.2), "python": (87.0, 85.8)},
}


def _pct(row: dict | None, col: str = "relative") -> str:
    if row is None:
        return "—"
    return f"{100 * row[col]:.1f} [{100 * row[col + '_lo']:.1f}, {100 * row[col + '_hi']:.1f}]"


def _index(summary: pl.DataFrame, by: str) -> dict:
    return {(r["target"], r["control"], r["layer"], round(r["coef"], 4), r[by]): r
            for r in summary.iter_rows(named=True)}


def _paper_layer(layer: int, n_layers: int) -> int | None:
    return next((p for p in profiles.PAPER_LAYERS if profiles.relative_layer(p, n_layers) == layer), None)


def curve_rows(idx: dict, target: str, control: str, layer: int, coefs) -> list[list[str]]:
    rows = []
    for c in coefs:
        t, x = idx.get((target, control, layer, round(c, 4), target)), idx.get((target, control, layer, round(c, 4),
                                                                                 "text"))
        if t is None:
            continue
        rows.append([f"{c:g}", _pct(t), _pct(x), f"{t['n_tokens']:,} / {x['n_tokens']:,}"])
    return rows


def _kept_cell(row: dict) -> str:
    if row["kept"] != row["kept"]:  # NaN: the curve never reaches the level
        return "—"
    sign = "+" if row["difference"] else ""
    if row["kept_lo"] != row["kept_lo"]:
        return f"{100 * row['kept']:{sign}.1f} (reached in {100 * row['defined']:.0f}% of resamples)"
    return f"{100 * row['kept']:{sign}.1f} [{100 * row['kept_lo']:{sign}.1f}, {100 * row['kept_hi']:{sign}.1f}]"


def paper_table(idx: dict, n_layers: int) -> list[str]:
    """The paper's skills table row by row (its layer mapped to the same relative depth), ours beside it."""
    rows = []
    for (layer, coef, control), paper in PAPER.items():
        if control != "none":
            continue
        ours = profiles.relative_layer(layer, n_layers)
        cells = []
        for target in skills.TARGETS:
            key = (target, control, ours, round(coef, 4))
            cells += [_pct(idx.get((*key, target))), _pct(idx.get((*key, "text"))),
                      f"{paper[target][0]} / {paper[target][1]}"]
        rows.append([f"{layer} → {ours}", f"{coef:g}", *cells])
    return ["## Beside the paper's table", "",
            "The paper's rows (Llama-2-7B, layer of 32 → the same relative depth here); relative %, target / text; "
            "— = not scored yet.", ""] + markdown_table(
        ["layer (paper → here)", "c", "code vector: code %", "text %", "paper code / text",
         "Python vector: Python %", "text %", "paper Python / text"], rows) + [""]


def model_report(model: str, docs: pl.DataFrame, n_boot: int) -> tuple[str, pl.DataFrame, pl.DataFrame]:
    summary = skills.summarise(docs, n_boot)
    langs = skills.summarise(docs, n_boot, by="language")
    idx, lidx = _index(summary, "domain"), _index(langs, "language")
    n_layers = 30 if "smollm2" in model else 24 if "qwen2.5" in model else 32
    mid = profiles.middle_layer(n_layers)
    steered = summary.filter(pl.col("layer") >= 0)
    dtype = docs["dtype"][0] if "dtype" in docs.columns else "float32"
    out = [f"# Skills: {model} ({dtype}; from the cached points)", "",
           (f"{steered.select(*skills.POINT_KEYS).unique().height} steered points; relative accuracy = accuracy / "
           "unsteered accuracy on the same documents, % with document-bootstrap 95% intervals (paired: the same "
           f"resampled documents for both; {n_boot} resamples). Tokens = next-token predictions scored."), ""]
    base = summary.filter(pl.col("layer") == -1)
    rows = [[r["size"], r["domain"], str(r["n_docs"]), f"{r['n_tokens']:,}",
             _pct(r, "accuracy")] for r in base.sort("size", "domain").iter_rows(named=True)]
    out += ["## Evaluation sets and baselines", ""] + markdown_table(["set", "domain", "documents", "tokens",
                                                              "top-1 accuracy %"], rows) + [""]

    lbase = langs.filter(pl.col("layer") == -1)
    rows = [[r["size"], r["language"], str(r["n_docs"]), f"{r['n_tokens']:,}", _pct(r, "accuracy")]
            for r in lbase.sort("size", "language").iter_rows(named=True)]
    out += ["Per language:", ""]
    out += markdown_table(["set", "language", "documents", "tokens", "top-1 accuracy %"], rows) + [""]

    out += paper_table(idx, n_layers)

    head_coefs = sorted({c for c in steered["coef"].to_list() if skills.is_headline(0, c, "none", n_layers)})
    for title, layer, control in ((f"Middle layer {mid} (the paper's 15)", mid, "none"),
                                  ("Layer 0", 0, "none"),
                                  (f"Permuted components (norm-matched), layer {mid}", mid, "components"),
                                  (f"Permuted means (the paper's control), layer {mid}", mid, "means")):
        out += [f"## {title}", ""]
        for target in skills.TARGETS:
            coefs = sorted(set(steered.filter((pl.col("target") == target) & (pl.col("layer") == layer)
                                              & (pl.col("control") == control))["coef"].to_list()))
            rows = curve_rows(idx, target, control, layer, coefs)
            if not rows:
                continue
            paper_layer = 15 if layer == mid else 0
            paper_control = "means" if control == "means" else control
            for r, c in zip(rows, [float(x[0]) for x in rows]):
                p = PAPER.get((paper_layer, c, paper_control), {}).get(target)
                r.append(f"{p[0]} / {p[1]}" if p else "")
            out += [f"text − {target}:", ""] + markdown_table(
                ["c", f"{target} relative %", "text relative %", "tokens (target / text)", "paper target / text"],
                rows) + [""]
    # the language matrix
    out += ["## Language matrix (relative accuracy per language)", "",
            f"Layer {mid}; code documents are HumanEval-X problems that are never the Python (HumanEval) problems.", ""]
    for c in head_coefs:
        rows = []
        for target in skills.TARGETS:
            cells = [_pct(lidx.get((target, "none", mid, round(c, 4), lang))) for lang in LANGUAGES]
            if any(cell != "—" for cell in cells):
                rows.append([f"text − {target}", f"{c:g}", *cells])
        if rows:
            out += markdown_table(["vector", "c", *LANGUAGES], rows) + [""]
    # equal damage, every curve, and the paired differences
    out += ["## Text kept at equal damage to the target", "",
            "Relative text accuracy where the target's first falls to 70% / 50% (linear interpolation along the "
            "curve from the unsteered point); 95% document-bootstrap intervals, every point and both vectors "
            "resampled together, so the difference rows (code vector − Python vector; each vector − its "
            "control) are paired. Intervals cover document sampling, not the interpolation between measured "
            "coefficients: 'coefficients' is how many steered points the curve (the fewer of two) has. 'set "
            "(text tokens)' names, per level, the evaluation set of the two measured points each crossing lies "
            "between and its text tokens (a difference row: its two curves', separated by ';'): a number is only "
            "as large a sample as that set.", ""]
    damage = equal_damage_table(docs, n_boot=n_boot)
    rows = []
    for (vector, control, layer), part in damage.group_by(["vector", "control", "layer"], maintain_order=True):
        cells = []
        for level in (0.7, 0.5):
            hit = part.filter(pl.col("level") == level)
            row = hit.row(0, named=True) if hit.height else None
            cells += [_kept_cell(row) if row else "—", f"{row['at_sets']} ({row['text_tokens']})" if row else "—"]
        rows.append([vector, skills.CONTROLS[control][1], f"{layer} (paper {_paper_layer(layer, n_layers)})",
                     str(part["n_coefs"][0]), *cells])
    out += markdown_table(["vector", "control", "layer", "coefficients", "text % at target 70%",
                           "set (text tokens) at 70%", "text % at target 50%", "set (text tokens) at 50%"],
                          rows) + [""]
    # the full sweep
    out += ["## Every point", ""]
    rows = []
    for r in steered.filter(pl.col("domain") == pl.col("target")).sort("target", "control", "layer",
                                                                      "coef").iter_rows(named=True):
        text = idx.get((r["target"], r["control"], r["layer"], round(r["coef"], 4), "text"))
        other = "python" if r["target"] == "code" else "code"
        o = idx.get((r["target"], r["control"], r["layer"], round(r["coef"], 4), other))
        rows.append([f"text − {r['target']}", r["control"], str(r["layer"]), f"{r['coef']:g}", r["size"], _pct(r),
                     _pct(text), _pct(o), f"{r['n_tokens']:,}"])
    out += markdown_table(["vector", "control", "layer", "c", "set", "target %", "text %", "other code %",
                   "target tokens"], rows) + [""]
    return "\n".join(out), summary, langs


def numerics_section(reference: pl.DataFrame, other: pl.DataFrame, n_boot: int) -> tuple[list[str], pl.DataFrame]:
    """The points both runs scored, reference numerics against the other's: a summary and every point."""
    table = numerics_table(reference, other, n_boot)
    if not table.height:
        return [], table
    ref, oth = reference["dtype"][0], other["dtype"][0]
    steered = table.filter(pl.col("layer") >= 0)
    excluded = steered.filter((pl.col("difference_lo") > 0) | (pl.col("difference_hi") < 0)).height
    summary = (f"{steered.select(*skills.POINT_KEYS).unique().height} steered points × their domains: median "
               f"|difference| {100 * steered['difference'].abs().median():.2f} points, largest "
               f"{100 * steered['difference'].abs().max():.2f}; {excluded} of {steered.height} intervals exclude 0."
               if steered.height else "No steered point in both yet.")
    out = [f"## Numerics: {oth} against {ref} on the points both scored", "",
           f"The same vectors and documents scored in both; relative accuracy (accuracy for the baselines), %, "
           f"and the paired difference {oth} − {ref} with its 95% document-bootstrap interval. {summary}", ""]
    rows = [[r["target"] or "baseline", r["control"], str(r["layer"]) if r["layer"] >= 0 else "—", f"{r['coef']:g}",
             r["size"], r["domain"], f"{100 * r['reference']:.1f}", f"{100 * r['other']:.1f}",
             f"{100 * r['difference']:+.2f} [{100 * r['difference_lo']:+.2f}, {100 * r['difference_hi']:+.2f}]",
             f"{r['n_tokens']:,}"] for r in table.iter_rows(named=True)]
    return out + markdown_table(["vector", "control", "layer", "c", "set", "domain", f"{ref} %", f"{oth} %",
                                 f"{oth} − {ref}", "tokens"], rows) + [""], table


def write(root=None, out_dir=None, n_boot: int = 1000) -> list[Path]:
    docs = skills.load_points(root)
    if docs is None:
        return []
    configs = skills.points_configs(root)
    out = Path(out_dir) if out_dir else results_root(root) / "skills_report"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for (model,), runs in docs.group_by(["model"], maintain_order=True):
        counts = runs.group_by("points_run").len().sort(["len", "points_run"], descending=[True, False])
        chosen = counts["points_run"][0]
        part = runs.filter(pl.col("points_run") == chosen)  # the fullest run of this model
        text, summary, langs = model_report(model, part, n_boot)
        name = skills.safe_name(model)
        files = {f"{name}_points.csv": summary, f"{name}_languages.csv": langs}
        # runs of the same points in other numerics: checked against the run in the chosen one's numerics that
        # scored the same documents (the chosen run itself, or e.g. its smaller-headline predecessor)
        keys = [key for key in counts["points_run"].to_list() if key in configs]
        ours = [key for key in keys if chosen in configs and numerics_of(configs[key]) == numerics_of(configs[chosen])]
        for run in (key for key in keys if key not in ours):
            partner = next((key for key in ours if same_but_numerics(configs[key], configs[run])), None)
            if partner is not None:
                other, mine = (runs.filter(pl.col("points_run") == key) for key in (run, partner))
                reference, candidate = (other, mine) if other["dtype"][0] == "float32" else (mine, other)
                lines, table = numerics_section(reference, candidate, n_boot)
                if lines:
                    text += "\n" + "\n".join(lines)
                    files[f"{name}_numerics_{candidate['dtype'][0]}_{reference['dtype'][0]}.csv"] = table
        (out / f"{name}.md").write_text(text)
        for file, table in files.items():
            table.write_csv(out / file)
        written += [out / f"{name}.md", *(out / file for file in files)]
    return written
