"""Tables of the behaviour experiments from the cached results, each finding with its evidence.

`write(root)` reads the cached behaviours tables (no model) and writes per model `<out>/<model>.md`:
the precondition, vector quality, single steering, simultaneous steering (with the alignment tax),
combined vectors and interference, one section per protocol variant (scoring, vector source,
coefs, plain mean, orders, slices, method, split rule: rows of two variants are never paired).
Every steered row carries its paired shift against unsteered, the same for the equal-norm random
direction, the vector-minus-random paired difference, the detectable shift, and a verdict:

- "not testable": letter scoring where the precondition fails (the model answers by position);
- "no verdict": the steered model no longer answers — its answer mass is under `MASS_FLOOR` of the
  unsteered mass, or (letter scoring, the paper's stop rule) its greedy answers collapsed onto one option
  where the unsteered ones did not;
- "too few questions": fewer than `stats.MIN_PER_LABEL` questions in some answer label: the shift is
  shown, no interval, p-value or verdict;
- "moves": the shift against unsteered and the vector-minus-random difference both exclude 0 in
  the sign the steering direction asks for; "moves, wrong way": both exclude 0 in the other sign;
  "beats the control only" / "trails the control only": the difference excludes 0 (the asked sign /
  the other), the vector's own shift does not (the random direction moved, not the vector);
- after the Benjamini-Hochberg correction over a section, a "moves" (either way) whose q exceeds 0.05
  says "not after FDR";
- "no effect beyond control": otherwise, with the detectable shift stated.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from steer_trace.cache import load_tables, results_root
from steer_trace.metrics import MASS_FLOOR, answers_kept, collapsed_by_steering
from steer_trace.stats import MIN_PER_LABEL, bh_qvalues
from .data import BEHAVIOURS
from .profiles import COMBINATIONS
from .scoring import BALANCE_NOTE, row_shift
from ..common.markdown import markdown_table
from .random_spread import spread_rows

# the paper's test matching scores, Llama-2-7B-chat (shared/reference/paper_notes.md): default / add / subtract
PAPER_SINGLE = {
    10: {"myopic": (0.283, 0.510, 0.250), "wealth_seeking": (0.495, 0.621, 0.228),
         "sycophancy": (0.583, 0.593, 0.557), "agreeableness": (0.923, 0.980, 0.570),
         "anti_immigration": (0.167, 0.540, 0.050)},
    15: {"myopic": (0.283, 0.863, 0.173), "wealth_seeking": (0.495, 0.561, 0.365),
         "sycophancy": (0.583, 0.583, 0.590), "agreeableness": (0.923, 0.970, 0.620),
         "anti_immigration": (0.167, 0.373, 0.047)},
}
PAPER_SIMULTANEOUS = {  # coefficient -> myopia, wealth, sycophancy, agreeableness, anti-immigration
    0.0: (0.277, 0.509, 0.587, 0.910, 0.187), 0.5: (0.867, 0.723, 0.557, 0.943, 0.083),
    -0.5: (0.123, 0.232, 0.623, 0.597, 0.473),
}
VARIANT_DEFAULTS = {"scoring": "letter", "vector_source": "letter", "relative": False, "plain_mean": False,
                    "orders": "both", "slices": "plain", "method": "mean", "split_rule": "seeded"}
VARIANT = tuple(VARIANT_DEFAULTS)


def _f(value, digits: int = 3, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def too_few_text(shift) -> str:
    return f"too few questions ({shift.per_label} in a label; a verdict needs {MIN_PER_LABEL} per label)"


def no_answer_text(row: dict, default: dict) -> str:
    return (f"no verdict: the model no longer answers (answer mass {_f(row['answer_mass'], 2)}, unsteered "
            f"{_f(default['answer_mass'], 2)}; a verdict needs {MASS_FLOOR:g} of it)")


def _interval(shift) -> str:
    if shift.too_few:
        return f"{_f(shift.shift, sign=True)} (too few questions)"
    return f"{_f(shift.shift, sign=True)} [{_f(shift.lo, sign=True)}, {_f(shift.hi, sign=True)}]"


def _p(value: float) -> str:
    return "—" if math.isnan(value) else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def _with_defaults(frame: pl.DataFrame) -> pl.DataFrame:
    for column, value in VARIANT_DEFAULTS.items():
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(value).alias(column))
        else:
            frame = frame.with_columns(pl.col(column).fill_null(value))
    return frame


def _selected(root: Path, experiment: str, profile: str, split: str | None) -> pl.DataFrame | None:
    """The experiment's rows with per-question scores, of one profile (and split rule, unless None)."""
    frame = load_tables(experiment, root)
    if frame is None or "q_p_matching" not in frame.columns:
        return None
    frame = _with_defaults(frame).filter((pl.col("profile") == profile) & pl.col("q_p_matching").is_not_null())
    if split is not None:
        frame = frame.filter(pl.col("split_rule") == split)
    # one row per point: two runs that share points (e.g. layers 9,14 and 14 alone) list them once
    key = [c for c in ("model", "profile", "prompt_style", *VARIANT, "behaviour", "split", "vector", "layer", "layers",
                       "direction", "coef") if c in frame.columns]
    frame = frame.unique(subset=key, keep="first", maintain_order=True)
    return frame if frame.height else None


