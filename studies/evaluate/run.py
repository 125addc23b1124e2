"""The evaluation: one behaviour file, one model -> the tables of the report.

Stages (each cached point by point through `cache.Run`, so a killed run resumes):
1. splits (vector pairs / validation / test: `Study.part`, disjoint questions) and the letter
   precondition (`behaviour_quality.run_precondition`): letter scoring where the unsteered model's
   answer follows the option text across rotations, content scoring where it does not;
2. the vector (extracted as `behaviours extract` does, or a given file) and its quality per candidate
   layer (`behaviour_quality.run_quality`: split-half, label-permutation null, held-out AUC);
3. the search: layer x coef (relative to the residual norm) on the validation questions only, each
   point with the coherence guard (`guard.py`); the add and subtract picks are the guarded points that
   move validation furthest each way;
4. the held-out test questions in one batch of plans (`behaviour_eval.score_points`: rows of a call
   share passes and the layers below the first steered one, row_plans.py): unsteered, the picks, >= 10
   distinct equal-norm random directions at the picks (`controls.random_like`), the steerability coefs,
   and the prompting baseline (the behaviour, and its opposite, asked for in the user turn), alone and
   with steering;
5. tables: paired shifts (`stats.paired_shift`), per-question steerability (`steerability.py`), side
   effects at the picks (tax and greedy text from the guard);
6. the text it writes at the picks (`text.py`: the core's open-ended evaluation, a validated detector,
   fluency and relevance, random directions and the prompting baseline), unless text_questions is 0.

Each stage's compute time goes to a ledger beside the cache (`ledger.py`), so a rerun from the cache can say
what computing the report took in all.

Gotcha: every comparison is paired on the same test questions (their q_id lists must agree).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl
from steer_trace.cache import Run, key_of
from steer_trace.controls import random_like, seed_of
from steer_trace.errors import UserError
from steer_trace.plan import Plan
from steer_trace.read import content_hash, residual_norms
from steer_trace.vectors import SteeringVector
from studies.behaviours.config import Study, open_study
from studies.behaviours.data import plain_text
from studies.behaviours.profiles import make_profile
from studies.behaviours.quality import run_precondition, run_quality
from studies.behaviours.scoring import direction_of, point_fields, row_shift, score_points, tax_points
from studies.behaviours.sources import study_vectors

from . import steerability
from .guard import GuardBounds, greedy_point, judge
from .ledger import Ledger
from .prompts import instructions
from .text import text_stage

Log = Callable[[str], None]
DEPTHS = (0.3, 0.45, 0.6)  # default candidate layers: these fractions of the model's depth


@dataclass(frozen=True)
class Options:
    """Every size of an evaluation (defaults sized for a 2-core CPU and a 135M model)."""

    n_vector: int = 60
    n_validation: int = 20
    n_test: int = 40
    layers: tuple[int, ...] = ()  # model layers searched; () -> DEPTHS of the model
    coefs: tuple[float, ...] = (0.2, 0.4, 0.8, 1.6, 3.2)  # x the residual norm, each also negated
    n_random: int = 10
    fractions: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)  # steerability coefs, x the add pick's coef
    scoring: str = "auto"  # auto (the precondition decides), letter, content
    prompt: str | None = None
    anti_prompt: str | None = None
    bounds: GuardBounds = field(default_factory=GuardBounds)
    tax_docs: int = 8
    tax_tokens: int = 128
    gen_tokens: int = 24
    batch_size: int = 8
    orders: str = "both"
    prompt_style: str = "paper"
    vector_file: str | None = None
    skip_bad_rows: bool = False
    text_questions: int = 10  # held-out test questions asked without options at the picks (0: no text stage)
    text_samples: int = 2  # samples per question and condition
    text_tokens: int = 24  # tokens per sample
    text_random: int = 2  # equal-norm random directions (distinct draws) in the text
    text_detector: int = 40  # validation questions whose answer texts fit (half) and validate (half) the detector

    def check(self) -> None:
        for name in ("n_vector", "n_validation", "n_test", "tax_docs", "tax_tokens", "gen_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        if self.text_questions < 0:
            raise UserError("--text-questions must be 0 (no text stage) or more")
        if self.text_questions:
            for name in ("text_samples", "text_tokens", "text_random"):
                if getattr(self, name) < 1:
                    raise UserError(f"--{name.replace('_', '-')} must be at least 1")
            if self.text_detector < 4:
                raise UserError("--text-detector needs at least 4 validation questions (half fit, half validate)")
        if self.n_random < 10:
            raise UserError(f"--n-random must be at least 10 distinct directions (got {self.n_random})")
        if len({f for f in self.fractions}) < 5:
            raise UserError("--steer-fractions needs at least 5 distinct values (steerability slopes)")
        if not self.coefs or any(c <= 0 for c in self.coefs):
            raise UserError("--coefs: positive fractions of the residual norm (each is also tried negated)")
        if self.scoring not in ("auto", "letter", "content"):
            raise UserError(f"unknown --scoring {self.scoring!r} (auto, letter or content)")


@dataclass
class Evaluation:
    study: Study
    name: str
    scoring: str
    scoring_reason: str
    layers: list[int]
    vector: SteeringVector
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _profile(opts: Options):
    return replace(make_profile("quick", opts.n_vector, opts.n_validation, opts.n_test, batch_size=opts.batch_size,
                                tax_docs=opts.tax_docs, tax_tokens=opts.tax_tokens), name="evaluate")


def reads_options(row: dict) -> tuple[bool, str]:
    """The precondition's verdict from an unsteered letter row: the greedy answer picks the same option
    text in every rotation above chance by more than two binomial standard errors."""
    consistent, chance, n = row["order_consistency"], row["consistency_chance"], int(row["n_questions"])
    if consistent is None or math.isnan(consistent):
        return False, "not checked (options asked in one order)"
    margin = 2 * math.sqrt(chance * (1 - chance) / max(n, 1))
    ok = consistent > chance + margin
    return ok, (f"the unsteered greedy answer picks the same option text in every rotation for "
                f"{consistent:.2f} of {n} test questions (chance {chance:.2f}, threshold {chance + margin:.2f})")


def _vector_hash(vector: SteeringVector) -> str:
    digest = hashlib.sha256()
    for L, v in vector.layers.items():
        digest.update(str(L).encode())
        digest.update(v.numpy().tobytes())
    return digest.hexdigest()[:16]


def open_evaluation(model, dataset: str, opts: Options, root=None, log: Log | None = None) -> Evaluation:
    """Load the file and the model, decide the scoring, get the vector (stages 1-2 but quality)."""
    opts.check()
    started = time.time()
    study = open_study(model, _profile(opts), dataset_files=(dataset,), orders=opts.orders,
                       prompt_style=opts.prompt_style, relative=True, root=root, skip_bad_rows=opts.skip_bad_rows)
    name = study.names[0]
    for part in ("vector", "validation", "test"):
        study.part(name, part)  # each split part is non-empty (a one-line error otherwise)
    pre = run_precondition(study, log).row(0, named=True)
    reads, evidence = reads_options(pre)
    if opts.scoring == "auto":
        scoring = "letter" if reads else "content"
        reason = (f"letter scoring: {evidence}, so the model answers by content and p(letter) measures the "
                  "behaviour") if reads else (
                  f"content scoring: {evidence}, so the model answers by position and p(letter) cannot measure "
                  "the behaviour; each option's text is scored after the question stem instead")
    else:
        scoring = opts.scoring
        reason = f"{scoring} scoring (asked for with --scoring); precondition: {evidence}"
    study = replace(study, scoring=scoring, vector_source=scoring)
    if opts.vector_file:
        vector = SteeringVector.load(opts.vector_file)
        norms = vector.meta.get("residual_norms")
        if norms:
            study.residual_norms = {int(L): float(v) for L, v in norms.items()}
        else:
            prompts = [study.prompt(item) for item in study.part(name, "vector")[:16]]
            study.residual_norms = residual_norms(study.model, prompts, batch_size=opts.batch_size)
        study.vectors[name] = vector
    else:
        vector = study_vectors(study, log)[name]
    n = study.model.n_layers
    layers = sorted({study.model.check_layer(L) for L in opts.layers}) if opts.layers else \
        sorted({min(n - 1, round(d * n)) for d in DEPTHS})
    missing = [L for L in layers if L not in vector.layers]
    if missing:
        raise UserError(f"the vector has no layer {', '.join(map(str, missing))} (has "
                        f"{', '.join(map(str, vector.layers))}): give --layers among them")
    ev = Evaluation(study, name, scoring, reason, layers, vector)
    ev.tables["precondition"] = pl.DataFrame([{k: pre[k] for k in ("order_consistency", "consistency_chance",
                                                                    "n_questions", "p_matching_balanced")}
                                              | {"reads_options": reads, "scoring": scoring}])
    ev.timings["setup"] = time.time() - started
    return ev


def _run(ev: Evaluation, opts: Options, kind: str, **extra) -> Run:
    config = {**ev.study.base_config(), "experiment": f"evaluate_{kind}", "vector": _vector_hash(ev.vector),
              "version": 1, **extra}
    return Run(f"evaluate_{kind}", config, ev.study.root)


def _dedupe(entries: list[tuple[dict, Plan]]) -> list[tuple[dict, Plan]]:
    seen, out = set(), []
    for fields, plan in entries:
        key = key_of(fields)
        if key not in seen:
            seen.add(key)
            out.append((fields, plan))
    return out


# -- stage 2: vector quality -----------------------------------------------------------------------


def quality(ev: Evaluation, log: Log | None = None) -> pl.DataFrame:
    started = time.time()
    table = run_quality(ev.study, ev.layers, log)
    ev.tables["quality"] = table
    ev.timings["quality"] = time.time() - started
    return table


# -- stage 3: the guarded search ------------------------------------------------------------------------


def guard_rows(ev: Evaluation, opts: Options, entries: list[tuple[dict, Plan]], log: Log | None = None
               ) -> pl.DataFrame:
    """Per entry: next-token accuracy on plain text and the greedy texts' distinct-token ratio."""
    docs, source = plain_text(opts.tax_docs)
    tax_run = _run(ev, opts, "tax", text=source, docs=content_hash(docs), max_tokens=opts.tax_tokens)
    keyed = [({k: f[k] for k in ("vector", "layer", "layers", "direction", "coef")}, p) for f, p in entries]
    tax = tax_points(ev.study, tax_run, docs, opts.tax_tokens, keyed, log)
    gen_run = _run(ev, opts, "greedy")
    rows = []
    for (fields, plan), t in zip(keyed, tax):
        g = greedy_point(ev.study, gen_run, fields, plan, opts.gen_tokens).row(0, named=True)
        r = t.row(0, named=True)
        rows.append({**fields, "accuracy": r["accuracy"], "accuracy_lo": r["accuracy_lo"],
                     "accuracy_hi": r["accuracy_hi"], "n_tokens": r["n_tokens"], "distinct": g["distinct"],
                     "texts": g["texts"], "prompts": g["prompts"], "text_source": source})
    if log:
        log(f"  guard: {len(rows)} points (plain text {source}, greedy text)")
    return pl.DataFrame(rows)


