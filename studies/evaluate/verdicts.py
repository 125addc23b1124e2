"""The report's first lines: one sentence per question, from the tables alone.

- steering: does the pick move p(matching) on held-out test questions (paired interval excluding 0),
  and by more than the distinct equal-norm random directions (beyond every draw, and the paired
  difference against their mean excluding 0)? "no" answers carry the detectable shift;
- steerability: the share of anti-steerable questions with its interval;
- prompting: does asking for the behaviour do as well (the paired difference steer - prompt);
- cost: the tax and the greedy text at the pick;
- the text it writes (when the text stage ran): the behaviour detector's rate on sampled answers, steered vs
  unsteered and vs each random direction, with the prompted rate beside it and the detector's own validation;
  "not measurable" when the detector fails its validation, no verdict where the text broke.

Pattern: `verdicts(tables, summary)` -> list of sentences (markdown, no HTML).
"""

from __future__ import annotations

import polars as pl

from steer_trace.stats import MIN_PER_LABEL

WORD = {"add": "adding", "subtract": "subtracting"}
UP = {"add": "raises", "subtract": "lowers"}


def ci(row: dict, key: str = "shift", digits: int = 3) -> str:
    return f"{row[key]:+.{digits}f} [{row[key + '_lo']:+.{digits}f}, {row[key + '_hi']:+.{digits}f}]"


def _row(table: pl.DataFrame, comparison: str) -> dict | None:
    part = table.filter(pl.col("comparison") == comparison)
    return part.row(0, named=True) if part.height else None


def too_few(row: dict | None) -> bool:
    """Fewer than MIN_PER_LABEL questions in an answer label: no interval, so no verdict (tables from before the
    column: judged as they were)."""
    return row is not None and row.get("per_label") is not None and row["per_label"] < MIN_PER_LABEL


def _too_few_line(what: str, row: dict) -> str:
    return (f"**{what}: too few questions** - {row['per_label']} in an answer label; an interval and a verdict "
            f"need {MIN_PER_LABEL} per label (shift {row['shift']:+.3f} on {row['n_questions']} questions).")


def _excludes_zero(row: dict, sign: int) -> bool:
    return row["shift_lo"] > 0 if sign > 0 else row["shift_hi"] < 0


def steering(tables: dict, direction: str) -> str:
    picks = {r["direction"]: r for r in tables["picks"].iter_rows(named=True)}
    pick = picks.get(direction)
    if pick is None or pick["layer"] is None:
        return (f"**{direction.capitalize()}: no verdict** - {pick['reason'] if pick else 'not searched'}; "
                "no strength at which the model still writes text moves the behaviour.")
    sign = 1 if direction == "add" else -1
    comp = tables["comparisons"]
    vec, diff = _row(comp, f"steer {direction}"), _row(comp, f"steer {direction} - random")
    draws = tables["random"].filter(pl.col("direction") == direction)["shift"].to_list()
    beyond = all(sign * vec["shift"] > sign * d for d in draws)
    extreme = max(draws) if sign > 0 else min(draws)
    where = f"{WORD[direction]} the vector at layer {pick['layer']} (x{abs(pick['coef']):g} of the residual norm)"
    n = vec["n_questions"]
    if too_few(vec):
        return _too_few_line(f"{direction.capitalize()}", vec)
    if _excludes_zero(vec, sign) and beyond and _excludes_zero(diff, sign):
        return (f"**Steers ({direction})**: {where} {UP[direction]} p(matching) on {n} held-out test questions by "
                f"{ci(vec)}, beyond each of {len(draws)} distinct equal-norm random directions (most extreme "
                f"{extreme:+.3f}) and their mean by {ci(diff)}.")
    if _excludes_zero(vec, sign):
        return (f"**Steers no more than random directions ({direction})**: {where} moves p(matching) by {ci(vec)} "
                f"on {n} test questions, but {len(draws)} distinct equal-norm random directions move it as much "
                f"(most extreme {extreme:+.3f}; vector - their mean {ci(diff)}, detectable difference "
                f"{diff['mde']:.3f}).")
    return (f"**Does not steer ({direction})**: {where} moves p(matching) by {ci(vec)} on {n} test questions; "
            f"the smallest shift this test detects is {vec['mde']:.3f} (alpha 0.05, power 0.8).")


