"""Score steering plans on a behaviour's questions, one cached result point per plan.

A point is (scored behaviour, split, what was injected where and how hard). Points
already in the run's cache are read back; the missing ones are scored a few plans
per call (one request per call on a remote model), by answer letters (`letter_scores`; a
question's rotations packed in one row, packing.py) or by answer texts (`content.content_rows`).
Every row keeps its per-question scores (mean over the question's rotations) and its paired shift
against unsteered.

Balance (what a row's mean and paired shift are balanced over) depends on the scoring mode, and every
table, report and figure takes it from `steer_trace.metrics.strata` (through `row_shift` here):
- letter scoring: by the matching answer's letter (its position). The model sees the letters, so a push
  toward one letter would move p(matching) on the questions whose matching answer has that letter: a set
  with more A- than B-matching questions would show a letter push as an effect. The mean of the per-letter
  means (and a bootstrap within letters) cancels it.
- content scoring: by what the model reads. Each option's text is read after the stem alone, no letters
  and no option list are shown. In a Yes/No set the answer texts are "Yes" and "No" in every question, so a
  push toward "Yes" would pose as an effect exactly as a letter push does in letter scoring: balance by the
  matching answer (Yes / No). In a letter set (the paper's A/B sets, survival_instinct's A-D) the matching
  letter is invisible and every question has its own texts: nothing can push on the letter, and weighting
  by it only reweights questions (survival_instinct: 2 D-matching questions of 100 would carry 25%), so
  the plain mean over questions. A preference that does not depend on the behaviour (longer or shorter
  texts, any text under a perturbation) is what the equal-norm random directions control, not a weighting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import polars as pl
import torch

from steer_trace.cache import Run
from steer_trace.content import content_questions, content_rows
from steer_trace.errors import UserError
from steer_trace.metrics import ab_per_prompt, ab_summary, accuracy, accuracy_ci, question_columns, strata
from steer_trace.packing import next_token_probs, packable
from steer_trace.plan import Plan
from steer_trace.score import answer_probs, answer_token_ids, token_accuracy
from steer_trace.stats import paired_shift

Log = Callable[[str], None]

# Plans scored per call: one request remotely; locally the rows of a call share their passes
# and, where the plans first differ at layer L, the layers below L (row_plans.py).
POINTS_PER_CALL = 16


# Cache keys of the committed results name the steering strength `multiplier` (the tables' old column): keys
# keep that name so that they stay valid (cache.RENAMED_COLUMNS gives the column its name `coef` when read).
KEY_NAMES = {"coef": "multiplier"}


def key_fields(fields: dict) -> dict:
    """`fields` as they enter a cache key (KEY_NAMES)."""
    return {KEY_NAMES.get(k, k): v for k, v in fields.items()}


def point_fields(vector: str, direction: str, coef: float, layers=(), **extra) -> dict:
    """The steering columns of a result row (`layer` is the first injection layer, -1 for none)."""
    layers = [int(L) for L in layers]
    return {"vector": vector, "layer": layers[0] if layers else -1, "layers": ",".join(map(str, layers)),
            "direction": direction, "coef": float(coef), **extra}


def direction_of(coef: float) -> str:
    return "default" if coef == 0 else ("add" if coef > 0 else "subtract")


def _prepared(study, behaviour: str, split: str):
    """Prompts (sorted by length: less padding), answer token ids (A..H up to the most options
    shown, or Yes/No), per prompt: matching index, options shown, question index, rotation;
    per question: its matching label in the file's order."""
    cache_key = (behaviour, split)
    if cache_key not in study.prepared:
        rows = study.part(behaviour, split)
        items = study.questions(behaviour, split)
        asked = [len(row.options) if len(items) > len(rows) else 1 for row in rows]  # rotations per question
        qids = [n for n, count in enumerate(asked) for _ in range(count)]
        prompts = [study.prompt(item) for item in items]
        lengths = [len(study.model.tokenizer(p)["input_ids"]) for p in prompts]
        order = sorted(range(len(items)), key=lambda i: lengths[i])
        widest = max(items, key=lambda item: len(item.options))
        ids = answer_token_ids(study.model.tokenizer, list(widest.options))
        per_prompt = {
            "matching": torch.tensor([items[i].matching_index for i in order]),
            "n_shown": torch.tensor([len(items[i].options) for i in order]),
            "qid": torch.tensor([qids[i] for i in order]),
            "rotation": torch.tensor([items[i].rotation for i in order]),
        }
        labels = [item.original_matching for item in rows]
        study.prepared[cache_key] = ([prompts[i] for i in order], ids, per_prompt, labels)
    return study.prepared[cache_key]


# one sentence for every table and report that shows a balanced statistic (the rule: steer_trace.metrics.strata)
BALANCE_NOTE = ("balanced per scoring mode: letter scoring, the mean of the per-letter means over the matching "
                "answer's letter, bootstrap within letters (a push toward one letter cannot pose as an effect); "
                "content scoring, the plain mean over questions, bootstrap over questions (no letters are shown, "
                "so a letter cannot move anything; a Yes/No set, whose answer texts repeat, is balanced by its "
                "matching Yes / No)")


