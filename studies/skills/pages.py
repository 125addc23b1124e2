"""Named values for the skills docs page, computed from the committed skills points.

What it is for: `pages(results_root)` gives every number the skills page cites (and the report's tables),
so the page is rendered from the tables (studies/pages.py) and cannot drift from them.

Pattern: the run `skills report` reports for each model (its fullest points run), summarised the same way
(document-bootstrap intervals, 1000 resamples, seed 13). Keys:
`<model>.base.<set>.<domain>` (top-1 accuracy %, interval), `<model>.base.<set>.tokens` (range over domains),
`<model>.<target>.<control>.L<layer>.c<coef>.<domain>` (relative accuracy %, interval; `...pt` the point
alone), `<model>.lang.<target>.L<layer>.c<coef>.<language>`, `<model>.kept.<target>.<control>.L<layer>.<70|50>`
(text kept at equal damage), `<model>.kept.diff.<control>.L<layer>.<70|50>` (code vector − Python vector),
`<model>.kept.vsctl.<target>.<control>.L<layer>.<70|50>` (vector − its control), `<model>.numerics` (the
dtype check's summary line), `<model>.table.<section>` (the report's sections: baselines, paper, kept,
languages), and `paper.L<layer>.c<coef>.<control>.<target>` (the paper's target / text %).

Gotchas: a point scored on both evaluation sets is quoted from the headline set (the larger).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from . import report as skills_report
from . import run as skills
from .numerics import numerics_of, same_but_numerics
from .selectivity import equal_damage_table

N_BOOT = 1000
MODELS = {"smollm2-135m": "smollm2", "qwen2.5-coder-0.5b": "qwen"}
SIZES = ("sweep", "headline")  # later wins


def _pct(row: dict, col: str = "relative") -> str:
    return skills_report._pct(row, col)


def _sections(text: str) -> dict[str, str]:
    """The report's '## title' sections, by title."""
    out = {}
    for chunk in text.split("\n## ")[1:]:
        title, _, body = chunk.partition("\n")
        out[title.strip()] = body.strip()
    return out


def _chosen(docs: pl.DataFrame) -> pl.DataFrame:
    counts = docs.group_by("points_run").len().sort(["len", "points_run"], descending=[True, False])
    return docs.filter(pl.col("points_run") == counts["points_run"][0])


def _kept(mkey: str, damage: pl.DataFrame) -> dict[str, str]:
    out = {}
    for r in damage.iter_rows(named=True):
        level = f"{round(100 * r['level'])}"
        if not r["difference"]:
            key = f"{mkey}.kept.{r['target']}.{r['control']}.L{r['layer']}.{level}"
        elif r["target"] == "code − python":
            key = f"{mkey}.kept.diff.{r['control']}.L{r['layer']}.{level}"
        else:
            key = f"{mkey}.kept.vsctl.{r['target']}.{r['control']}.L{r['layer']}.{level}"
        out[key] = skills_report._kept_cell(r)
        out[key + ".pt"] = "—" if r["kept"] != r["kept"] else f"{100 * r['kept']:{'+' if r['difference'] else ''}.1f}"
        out[key + ".coefs"] = str(r["n_coefs"])
    return out