def search(ev: Evaluation, opts: Options, log: Log | None = None) -> pl.DataFrame:
    """Layer x signed coef on the validation split, each point with its guard verdict; sets the picks."""
    started = time.time()
    study, name, v = ev.study, ev.name, ev.vector
    coefs = sorted({c * s for c in opts.coefs for s in (1, -1)})
    entries = [(point_fields("none", "default", 0), Plan.none())]
    entries += [(point_fields(name, direction_of(c), c, [L]), Plan.single(v, L, c)) for L in ev.layers for c in coefs]
    run = _run(ev, opts, "points")
    frames = score_points(study, run, name, "validation", entries, log)
    guard = guard_rows(ev, opts, entries, log)
    unsteered = guard.row(0, named=True)
    rows = []
    for (fields, _), frame, g in zip(entries, frames, guard.iter_rows(named=True)):
        r = frame.row(0, named=True)
        ok, reason = (True, "unsteered") if fields["direction"] == "default" else judge(g, unsteered, opts.bounds)
        rows.append({"layer": fields["layer"], "coef": fields["coef"], "direction": fields["direction"],
                     "p_matching": r["p_matching_balanced"], "shift": r["shift"], "shift_lo": r["shift_lo"],
                     "shift_hi": r["shift_hi"], "shift_p": r["shift_p"], "n_questions": r["n_questions"],
                     "accuracy": g["accuracy"], "accuracy_lo": g["accuracy_lo"], "accuracy_hi": g["accuracy_hi"],
                     "distinct": g["distinct"], "guard_ok": ok, "guard": reason,
                     "greedy_text": g["texts"][0]})
    grid = pl.DataFrame(rows)
    ev.tables["grid"] = grid
    ev.tables["guard_texts"] = guard
    ev.tables["picks"] = pick(grid)
    ev.timings["search"] = time.time() - started
    return grid