def row_shift(row: dict, base: dict, n_boot: int = 2000):
    """The paired shift of a table row's per-question p(matching) against `base` (the unsteered row, or a
    control) on the same questions, balanced as the row's scoring mode says (`strata`)."""
    return paired_shift(row["q_p_matching"], base["q_p_matching"], strata(row.get("scoring"), row["q_label"]),
                        n_boot=n_boot)


def _summary_row(study, probs, greedy, ids, per_prompt, labels) -> dict:
    row = ab_summary(probs, greedy, ids, per_prompt["matching"], n_shown=per_prompt["n_shown"]).as_dict()
    top_id, _ = Counter(greedy.tolist()).most_common(1)[0]
    row["top_answer"] = study.model.tokenizer.decode([top_id]).strip()
    per = ab_per_prompt(probs, greedy, ids, per_prompt["matching"], per_prompt["n_shown"])
    return {**row, **question_columns(per, per_prompt, labels)}


SHIFT_COLUMNS = ("shift", "shift_lo", "shift_hi", "shift_p", "shift_n", "shift_sd", "shift_mde", "shift_per_label")


def with_shift(frame: pl.DataFrame, unsteered: pl.DataFrame | None) -> pl.DataFrame:
    """The row's paired shift of per-question p(matching) against unsteered, balanced as its scoring mode
    says (`row_shift`; NaN when either lacks per-question scores, e.g. results cached before they existed)."""
    nan = {c: float("nan") for c in SHIFT_COLUMNS}
    if unsteered is None or "q_p_matching" not in frame.columns or "q_p_matching" not in unsteered.columns:
        return frame.with_columns(**{c: pl.lit(v) for c, v in nan.items()})
    row, base = frame.row(0, named=True), unsteered.row(0, named=True)
    if row["q_id"] != base["q_id"]:
        raise UserError("steered and unsteered rows were scored on different questions")
    shift = row_shift(row, base).as_dict()
    return frame.with_columns(**{c: pl.lit(float(shift[c])) for c in SHIFT_COLUMNS})


def refreshed_shifts(table: pl.DataFrame) -> pl.DataFrame:
    """The shift columns derived again from the per-question scores, against each behaviour's
    unsteered row (a finished table keeps what the statistics of its day gave)."""
    if "q_p_matching" not in table.columns or table.height == 0:
        return table
    parts = []
    for _, part in table.group_by(["behaviour", "split"], maintain_order=True):
        base = part.filter(pl.col("direction") == "default").head(1)
        parts += [with_shift(part.slice(i, 1), base if base.height else None) for i in range(part.height)]
    return pl.concat(parts, how="diagonal_relaxed")


UNSTEERED = {"vector": "none", "direction": "default", "coef": 0.0}


def _is_unsteered(fields: dict) -> bool:
    return all(fields.get(k) == v for k, v in UNSTEERED.items())


def letter_probs(study, prompts: list[str], qids: list[int], ids: list[int], plans: list[Plan]) -> list[tuple]:
    """Per plan: (answer-letter probabilities [N, K], greedy token ids [N]) of `prompts`, a question's
    rotations packed in one row where the plans allow it."""
    if len(set(qids)) < len(qids) and packable(study.model, plans):  # a question's rotations share one row
        return next_token_probs(study.model, prompts, qids, ids, plans, batch_size=study.profile.batch_size,
                                points_per_request=POINTS_PER_CALL)
    return answer_probs(study.model, prompts, ids, plans, batch_size=study.profile.batch_size,
                        points_per_request=POINTS_PER_CALL)


def letter_scores(study, behaviour: str, split: str, plans: list[Plan]) -> list[dict]:
    """One result row (summary + per-question columns) per plan, from the answer letters."""
    prompts, ids, per_prompt, labels = _prepared(study, behaviour, split)
    results = letter_probs(study, prompts, per_prompt["qid"].tolist(), ids, plans)
    return [_summary_row(study, probs, greedy, ids, per_prompt, labels) for probs, greedy in results]


# Questions per cached part of an unsteered letter point scored in parts (`unsteered_in_parts`): a 1.5B model
# on a CPU scores a behaviour's whole test split in tens of minutes, and a stopped run keeps its finished parts.
PART_QUESTIONS = 16