def anti_steerable(tables: dict) -> str | None:
    table = tables.get("steerability")
    if table is None or not table.height:
        return None
    from .steerability import summary

    s = summary(table)
    return (f"**{s['anti_steerable']:.0%} of questions anti-steerable** ({s['n_anti_steerable']} of "
            f"{s['n_questions']}, 95% interval {s['anti_steerable_lo']:.0%}-{s['anti_steerable_hi']:.0%}): their "
            f"log-odds of the matching answer fall as the coef rises (slope < 0, interval excluding 0); "
            f"{s['steerable']:.0%} rise; mean steerability {s['mean_slope']:+.2f} "
            f"[{s['mean_slope_lo']:+.2f}, {s['mean_slope_hi']:+.2f}] log-odds per unit coef "
            f"(sd {s['sd_slope']:.2f}){answer_bias(table)}.")


def by_label(table: pl.DataFrame) -> pl.DataFrame:
    """Per matching answer label: questions, anti-steerable, steerable, mean slope."""
    return (table.group_by("q_label", maintain_order=True)
            .agg(pl.len().alias("questions"), pl.col("anti_steerable").sum().alias("anti_steerable"),
                 pl.col("steerable").sum().alias("steerable"), pl.col("slope").mean().alias("mean_slope"))
            .sort("q_label"))


def answer_bias(table: pl.DataFrame) -> str:
    """' - ...' when the anti-steerable questions all match with one answer and the steerable ones with the
    others: the vector moves an answer, not the behaviour (Tan et al.'s steerability bias)."""
    if "q_label" not in table.columns or not table["anti_steerable"].any():
        return ""
    anti = set(table.filter(pl.col("anti_steerable"))["q_label"])
    steer = set(table.filter(pl.col("steerable"))["q_label"])
    parts = ", ".join(f"'{r['q_label']}' {r['anti_steerable']} of {r['questions']}"
                      for r in by_label(table).iter_rows(named=True))
    if len(anti) == 1 and not anti & steer:
        return (f"; every anti-steerable question matches with '{next(iter(anti))}' (anti-steerable by matching "
                f"answer: {parts}): the vector moves one answer over the other, not the behaviour "
                "(steerability bias)")
    return f" (anti-steerable by matching answer: {parts})"


def prompting(tables: dict, direction: str) -> str | None:
    word = "prompt" if direction == "add" else "anti-prompt"
    comp = tables["comparisons"]
    diff, alone = _row(comp, f"steer {direction} - {word}"), _row(comp, word)
    if alone is None:
        return None
    asked = "asking for the behaviour" if direction == "add" else "asking for its opposite"
    if too_few(alone):
        return _too_few_line(f"Prompting ({direction})", alone)
    if diff is None:
        return (f"**Prompting ({direction})**: {asked} moves p(matching) by {ci(alone)}; steering had no guarded "
                "strength to compare.")
    sign = 1 if direction == "add" else -1
    if _excludes_zero(diff, sign):
        head = "Steering beats prompting"
    elif _excludes_zero(diff, -sign):
        head = "Prompting does better than steering"
    else:
        head = "Prompting does as well as steering"
    both = _row(comp, f"{word} + steer {direction}")
    extra = f"; both together {ci(both)}" if both else ""
    return (f"**{head} ({direction})**: {asked} in the user turn moves p(matching) by {ci(alone)}, steering "
            f"by {ci(_row(comp, f'steer {direction}'))}; steering - prompting {ci(diff)} "
            f"(detectable {diff['mde']:.3f}){extra}.")


def cost(tables: dict) -> str | None:
    side = tables.get("side_effects")
    if side is None or side.height < 2:
        return None
    base = side.filter(pl.col("direction") == "default").row(0, named=True)
    parts = []
    for r in side.filter(pl.col("direction") != "default").iter_rows(named=True):
        parts.append(f"{r['direction']} (layer {r['layer']}, x{r['coef']:+g}): next-token accuracy "
                     f"{r['accuracy']:.3f} [{r['accuracy_lo']:.3f}, {r['accuracy_hi']:.3f}], distinct-token ratio "
                     f"{r['distinct']:.2f}")
    return (f"**Cost at the picks**: unsteered next-token accuracy {base['accuracy']:.3f} "
            f"[{base['accuracy_lo']:.3f}, {base['accuracy_hi']:.3f}], distinct-token ratio {base['distinct']:.2f}; "
            + "; ".join(parts) + ".")


def with_per_label(tables: dict) -> dict:
    """Tables made before `per_label` existed: its value from the test questions' labels (steerability rows are
    the test questions), so their verdicts follow the same rule as new ones."""
    comp, st = tables.get("comparisons"), tables.get("steerability")
    if comp is None or "per_label" in comp.columns or st is None or "q_label" not in st.columns:
        return tables
    smallest = int(st.group_by("q_label").len()["len"].min())
    return {**tables, "comparisons": comp.with_columns(pl.lit(smallest).alias("per_label"))}