def pick(grid: pl.DataFrame) -> pl.DataFrame:
    """The add pick: the guarded point with the largest validation shift among positive coefs; the
    subtract pick: the smallest among negative coefs. Each with the reason in words."""
    rows = []
    steered = grid.filter(pl.col("direction") != "default")
    for direction, sign in (("add", 1), ("subtract", -1)):
        part = steered.filter(pl.col("direction") == direction)
        ok = part.filter(pl.col("guard_ok"))
        refused = part.height - ok.height
        if not ok.height:
            rows.append({"direction": direction, "layer": None, "coef": None, "shift": None, "shift_lo": None,
                         "shift_hi": None, "reason": f"no pick: all {part.height} {direction} points refused by "
                                                     "the coherence guard"})
            continue
        best = (ok.sort("shift", descending=sign > 0)).row(0, named=True)
        largest = part.sort("shift", descending=sign > 0).row(0, named=True)
        note = ""
        if not largest["guard_ok"] and (largest["layer"], largest["coef"]) != (best["layer"], best["coef"]):
            note = (f"; a refused point moved validation further (layer {largest['layer']} x{largest['coef']:+g}: "
                    f"{largest['shift']:+.3f}, {largest['guard']})")
        rows.append({"direction": direction, "layer": best["layer"], "coef": best["coef"], "shift": best["shift"],
                     "shift_lo": best["shift_lo"], "shift_hi": best["shift_hi"],
                     "reason": f"largest validation shift {'up' if sign > 0 else 'down'} among "
                               f"{ok.height} guarded {direction} points ({best['shift']:+.3f} "
                               f"[{best['shift_lo']:+.3f}, {best['shift_hi']:+.3f}]); {refused} refused by the "
                               f"guard{note}"})
    return pl.DataFrame(rows, schema={"direction": pl.String, "layer": pl.Int64, "coef": pl.Float64,
                                      "shift": pl.Float64, "shift_lo": pl.Float64, "shift_hi": pl.Float64,
                                      "reason": pl.String})