def _mode_name(variant: dict) -> str:
    """e.g. 'letter scoring, letter vectors, coefficients relative to the residual norm; the paper's split'."""
    name = f"{variant['scoring']} scoring, {variant['vector_source']} vectors" + (
        ", coefficients relative to the residual norm" if variant["relative"] else ", absolute coefficients")
    extras = [text for column, value, text in (
        ("plain_mean", True, "the paper's plain mean over pairs"),
        ("orders", "given", "questions in their given order"),
        ("slices", "plain", "test questions as split (not label-balanced)")) if variant.get(column) == value]
    if variant.get("method", "mean") != "mean":
        extras.append(f"method {variant['method']}")
    extras.append("the paper's split" if variant.get("split_rule") == "paper" else "seeded split")
    return name + "; " + ", ".join(extras)


def behaviours_in(frame: pl.DataFrame) -> list[str]:
    """The paper's five first (its order), then any other behaviour (e.g. a --dataset file) by name."""
    present = set(frame["behaviour"].to_list())
    return [b for b in BEHAVIOURS if b in present] + sorted(present - set(BEHAVIOURS))


def precondition(root: Path, model: str, profile: str, split: str | None) -> dict[str, dict]:
    """behaviour -> the unsteered letter scores' order consistency (from `behaviours diagnose` or any
    letter-scored table that asked every rotation). A property of the model and the questions, so it
    applies to every variant, the given-order runs included."""
    out: dict[str, dict] = {}
    for experiment in ("behaviours_precondition", "behaviours_single", "behaviours_simultaneous"):
        frame = _selected(root, experiment, profile, split)
        if frame is None or "order_consistency" not in frame.columns:
            continue
        base = frame.filter((pl.col("model") == model) & (pl.col("scoring") == "letter")
                            & (pl.col("direction") == "default") & (pl.col("split") == "test")
                            & pl.col("order_consistency").is_not_nan())
        for r in base.iter_rows(named=True):
            out.setdefault(r["behaviour"], r)
    return out


def passes(row: dict) -> bool | None:
    """Order consistency above chance by more than two binomial standard errors (None: not measured)."""
    consistent, chance, n = row.get("order_consistency"), row.get("consistency_chance"), row.get("n_questions")
    if consistent is None or chance is None or math.isnan(consistent) or not n:
        return None
    return consistent > chance + 2 * math.sqrt(chance * (1 - chance) / n)


def precondition_verdict(row: dict) -> str:
    """'passes' (above chance by two binomial standard errors, `passes`), 'undecided' (by one), 'at chance', or
    'not measured': the words `behaviours precondition` prints."""
    if passes(row) is None:
        return "not measured"
    if passes(row):
        return "passes"
    consistent, chance, n = row["order_consistency"], row["consistency_chance"], row["n_questions"]
    return "undecided" if consistent > chance + math.sqrt(chance * (1 - chance) / n) else "at chance"