def model_values(model: str, docs: pl.DataFrame, all_runs: pl.DataFrame, configs: dict) -> dict[str, str]:
    mkey = MODELS.get(model, skills.safe_name(model).replace(".", "_"))
    text, summary, langs = skills_report.model_report(model, docs, N_BOOT)
    out = {f"{mkey}.dtype": docs["dtype"][0] if "dtype" in docs.columns else "float32"}
    steered = summary.filter(pl.col("layer") >= 0)
    out[f"{mkey}.n_steered_points"] = str(steered.select(*skills.POINT_KEYS).unique().height)
    for size in SIZES:
        base = summary.filter((pl.col("layer") == -1) & (pl.col("size") == size))
        for r in base.iter_rows(named=True):
            out[f"{mkey}.base.{size}.{r['domain']}"] = _pct(r, "accuracy")
        if base.height:
            lo, hi = base["n_tokens"].min(), base["n_tokens"].max()
            out[f"{mkey}.base.{size}.tokens"] = f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"
        part = steered.filter(pl.col("size") == size)
        if part.height:
            lo, hi = part["n_tokens"].min(), part["n_tokens"].max()
            out[f"{mkey}.{size}.tokens"] = f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"
            out[f"{mkey}.{size}.points"] = str(part.select(*skills.POINT_KEYS).unique().height)
    for frame, by, prefix in ((summary, "domain", mkey), (langs, "language", f"{mkey}.lang")):
        for size in SIZES:
            for r in frame.filter((pl.col("layer") >= 0) & (pl.col("size") == size)).iter_rows(named=True):
                control = "" if by == "language" else f".{r['control']}"
                if by == "language" and r["control"] != "none":
                    continue
                key = f"{prefix}.{r['target']}{control}.L{r['layer']}.c{r['coef']:g}.{r[by]}"
                out[key] = _pct(r)
                out[key + ".pt"] = f"{100 * r['relative']:.1f}"
    for curve, part in steered.filter(pl.col("domain") == pl.col("target")).group_by(
            ["target", "control", "layer"], maintain_order=True):
        coefs = sorted(set(part["coef"].to_list()))
        out[f"{mkey}.{curve[0]}.{curve[1]}.L{curve[2]}.n_coefs"] = str(len(coefs))
        out[f"{mkey}.{curve[0]}.{curve[1]}.L{curve[2]}.coef_range"] = f"{coefs[0]:g} … {coefs[-1]:g}"
    out.update(_kept(mkey, equal_damage_table(docs, n_boot=N_BOOT)))
    sections = _sections(text)
    for name, title in (("baselines", "Evaluation sets and baselines"), ("paper", "Beside the paper's table"),
                        ("kept", "Text kept at equal damage to the target"),
                        ("languages", "Language matrix (relative accuracy per language)")):
        if title in sections:
            body = sections[title]
            if name == "paper":  # the report's own caption line is replaced by the page's
                body = body.split("\n\n", 1)[1]
            out[f"{mkey}.table.{name}"] = body
    # the numerics check: the other-dtype run of the same documents, as `skills report` pairs them
    chosen = docs["points_run"][0]
    for run in all_runs["points_run"].unique().sort().to_list():
        if run == chosen or run not in configs or chosen not in configs:
            continue
        if numerics_of(configs[run]) == numerics_of(configs[chosen]):
            continue
        partners = [key for key in all_runs["points_run"].unique().sort().to_list()
                    if key in configs and numerics_of(configs[key]) == numerics_of(configs[chosen])
                    and same_but_numerics(configs[key], configs[run])]
        if partners:
            other, mine = (all_runs.filter(pl.col("points_run") == key) for key in (run, partners[0]))
            reference, candidate = (other, mine) if other["dtype"][0] == "float32" else (mine, other)
            lines, table = skills_report.numerics_section(reference, candidate, N_BOOT)
            steered_n = table.filter(pl.col("layer") >= 0)
            base_n = table.filter(pl.col("layer") < 0)
            out[f"{mkey}.numerics.points"] = str(steered_n.select(*skills.POINT_KEYS).unique().height)
            out[f"{mkey}.numerics.domains"] = str(steered_n["domain"].n_unique())
            out[f"{mkey}.numerics.median"] = f"{100 * steered_n['difference'].abs().median():.2f}"
            out[f"{mkey}.numerics.largest"] = f"{100 * steered_n['difference'].abs().max():.2f}"
            out[f"{mkey}.numerics.excluded"] = str(steered_n.filter((pl.col("difference_lo") > 0)
                                                                   | (pl.col("difference_hi") < 0)).height)
            out[f"{mkey}.numerics.intervals"] = str(steered_n.height)
            out[f"{mkey}.numerics.baseline_largest"] = f"{100 * base_n['difference'].abs().max():.2f}"
            break
    return out


def paper_values() -> dict[str, str]:
    """The paper's relative accuracies (Llama-2-7B, target / text %), as `skills report` uses them."""
    out = {}
    for (layer, coef, control), targets in skills_report.PAPER.items():
        for target, (t, x) in targets.items():
            out[f"paper.L{layer}.c{coef:g}.{control}.{target}"] = f"{t} / {x}"
            out[f"paper.L{layer}.c{coef:g}.{control}.{target}.target"] = f"{t}"
            out[f"paper.L{layer}.c{coef:g}.{control}.{target}.text"] = f"{x}"
    return out


def pages(results_root: Path) -> dict[str, str]:
    """Named values for docs/src/skills.md (and the README), from the committed points."""
    out = paper_values()
    docs = skills.load_points(results_root)
    if docs is None:
        return out
    configs = skills.points_configs(results_root)
    for (model,), runs in docs.group_by(["model"], maintain_order=True):
        out.update(model_values(model, _chosen(runs), runs, configs))
    return out
