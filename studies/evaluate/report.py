"""The evaluation's report: tables (parquet) + summary.json -> report.md, report.html, PNG figures.

Written from the saved tables alone (no model), so `write(out_dir)` can rebuild a report. The page is a
list of blocks (heading, paragraph, bullets, table, figure, code) rendered twice: to markdown, and to one
self-contained HTML file whose figures are embedded as base64 PNG (it opens offline, no script, no
external resource).

Gotcha: every number in the text comes from a table here; nothing is typed by hand.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from studies.common.plots import new_figure, save, style

from . import steerability
from .verdicts import WORD, by_label, text_ci, text_row, verdicts

TABLES = ("precondition", "quality", "grid", "picks", "comparisons", "random", "steerability", "side_effects",
          "guard_texts", "text_samples", "text_paired", "text_summary", "text_meta")


@dataclass
class Block:
    kind: str  # "h1", "h2", "p", "bullets", "table", "figure", "code"
    content: object
    caption: str = ""


def save_tables(tables: dict[str, pl.DataFrame], summary: dict, out: Path) -> list[Path]:
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        path = folder / f"{name}.parquet"
        table.write_parquet(path)
        written.append(path)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return written + [out / "summary.json"]


def load(out: Path) -> tuple[dict[str, pl.DataFrame], dict]:
    tables = {p.stem: pl.read_parquet(p) for p in sorted((out / "tables").glob("*.parquet"))}
    return tables, json.loads((out / "summary.json").read_text())


# -- figures ------------------------------------------------------------------------------------


def _grid_figure(grid: pl.DataFrame, picks: pl.DataFrame, path: Path) -> Path:
    with style():
        fig, ax = new_figure(1, 1, figsize=(7.5, 4.2))
        steered = grid.filter(pl.col("direction") != "default")
        for layer, part in steered.sort("coef").group_by("layer", maintain_order=True):
            line = ax.plot(part["coef"], part["shift"], marker="o", label=f"layer {layer[0]}")[0]
            refused = part.filter(~pl.col("guard_ok"))
            ax.scatter(refused["coef"], refused["shift"], marker="x", s=90, color=line.get_color(), zorder=3)
        for r in picks.drop_nulls("layer").iter_rows(named=True):
            ax.scatter([r["coef"]], [r["shift"]], s=220, facecolors="none", edgecolors="black", zorder=4)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("symlog", linthresh=0.2)
        ax.set_xlabel("coef (x residual norm)")
        ax.set_ylabel("validation shift of p(matching)")
        ax.set_title("search on validation: x = refused by the coherence guard, circle = pick")
        ax.legend(fontsize=8)
        return save(fig, path)


def _random_figure(random: pl.DataFrame, comparisons: pl.DataFrame, path: Path) -> Path:
    with style():
        fig, ax = new_figure(1, 1, figsize=(6.5, 3.6))
        labels = []
        for i, direction in enumerate(["add", "subtract"]):
            draws = random.filter(pl.col("direction") == direction) if random.height else random
            vec = comparisons.filter(pl.col("comparison") == f"steer {direction}")
            if not vec.height:
                continue
            first = not labels
            labels.append((i, direction))
            ax.scatter(draws["shift"], [i] * draws.height, color="grey", alpha=0.7,
                       label="random directions" if first else None)
            r = vec.row(0, named=True)
            ax.errorbar([r["shift"]], [i + 0.15], xerr=[[r["shift"] - r["shift_lo"]], [r["shift_hi"] - r["shift"]]],
                        fmt="o", color="C3", label="vector (95% interval)" if first else None)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks([i for i, _ in labels], [d for _, d in labels])
        ax.set_xlabel("test shift of p(matching) vs unsteered")
        ax.set_title("the vector against equal-norm random directions (held-out test)")
        ax.legend(fontsize=8)
        return save(fig, path)


def _steerability_figure(table: pl.DataFrame, path: Path) -> Path:
    with style():
        fig, (ax, bx) = new_figure(1, 2, figsize=(9, 3.8))
        anti = table.filter(pl.col("anti_steerable"))
        ax.hist(table["slope"], bins=min(20, max(5, table.height // 2)), color="C0", alpha=0.8)
        if anti.height:
            ax.hist(anti["slope"], bins=min(20, max(5, table.height // 2)), color="C3", alpha=0.9,
                    label="anti-steerable")
            ax.legend(fontsize=8)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel("slope of log-odds(matching) per unit coef")
        ax.set_ylabel("questions")
        ax.set_title("per-question steerability")
        colours = ["C3" if a else ("C2" if s else "grey") for a, s in zip(table["anti_steerable"], table["steerable"])]
        bx.errorbar(table["unsteered"], table["slope"],
                    yerr=[table["slope"] - table["slope_lo"], table["slope_hi"] - table["slope"]],
                    fmt="none", ecolor="lightgrey", zorder=1)
        bx.scatter(table["unsteered"], table["slope"], c=colours, zorder=2, s=18)
        bx.axhline(0, color="grey", lw=0.8)
        bx.set_xlabel("unsteered log-odds(matching)")
        bx.set_ylabel("slope")
        bx.set_title("steerability vs unsteered score")
        return save(fig, path)


def _guard_figure(grid: pl.DataFrame, path: Path) -> Path:
    with style():
        fig, (ax, bx) = new_figure(1, 2, figsize=(9, 3.6))
        base = grid.filter(pl.col("direction") == "default").row(0, named=True)
        steered = grid.filter(pl.col("direction") != "default").sort("coef")
        for layer, part in steered.group_by("layer", maintain_order=True):
            ax.plot(part["coef"], part["accuracy"], marker="o", label=f"layer {layer[0]}")
            bx.plot(part["coef"], part["distinct"], marker="o", label=f"layer {layer[0]}")
        ax.axhline(base["accuracy"], color="black", lw=0.8, ls="--", label="unsteered")
        bx.axhline(base["distinct"], color="black", lw=0.8, ls="--", label="unsteered")
        for a, label in ((ax, "next-token accuracy (plain text)"), (bx, "distinct-token ratio (greedy text)")):
            a.set_xscale("symlog", linthresh=0.2)
            a.set_xlabel("coef (x residual norm)")
            a.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.set_title("coherence guard")
        return save(fig, path)


def figures(tables: dict[str, pl.DataFrame], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = {"grid": _grid_figure(tables["grid"], tables["picks"], out / "search.png"),
            "guard": _guard_figure(tables["grid"], out / "guard.png")}
    if "comparisons" in tables and tables["comparisons"].height:
        made["random"] = _random_figure(tables.get("random", pl.DataFrame()), tables["comparisons"], out / "random.png")
    if "steerability" in tables and tables["steerability"].height:
        made["steerability"] = _steerability_figure(tables["steerability"], out / "steerability.png")
    return made


# -- blocks -----------------------------------------------------------------------------------------


def _f(value, digits=3, signed=False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return str(value)


def _interval(r: dict, key: str = "shift") -> str:
    if r.get(key) is None:
        return "n/a"
    return f"{r[key]:+.3f} [{r[key + '_lo']:+.3f}, {r[key + '_hi']:+.3f}]"


def blocks(tables: dict[str, pl.DataFrame], summary: dict, figs: dict[str, Path]) -> list[Block]:
    s = summary
    out = [Block("h1", f"Does steering work? {s['model']} on {s['behaviour']}"),
           Block("bullets", verdicts(tables))]
    splits = s["splits"]
    out += [Block("h2", "Setup"),
            Block("bullets", [
                f"Data: `{s['dataset']}` ({s['n_rows']} questions after de-duplication; {s['family']}, "
                f"{s['options']} options).",
                f"Splits (disjoint questions, seeded shuffle): {splits['vector']} questions build the vector, "
                f"{splits['validation']} choose layer and coef (validation), {splits['test']} test every claim "
                f"(held out; asked in {s['orders']} option orders).",
                f"Scoring: {s['scoring_reason']}.",
                f"Coefs are fractions of the layer's mean residual-stream norm; searched: "
                f"{', '.join(f'{c:g}' for c in s['coefs'])} each way at layers {', '.join(map(str, s['layers']))}.",
                f"Coherence guard: {s['guard']}.",
                f"Prompting baseline ({s['prompts']['source']}): \"{s['prompts']['prompt']}\" / opposite: "
                f"\"{s['prompts']['anti_prompt']}\", placed before the question in the user turn.",
                f"Vector: {s['vector']}.",
                time_line(s),
            ])]
    q = tables.get("quality")
    if q is not None and q.height:
        out += [Block("h2", "Vector quality per candidate layer"),
                Block("p", "From the vector split's pairs: split-half reliability (cosine of the two halves' "
                           "vectors) and the vector's norm against a label-permutation null (each pair's labels "
                           "swapped at random, 200 draws), and the held-out AUC of the projection separating "
                           "matching from non-matching answers on the test questions (0.5: none)."),
                Block("table", [["layer", "pairs", "norm", "null 95%", "p", "split-half", "null 95%", "p",
                                 "held-out AUC"]] +
                      [[r["layer"], r["n_pairs"], _f(r["norm"], 2), _f(r["norm_null_95"], 2), _f(r["norm_p"]),
                        _f(r["reliability"]), _f(r["reliability_null_95"]), _f(r["reliability_p"]),
                        _f(r["heldout_auc"])] for r in q.sort("layer").iter_rows(named=True)])]
    grid = tables["grid"]
    base = grid.filter(pl.col("direction") == "default").row(0, named=True)
    out += [Block("h2", "Layer and coef, chosen on validation only"),
            Block("p", f"Unsteered validation p(matching) {base['p_matching']:.3f} on {base['n_questions']} "
                       f"questions; plain-text next-token accuracy {base['accuracy']:.3f} "
                       f"[{base['accuracy_lo']:.3f}, {base['accuracy_hi']:.3f}]; distinct-token ratio of the greedy "
                       f"continuations {base['distinct']:.2f}. A point the guard refuses is never picked."),
            Block("bullets", [f"**{r['direction']}**: " + (f"layer {r['layer']}, coef {r['coef']:+g} - "
                                                           if r["layer"] is not None else "") + r["reason"]
                              for r in tables["picks"].iter_rows(named=True)]),
            Block("figure", figs.get("grid"), "Validation shift per layer and coef."),
            Block("table", [["layer", "coef", "p(matching)", "shift [95%]", "accuracy", "distinct", "guard"]] +
                  [[r["layer"], f"{r['coef']:+g}", _f(r["p_matching"]), _interval(r), _f(r["accuracy"]),
                    _f(r["distinct"], 2), r["guard"]]
                   for r in grid.filter(pl.col("direction") != "default").sort(["layer", "coef"])
                   .iter_rows(named=True)]),
            Block("figure", figs.get("guard"), "The guard's two measurements per point.")]
    comp = tables.get("comparisons")
    if comp is not None and comp.height:
        out += [Block("h2", "Held-out test: steering, random directions, prompting"),
                Block("p", "Every row is paired on the same test questions: the label-balanced mean shift of "
                           "per-question p(matching), a bootstrap interval resampling questions within labels, "
                           "its p-value, and the smallest shift the test detects (alpha 0.05, power 0.8)."),
                Block("table", [["comparison", "against", "shift [95%]", "p", "detectable", "p(matching)",
                                 "reference"]] +
                      [[r["comparison"], r["against"], _interval(r), _f(r["shift_p"]), _f(r["mde"]),
                        _f(r["p_matching"]), _f(r["p_matching_reference"])] for r in comp.iter_rows(named=True)]),
                Block("figure", figs.get("random"), "Each random direction is one draw (distinct seeds).")]
        rnd = tables.get("random")
        if rnd is not None and rnd.height:
            out.append(Block("table", [["direction", "random direction", "layer", "coef", "shift [95%]"]] +
                             [[r["direction"], r["random"], r["layer"], f"{r['coef']:+g}", _interval(r)]
                              for r in rnd.iter_rows(named=True)]))
    st = tables.get("steerability")
    if st is not None and st.height:
        sm = steerability.summary(st)
        out += [Block("h2", "Per-question steerability"),
                Block("p", f"Each test question's slope of log-odds(matching) over the coefs "
                           f"{st['coefs'][0]} at layer {st['layer'][0]} (least squares, t interval). "
                           f"Mean {sm['mean_slope']:+.2f} [{sm['mean_slope_lo']:+.2f}, {sm['mean_slope_hi']:+.2f}], "
                           f"sd {sm['sd_slope']:.2f}; anti-steerable {sm['n_anti_steerable']} of {sm['n_questions']} "
                           f"({sm['anti_steerable']:.0%} [{sm['anti_steerable_lo']:.0%}, "
                           f"{sm['anti_steerable_hi']:.0%}]); "
                           f"steerable {sm['steerable']:.0%} [{sm['steerable_lo']:.0%}, {sm['steerable_hi']:.0%}]; "
                           f"Spearman correlation of slope with the unsteered log-odds {sm['spearman_unsteered']:+.2f} "
                           f"[{sm['spearman_lo']:+.2f}, {sm['spearman_hi']:+.2f}]."),
                Block("table", [["matching answer", "questions", "anti-steerable", "steerable", "mean slope"]] +
                      [[r["q_label"], r["questions"], r["anti_steerable"], r["steerable"], _f(r["mean_slope"], 2, True)]
                       for r in (by_label(st).iter_rows(named=True) if "q_label" in st.columns else [])]),
                Block("figure", figs.get("steerability"), "Red: anti-steerable; green: steerable.")]
    side = tables.get("side_effects")
    if side is not None and side.height:
        out += [Block("h2", "Side effects at the picks"),
                Block("table", [["setting", "layer", "coef", "next-token accuracy [95%]", "tokens", "distinct"]] +
                      [[r["direction"], r["layer"] if r["layer"] >= 0 else "", f"{r['coef']:+g}",
                        f"{r['accuracy']:.3f} [{r['accuracy_lo']:.3f}, {r['accuracy_hi']:.3f}]", r["n_tokens"],
                        _f(r["distinct"], 2)] for r in side.iter_rows(named=True)])]
        for i, prompt in enumerate(side["prompts"][0]):
            lines = [f"{r['direction']:>9}: {prompt}{r['texts'][i]}" for r in side.iter_rows(named=True)]
            out.append(Block("code", "\n".join(lines)))
    out += text_blocks(tables, s)
    out += [Block("h2", "Reproduce"), Block("code", s.get("command", ""))]
    return out


STAGES = ("setup", "quality", "search", "test", "text")


def time_line(s: dict) -> str:
    """This run's time and, from the ledger (ledger.py), what computing the report took in all."""
    this = ", ".join(f"{k} {v:.0f} s" for k, v in s["timings"].items() if k != "total")
    line = f"Time: this run {s['timings']['total']:.0f} s ({this}); {s['computed']} points computed in it, the rest " \
           f"from the cache; machine load {s.get('load', 'n/a')}."
    compute = s.get("compute")
    if compute is None:  # a report from before the ledger
        return line
    if not compute:
        return line + " Computing the report: not recorded (its points were computed before compute time was kept)."
    missing = [k for k in STAGES if k not in compute and k in s["timings"] and k != "setup"]
    parts = ", ".join(f"{k} {compute[k]:.0f} s" for k in STAGES if k in compute)
    runs = s.get("compute_runs", 0)
    return line + (f" Computing the report took {'at least ' if missing else ''}{sum(compute.values()):.0f} s in all "
                   f"({parts}; summed over the {runs} run{'s' if runs != 1 else ''} that computed its points"
                   + (f"; {', '.join(missing)} computed before compute time was kept" if missing else "") + ").")


