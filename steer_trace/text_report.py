"""The open-ended evaluation's data parts, detector choice and written report (tables + markdown).

- `held_out_parts`: a dataset's rows in three disjoint parts, as the behaviour study splits them
  (the paper's order for its five files, else a seed-13 shuffle): the vector part (never used
  here), the validation part (its answer texts fit and validate the detector), the test part
  (its label-balanced questions, without options, are asked);
- `make_detector`: DiffMean on the steered model (or `reader_model`), or a judge model;
- `write_report`: samples / paired / summary as parquet, their config as json, and a markdown
  report with every number's interval and the detector's AUROC beside the concept numbers.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import polars as pl

from . import data
from .content import stem, texts
from .detectors import DiffMean, Judge, LabelledTexts, Validation, labelled_from_items
from .cache import key_of
from .errors import UserError
from .text_eval import TextEval, scored


def held_out_parts(dataset: str | Path, n_questions: int, n_detector: int) -> tuple[list[str], LabelledTexts, str]:
    """(test questions without options, the validation part's labelled answer texts, how it was split)."""
    path = Path(dataset)
    items = data.deduplicate(data.load_ab_file(path), str(path))
    name = path.stem.replace("-", "_")
    if name in data.PAPER_ORDER and len(items) == data.PAPER_ORDER[name]:
        rows = data.paper_order(items, name)
        parts, split = {"validation": rows[500:700], "test": rows[700:]}, "paper"
    else:
        parts, split = data.split(items, seed=13, sizes=(500, 200)), "seeded"
    if not parts["validation"] or not parts["test"]:
        raise UserError(f"{path}: {len(items)} rows leave no held-out validation or test questions")
    questions = [stem(i) for i in data.balanced_slice(parts["test"], n_questions)]
    labelled = labelled_from_items(parts["validation"][:n_detector], stem, texts)
    return questions, labelled, f"{split}: detector {min(n_detector, len(parts['validation']))} validation " \
                                f"questions, {len(questions)} test questions"


def make_detector(model, labelled: LabelledTexts, behaviour: str, layer: int, reader_model: str | None = None,
                  judge_model: str | None = None, model_spec: dict | None = None, opener=None):
    """A fitted, validated detector: a judge model when named, else DiffMean on the reader (default: `model`)."""
    if judge_model:
        judge = model if judge_model == model.name else opener({**(model_spec or {}), "name": judge_model})
        return Judge(judge, behaviour).fit(labelled)
    reader = model if reader_model in (None, model.name) else opener({**(model_spec or {}), "name": reader_model})
    return DiffMean(reader, reader.check_layer(layer)).fit(labelled)


def _fmt(x: float, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def report_markdown(result: TextEval, load: str = "") -> str:
    m = result.meta
    lines = [f"# Open-ended evaluation: {m.get('behaviour', '')} on {m.get('model', '')}", "",
             f"Vector {m.get('vector', '')} at layer {m['layer']}, coef {', '.join(f'{c:g}' for c in m['coefs'])}"
             f"{' x residual norm ' + format(m['residual_norm'], '.1f') if m['relative'] else ''}; "
             f"{m['n_questions']} questions x {m['samples']} samples x {m['max_new_tokens']} tokens, "
             f"temperature {m['temperature']:g}, top-p {m['top_p']:g}, seed {m['seed']}, prompt style "
             f"{m['prompt_style']}; {m['n_random']} equal-norm random directions. Split: {m.get('split', '')}.",
             "", f"Detector **{result.detector}**: {result.validation.describe()} (held-out answer texts).",
             "", f"Time: {m['total_s']:.0f} s ({m['generate_s']:.0f} s generating){load}.", "",
             "## Per condition (mean over questions of the per-question mean; 95% bootstrap interval)", ""]
    measurable = result.validation.measurable
    measures = ("concept", "fluency", "relevance", "combined", "perplexity", "distinct")
    lines += ["| condition | " + " | ".join(measures) + " |", "|---" * (len(measures) + 1) + "|"]
    for name in result.summary["condition"].unique(maintain_order=True).to_list():
        cells = []
        for measure in measures:
            row = result.summary.filter((pl.col("condition") == name) & (pl.col("measure") == measure)).row(
                0, named=True)
            if measure in ("concept", "combined") and not measurable:
                cells.append("not measurable with this detector")
            else:
                cells.append(f"{_fmt(row['mean'])} [{_fmt(row['lo'])}, {_fmt(row['hi'])}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Paired differences (per question, bootstrap over questions)", "",
              "| condition | against | measure | shift [95% CI] | p | n | verdict |", "|---|---|---|---|---|---|---|"]
    for row in result.paired.filter(pl.col("measure").is_in(["concept", "fluency", "relevance", "combined"])).iter_rows(
            named=True):
        if row["verdict"] == "not measurable with this detector":
            shift = "—"
        else:
            shift = f"{_fmt(row['shift'], True)} [{_fmt(row['lo'], True)}, {_fmt(row['hi'], True)}]"
        lines.append(f"| {row['condition']} | {row['against']} | {row['measure']} | {shift} | {_fmt(row['p'])} | "
                     f"{row['n']} | {row['verdict']} |")
    lines += ["", f"Detector beside every concept number: {result.validation.describe()}.", "",
              "## Side by side (sample 1 of each condition)", "", result.side_by_side(6), ""]
    return "\n".join(lines)


def report_name(meta: dict) -> str:
    """<model>-<behaviour>-L<layer>-c<coefs>[rel]-<key>: the key hashes every option that changes the result."""
    coefs = "_".join(f"{c:g}" for c in meta["coefs"])
    keyed = {k: v for k, v in meta.items() if k not in ("generate_s", "total_s", "references", "split")}
    return (f"{meta.get('model', 'model')}-{meta.get('behaviour', 'behaviour')}-L{meta['layer']}-c{coefs}"
            f"{'rel' if meta['relative'] else ''}-{key_of(keyed)[:10]}")


def write_report(result: TextEval, out: Path, stem_name: str | None = None) -> list[Path]:
    """samples / paired / summary parquet, meta json and the markdown report under `out`."""
    m = result.meta
    stem_name = stem_name or report_name(m)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for part in ("samples", "paired", "summary"):
        path = out / f"{stem_name}.{part}.parquet"
        getattr(result, part).write_parquet(path)
        paths.append(path)
    load = f"; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    meta = {**m, "questions": result.questions,
            "validation": {**result.validation.__dict__, "measurable": result.validation.measurable},
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    (out / f"{stem_name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    (out / f"{stem_name}.md").write_text(report_markdown(result, load))
    return paths + [out / f"{stem_name}.json", out / f"{stem_name}.md"]


def summarize(folder: Path) -> str:
    """One markdown table over every report in `folder`: per steered condition, the concept, fluency and
    combined shifts against unsteered (and the concept against each random direction), with the detector."""
    lines = ["| model | behaviour | layer | condition | concept − unsteered | concept − random | fluency − unsteered "
             "| combined − unsteered | steered fluency | detector AUROC |", "|---" * 10 + "|"]
    for meta_path in sorted(folder.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        paired_path = meta_path.with_suffix(".paired.parquet")
        summary_path = meta_path.with_suffix(".summary.parquet")
        if not paired_path.exists() or not summary_path.exists():
            continue
        paired, summary = pl.read_parquet(paired_path), pl.read_parquet(summary_path)
        v = meta["validation"]
        auroc = f"{v['auroc']:.2f} [{v['lo']:.2f}, {v['hi']:.2f}]" + ("" if v["measurable"] else " not measurable")
        for name in paired["condition"].unique(maintain_order=True).to_list():
            def cell(against: str, measure: str) -> str:
                row = paired.filter((pl.col("condition") == name) & (pl.col("against") == against)
                                    & (pl.col("measure") == measure))
                if not row.height:
                    return ""
                r = row.row(0, named=True)
                if r["verdict"].startswith("not measurable"):
                    return r["verdict"]
                if r["verdict"] == "too few questions":
                    return f"{_fmt(r['shift'], True)} (too few questions for an interval, n={r['n']})"
                return f"{_fmt(r['shift'], True)} [{_fmt(r['lo'], True)}, {_fmt(r['hi'], True)}] {r['verdict']}"
            randoms = [a for a in paired.filter(pl.col("condition") == name)["against"].unique(maintain_order=True)
                       if a.startswith("random-")]
            flu = summary.filter((pl.col("condition") == name) & (pl.col("measure") == "fluency")).row(0, named=True)
            lines.append(f"| {meta.get('model', '')} | {meta.get('behaviour', '')} | {meta['layer']} | {name} | "
                         f"{cell('unsteered', 'concept')} | {'; '.join(cell(a, 'concept') for a in randoms)} | "
                         f"{cell('unsteered', 'fluency')} | {cell('unsteered', 'combined')} | "
                         f"{_fmt(flu['mean'])} [{_fmt(flu['lo'])}, {_fmt(flu['hi'])}] | {auroc} |")
    return "\n".join(lines) + "\n"


def rebuild(meta_path: Path, data_dir: Path | None = None) -> list[Path]:
    """Rewrite one report (scaled measures, paired, summary, markdown) from its samples table and json, no model:
    for a change in how the measures are scaled or tested. The questions come from the json, or (reports written
    before it kept them) from the dataset in `data_dir`, split as `held_out_parts` splits it."""
    meta = json.loads(meta_path.read_text())
    samples = pl.read_parquet(meta_path.with_suffix(".samples.parquet"))
    questions = meta.get("questions")
    if questions is None:
        if data_dir is None:
            raise UserError(f"{meta_path.name} keeps no questions: give --data-dir with {meta.get('dataset')}")
        questions, _, _ = held_out_parts(Path(data_dir) / meta["dataset"], meta["n_questions"], 1)
    v = meta["validation"]
    validation = Validation(v["auroc"], v["lo"], v["hi"], v["n_pos"], v["n_neg"], v.get("min_auroc", 0.7))
    keep = {k: val for k, val in meta.items() if k not in ("validation", "questions", "load_average", "references")}
    result = scored(samples, list(questions), meta["detector"], validation, keep)
    load = meta.get("load_average")
    out = meta_path.parent
    stem_name = meta_path.name[: -len(".json")]
    for part in ("samples", "paired", "summary"):
        getattr(result, part).write_parquet(out / f"{stem_name}.{part}.parquet")
    meta_out = {**result.meta, "questions": result.questions, "load_average": load,
                "validation": {**validation.__dict__, "measurable": validation.measurable}}
    meta_path.write_text(json.dumps(meta_out, indent=1, sort_keys=True, default=str))
    (out / f"{stem_name}.md").write_text(report_markdown(result, f"; load average {load:.1f}" if load else ""))
    return [out / f"{stem_name}.md"]