# -- stage 4: held-out test ------------------------------------------------------------------------


def prompted(study: Study, text: str) -> Study:
    """The same study with `text` before every question (in the user turn); the same questions in the
    same order (the split shuffles by position and the labels are unchanged)."""
    items = {name: [replace(item, question=f"{text}\n\n{item.question}") for item in rows]
             for name, rows in study.items.items()}
    return replace(study, items=items, prepared={})


def _picks(ev: Evaluation) -> dict[str, tuple[int, float] | None]:
    out = {}
    for r in ev.tables["picks"].iter_rows(named=True):
        out[r["direction"]] = None if r["layer"] is None else (int(r["layer"]), float(r["coef"]))
    return out


def steer_coefs(ev: Evaluation, opts: Options) -> tuple[int, list[float]] | None:
    """The layer and coefs of the steerability fit: the add pick's layer, its coef x each fraction
    (the subtract pick's when nothing was picked to add)."""
    picks = _picks(ev)
    ref = picks.get("add") or picks.get("subtract")
    if ref is None:
        return None
    layer, coef = ref
    return layer, sorted({round(abs(coef) * f, 6) + 0.0 for f in opts.fractions})


def test(ev: Evaluation, opts: Options, log: Log | None = None) -> dict[str, pl.DataFrame]:
    """Score every test condition (one batch of plans per prompt setting) and pair them."""
    started = time.time()
    study, name, v = ev.study, ev.name, ev.vector
    picks = _picks(ev)
    steer = steer_coefs(ev, opts)
    entries = [(point_fields("none", "default", 0), Plan.none())]
    randoms = {f"random#{k}": random_like(v, seed_of(f"{name}#evaluate#{k}")) for k in range(1, opts.n_random + 1)}
    for direction in ("add", "subtract"):
        if picks.get(direction):
            L, c = picks[direction]
            entries.append((point_fields(name, direction, c, [L]), Plan.single(v, L, c)))
            entries += [(point_fields(r, direction, c, [L]), Plan.single(rv, L, c)) for r, rv in randoms.items()]
    if steer:
        L, coefs = steer
        entries += [(point_fields(name, direction_of(c), c, [L]), Plan.single(v, L, c)) for c in coefs if c]
    entries = _dedupe(entries)
    run = _run(ev, opts, "points")
    frames = score_points(study, run, name, "test", entries, log)
    scored = {(f["vector"], f["layer"], f["coef"]): fr.row(0, named=True) for (f, _), fr in zip(entries, frames)}
    base = scored[("none", -1, 0.0)]
    # prompting: the behaviour asked for / its opposite, alone and with steering
    texts = instructions(name, study.sources[name], opts.prompt, opts.anti_prompt)
    prompt_rows = {}
    for setting, text, direction in (("behaviour", texts.prompt, "add"), ("opposite", texts.anti_prompt, "subtract")):
        asked = prompted(study, text)
        p_entries = [(point_fields("none", "default", 0, prompt=setting), Plan.none())]
        if picks.get(direction):
            L, c = picks[direction]
            p_entries.append((point_fields(name, direction, c, [L], prompt=setting), Plan.single(v, L, c)))
        p_frames = score_points(asked, run, name, "test", p_entries, log)
        study.computed += asked.computed
        prompt_rows[setting] = [fr.row(0, named=True) for fr in p_frames]
    ev.summary["prompts"] = {"prompt": texts.prompt, "anti_prompt": texts.anti_prompt, "source": texts.source}
    ev.tables.update(_compare(ev, opts, scored, base, prompt_rows, randoms))
    if steer:
        ev.tables["steerability"] = _steerability(ev, scored, base, steer)
    ev.timings["test"] = time.time() - started
    return ev.tables