def consistency_interval(row: dict) -> tuple[float, float, float]:
    """(95% Wilson interval low, high, one-sided exact binomial p of the order consistency against chance) from
    k = consistency x n of n questions; NaNs where not measured. Chance is the questions' mean (0.50 for every
    two-option set; with mixed option counts the binomial at the mean chance is an approximation)."""
    consistent, chance, n = row.get("order_consistency"), row.get("consistency_chance"), row.get("n_questions")
    if consistent is None or chance is None or math.isnan(consistent) or not n:
        return math.nan, math.nan, math.nan
    k, z = round(consistent * n), 1.959964
    centre, half = (consistent + z * z / (2 * n)) / (1 + z * z / n), (
        z * math.sqrt(consistent * (1 - consistent) / n + z * z / (4 * n * n)) / (1 + z * z / n))
    p = sum(math.comb(n, i) * chance ** i * (1 - chance) ** (n - i) for i in range(k, n + 1))
    return max(0.0, centre - half), min(1.0, centre + half), min(1.0, p)


def _sign(shift) -> int:
    """+1 / -1 when the interval excludes 0 on that side, else 0."""
    return 1 if shift.lo > 0 else (-1 if shift.hi < 0 else 0)


def verdict(direction: str, against_random, testable: bool | None, shift=None) -> str:
    """'moves' needs the shift against unsteered and against the random control both clear of 0
    the way the direction asks (add: up, subtract: down)."""
    if testable is False:
        return "not testable (answers by position)"
    for s in (shift, against_random):
        if s is not None and s.too_few:
            return too_few_text(s)
    wanted = 1 if direction == "add" else -1
    beyond, own = _sign(against_random), (_sign(shift) if shift is not None else _sign(against_random))
    if beyond == wanted and own == wanted:
        return "moves"
    if beyond == -wanted and own == -wanted:
        return "moves, wrong way"
    if beyond == wanted:
        return "beats the control only (own shift not clear of 0)"
    if beyond == -wanted:
        return "trails the control only (own shift not clear of 0)"
    return f"no effect beyond control (detectable {_f(against_random.mde, 2)})"


def _row_of(frame: pl.DataFrame, **where) -> dict | None:
    for column, value in where.items():
        frame = frame.filter(pl.col(column) == value)
    return frame.row(0, named=True) if frame.height else None


def steered_rows(frame: pl.DataFrame, behaviour: str, vector: str, control: str, layer: int,
                 testable: bool | None, default: dict) -> list[dict]:
    """Every steered row of `vector` on `behaviour` at `layer`, with its control row and statistics."""
    out = []
    rows = frame.filter((pl.col("behaviour") == behaviour) & (pl.col("vector") == vector) & (pl.col("layer") == layer))
    for r in rows.sort(pl.col("coef")).iter_rows(named=True):
        random = _row_of(frame, behaviour=behaviour, vector=control, layer=layer, coef=r["coef"])
        shift = row_shift(r, default)
        entry = {"row": r, "shift": shift, "random": None, "against": None, "random_row": None}
        if random is not None and random["q_id"] == r["q_id"]:
            entry["random"], entry["random_row"] = row_shift(random, default), random
            entry["against"] = row_shift(r, random)
        entry["verdict"] = verdict(r["direction"], entry["against"], testable, shift) if entry["against"] else \
            ("not testable (answers by position)" if testable is False else "no control scored")
        if testable is not False and not answers_kept(r, default):
            entry["verdict"] = no_answer_text(r, default)
        elif testable is not False and r.get("scoring") == "letter" and collapsed_by_steering(r, default):
            # letter scoring only (the paper's stop rule): a collapse onto one letter is an answer by position;
            # content scoring's p(matching) is not the greedy choice, and its balanced mean is what is judged
            entry["verdict"] = (f"no verdict: the answers collapsed onto one option ({_f(r['top_answer_share'], 2)} "
                                "of the prompts)")
        out.append(entry)
    return out


