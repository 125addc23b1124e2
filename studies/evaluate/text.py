"""The evaluation's open-ended stage: what the model *writes* at the picks, measured by the core's
`steer_trace.text_eval.open_ended` (no second implementation here).

At each guarded pick (add: the vector at +coef; subtract: steering away, -coef) a few held-out test questions
are asked without their options, `text_samples` samples x `text_tokens` tokens each, under: unsteered, steered
at the pick, `text_random` equal-norm random directions (distinct draws) at the same layer and coef, and
prompted (the evaluation's own prompting-baseline text: the behaviour asked for when adding, its opposite when
subtracting). Every sample is scored by a behaviour detector (DiffMean on the steered model's activations,
`text_report.make_detector`) fitted and validated on the answer texts of held-out *validation* questions (never
the test questions asked here), and for fluency and relevance under the unsteered model.

Cached: one point per pick under `<results>/evaluate_text/`, holding the samples and their raw measures, the
detector's validation and the run's meta; the tables (`text_samples`, `text_paired`, `text_summary`,
`text_meta`) are rebuilt from them by `text_eval.scored` (no model), so a rerun computes nothing new and the
detector is fitted only when a point is missing.

Gotchas: below stats.MIN_PER_LABEL (10) questions a shift has no interval ("too few questions"); the
unsteered samples of the add and subtract calls are the same draws (shared seeds), generated twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import polars as pl

from steer_trace.content import stem, texts
from steer_trace.data import balanced_slice
from steer_trace.detectors import Validation, labelled_from_items
from steer_trace.errors import UserError
from steer_trace.generation import GenerationOptions
from steer_trace.read import content_hash
from steer_trace.text_eval import open_ended as core_open_ended
from steer_trace.text_eval import scored
from steer_trace.text_report import make_detector

TEMPERATURE = 0.7
TOP_P = 0.95
SEED = 0
VALIDATION_COLUMNS = ("auroc", "lo", "hi", "n_pos", "n_neg", "min_auroc")


def questions_of(study, name: str, n: int) -> list[str]:
    """The first n label-balanced held-out test questions, without their options."""
    return [stem(item) for item in balanced_slice(study.part(name, "test"), n)]


def labelled(study, name: str, n: int):
    """Answer texts of up to n validation questions (label-balanced), labelled matching (1) or not (0)."""
    wide = replace(study, profile=replace(study.profile, n_validation=n), prepared={})
    return labelled_from_items(wide.part(name, "validation"), stem, texts)


def generation_options(opts) -> GenerationOptions:
    return GenerationOptions(max_new_tokens=opts.text_tokens, temperature=TEMPERATURE, top_p=TOP_P, seed=SEED,
                             samples=opts.text_samples, chat=opts.prompt_style == "chat", batch_size=16)


def _stored(result, direction: str) -> pl.DataFrame:
    """The samples with the detector's validation and the meta as constant columns (one cached point)."""
    v = result.validation
    return result.samples.with_columns(
        pl.lit(direction).alias("direction"), pl.lit(result.detector).alias("detector"),
        *[pl.lit(float(getattr(v, c))).alias(f"validation_{c}") for c in VALIDATION_COLUMNS],
        pl.lit(json.dumps({**result.meta, "questions": result.questions}, default=str)).alias("meta"))


def _rebuilt(frame: pl.DataFrame):
    """(TextEval, meta) from a stored point: scored again from its raw measures, no model."""
    meta = json.loads(frame["meta"][0])
    v = {c: frame[f"validation_{c}"][0] for c in VALIDATION_COLUMNS}
    validation = Validation(v["auroc"], v["lo"], v["hi"], int(v["n_pos"]), int(v["n_neg"]), v["min_auroc"])
    keep = [c for c in frame.columns if c not in ("direction", "detector", "meta")
            and not c.startswith("validation_")]
    questions = meta.pop("questions")
    return scored(frame.select(keep), questions, frame["detector"][0], validation, meta), meta


