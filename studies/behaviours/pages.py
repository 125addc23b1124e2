"""Named values for the behaviours docs page, computed from the committed behaviour tables.

What it is for: `pages(results_root)` gives every number the page cites (and the report's tables whole), so
the page is rendered from the tables (studies/pages.py) and cannot drift from them.

Pattern: the same sections and statistics as `behaviours report`, one key per number:
`<model>.<mode>.L<layer>.<behaviour>.<add|sub>.<field>` for single steering (fields: unsteered, steered,
shift, shift_p, random, vs_random, vs_p, q, detectable, verdict, spread_n, spread_range, spread_mean,
spread_sd, spread_z, spread_p, spread_verdict), `<model>.<mode>.simul.c<coef>.<behaviour>.<field>`,
`<model>.<mode>.comb.L<layer>.<how>.<behaviour>.<dir>.<field>`, `<model>.<mode>.inter.L<layer>.<vector>.<behaviour>.
<dir>.<field>`, `<model>.pre.<behaviour>[.chance|.n]`, `<model>.quality.<source>.L<layer>.<behaviour>.<field>`,
and `<model>.<mode>.table.<section>` for the report's tables. <model>: smollm2, qwen; <mode>: content,
letter, plain (the paper's plain mean), each + `_seeded` for a seeded-split run (survival-instinct).

Gotchas: only the paper profile's runs (the published ones) are read. Ranges (`...range`) are "lo–hi" of
the rounded values, as the prose quotes them.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from steer_trace.cache import load_tables
from . import report
from .random_spread import spread_rows
from .scoring import row_shift

PROFILE = "paper"
MODELS = {"smollm2-135m": "smollm2", "qwen2.5-coder-0.5b": "qwen", "qwen2.5-coder-1.5b": "qwen15"}
DIRECTIONS = {"add": "add", "subtract": "sub", "default": "default"}


def _coef(row: dict) -> float:
    """A row's steering coefficient, whichever name its table gives it."""
    return row["coef"] if "coef" in row else row["multiplier"]


def _coef_column(frame: pl.DataFrame) -> str:
    return "coef" if "coef" in frame.columns else "multiplier"


def model_key(model: str) -> str:
    return MODELS.get(model, Path(model).name.replace(".", "_").replace("/", "_"))


def mode_key(variant: dict) -> str:
    mode = "plain" if variant["plain_mean"] else variant["scoring"]
    return mode + ("_seeded" if variant["split_rule"] == "seeded" else "")


def _f(value, digits: int = 3, sign: bool = False) -> str:
    return report._f(value, digits, sign)