def with_fdr(entries: list[dict], alpha: float = 0.05) -> list[dict]:
    """Benjamini-Hochberg over one section's rows: a row's evidence is max(p of its shift, p of vector −
    random) (both must reject for 'moves', either way); a 'moves' whose q exceeds alpha says so."""
    q = bh_qvalues([max(e["shift"].p, e["against"].p) if e["against"] else float("nan") for e in entries])
    for e, value in zip(entries, q):
        e["q"] = value
        if e["verdict"] in ("moves", "moves, wrong way") and not value <= alpha:
            e["verdict"] = f"{e['verdict']} at p < 0.05, not after FDR (q {value:.2f})"
    return entries


def _q(entry: dict) -> str:
    value = entry.get("q", float("nan"))
    return "—" if math.isnan(value) else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def paper_layers(layers) -> dict[int, int | None]:
    """Model layer -> the paper's layer it stands for: with two report layers, the lower is the
    paper's 10 and the upper its 15 (same relative depth); otherwise unknown."""
    layers = sorted(L for L in set(layers) if L >= 0)
    return dict(zip(layers, (10, 15))) if len(layers) == 2 else {L: None for L in layers}


def _scored(frame: pl.DataFrame, pre: dict, letter: bool, pairs, layers=None) -> list[tuple]:
    """(layer, behaviour, vector, unsteered row, entry) for every steered row of the (vector, control) pairs
    `pairs(behaviour)` names, at `layers` (default: every layer in the frame); FDR over all of them."""
    found = []
    for L in layers if layers is not None else sorted(x for x in frame["layer"].unique().to_list() if x >= 0):
        for behaviour in behaviours_in(frame):
            default = _row_of(frame, behaviour=behaviour, direction="default")
            if default is None:
                continue
            testable = passes(pre[behaviour]) if letter and behaviour in pre else None
            for vector, control in pairs(behaviour):
                found += [(L, behaviour, vector, default, e)
                          for e in steered_rows(frame, behaviour, vector, control, L, testable, default)]
    with_fdr([f[-1] for f in found])
    return found


def spread_section(pools: list[tuple[str, pl.DataFrame]], relative: bool, vectors=None) -> list[str]:
    """The first table's single rows (or those of `vectors`) ranked among every distinct random direction of
    their norm (random_spread.py; `pools`: (experiment, table) pairs, the ranked table first)."""
    rows = [[r["behaviour"], *([r["vector"]] if vectors else []), str(r["layer"]), f"{r['coef']:+g}",
             _f(r["shift"], sign=True), str(r["n_draws"]),
             f"{_f(r['mean'], sign=True)} ± {_f(r['sd'])}", f"[{_f(r['min'], sign=True)}, {_f(r['max'], sign=True)}]",
             _f(r["z"], 1, sign=True), _p(r["p"]), r["verdict"]]
            for r in spread_rows(pools, relative, vectors) if r["n_draws"] >= 2]  # one: the paired test is it
    if not rows:
        return []
    pooled = ("every distinct random direction of this norm on the same questions (single, combined and "
              "interference runs: with relative coefs all have coef × the residual norm)") if relative else \
        "the single run's own random directions (absolute coefs: only they have the vector's norm)"
    return [f"Against the spread of random directions: the vector's shift ranked among {pooled}. One draw per "
            "distinct direction: a direction and its negative are one draw (its shift at the row's sign), and "
            "a run's repeat of another's direction (interference's random:<behaviour> is the single run's "
            "random) is not another; rank p one-sided the way the steering asks (it cannot go below 1 / "
            "(directions + 1)); z = (shift − mean) / SD of the draws.", ""] + markdown_table(
        ["behaviour", *(["vector"] if vectors else []), "layer", "×", "shift", "distinct directions",
         "their mean ± SD",
         "range", "z", "rank p", "verdict"], rows) + [""]