def _q(row: dict) -> np.ndarray:
    return np.asarray(row["q_p_matching"], dtype=np.float64)


def _pair(label: str, steered: dict, reference: dict, against: str) -> dict:
    if steered["q_id"] != reference["q_id"]:
        raise UserError("two conditions were scored on different questions")
    s = row_shift(steered, reference)  # balanced as the scoring mode says (steer_trace.metrics.strata)
    return {"comparison": label, "against": against, "shift": s.shift, "shift_lo": s.lo, "shift_hi": s.hi,
            "shift_p": s.p, "n_questions": s.n, "mde": s.mde, "per_label": s.per_label,
            "p_matching": steered["p_matching_balanced"],
            "p_matching_reference": reference["p_matching_balanced"]}


def _compare(ev: Evaluation, opts: Options, scored: dict, base: dict, prompt_rows: dict, randoms: dict) -> dict:
    picks = _picks(ev)
    comparisons, random_rows = [], []
    for direction in ("add", "subtract"):
        if not picks.get(direction):
            continue
        L, c = picks[direction]
        vec = scored[(ev.name, L, c)]
        comparisons.append(_pair(f"steer {direction}", vec, base, "unsteered"))
        draws = [scored[(r, L, c)] for r in randoms]
        for r, row in zip(randoms, draws):
            s = row_shift(row, base)
            random_rows.append({"direction": direction, "random": r, "layer": L, "coef": c, "shift": s.shift,
                                "shift_lo": s.lo, "shift_hi": s.hi})
        mean_random = dict(vec, q_p_matching=list(np.mean([_q(d) for d in draws], axis=0)),
                           p_matching_balanced=float(np.mean([d["p_matching_balanced"] for d in draws])))
        comparisons.append(_pair(f"steer {direction} - random", vec, mean_random,
                                 f"mean of {len(draws)} random directions"))
    setting_of = {"add": "behaviour", "subtract": "opposite"}
    for direction, setting in setting_of.items():
        unsteered_p, *steered_p = prompt_rows[setting]
        word = "prompt" if setting == "behaviour" else "anti-prompt"
        comparisons.append(_pair(word, unsteered_p, base, "unsteered"))
        if picks.get(direction):
            L, c = picks[direction]
            vec = scored[(ev.name, L, c)]
            comparisons.append(_pair(f"steer {direction} - {word}", vec, unsteered_p, word))
        if steered_p:
            comparisons.append(_pair(f"{word} + steer {direction}", steered_p[0], base, "unsteered"))
            comparisons.append(_pair(f"{word} + steer {direction} - {word}", steered_p[0], unsteered_p, word))
    return {"comparisons": pl.DataFrame(comparisons), "random": pl.DataFrame(random_rows)}


def _steerability(ev: Evaluation, scored: dict, base: dict, steer: tuple[int, list[float]]) -> pl.DataFrame:
    L, coefs = steer
    rows = [base if c == 0 else scored[(ev.name, L, c)] for c in coefs]
    scores = np.stack([steerability.log_odds(_q(r)) for r in rows])
    table = steerability.slopes(coefs, scores)
    return table.with_columns(pl.Series("q_id", base["q_id"]), pl.Series("q_label", base["q_label"]),
                              pl.Series("unsteered", steerability.log_odds(_q(base))),
                              pl.lit(L).alias("layer"), pl.lit(",".join(f"{c:g}" for c in coefs)).alias("coefs"))


