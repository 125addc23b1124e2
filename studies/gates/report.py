"""The gates study's tables as text: docs/gates.md and the README's block, from committed tables only (no model).

Inputs: results/gates_summary/<model>.csv (`gates experiment`) and the fitted gate files
results/gates_fit/<model>-code.safetensors (their provenance holds the fit and held-out F1).
"""
from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from steer_trace.gates import load_gate

SUMMARY = "gates_summary"
FIT = "gates_fit"
BEGIN, END = "<!-- gates:begin (steer-trace gates report) -->", "<!-- gates:end -->"


def _fit_line(results_root: Path, model: str) -> str:
    path = results_root / FIT / f"{model}-code.safetensors"
    if not path.exists():
        return f"(no gate file {path})"
    gate, meta = load_gate(path)
    lo, hi = meta["heldout_f1_ci"]
    return (f"gate `{path.name}`: cos(mean over the prompt of layer {gate.layer}'s output, c) > {gate.threshold:.4f}; "
            f"fit F1 {meta['fit_f1']:.3f} on {meta['n_fit']} prompts, held-out F1 {meta['heldout_f1']:.3f} "
            f"[{lo:.3f}, {hi:.3f}] on {meta['n_heldout']} (data/conditions/{meta['condition_data']})")


def _ci(row: dict, name: str, signed: bool = True) -> str:
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f"{fmt.format(row[name])} [{fmt.format(row[name + '_lo'])}, {fmt.format(row[name + '_hi'])}]"


def table_lines(summary: pl.DataFrame) -> list[str]:
    lines = ["| model, layer, c | documents | gate opened | unsteered % | steered % | gated % | steered − unsteered "
             "(points) | gated − steered (points) | gated relative to unsteered % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in summary.sort(["model", "coef", "target"]).iter_rows(named=True):
        role = "target" if r["target"] else "non-target"
        lines.append(f"| {r['model']}, L{r['layer']}, c = {r['coef']:g} | {r['domain']} ({role}): {r['docs']} docs, "
                     f"{r['tokens']:,} tokens | {r['gate_opened']} / {r['docs']} | {r['acc_unsteered']:.1f} | "
                     f"{r['acc_steered']:.1f} | {r['acc_gated']:.1f} | {_ci(r, 'side_effect')} | "
                     f"{_ci(r, 'gate_gain')} | {_ci(r, 'rel_gated', False)} |")
    return lines


def _opened(summary: pl.DataFrame, model: str) -> str:
    rows = summary.filter((pl.col("model") == model) & (pl.col("coef") == summary["coef"].min()))
    return " and ".join(f"{r['gate_opened']} of {r['docs']} {r['domain']} documents" for r in
                        rows.sort("target", descending=True).iter_rows(named=True))


def _times(summary: pl.DataFrame, model: str) -> str:
    rows = summary.filter((pl.col("model") == model) & pl.col("target")).sort("coef")
    first = rows.row(0, named=True)
    parts = [f"unsteered {first['seconds_unsteered']:.0f} s"]
    parts += [f"c = {r['coef']:g} steered {r['seconds_steered']:.0f} s, gated {r['seconds_gated']:.0f} s"
              for r in rows.iter_rows(named=True)]
    return "; ".join(parts)


def summaries(results_root: Path) -> pl.DataFrame | None:
    files = sorted((results_root / SUMMARY).glob("*.csv"))
    return pl.concat([pl.read_csv(f) for f in files], how="diagonal_relaxed") if files else None


def block(results_root: Path) -> str:
    summary = summaries(results_root)
    if summary is None:
        return "(no gates results yet: run `steer-trace gates experiment`)"
    lines = table_lines(summary)
    lines.append("")
    for model in summary["model"].unique(maintain_order=True):
        r = summary.filter(pl.col("model") == model).row(0, named=True)
        lines.append(f"- {model}: {_fit_line(results_root, model)}. On these documents it opened for "
                     f"{_opened(summary, model)}: F1 {r['gate_f1']:.3f} [{r['gate_f1_lo']:.3f}, {r['gate_f1_hi']:.3f}] "
                     f"(precision {r['gate_precision']:.3f}, recall {r['gate_recall']:.3f}). Wall time per arm "
                     f"(both domains, on the shared 2-core machine): {_times(summary, model)}.")
    return "\n".join(lines)


def report(results_root: Path, out_dir: Path) -> list[Path]:
    """docs page: the table and the gate fits."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "gates.md"
    path.write_text(PAGE.format(block=block(results_root)))
    return [path]


def update_readme(readme: Path, results_root: Path) -> bool:
    """Replace the README's gates block (between the markers); True when it changed."""
    text = readme.read_text()
    if BEGIN not in text:
        return False
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{block(results_root)}\n{END}",
                 text, flags=re.S)
    if new != text:
        readme.write_text(new)
    return new != text


PAGE = """# Gated steering: the side effect a gate removes, the target effect it keeps

Written by `steer-trace gates report` from `results/gates_summary/*.csv` (`steer-trace gates experiment`) and the
gate files in `results/gates_fit/` (`steer-trace gates fit`); no number here is typed by hand.

Setting: the skills vector text − code (`results/vectors/<model>/skills_text_minus_code.safetensors`, read from
the shared data's vector documents) added at one layer makes the model worse at code, its target, and at plain
text, its side effect. A projection gate (CAST) fitted on `data/conditions/code_vs_prose.jsonl` decides per
document, from the mean of layer Lc's output over the document's tokens, whether the vector applies.
Documents: the held-out skills documents (WikiText-2 test sections; HumanEval-X in C++, Go, Java, JavaScript and
Rust), never used for the vector or the gate, cut to the stated tokens. Top-1 next-token accuracy, token-weighted;
intervals: 95% document bootstrap, paired (the same resampled documents in both arms). The gate reads each whole
document (one decision per document, so early positions' steering depends on later tokens).

{block}
"""