def single_section(frame: pl.DataFrame, pre: dict, letter: bool) -> list[str]:
    layers = paper_layers(frame["layer"].to_list())
    found = _scored(frame, pre, letter, lambda b: [(b, "random")], list(layers))
    lines = []
    for L, paper_layer in layers.items():
        rows = []
        for _, behaviour, _, default, e in (f for f in found if f[0] == L):
            r = e["row"]
            paper = PAPER_SINGLE.get(paper_layer, {}).get(behaviour)
            paper_value = "—" if paper is None else f"{paper[0]:.2f} → {paper[1 if r['direction'] == 'add' else 2]:.2f}"
            rows.append([behaviour, f"{r['coef']:+g}", _f(default["p_matching_balanced"]),
                         _f(r["p_matching_balanced"]), _interval(e["shift"]), _p(e["shift"].p),
                         _interval(e["random"]) if e["random"] else "—",
                         _interval(e["against"]) if e["against"] else "—",
                         _p(e["against"].p) if e["against"] else "—", _q(e), _f(e["shift"].mde, 2),
                         str(e["shift"].n), e["verdict"], paper_value])
        if rows:
            lines += [f"Layer {L}" + (f" (the paper's {paper_layer}):" if paper_layer else ":"), ""]
            lines += markdown_table(["behaviour", "×", "p_bal unsteered", "p_bal steered", "shift [95% CI]", "p",
                                     "random, same norm: shift", "vector − random", "p", "q (BH)", "detectable",
                                     "n_q", "verdict", "paper: matching score"], rows)
            lines.append("")
    return lines


def simultaneous_section(frame: pl.DataFrame, tax: pl.DataFrame | None) -> list[str]:
    names = behaviours_in(frame)
    coefs = sorted(frame.filter(pl.col("vector") == "simultaneous")["coef"].unique().to_list())
    rows = []
    for c in coefs:
        cells = []
        for name in names:
            default = _row_of(frame, behaviour=name, direction="default")
            row = default if c == 0 else _row_of(frame, behaviour=name, vector="simultaneous", coef=c)
            if row is None or default is None:
                cells.append("—")
                continue
            if c == 0:
                cells.append(_f(row["p_matching_balanced"]))
                continue
            s = row_shift(row, default)
            star = "?" if s.too_few else ("*" if s.lo > 0 or s.hi < 0 else "")
            cells.append(f"{_f(row['p_matching_balanced'])} ({_f(s.shift, 2, sign=True)}{star})")
        accuracy = "—"
        if tax is not None:
            t = _row_of(tax, coef=c)
            if t is not None:
                accuracy = f"{t['accuracy']:.3f} [{t['accuracy_lo']:.3f}, {t['accuracy_hi']:.3f}]"
        paper = PAPER_SIMULTANEOUS.get(c) if names == list(BEHAVIOURS) else None  # the paper's five only
        rows.append([f"{c:+g}", *cells, accuracy, " / ".join(f"{v:.2f}" for v in paper) if paper else ""])
    lines = markdown_table(["coef", *names, "next-token accuracy (tax)", "paper (absolute coef)"], rows) + [""]
    controls = []
    for c in sorted(frame.filter(pl.col("vector") == "random")["coef"].unique().to_list()):
        cells = []
        for name in names:
            default = _row_of(frame, behaviour=name, direction="default")
            row = _row_of(frame, behaviour=name, vector="random", coef=c)
            vec = _row_of(frame, behaviour=name, vector="simultaneous", coef=c)
            if row is None or default is None:
                cells.append("—")
                continue
            s = row_shift(row, default)
            against = row_shift(vec, row) if vec else None
            cells.append(f"{_f(s.shift, 2, sign=True)}; vector − random {_interval(against) if against else '—'}")
        controls.append([f"{c:+g}", *cells])
    if controls:
        lines += ["Random directions of the same norms at the same layers (shift against unsteered; the "
                  "vectors' shift minus the random one's, paired):", ""]
        lines += markdown_table(["coef", *names], controls) + [""]
    return lines