def text_row(tables: dict, direction: str, condition: str, against: str, measure: str = "concept") -> dict | None:
    t = tables["text_paired"]
    part = t.filter((pl.col("direction") == direction) & (pl.col("condition") == condition)
                    & (pl.col("against") == against) & (pl.col("measure") == measure))
    return part.row(0, named=True) if part.height else None


def _mean(tables: dict, direction: str, condition: str, measure: str) -> float | None:
    t = tables["text_summary"]
    part = t.filter((pl.col("direction") == direction) & (pl.col("condition") == condition)
                    & (pl.col("measure") == measure))
    return part["mean"][0] if part.height else None


def text_ci(row: dict) -> str:
    if row["lo"] is None or row["lo"] != row["lo"]:  # NaN: too few questions for an interval
        return f"{row['shift']:+.3f} (no interval, n={row['n']})"
    return f"{row['shift']:+.3f} [{row['lo']:+.3f}, {row['hi']:+.3f}]"


def _text_part(tables: dict, meta: dict) -> str:
    direction = meta["direction"]
    sign = 1 if direction == "add" else -1
    where = f"{WORD[direction]} (layer {meta['layer']}, x{meta['coef']:+g})"
    vec = text_row(tables, direction, "steered", "unsteered")
    if vec is None:
        return f"{where}: not measured"
    randoms = sorted({c for c in tables["text_paired"].filter(pl.col("direction") == direction)["condition"]
                      if c.startswith("random-")})
    random_rows = [text_row(tables, direction, r, "unsteered") for r in randoms]
    versus = [text_row(tables, direction, "steered", r) for r in randoms]
    random_text = ", ".join(f"{r['shift']:+.3f}" for r in random_rows if r)
    prompted = text_row(tables, direction, "prompted", "unsteered")
    flu, flu0 = _mean(tables, direction, "steered", "fluency"), _mean(tables, direction, "unsteered", "fluency")
    seen = prompted is not None and prompted["verdict"] == "moves" and sign * prompted["shift"] > 0
    caveat = "" if seen or prompted is None or prompted["verdict"].startswith(("too few", "text broken")) else \
        " - asking for it does not move the detector either, so it may not read this behaviour in free text"
    tail = (f"; prompted {text_ci(prompted)}{caveat}" if prompted else "") + \
        (f"; fluency {flu:.2f} (unsteered {flu0:.2f})" if flu is not None and flu0 is not None else "")
    verdict = vec["verdict"]
    rate = f"detector rate {text_ci(vec)} vs unsteered"
    if verdict.startswith("text broken"):
        return f"{where}: no verdict, {verdict} ({rate}){tail}"
    if verdict == "too few questions":
        return f"{where}: too few questions for a verdict ({rate}, random {random_text}){tail}"
    if verdict.startswith("no effect"):
        detectable = verdict.split("detectable ", 1)[1].rstrip(")")
        return f"{where}: no text effect ({rate}, detectable {detectable}; random {random_text}){tail}"
    if sign * vec["shift"] < 0:
        return f"{where}: the text moves the other way ({rate}; random {random_text}){tail}"
    beyond = all(v is not None and v["verdict"] == "moves" and sign * v["shift"] > 0 for v in versus)
    against = "beyond each of" if beyond else "but not beyond all of"
    return (f"{where}: {UP[direction]} the detector rate by {text_ci(vec)} vs unsteered, {against} {len(randoms)} "
            f"random directions (random "
            f"{random_text}; steered - each {', '.join(text_ci(v) for v in versus if v)}){tail}")


def text(tables: dict) -> str | None:
    """One line for the text the model writes at the picks (None when the text stage did not run)."""
    meta = tables.get("text_meta")
    if meta is None or not meta.height:
        return None
    rows = list(meta.iter_rows(named=True))
    first = rows[0]
    detector = (f"detector AUROC {first['auroc']:.2f} [{first['auroc_lo']:.2f}, {first['auroc_hi']:.2f}] on held-out "
                f"answer texts")
    size = f"{first['n_questions']} held-out questions x {first['samples']} samples x {first['max_new_tokens']} tokens"
    if not first["measurable"]:
        return (f"**In the text it writes: not measurable with this detector** ({detector}, lower end below "
                f"{first['min_auroc']:g}; {size}).")
    return f"**In the text it writes** ({size}; {detector}): " + "; ".join(_text_part(tables, r) for r in rows) + "."


def verdicts(tables: dict) -> list[str]:
    tables = with_per_label(tables)
    out = [steering(tables, "add"), steering(tables, "subtract"), anti_steerable(tables),
           prompting(tables, "add"), prompting(tables, "subtract"), text(tables), cost(tables)]
    return [line for line in out if line]