def side_effects(ev: Evaluation) -> pl.DataFrame:
    """Tax and greedy text at the picks, against unsteered (from the guard's points)."""
    guard = ev.tables["guard_texts"]
    rows = [guard.filter(pl.col("direction") == "default").row(0, named=True)]
    for direction, p in _picks(ev).items():
        if p:
            L, c = p
            rows += guard.filter((pl.col("layer") == L) & (pl.col("coef") == c)).head(1).to_dicts()
    table = pl.DataFrame(rows).select("direction", "layer", "coef", "accuracy", "accuracy_lo", "accuracy_hi",
                                      "n_tokens", "distinct", "prompts", "texts")
    ev.tables["side_effects"] = table
    return table


def open_ended(ev: Evaluation, opts: Options, log: Log | None = None) -> dict:
    """Stage 6: the text written at the picks (text.py); its tables join ev.tables, its status the summary."""
    started = time.time()
    prompts = {"add": ev.summary["prompts"]["prompt"], "subtract": ev.summary["prompts"]["anti_prompt"]}
    out = text_stage(ev, opts, _run(ev, opts, "text"), _picks(ev), prompts, log)
    ev.tables.update(out["tables"])
    ev.summary["text"] = out["summary"]
    ev.timings["text"] = time.time() - started
    return out["summary"]


def ledger_of(ev: Evaluation, opts: Options, root=None) -> Ledger:
    """The evaluation's time ledger: keyed by what its points depend on (not the text sizes, not batch size)."""
    keyed = {k: v for k, v in opts.__dict__.items() if not k.startswith("text_") and k not in ("batch_size", "bounds")}
    return Ledger(ev.study.root if root is None else root,
                  {**ev.study.base_config(), "vector": _vector_hash(ev.vector), "options": keyed,
                   "bounds": opts.bounds.__dict__, "experiment": "evaluate"})


def summarise(ev: Evaluation, opts: Options, dataset: str) -> dict:
    study, name = ev.study, ev.name
    items = study.items[name]
    counts = sorted({len(item.options) for item in items})
    vector = (f"given file {opts.vector_file}" if opts.vector_file else
              f"{ev.vector.meta.get('method', 'mean difference')} of {ev.scoring} pairs from the vector split "
              f"({ev.vector.meta.get('n_pairs', '?')} pairs)")
    ev.summary.update({
        "model": study.model.name, "behaviour": name, "dataset": dataset, "n_rows": len(items),
        "family": items[0].family, "options": "-".join(map(str, (counts[0], counts[-1]))) if len(counts) > 1
        else str(counts[0]), "orders": study.orders,
        "splits": {part: len(study.part(name, part)) for part in ("vector", "validation", "test")},
        "scoring": ev.scoring, "scoring_reason": ev.scoring_reason, "layers": ev.layers,
        "coefs": sorted(opts.coefs), "guard": opts.bounds.describe(), "vector": vector,
        "timings": ev.timings, "computed": study.computed, "remote": bool(study.model.remote),
        "compute": ev.summary.get("compute", {}), "compute_runs": ev.summary.get("compute_runs", 0),
        "options_used": {k: v for k, v in opts.__dict__.items() if k != "bounds"},
    })
    return ev.summary


def evaluate(model, dataset: str, opts: Options, root=None, log: Log | None = None) -> Evaluation:
    """The whole evaluation; `model` is a Model or a zero-argument function opening one."""
    started = time.time()
    ev = open_evaluation(model, dataset, opts, root, log)
    ledger = ledger_of(ev, opts)
    if ev.study.computed:
        ledger.charge("setup", ev.timings["setup"])
    logged = ledger.logging(log)
    counter = lambda: ev.study.computed  # noqa: E731
    with ledger.stage("quality", counter):
        quality(ev, logged)
    with ledger.stage("search", counter):
        search(ev, opts, logged)
    with ledger.stage("test", counter):
        test(ev, opts, logged)
    side_effects(ev)
    with ledger.stage("text", counter):
        open_ended(ev, opts, logged)
    ev.timings["total"] = time.time() - started
    ev.summary["compute"], ev.summary["compute_runs"] = ledger.totals(), len(ledger.runs)
    summarise(ev, opts, dataset)
    return ev