def combined_section(frame: pl.DataFrame, pre: dict, letter: bool) -> list[str]:
    found = _scored(frame, pre, letter, lambda b: [(how, f"random:{how}") for how in COMBINATIONS])
    rows = [[str(L), behaviour, how, f"{e['row']['coef']:+g}", _interval(e["shift"]),
             _interval(e["against"]) if e["against"] else "—", _q(e), _f(e["shift"].mde, 2), e["verdict"]]
            for L, behaviour, how, _, e in found]
    return (markdown_table(["layer", "behaviour scored", "combination", "×", "shift [95% CI]", "vector − random",
                            "q (BH)", "detectable", "verdict"], rows) + [""]) if rows else []


def interference_section(frame: pl.DataFrame, pre: dict, letter: bool) -> list[str]:
    """Every vector's shift on every behaviour scored, beside its own random direction (`random:<vector>`)."""
    vectors = sorted(v for v in set(frame["vector"].to_list()) if v != "none" and not v.startswith("random"))
    found = _scored(frame, pre, letter, lambda b: [(v, f"random:{v}") for v in vectors])
    rows = [[str(L), vector, f"{behaviour} (its own)" if vector == behaviour else behaviour,
             f"{e['row']['coef']:+g}", _interval(e["shift"]), _interval(e["against"]) if e["against"] else "—",
             _q(e), _f(e["shift"].mde, 2), e["verdict"]] for L, behaviour, vector, _, e in found]
    return (markdown_table(["layer", "vector", "behaviour scored", "×", "shift [95% CI]", "vector − random",
                            "q (BH)", "detectable", "verdict"], rows) + [""]) if rows else []


def quality_section(root: Path, model: str, profile: str, source: str, behaviours: list[str],
                    plain_mean: bool = False) -> list[str]:
    """The vector-quality rows measured on the vector as this variant builds it (tables from before the
    estimator column measured a plain mean, so they only stand for plain-mean and content vectors)."""
    frame = load_tables("behaviours_quality", root, config_columns=("estimator",))
    if frame is None:
        return []
    if "estimator" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("estimator"))
    built = "group-balanced" if source == "letter" and not plain_mean else "plain mean"
    frame = frame.filter((pl.col("model") == model) & (pl.col("profile") == profile)
                         & (pl.col("vector_source") == source) & pl.col("behaviour").is_in(behaviours)
                         & (pl.col("estimator").fill_null("plain mean") == built))
    if not frame.height:
        return []
    rows = [[r["behaviour"], str(r["layer"]), str(r["n_pairs"]), f"{r['norm']:.2f}",
             f"{r['norm_null_95']:.2f}", _p(r["norm_p"]), f"{r['reliability']:.2f}", f"{r['reliability_null_95']:.2f}",
             _p(r["reliability_p"]), f"{r['heldout_auc']:.2f}"]
            for r in frame.unique(["behaviour", "layer", "n_pairs"], keep="last").sort("behaviour", "layer")
            .iter_rows(named=True)]
    return markdown_table(["behaviour", "layer", "pairs", "norm", "null 95%", "p", "split-half cos", "null 95%", "p",
                   "held-out AUC"], rows) + [""]


