"""Open-ended evaluation: what a steered model *writes*, measured, beside its controls.

Pattern (the function the `evaluate` study and `steer-trace text eval` call):

    result = open_ended(model, questions, vector, layer, coef, detector=detector,
                        behaviour="myopic", relative=True, options=GenerationOptions(...))
    result.samples   # polars: one row per (condition, question, sample): text and every measure
    result.paired    # polars: condition - unsteered (and steered - each random), per measure, with intervals
    result.side_by_side(6)  # markdown: the first sample of each condition for 6 questions

Conditions, K samples per question each, all sharing the seeds of their question (generation.py):
`unsteered`; `steered` (vector at `layer` x `coef`); `random-1..n` (equal-norm random
directions, distinct draws, as `controls.random_like`; with several coefficients, each steered and
random condition per coefficient: "steered x0.5", "random-1 x0.5"); `prompted` (unsteered, the question
preceded by an instruction to show the behaviour, or not to when coef < 0). Questions are asked
without options. Every sample is measured by `text_measures` (fluency, relevance, under the
unsteered model, against the question as asked) and by the detector (concept = p(behaviour)).

Per question the K samples are averaged; the paired differences over questions carry a bootstrap
interval and p (`stats.paired_shift`; below MIN_QUESTIONS = stats.MIN_PER_LABEL, the shift only).
The verdict on a concept shift is "not measurable with this detector" when the detector's
validation fails, "text broken" when the condition's fluency is below text_measures.FLUENT,
"too few questions" below MIN_QUESTIONS, and otherwise "moves" / "no effect (detectable ±mde)".
The combined score orients the concept by the sign of coef (steering away scores 1 - p).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from .controls import random_like
from .detectors import describe, prompt_of
from .errors import UserError
from .generation import GenerationOptions, generate_jobs
from .models import Model
from .plan import Plan
from .stats import MIN_PER_LABEL, paired_shift
from .text_measures import FLUENT, References, fluency, harmonic, relevance, text_measures
from .vectors import SteeringVector

MIN_QUESTIONS = MIN_PER_LABEL  # the project's minimum for any interval or verdict (stats.py)
MEASURES = ("concept", "fluency", "relevance", "combined", "perplexity", "distinct")


def instruction(behaviour: str, coef: float) -> str:
    """What the `prompted` condition asks for, in the direction of coef."""
    if coef >= 0:
        return f"Answer in a way that {describe(behaviour)}."
    return f"Do not answer in a way that {describe(behaviour)}."


@dataclass
class TextEval:
    samples: pl.DataFrame  # condition, coef, question, sample, seed, text, stopped, n_tokens, and MEASURES
    paired: pl.DataFrame  # condition, against, measure, shift, lo, hi, p, n, mde, verdict
    summary: pl.DataFrame  # condition, measure, mean, lo, hi, n
    detector: str
    validation: object  # detectors.Validation
    questions: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def side_by_side(self, n: int = 6, chars: int = 160) -> str:
        """A markdown table: per question (the first n), sample 0 of each condition."""
        conditions = list(dict.fromkeys(self.samples["condition"].to_list()))
        lines = ["| question | " + " | ".join(conditions) + " |", "|---" * (len(conditions) + 1) + "|"]
        first = self.samples.filter(pl.col("sample") == 0)
        for qi, q in enumerate(self.questions[:n]):
            cells = [_cell(q, chars)]
            for c in conditions:
                row = first.filter((pl.col("condition") == c) & (pl.col("question") == qi))
                cells.append(_cell(row["text"][0], chars) if row.height else "")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _cell(text: str, chars: int) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= chars else text[: chars - 1] + "…"


def conditions(vector: SteeringVector, layer: int, coefs: Sequence[float], n_random: int,
               relative_norm: float | None, seed: int = 0) -> list[tuple[str, Plan, float]]:
    """(name, plan, coef) of the steered conditions: steered, random-1..n at each coef (names gain " xC" when
    there are several); with relative_norm a coefficient is x that residual norm (every direction scaled to it,
    as Plan.relative_to). The random directions are the same draws at every coef."""
    randoms = [random_like(vector, seed=seed * 1000 + k + 1) for k in range(n_random)]
    out = []
    for c in coefs:
        tag = f" x{c:g}" if len(coefs) > 1 else ""
        plans = [(f"steered{tag}", Plan.single(vector, layer, c))]
        plans += [(f"random-{k + 1}{tag}", Plan.single(r, layer, c)) for k, r in enumerate(randoms)]
        if relative_norm is not None:
            plans = [(name, plan.relative_to({int(layer): float(relative_norm)})) for name, plan in plans]
        out += [(name, plan, float(c)) for name, plan in plans]
    return out


def open_ended(model: Model, questions: Sequence[str], vector: SteeringVector, layer: int,
               coef: float | Sequence[float], *,
               detector, behaviour: str = "", relative: bool = False, residual_norm: float | None = None,
               options: GenerationOptions | None = None, n_random: int = 2, prompted: bool = True,
               prompt_style: str = "paper", fluency_model: Model | None = None, prompt: str | None = None,
               progress=None) -> TextEval:
    """Generate and measure K samples per question under each condition; see the module docstring.

    model: the steered model (also the fluency/relevance judge unless `fluency_model`);
    questions: question texts without options; vector, layer, coef: the steering point (several
    coefficients of one sign share the unsteered and prompted samples: conditions "steered xC", "random-k xC");
    detector: a fitted detectors.DiffMean or Judge (its .validation is printed beside every number);
    relative: coef is x the residual norm at `layer` (`residual_norm`, else the vector's recorded
    meta["residual_norms"][layer]); options: sampling (default 48 tokens, temperature 0.7, 4 samples);
    prompt_style: "paper" (Human:/AI:, as the vectors were read) or "chat" (the chat template);
    prompt: the `prompted` condition's instruction (default `instruction(behaviour, coef)`; a caller with its own
    prompting baseline passes that text, so the text and its other measurements ask the same thing)."""
    started = time.time()
    options = options or GenerationOptions(max_new_tokens=48, temperature=0.7, samples=4, chat=False)
    if prompt_style not in ("paper", "chat"):
        raise UserError(f"unknown prompt style {prompt_style!r} (paper or chat)")
    options = replace(options, chat=prompt_style == "chat")
    coefs = [float(c) for c in (coef if isinstance(coef, Sequence) else [coef])]
    if not coefs or not (all(c >= 0 for c in coefs) or all(c <= 0 for c in coefs)):
        raise UserError(f"coefficients {coefs} mix signs: evaluate each sign in its own call (the prompted "
                        "baseline and the combined score follow the sign)")
    sign = -1.0 if any(c < 0 for c in coefs) else 1.0
    questions = list(questions)
    norm = None
    if relative:
        norm = residual_norm
        if norm is None:
            recorded = (vector.meta or {}).get("residual_norms", {})
            if str(layer) not in recorded:
                raise UserError(f"--relative needs the residual norm at layer {layer}: the vector records none")
            norm = float(recorded[str(layer)])

    def asked(q: str) -> str:
        return prompt_of(q) if prompt_style == "paper" else q

    runs = [("unsteered", Plan.none(), [asked(q) for q in questions], 0.0)]
    runs += [(name, plan, [asked(q) for q in questions], c) for name, plan, c in
             conditions(vector, layer, coefs, n_random, norm)]
    if prompted and (behaviour or prompt):
        asking = prompt or instruction(behaviour, sign)
        runs.append(("prompted", Plan.none(), [asked(f"{asking}\n\n{q}") for q in questions], 0.0))
    rows = []
    generated = generate_jobs(model, [(plan, prompts) for _, plan, prompts, _ in runs], options, progress=progress)
    for (name, _, _, c), samples in zip(runs, generated):
        for s in samples:
            rows.append({"condition": name, "coef": c, "question": s.question, "sample": s.sample,
                         "seed": str(s.seed), "text": s.text, "stopped": s.stopped, "n_tokens": len(s.tokens)})
    generated_s = time.time() - started
    frame = pl.DataFrame(rows)
    qs = [questions[i] for i in frame["question"].to_list()]
    texts = frame["text"].to_list()
    judge = fluency_model or model
    measured = text_measures(judge, [prompt_of(q) for q in qs], [prompt_of("") for _ in qs], texts)
    concept = detector.score(qs, texts)
    frame = frame.with_columns(
        pl.Series("concept", concept), pl.Series("perplexity", measured["perplexity"]),
        pl.Series("distinct", measured["distinct"]), pl.Series("relevance_pmi", measured["relevance_pmi"]))
    meta = {"n_questions": len(questions), "samples": options.samples, "max_new_tokens": options.max_new_tokens,
            "temperature": options.temperature, "top_p": options.top_p, "seed": options.seed, "layer": int(layer),
            "coefs": coefs, "relative": bool(relative), "residual_norm": norm, "n_random": n_random,
            "prompt_style": prompt_style, "detector": detector.name, **({"prompt": prompt} if prompt else {}),
            "generate_s": round(generated_s, 1),
            "total_s": round(time.time() - started, 1)}
    return scored(frame, questions, detector.name, detector.validation, meta)


def scored(frame: pl.DataFrame, questions: list[str], detector: str, validation, meta: dict) -> TextEval:
    """The scaled measures, per-question means, paired differences and summary from the raw columns (concept,
    perplexity, distinct, relevance_pmi) of `frame`: no model, so a report can be rebuilt from its samples table.
    The combined score orients the concept by the sign of meta["coefs"]."""
    raw = frame.select([c for c in frame.columns if c not in ("fluency", "relevance", "combined")])
    is_base = (raw["condition"] == "unsteered").to_numpy()
    perplexity, distinct, pmi = (raw[c].to_numpy().astype(np.float64) for c in ("perplexity", "distinct",
                                                                                "relevance_pmi"))
    concept = raw["concept"].to_numpy().astype(np.float64)
    ref = References.of(perplexity[is_base], distinct[is_base], pmi[is_base])
    flu = fluency(perplexity, distinct, ref)
    rel = relevance(pmi, ref)
    oriented = concept if all(c >= 0 for c in meta["coefs"]) else 1 - concept
    oriented = np.where(np.isfinite(oriented), oriented, 0.0)  # an empty text shows no behaviour
    frame = raw.with_columns(pl.Series("fluency", flu), pl.Series("relevance", rel),
                             pl.Series("combined", harmonic(oriented, rel, flu)))
    per_q = frame.group_by(["condition", "question"]).agg([pl.col(m).mean() for m in MEASURES]).sort(
        ["condition", "question"])
    names = list(dict.fromkeys(frame["condition"].to_list()))
    meta = {**meta, "references": ref.__dict__}
    return TextEval(frame, _paired(per_q, names, validation), _summary(per_q), detector, validation, questions, meta)


def _summary(per_q: pl.DataFrame) -> pl.DataFrame:
    out = []
    for name in per_q["condition"].unique(maintain_order=True).to_list():
        part = per_q.filter(pl.col("condition") == name)
        for m in MEASURES:
            x = part[m].to_numpy().astype(np.float64)
            x = x[np.isfinite(x)]
            lo, hi = _mean_ci(x)
            out.append({"condition": name, "measure": m, "mean": float(x.mean()) if x.size else math.nan,
                        "lo": lo, "hi": hi, "n": int(x.size)})
    return pl.DataFrame(out)


def _mean_ci(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    if x.size < MIN_QUESTIONS:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    boot = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return float(lo), float(hi)


def _paired(per_q: pl.DataFrame, names: list[str], validation) -> pl.DataFrame:
    """condition - unsteered for every condition, and steered - random-k, per measure, per question."""
    table = {name: per_q.filter(pl.col("condition") == name).sort("question") for name in names}
    pairs = [(name, "unsteered") for name in names if name != "unsteered"]
    pairs += [(name.replace(name.split(" ")[0], "steered", 1), name) for name in names if name.startswith("random-")]
    fluency_of = {name: float(np.nanmean(t["fluency"].to_numpy())) for name, t in table.items()}
    out = []
    for a, b in pairs:
        for m in MEASURES:
            x, y = table[a][m].to_numpy().astype(np.float64), table[b][m].to_numpy().astype(np.float64)
            ok = np.isfinite(x) & np.isfinite(y)
            n = int(ok.sum())
            if n == 0:
                out.append({"condition": a, "against": b, "measure": m, "shift": math.nan, "lo": math.nan,
                            "hi": math.nan, "p": math.nan, "n": n, "mde": math.nan, "verdict": "too few questions"})
                continue
            s = paired_shift(x[ok], y[ok])
            verdict = ("too few questions" if s.too_few else "moves" if s.lo > 0 or s.hi < 0
                       else f"no effect (detectable ±{s.mde:.2f})")
            if verdict == "too few questions":
                pass
            elif m in ("concept", "combined") and not validation.measurable:
                verdict = "not measurable with this detector"
            elif m == "concept" and min(fluency_of[a], fluency_of[b]) < FLUENT:
                verdict = f"text broken (fluency {min(fluency_of[a], fluency_of[b]):.2f})"
            out.append({"condition": a, "against": b, "measure": m, "shift": s.shift, "lo": s.lo, "hi": s.hi,
                        "p": s.p, "n": n, "mde": s.mde, "verdict": verdict})
    return pl.DataFrame(out)