def _rate(row: dict | None) -> str:
    if row is None or row["mean"] is None or row["mean"] != row["mean"]:
        return "n/a"
    if row["lo"] is None or row["lo"] != row["lo"]:
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} [{row['lo']:.3f}, {row['hi']:.3f}]"


def _short(text: str, chars: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def conditions_in_order(names: list[str]) -> list[str]:
    """unsteered, steered, random-1..n (by number), prompted, then anything else."""
    def rank(name: str) -> tuple:
        head = name.split(" ")[0]
        if head.startswith("random-") and head[7:].isdigit():
            return (2, int(head[7:]), name)
        return ({"unsteered": 0, "steered": 1, "prompted": 3}.get(head, 4), 0, name)
    return sorted(names, key=rank)


def text_blocks(tables: dict[str, pl.DataFrame], s: dict) -> list[Block]:
    """The section "In the text it writes": per pick, the detector rate and fluency of each condition with the
    paired shifts, the detector's validation, and two example pairs."""
    out = [Block("h2", "In the text it writes")]
    meta = tables.get("text_meta")
    status = s.get("text") or {}
    if meta is None or not meta.height:
        note = status.get("note") or "Not measured (a report from before the text stage)."
        return out + [Block("p", note[0].upper() + note[1:] + ("" if note.endswith(".") else "."))]
    first = meta.row(0, named=True)
    measurable = bool(first["measurable"])
    out.append(Block("p", (
        f"{first['n_questions']} held-out test questions (never used for the vector, the search or the detector) "
        f"asked without their options, {first['samples']} samples x {first['max_new_tokens']} tokens each "
        f"(temperature {first['temperature']:g}, top-p {first['top_p']:g}, seed {first['seed']}; every condition "
        f"uses the same random numbers per question, so samples pair), under: unsteered; steered at the pick; "
        f"{first['n_random']} equal-norm random directions (distinct draws) at the same layer and coef; prompted "
        f"with the prompting baseline's text. Behaviour detector `{first['detector']}`: AUROC {first['auroc']:.2f} "
        f"[{first['auroc_lo']:.2f}, {first['auroc_hi']:.2f}] ({first['n_pos']} + {first['n_neg']} held-out answer "
        f"texts of validation questions; fitted on the other half), "
        + ("measurable" if measurable else f"**not measurable with this detector** (lower end below "
                                             f"{first['min_auroc']:g}): its rates are shown but carry no verdict")
        + ". Detector rate: the mean over questions of p(behaviour) of their samples. Fluency: perplexity x "
          "distinct-2 under the unsteered model, scaled so the unsteered samples score about 1; relevance: how much "
          "the question helps predict the text, scaled the same way; combined: their harmonic mean with the rate "
          "(steering away scores 1 - rate). Intervals: 95% bootstrap over questions, paired where two conditions "
          f"are compared. Computed in {sum(r['compute_s'] or 0 for r in meta.iter_rows(named=True)):.0f} s.")))
    summary, samples = tables["text_summary"], tables["text_samples"]
    for r in meta.iter_rows(named=True):
        d = r["direction"]
        part = summary.filter(pl.col("direction") == d)

        def cell(condition: str, measure: str, part=part) -> dict | None:
            row = part.filter((pl.col("condition") == condition) & (pl.col("measure") == measure))
            return row.row(0, named=True) if row.height else None

        rows = [["condition", "detector rate [95%]", "- unsteered [95%]", "verdict", "fluency", "relevance",
                 "combined"]]
        for condition in conditions_in_order(part["condition"].unique().to_list()):
            paired = text_row(tables, d, condition, "unsteered")
            rows.append([condition, _rate(cell(condition, "concept")), text_ci(paired) if paired else "",
                         paired["verdict"] if paired else "", _rate(cell(condition, "fluency")),
                         _rate(cell(condition, "relevance")), _rate(cell(condition, "combined"))])
        for condition in [c for c in part["condition"].unique(maintain_order=True).to_list()
                          if c.startswith("random-")]:
            vs = text_row(tables, d, "steered", condition)
            if vs:
                rows.append([f"steered - {condition}", "", text_ci(vs), vs["verdict"], "", "", ""])
        out += [Block("p", f"**{WORD[d].capitalize()}** the vector at layer {r['layer']}, x{r['coef']:+g} of the "
                           f"residual norm (the validation pick); prompted: \"{r['prompt']}\"."),
                Block("table", rows)]
        mine = samples.filter((pl.col("direction") == d) & (pl.col("sample") == 0))
        for qi in range(min(2, len(r["questions"]))):
            pair = {c: mine.filter((pl.col("condition") == c) & (pl.col("question") == qi))["text"]
                    for c in ("unsteered", "steered")}
            if all(len(t) for t in pair.values()):
                out.append(Block("code", f"question:  {_short(r['questions'][qi])}\n"
                                         f"unsteered: {_short(pair['unsteered'][0])}\n"
                                         f"steered:   {_short(pair['steered'][0])}"))
    return out


# -- rendering ---------------------------------------------------------------------------------------


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks_: list[Block], out: Path) -> str:
    lines = []
    for b in blocks_:
        if b.kind == "h1":
            lines += [f"# {b.content}", ""]
        elif b.kind == "h2":
            lines += [f"## {b.content}", ""]
        elif b.kind == "p":
            lines += [str(b.content), ""]
        elif b.kind == "bullets":
            lines += [f"- {item}" for item in b.content] + [""]
        elif b.kind == "table":
            head, *rows = b.content
            lines += ["| " + " | ".join(map(_md_cell, head)) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows] + [""]
        elif b.kind == "figure" and b.content:
            lines += [f"![{b.caption}]({Path(b.content).relative_to(out)})", ""]
        elif b.kind == "code":
            lines += ["```", str(b.content), "```", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Markdown's **bold** and `code` in a line of escaped HTML."""
    import re

    text = html.escape(str(text))
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222;
line-height:1.45}
table{border-collapse:collapse;font-size:0.85em;margin:0.8em 0}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f2f2f2}img{max-width:100%;display:block;margin:0.5em 0}figcaption{font-size:0.85em;color:#555}
pre{background:#f6f6f6;padding:0.6em;overflow-x:auto;font-size:0.8em;white-space:pre-wrap}
ul.verdicts li{margin:0.4em 0}"""


def to_html(blocks_: list[Block]) -> str:
    body = []
    first_list = True
    for b in blocks_:
        if b.kind == "h1":
            body.append(f"<h1>{_inline(b.content)}</h1>")
        elif b.kind == "h2":
            body.append(f"<h2>{_inline(b.content)}</h2>")
        elif b.kind == "p":
            body.append(f"<p>{_inline(b.content)}</p>")
        elif b.kind == "bullets":
            cls = ' class="verdicts"' if first_list else ""
            first_list = False
            body.append(f"<ul{cls}>" + "".join(f"<li>{_inline(i)}</li>" for i in b.content) + "</ul>")
        elif b.kind == "table":
            head, *rows = b.content
            body.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head) + "</tr>" +
                        "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in rows) +
                        "</table>")
        elif b.kind == "figure" and b.content:
            data = base64.b64encode(Path(b.content).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_inline(b.caption)}</figcaption></figure>")
        elif b.kind == "code":
            body.append(f"<pre>{html.escape(str(b.content))}</pre>")
    title = html.escape(str(blocks_[0].content)) if blocks_ else "report"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write(out_dir) -> list[Path]:
    """report.md, report.html and the figures in `out_dir` from its tables/ and summary.json."""
    out = Path(out_dir)
    tables, summary = load(out)
    figs = figures(tables, out)
    page = blocks(tables, summary, figs)
    (out / "report.md").write_text(to_markdown(page, out))
    (out / "report.html").write_text(to_html(page))
    return [out / "report.md", out / "report.html", *figs.values()]


def reports(results_root) -> list[Path]:
    """The report folders under `results_root` (evaluate_*/ holding tables/ and summary.json), sorted."""
    return sorted(p for p in Path(results_root).glob("evaluate_*") if (p / "summary.json").is_file())


def pages(results_root) -> dict[str, str]:
    """Named values for the docs: `evaluate_verdicts`, every committed report's verdict lines under its title;
    `<folder>.verdicts`, one report's; and `<model>.<behaviour>.verdicts`, the first report (by folder name) of that
    model and behaviour, so a second report of the same pair (other sizes) never replaces what a page cites."""
    parts, out = [], {}
    for folder in reports(results_root):
        tables, summary = load(folder)
        link = f"{folder.relative_to(Path(results_root).parent).as_posix()}/report.md"
        part = (f"**{summary['model']} on {summary['behaviour']}** ([report]({link}), "
                f"{summary['splits']['test']} test questions, {summary['scoring']} scoring):\n\n" +
                "\n".join(f"- {line}" for line in verdicts(tables)))
        parts.append(part)
        out.setdefault(f"{summary['model']}.{summary['behaviour']}.verdicts", part)
        out[f"{folder.name}.verdicts"] = part
    return {"evaluate_verdicts": "\n\n".join(parts), **out}


def rebuild(results_root, out_dir) -> list[Path]:
    """The Study protocol's report: every evaluate_* report under `results_root` written again (no model) into
    `out_dir`/<its folder name> (in place when that is where it lies)."""
    import shutil

    written = []
    for folder in reports(results_root):
        target = Path(out_dir) / folder.name
        if target.resolve() != folder.resolve():
            shutil.copytree(folder / "tables", target / "tables", dirs_exist_ok=True)
            shutil.copy2(folder / "summary.json", target / "summary.json")
        written += write(target)
    return written