def model_report(root: Path, model: str, profile: str, split: str) -> list[str]:
    pre = precondition(root, model, profile, split)
    lines = [f"# Behaviours on {model} (profile {profile}" + (f", split {split})" if split else ")"), "",
             "Written by `steer-trace behaviours report` from the cached tables. Shifts are paired per question "
             f"against unsteered, p from the bootstrap's resamples; p_bal and every shift are {BALANCE_NOTE}; "
             "'vector − random' pairs the vector's row with the equal-norm random direction's on the same "
             "questions; 'detectable' is the shift this n and spread detects (alpha 0.05, power 0.8). An interval, "
             f"p-value or verdict needs at least {MIN_PER_LABEL} questions per answer label; with fewer a row says "
             "'too few questions' (simultaneous: '?').", ""]
    if pre:
        lines += ["## Precondition (letter scoring): does the greedy answer follow the content when the options "
                  "rotate?", ""]
        rows = []
        for b, r in pre.items():
            lo, hi, p = consistency_interval(r)
            rows.append([b, _f(r["order_consistency"], 2), f"{_f(lo, 2)}–{_f(hi, 2)}", _f(r["consistency_chance"], 2),
                         _p(p), str(r["n_questions"]),
                         {"passes": "ok", "at chance": "AT CHANCE: letter scoring cannot measure the behaviour",
                          "undecided": "UNDECIDED: above chance, not by two standard errors",
                          "not measured": "not measured"}[precondition_verdict(r)]])
        lines += markdown_table(["behaviour", "same text in every rotation", "95% interval", "chance",
                                 "p (above chance)", "questions", "verdict"], rows) + [""]
    tax_table = load_tables("behaviours_tax", root)
    experiments = (("behaviours_single", "Single steering"), ("behaviours_simultaneous", "Simultaneous steering"),
                   ("behaviours_combined", "Combined vectors"), ("behaviours_interference", "Interference"))
    frames = {}
    for experiment, _ in experiments:
        frame = _selected(root, experiment, profile, split)
        if frame is not None:
            frames[experiment] = frame.filter(pl.col("model") == model)

    def same_variant(experiment: str, variant: dict) -> pl.DataFrame | None:
        frame = frames.get(experiment)
        if frame is None:
            return None
        part = frame.filter(pl.all_horizontal([pl.col(c) == v for c, v in variant.items()]))
        return part if part.height else None

    for experiment, title in experiments:
        frame = frames.get(experiment)
        if frame is None:
            continue
        for values, part in frame.group_by(list(VARIANT), maintain_order=True):
            variant = dict(zip(VARIANT, values))
            letter = variant["scoring"] == "letter"
            lines += [f"## {title} — {_mode_name(variant)}", ""]
            if experiment == "behaviours_single":
                quality = quality_section(root, model, profile, variant["vector_source"], behaviours_in(part),
                                          bool(variant["plain_mean"]))
                if quality:
                    lines += [f"Vector quality ({variant['vector_source']} vectors; null: pair labels flipped at "
                              "random, 200 draws):", "", *quality]
                lines += single_section(part, pre, letter)
                others = [(e, f) for e in ("behaviours_combined", "behaviours_interference")
                          if (f := same_variant(e, variant)) is not None]
                lines += spread_section([("behaviours_single", part), *others], bool(variant["relative"]))
            elif experiment == "behaviours_simultaneous":
                tax = None
                if tax_table is not None and "vector" in tax_table.columns:
                    tax = _with_defaults(tax_table).filter(
                        (pl.col("model") == model) & (pl.col("profile") == profile)
                        & (pl.col("vector") == "simultaneous")
                        & pl.all_horizontal([pl.col(c) == variant[c] for c in ("split_rule", "relative",
                                                                               "vector_source", "plain_mean")]))
                lines += simultaneous_section(part, tax if tax is not None and tax.height else None)
            elif experiment == "behaviours_combined":
                lines += combined_section(part, pre, letter)
                if variant["relative"]:  # absolute coefs: each combination has its own norm
                    others = [(e, f) for e in ("behaviours_single", "behaviours_interference")
                              if (f := same_variant(e, variant)) is not None]
                    lines += spread_section([("behaviours_combined", part), *others], True, COMBINATIONS)
            else:
                lines += interference_section(part, pre, letter)
    return lines


def profiles_with_results(root, profile: str, split: str | None = None) -> bool:
    """Whether `root` holds behaviour results of `profile` that `write` would report."""
    return any(_selected(results_root(root), e, profile, split) is not None
               for e in ("behaviours_single", "behaviours_simultaneous", "behaviours_combined",
                         "behaviours_interference"))


def write(root=None, out=None, profile: str = "paper", split: str | None = None) -> list[Path]:
    root = results_root(root)
    out = Path(out) if out else root / "behaviours_report"
    models = set()
    for experiment in ("behaviours_precondition", "behaviours_single", "behaviours_simultaneous",
                       "behaviours_combined", "behaviours_interference"):
        frame = _selected(root, experiment, profile, split)
        if frame is not None:
            models |= set(frame["model"].to_list())
    written = []
    for model in sorted(models):
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{Path(model).name.replace('/', '__')}.md"
        path.write_text("\n".join(model_report(root, model, profile, split)) + "\n")
        written.append(path)
    return written