def text_stage(ev, opts, run, picks: dict, prompts: dict, log=None) -> dict:
    """Run (or read) the open-ended evaluation at each pick; returns {"tables": {...}, "summary": {...}}.
    `picks`: direction -> (layer, coef) or None; `prompts`: direction -> the prompting-baseline text."""
    study, name = ev.study, ev.name
    if opts.text_questions == 0:
        return {"tables": {}, "summary": {"status": "skipped", "note": "not run (--text-questions 0)"}}
    chosen = {d: p for d, p in picks.items() if p}
    if not chosen:
        return {"tables": {}, "summary": {"status": "no pick", "note": "not run: the coherence guard refused every "
                                                                       "strength, so there is no point to write at"}}
    try:
        questions = questions_of(study, name, opts.text_questions)
        data = labelled(study, name, opts.text_detector)
    except UserError as error:
        return {"tables": {}, "summary": {"status": "not run", "note": f"not run: {error}"}}
    options = generation_options(opts)
    detector_layer = next(iter(chosen.values()))[0]  # one detector for both directions: the first pick's layer
    params = {direction: {"kind": "text", "direction": direction, "layer": int(layer), "coef": float(coef),
                          "questions": content_hash(questions), "options": options.key(),
                          "n_random": opts.text_random, "prompt": prompts[direction], "prompt_style": opts.prompt_style,
                          "detector": {"kind": "diffmean", "layer": int(detector_layer),
                                       "texts": content_hash([data.questions, data.texts, data.labels])}}
              for direction, (layer, coef) in chosen.items()}
    detector = None
    if any(run.cached_point(p) is None for p in params.values()):  # fitted only when a point is computed
        try:
            detector = make_detector(study.model, data, name, detector_layer)
        except UserError as error:
            return {"tables": {}, "summary": {"status": "not run", "note": f"not run: {error}"}}
        if log:
            log(f"  text: detector {detector.name}: {detector.validation.describe()}")
    results, metas = {}, {}
    for direction, (layer, coef) in chosen.items():
        def compute(direction=direction, layer=layer, coef=coef) -> pl.DataFrame:
            started = time.time()
            result = core_open_ended(study.model, questions, ev.vector, layer, coef, detector=detector,
                                     behaviour=name, relative=True, residual_norm=study.residual_norms[int(layer)],
                                     options=options, n_random=opts.text_random, prompted=True,
                                     prompt_style=opts.prompt_style, prompt=prompts[direction])
            result.meta["compute_s"] = round(time.time() - started, 1)
            study.computed += 1
            if log:
                log(f"  text {direction}: {len(questions)} questions x {options.samples} samples in "
                    f"{result.meta['compute_s']:.0f} s")
            return _stored(result, direction)

        results[direction], metas[direction] = _rebuilt(run.point(params[direction], compute))
    return {"tables": tables_of(results, metas), "summary": {"status": "ran", "note": ""}}


def tables_of(results: dict, metas: dict) -> dict[str, pl.DataFrame]:
    """text_samples / text_paired / text_summary (a `direction` column each) and text_meta (one row per pick)."""
    def tagged(part: str) -> pl.DataFrame:
        return pl.concat([getattr(r, part).with_columns(pl.lit(d).alias("direction")) for d, r in results.items()],
                         how="diagonal_relaxed")

    meta_rows = []
    for d, r in results.items():
        m, v = metas[d], r.validation
        meta_rows.append({"direction": d, "layer": m["layer"], "coef": m["coefs"][0], "detector": r.detector,
                          "auroc": v.auroc, "auroc_lo": v.lo, "auroc_hi": v.hi, "n_pos": v.n_pos, "n_neg": v.n_neg,
                          "min_auroc": v.min_auroc, "measurable": v.measurable, "n_questions": m["n_questions"],
                          "samples": m["samples"], "max_new_tokens": m["max_new_tokens"],
                          "temperature": m["temperature"], "top_p": m["top_p"], "seed": m["seed"],
                          "n_random": m["n_random"], "prompt": m.get("prompt", ""),
                          "compute_s": m.get("compute_s", m.get("total_s")), "questions": r.questions})
    return {"text_samples": tagged("samples").drop("tokens", strict=False), "text_paired": tagged("paired"),
            "text_summary": tagged("summary"), "text_meta": pl.DataFrame(meta_rows)}