def unsteered_in_parts(study, run: Run, behaviour: str, split: str, log: Log | None = None) -> pl.DataFrame:
    """The unsteered letter point of `behaviour`'s `split` (as `score_points` gives it), its prompts scored
    PART_QUESTIONS questions at a time, each part cached in `run` as soon as it is done (probabilities and greedy
    answers per prompt), so a stopped run resumes from its finished parts."""
    fields = point_fields("none", "default", 0)
    params = {"behaviour": behaviour, "split": split, **fields}
    whole = run.cached_point(key_fields(params))  # the key score_points gives the same point
    if whole is None:
        prompts, ids, per_prompt, labels = _prepared(study, behaviour, split)
        qids = per_prompt["qid"].tolist()
        questions = sorted(set(qids))
        parts = [questions[i : i + PART_QUESTIONS] for i in range(0, len(questions), PART_QUESTIONS)]
        probs = torch.zeros(len(prompts), len(ids), dtype=torch.float64)
        greedy = torch.zeros(len(prompts), dtype=torch.long)
        for n, part in enumerate(parts):
            chosen = set(part)
            members = [i for i, q in enumerate(qids) if q in chosen]

            def compute(members=members) -> pl.DataFrame:
                [(p, g)] = letter_probs(study, [prompts[i] for i in members], [qids[i] for i in members], ids,
                                        [study.ready(Plan.none())])
                study.computed += 1
                if log:
                    log(f"  {behaviour} {split}: unsteered, questions {part[0]}-{part[-1]} of {len(questions)}")
                return pl.DataFrame({"prompt": members, "probs": p.double().tolist(), "greedy": g.tolist()})

            scored = run.point(key_fields({**params, "part": n, "parts": len(parts), "questions": part}), compute)
            probs[scored["prompt"].to_list()] = torch.tensor(scored["probs"].to_list(), dtype=torch.float64)
            greedy[scored["prompt"].to_list()] = torch.tensor(scored["greedy"].to_list())
        row = _summary_row(study, probs.float(), greedy, ids, per_prompt, labels)
        whole = run.point(key_fields(params), lambda: pl.DataFrame([{**study.columns(), **params, **row}]))
    return with_shift(whole, whole)


def _content_scores(study, behaviour: str, split: str, plans: list[Plan]) -> list[dict]:
    key = ("content", behaviour, split)
    if key not in study.prepared:
        study.prepared[key] = content_questions(study.part(behaviour, split), study.prompt_style,
                                                study.model.tokenizer)
    return content_rows(study.model, study.prepared[key], plans, study.profile.batch_size,
                        points_per_request=POINTS_PER_CALL)


SCORERS = {"letter": letter_scores, "content": _content_scores}


def score_points(study, run: Run, behaviour: str, split: str, entries: list[tuple[dict, Plan]],
                 log: Log | None = None) -> list[pl.DataFrame]:
    """One table row per (fields, plan) entry, scored on `behaviour`'s `split` questions
    (by study.scoring), each with its paired shift against the unsteered row (scored too)."""
    entries = list(entries)
    has_unsteered = any(_is_unsteered(fields) for fields, _ in entries)
    if not has_unsteered:
        entries.append((point_fields("none", "default", 0), Plan.none()))
    params = [{"behaviour": behaviour, "split": split, **fields} for fields, _ in entries]
    frames: list[pl.DataFrame | None] = [run.cached_point(key_fields(p)) for p in params]
    missing = [i for i, frame in enumerate(frames) if frame is None]
    scorer = SCORERS[study.scoring]
    for start in range(0, len(missing), POINTS_PER_CALL):
        block = missing[start : start + POINTS_PER_CALL]
        rows = scorer(study, behaviour, split, [study.ready(entries[i][1]) for i in block])
        for i, scored in zip(block, rows):
            frame = pl.DataFrame([{**study.columns(), **params[i], **scored}])
            frames[i] = run.point(key_fields(params[i]), lambda frame=frame: frame)
        study.computed += len(block)
        if log:
            done = ", ".join(f"{params[i]['vector']}/{params[i]['direction']}{params[i]['coef']:+g}"
                             for i in block)
            log(f"  {behaviour} {split}: {done}")
    unsteered = next(f for (fields, _), f in zip(entries, frames) if _is_unsteered(fields))
    frames = [with_shift(f, unsteered) for f in frames]
    return frames if has_unsteered else frames[:-1]


def tax_points(study, run: Run, docs: list[str], max_tokens: int, entries: list[tuple[dict, Plan]],
               log: Log | None = None) -> list[pl.DataFrame]:
    """Top-1 next-token accuracy on plain text, one cached point per plan."""
    frames = [run.cached_point(key_fields(fields)) for fields, _ in entries]
    missing = [i for i, frame in enumerate(frames) if frame is None]
    for start in range(0, len(missing), POINTS_PER_CALL):
        block = missing[start : start + POINTS_PER_CALL]
        plans = [study.ready(entries[i][1]) for i in block]
        results = token_accuracy(study.model, docs, plans, batch_size=4, max_tokens=max_tokens,
                                 points_per_request=POINTS_PER_CALL)
        for i, (correct, counts) in zip(block, results):
            fields = entries[i][0]
            lo, hi = accuracy_ci(correct.numpy(), counts.numpy())
            row = {"model": study.model.name, "profile": study.profile.name, "relative": study.relative,
                   "plain_mean": not study.balanced, "vector_source": study.vector_source,
                   "split_rule": study.split_rule, **fields, "accuracy": accuracy(correct.numpy(), counts.numpy()),
                   "accuracy_lo": lo, "accuracy_hi": hi, "n_tokens": int(counts.sum()), "n_docs": len(docs)}
            frames[i] = run.point(key_fields(fields), lambda frame=pl.DataFrame([row]): frame)
        study.computed += len(block)
        if log:
            log("  tax: " + ", ".join(f"{entries[i][0]['vector']}{entries[i][0]['coef']:+g}" for i in block))
    return frames