def _span(values, digits: int = 2, sign: bool = False) -> str:
    """'lo–hi' of the values, rounded as quoted ('0.06' when both ends round alike)."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "—"
    lo, hi = _f(min(values), digits, sign), _f(max(values), digits, sign)
    return lo if lo == hi else f"{lo}–{hi}"


def _entry_values(prefix: str, e: dict, default: dict | None = None) -> dict[str, str]:
    r = e["row"]
    out = {f"{prefix}.coef": f"{_coef(r):+g}", f"{prefix}.steered": _f(r["p_matching_balanced"]),
           f"{prefix}.shift": report._interval(e["shift"]), f"{prefix}.shift_p": report._p(e["shift"].p),
           f"{prefix}.detectable": _f(e["shift"].mde, 2), f"{prefix}.n": str(e["shift"].n),
           f"{prefix}.verdict": e["verdict"], f"{prefix}.q": report._q(e)}
    for name, row in (("", r), ("random_", e.get("random_row"))):  # does the model still answer A or B?
        if row is not None and "answer_mass" in row:
            out[f"{prefix}.{name}mass"] = _f(row["answer_mass"], 2)  # p(A) + p(B), mean over prompts
            out[f"{prefix}.{name}top"] = _f(row.get("top_answer_share"), 2)  # share of the commonest greedy answer
    if default is not None:
        out[f"{prefix}.unsteered"] = _f(default["p_matching_balanced"])
    if e["random"] is not None:
        out[f"{prefix}.random"] = report._interval(e["random"])
    if e["against"] is not None:
        out[f"{prefix}.vs_random"] = report._interval(e["against"])
        out[f"{prefix}.vs_p"] = report._p(e["against"].p)
    return out


def _spread_values(prefix: str, r: dict) -> dict[str, str]:
    return {f"{prefix}.spread_n": str(r["n_draws"]),
            f"{prefix}.spread_range": f"{_f(r['min'], sign=True)} … {_f(r['max'], sign=True)}",
            f"{prefix}.spread_mean": _f(r["mean"], sign=True), f"{prefix}.spread_sd": _f(r["sd"], 2),
            f"{prefix}.spread_z": _f(r["z"], 1, sign=True), f"{prefix}.spread_p": report._p(r["p"]),
            f"{prefix}.spread_verdict": r["verdict"]}


def _verdict_counts(prefix: str, found: list[tuple]) -> dict:
    """How the testable rows of a section came out: `<prefix>.n_testable`, `.n_moves` / `.moves` (the rows, e.g.
    'wealth_seeking L13 ×+0.1'), `.n_wrong` / `.wrong`, `.n_no_verdict`, `.n_other` (no effect, control only,
    not after FDR). found: (layer, behaviour or 'vector on behaviour', entry)."""
    testable = [(L, b, e) for L, b, e in found if not e["verdict"].startswith("not testable")]

    def named(rows):
        return ", ".join(f"{b} L{L} ×{_coef(e['row']):+g}" for L, b, e in rows) or "none"

    moves = [f for f in testable if f[2]["verdict"] == "moves"]
    wrong = [f for f in testable if f[2]["verdict"] == "moves, wrong way"]
    none = [f for f in testable if f[2]["verdict"].startswith("no verdict")]
    return {f"{prefix}.n_testable": str(len(testable)), f"{prefix}.n_moves": str(len(moves)),
            f"{prefix}.moves": named(moves), f"{prefix}.n_wrong": str(len(wrong)), f"{prefix}.wrong": named(wrong),
            f"{prefix}.n_no_verdict": str(len(none)), f"{prefix}.no_verdict": named(none),
            f"{prefix}.n_other": str(len(testable) - len(moves) - len(wrong) - len(none))}


def _single(key: str, part: pl.DataFrame, pre: dict, letter: bool, pools: list, relative: bool) -> dict:
    out = {}
    found = report._scored(part, pre, letter, lambda b: [(b, "random")], list(report.paper_layers(part["layer"])))
    for L, behaviour, _, default, e in found:
        out[f"{key}.L{L}.{behaviour}.unsteered"] = _f(default["p_matching_balanced"])
        out[f"{key}.L{L}.{behaviour}.unsteered_top"] = _f(default.get("top_answer_share"), 2)
        prefix = f"{key}.L{L}.{behaviour}.{DIRECTIONS[e['row']['direction']]}"
        out.update(_entry_values(prefix, e, default))
        # the same values named with the coefficient too (x1, x0.4): unambiguous where a run has two at a layer
        out.update(_entry_values(f"{prefix}.x{abs(_coef(e['row'])):g}", e, default))
    out.update(_verdict_counts(f"{key}.single", [(L, b, e) for L, b, _, _, e in found]))
    shifts = [e["shift"] for *_, e in found]
    out[f"{key}.single.max_abs_shift"] = _f(max((abs(s.shift) for s in shifts), default=math.nan), 3)
    out[f"{key}.single.detectable_range"] = _span([s.mde for s in shifts])
    against = [e["against"].shift for *_, e in found if e["against"] is not None]
    out[f"{key}.single.max_abs_vs_random"] = _f(max((abs(a) for a in against), default=math.nan), 3)
    randoms = [e["random"].shift for *_, e in found if e["random"] is not None]
    out[f"{key}.single.max_abs_random"] = _f(max((abs(a) for a in randoms), default=math.nan), 3)
    out[f"{key}.table.single"] = "\n".join(report.single_section(part, pre, letter)).rstrip()
    for r in spread_rows(pools, relative):
        if r["n_draws"]:
            prefix = f"{key}.L{r['layer']}.{r['behaviour']}.{DIRECTIONS[r['direction']]}"
            out.update(_spread_values(prefix, r))
            out.update(_spread_values(f"{prefix}.x{abs(_coef(r)):g}", r))
    out[f"{key}.table.spread"] = "\n".join(report.spread_section(pools, relative)).rstrip()
    return out


def _simultaneous(key: str, part: pl.DataFrame, tax: pl.DataFrame | None) -> dict:
    out = {}
    names = report.behaviours_in(part)
    column = _coef_column(part)
    for c in sorted(part.filter(pl.col("vector").is_in(["simultaneous", "random"]))[column].unique()):
        for name in names:
            default = report._row_of(part, behaviour=name, direction="default")
            prefix = f"{key}.simul.c{c:+g}.{name}"
            vec = report._row_of(part, behaviour=name, vector="simultaneous", **{column: c})
            rnd = report._row_of(part, behaviour=name, vector="random", **{column: c})
            if default is None:
                continue
            if vec is not None:
                s = row_shift(vec, default)
                out[f"{prefix}.shift"] = report._interval(s)
                out[f"{prefix}.steered"] = _f(vec["p_matching_balanced"])
                out[f"{prefix}.detectable"] = _f(s.mde, 2)
                if "faulty" in vec:
                    out[f"{prefix}.faulty"] = _f(vec["faulty"], 2)
                for field, name_in_row in (("mass", "answer_mass"), ("top", "top_answer_share")):
                    if vec.get(name_in_row) is not None:
                        out[f"{prefix}.{field}"] = _f(vec[name_in_row], 2)
            if rnd is not None:
                out[f"{prefix}.random"] = report._interval(row_shift(rnd, default))
                if vec is not None:
                    out[f"{prefix}.vs_random"] = report._interval(row_shift(vec, rnd))
        if tax is not None:
            t = report._row_of(tax, **{_coef_column(tax): c})
            if t is not None:
                out[f"{key}.simul.c{c:+g}.accuracy"] = _f(t["accuracy"])
                out[f"{key}.simul.c{c:+g}.accuracy_ci"] = f"[{_f(t['accuracy_lo'])}, {_f(t['accuracy_hi'])}]"
    for name in names:
        default = report._row_of(part, behaviour=name, direction="default")
        if default is not None:
            out[f"{key}.simul.unsteered.{name}"] = _f(default["p_matching_balanced"])
    shifts = [row_shift(r, report._row_of(part, behaviour=r["behaviour"], direction="default")).shift
              for r in part.filter(pl.col("vector") == "simultaneous").iter_rows(named=True)]
    out[f"{key}.simul.n_coefs"] = str(part.filter(pl.col("vector") == "simultaneous")[column].n_unique())
    out[f"{key}.simul.max_abs_shift"] = _f(max((abs(s) for s in shifts), default=math.nan), 3)
    out[f"{key}.table.simultaneous"] = "\n".join(report.simultaneous_section(part, tax)).rstrip()
    return out


def _combined(key: str, part: pl.DataFrame, pre: dict, letter: bool, pools: list, relative: bool) -> dict:
    out = {}
    found = report._scored(part, pre, letter, lambda b: [(how, f"random:{how}") for how in report.COMBINATIONS])
    for L, behaviour, how, _, e in found:
        out.update(_entry_values(f"{key}.comb.L{L}.{how}.{behaviour}.{DIRECTIONS[e['row']['direction']]}", e))
    for L in {f[0] for f in found}:
        for how in report.COMBINATIONS:
            out.update(_verdict_counts(f"{key}.comb.L{L}.{how}",
                                       [(f_L, b, e) for f_L, b, h, _, e in found if f_L == L and h == how]))
        shifts = [e["shift"] for f_L, *_, e in found if f_L == L]
        out[f"{key}.comb.L{L}.max_abs_shift"] = _f(max(abs(s.shift) for s in shifts), 3)
        out[f"{key}.comb.L{L}.detectable_range"] = _span([s.mde for s in shifts])
    out[f"{key}.table.combined"] = "\n".join(report.combined_section(part, pre, letter)).rstrip()
    if relative:
        for r in spread_rows(pools, True, report.COMBINATIONS):
            if r["n_draws"]:
                out.update(_spread_values(f"{key}.comb.L{r['layer']}.{r['vector']}.{r['behaviour']}."
                                          f"{DIRECTIONS[r['direction']]}", r))
        out[f"{key}.table.combined_spread"] = "\n".join(
            report.spread_section(pools, True, report.COMBINATIONS)).rstrip()
    return out


def _interference(key: str, part: pl.DataFrame, pre: dict, letter: bool) -> dict:
    out = {}
    vectors = sorted(v for v in set(part["vector"].to_list()) if v != "none" and not v.startswith("random"))
    found = report._scored(part, pre, letter, lambda b: [(v, f"random:{v}") for v in vectors])
    for L, behaviour, vector, _, e in found:
        out.update(_entry_values(f"{key}.inter.L{L}.{vector}.{behaviour}.{DIRECTIONS[e['row']['direction']]}", e))
    randoms = [e["random"].shift for *_, e in found if e["random"] is not None]
    if randoms:
        out[f"{key}.inter.random_range"] = f"{_f(min(randoms), sign=True)} … {_f(max(randoms), sign=True)}"
    out[f"{key}.table.interference"] = "\n".join(report.interference_section(part, pre, letter)).rstrip()
    return out


def _quality(root: Path, model: str, mkey: str) -> dict:
    out = {}
    frame = load_tables("behaviours_quality", root, config_columns=("estimator",))
    if frame is None:
        return out
    if "estimator" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("estimator"))
    frame = frame.filter((pl.col("model") == model) & (pl.col("profile") == PROFILE))
    for source, built in (("content", "plain mean"), ("letter", "group-balanced")):
        part = frame.filter((pl.col("vector_source") == source)
                            & (pl.col("estimator").fill_null("plain mean") == built))
        part = part.unique(["behaviour", "layer", "n_pairs"], keep="last").sort("behaviour", "layer")
        for r in part.iter_rows(named=True):
            prefix = f"{mkey}.quality.{source}.L{r['layer']}.{r['behaviour']}"
            out.update({f"{prefix}.norm": f"{r['norm']:.2f}", f"{prefix}.norm_null95": f"{r['norm_null_95']:.2f}",
                        f"{prefix}.norm_p": report._p(r["norm_p"]), f"{prefix}.reliability": f"{r['reliability']:.2f}",
                        f"{prefix}.reliability_null95": f"{r['reliability_null_95']:.2f}",
                        f"{prefix}.reliability_p": report._p(r["reliability_p"]),
                        f"{prefix}.auc": f"{r['heldout_auc']:.2f}", f"{prefix}.pairs": str(r["n_pairs"])})
        behaviours = sorted(set(part["behaviour"].to_list()))
        if behaviours:
            out[f"{mkey}.quality.{source}.table"] = "\n".join(
                report.quality_section(root, model, PROFILE, source, behaviours, False)).rstrip()
    return out


def _precondition(pre: dict, mkey: str) -> dict:
    out = {}
    for behaviour, r in pre.items():
        out[f"{mkey}.pre.{behaviour}"] = _f(r["order_consistency"], 2)
        out[f"{mkey}.pre.{behaviour}.chance"] = _f(r["consistency_chance"], 2)
        out[f"{mkey}.pre.{behaviour}.n"] = str(r["n_questions"])
        lo, hi, p = report.consistency_interval(r)
        out[f"{mkey}.pre.{behaviour}.ci"] = f"{_f(lo, 2)}–{_f(hi, 2)}"
        out[f"{mkey}.pre.{behaviour}.p"] = report._p(p)
        out[f"{mkey}.pre.{behaviour}.passes"] = report.precondition_verdict(r)
        out[f"{mkey}.pre.{behaviour}.top_share"] = _f(r.get("top_answer_share"), 2)
    if pre:
        out[f"{mkey}.pre.range"] = _span([r["order_consistency"] for r in pre.values()])
        for verdict in ("passes", "undecided", "at chance"):
            named = [b.replace("_", "-") for b, r in pre.items() if report.precondition_verdict(r) == verdict]
            out[f"{mkey}.pre.{verdict.replace(' ', '_')}"] = ", ".join(named) or "none"
    return out


def _consistency_across_runs(frames: dict, mkey: str) -> dict:
    """`<model>.pre.<behaviour>.runs_range`: the order consistency of the unsteered test rows of every letter-
    scored run ('lo–hi'): the same prompts scored in other batches (in bfloat16 near-ties can flip)."""
    values: dict[str, list[float]] = {}
    for frame in frames.values():
        if "order_consistency" not in frame.columns:
            continue
        rows = frame.filter((pl.col("direction") == "default") & (pl.col("scoring") == "letter")
                            & (pl.col("split") == "test") & pl.col("order_consistency").is_not_null())
        for r in rows.iter_rows(named=True):
            values.setdefault(r["behaviour"], []).append(r["order_consistency"])
    return {f"{mkey}.pre.{b}.runs_range": _span(v) for b, v in values.items()}


def model_values(root: Path, model: str) -> dict[str, str]:
    """Every value of one model's published (paper-profile) runs."""
    mkey = model_key(model)
    frames = {}
    for experiment in ("behaviours_single", "behaviours_simultaneous", "behaviours_combined",
                       "behaviours_interference"):
        frame = report._selected(root, experiment, PROFILE, None)
        if frame is not None and frame.filter(pl.col("model") == model).height:
            frames[experiment] = frame.filter(pl.col("model") == model)
    out: dict[str, str] = {}
    tax_table = load_tables("behaviours_tax", root)

    def variants(experiment: str):
        frame = frames.get(experiment)
        if frame is None:
            return []
        return [(dict(zip(report.VARIANT, values)), part)
                for values, part in frame.group_by(list(report.VARIANT), maintain_order=True)]

    def same(experiment: str, variant: dict):
        """(experiment, table) pairs of the variant: the random directions' pool is tagged by experiment."""
        return [(experiment, part) for v, part in variants(experiment) if v == variant]

    for split in ("paper", "seeded"):
        pre = report.precondition(root, model, PROFILE, split)
        out.update(_precondition(pre, mkey + ("" if split == "paper" else "_seeded")))
    pre_of = {split: report.precondition(root, model, PROFILE, split) for split in ("paper", "seeded")}
    for variant, part in variants("behaviours_single"):
        key, letter = f"{mkey}.{mode_key(variant)}", variant["scoring"] == "letter"
        others = same("behaviours_combined", variant) + same("behaviours_interference", variant)
        out.update(_single(key, part, pre_of[variant["split_rule"]], letter, [("behaviours_single", part), *others],
                           bool(variant["relative"])))
    for variant, part in variants("behaviours_simultaneous"):
        tax = None
        if tax_table is not None and "vector" in tax_table.columns:
            tax = report._with_defaults(tax_table).filter(
                (pl.col("model") == model) & (pl.col("profile") == PROFILE) & (pl.col("vector") == "simultaneous")
                & pl.all_horizontal([pl.col(c) == variant[c] for c in ("split_rule", "relative", "vector_source",
                                                                        "plain_mean")]))
            tax = tax if tax.height else None
        out.update(_simultaneous(f"{mkey}.{mode_key(variant)}", part, tax))
    for variant, part in variants("behaviours_combined"):
        others = same("behaviours_single", variant) + same("behaviours_interference", variant)
        out.update(_combined(f"{mkey}.{mode_key(variant)}", part, pre_of[variant["split_rule"]],
                             variant["scoring"] == "letter", [("behaviours_combined", part), *others],
                             bool(variant["relative"])))
    for variant, part in variants("behaviours_interference"):
        out.update(_interference(f"{mkey}.{mode_key(variant)}", part, pre_of[variant["split_rule"]],
                                 variant["scoring"] == "letter"))
    out.update(_quality(root, model, mkey))
    out.update(_consistency_across_runs(frames, mkey))
    return out


def paper_values() -> dict[str, str]:
    """The paper's matching scores (Llama-2-7B-chat; shared/reference/paper_notes.md), as the report uses them."""
    out = {}
    for layer, rows in report.PAPER_SINGLE.items():
        for behaviour, (default, add, subtract) in rows.items():
            out[f"paper.L{layer}.{behaviour}"] = f"{default:.2f} → {add:.2f} / {subtract:.2f}"
    for c, scores in report.PAPER_SIMULTANEOUS.items():
        for behaviour, value in zip(report.BEHAVIOURS, scores):
            out[f"paper.simul.c{c:+g}.{behaviour}"] = f"{value:.2f}"
    return out


def pages(results_root: Path) -> dict[str, str]:
    """Named values for docs/src/behaviours.md (and the README), from the committed tables."""
    root = Path(results_root)
    out = paper_values()
    models = set()
    for experiment in ("behaviours_precondition", "behaviours_single", "behaviours_simultaneous"):
        frame = report._selected(root, experiment, PROFILE, None)
        if frame is not None:
            models |= set(frame["model"].to_list())
    for model in sorted(models):
        out.update(model_values(root, model))
    return out
