"""Score steering plans on a behaviour's questions, one cached result point per plan.

A point is (scored behaviour, split, what was injected where and how hard). Points
already in the run's cache are read back; the missing ones are scored a few plans
per `answer_probs` call (one request per call on a remote model).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import polars as pl
import torch

from ..cache import Run
from ..metrics import ab_summary, accuracy, accuracy_ci
from ..plan import Plan
from ..score import answer_probs, answer_token_ids, token_accuracy

Log = Callable[[str], None]


def point_fields(vector: str, direction: str, multiplier: float, layers=(), **extra) -> dict:
    """The steering columns of a result row (`layer` is the first injection layer, -1 for none)."""
    layers = [int(L) for L in layers]
    return {"vector": vector, "layer": layers[0] if layers else -1, "layers": ",".join(map(str, layers)),
            "direction": direction, "multiplier": float(multiplier), **extra}


def direction_of(coef: float) -> str:
    return "default" if coef == 0 else ("add" if coef > 0 else "subtract")


def _prepared(study, behaviour: str, split: str):
    """Prompts (sorted by length: less padding), answer token ids, matching indices."""
    cache_key = (behaviour, split)
    if cache_key not in study._prompts:
        items = study.questions(behaviour, split)
        prompts = [study.prompt(item) for item in items]
        lengths = [len(study.model.tokenizer(p)["input_ids"]) for p in prompts]
        order = sorted(range(len(items)), key=lambda i: lengths[i])
        ids = answer_token_ids(study.model.tokenizer, list(items[0].options))
        matching = torch.tensor([items[i].matching_index for i in order])
        study._prompts[cache_key] = ([prompts[i] for i in order], ids, matching)
    return study._prompts[cache_key]


def _summary_row(study, probs, greedy, ids, matching) -> dict:
    row = ab_summary(probs, greedy, ids, matching).as_dict()
    top_id, _ = Counter(greedy.tolist()).most_common(1)[0]
    row["top_answer"] = study.model.tokenizer.decode([top_id]).strip()
    return row


def score_points(study, run: Run, behaviour: str, split: str, entries: list[tuple[dict, Plan]],
                 log: Log | None = None) -> list[pl.DataFrame]:
    """One table row per (fields, plan) entry, scored on `behaviour`'s `split` questions."""
    params = [{"behaviour": behaviour, "split": split, **fields} for fields, _ in entries]
    frames: list[pl.DataFrame | None] = [run.cached_point(p) for p in params]
    missing = [i for i, frame in enumerate(frames) if frame is None]
    per_call = 16 if study.model.remote else 4
    for start in range(0, len(missing), per_call):
        block = missing[start : start + per_call]
        prompts, ids, matching = _prepared(study, behaviour, split)
        plans = [study.ready(entries[i][1]) for i in block]
        results = answer_probs(study.model, prompts, ids, plans, batch_size=study.profile.batch_size,
                               points_per_request=per_call)
        for i, (probs, greedy) in zip(block, results):
            row = {**study.columns(), **params[i], **_summary_row(study, probs, greedy, ids, matching)}
            frame = pl.DataFrame([row])
            frames[i] = run.point(params[i], lambda frame=frame: frame)
        study.computed += len(block)
        if log:
            done = ", ".join(f"{params[i]['vector']}/{params[i]['direction']}{params[i]['multiplier']:+g}"
                             for i in block)
            log(f"  {behaviour} {split}: {done}")
    return frames


def tax_points(study, run: Run, docs: list[str], max_tokens: int, entries: list[tuple[dict, Plan]],
               log: Log | None = None) -> list[pl.DataFrame]:
    """Top-1 next-token accuracy on plain text, one cached point per plan."""
    frames = [run.cached_point(fields) for fields, _ in entries]
    missing = [i for i, frame in enumerate(frames) if frame is None]
    per_call = 16 if study.model.remote else 4
    for start in range(0, len(missing), per_call):
        block = missing[start : start + per_call]
        plans = [study.ready(entries[i][1]) for i in block]
        results = token_accuracy(study.model, docs, plans, batch_size=4, max_tokens=max_tokens,
                                 points_per_request=per_call)
        for i, (correct, counts) in zip(block, results):
            fields = entries[i][0]
            lo, hi = accuracy_ci(correct.numpy(), counts.numpy())
            row = {"model": study.model.name, "profile": study.profile.name, "relative": study.relative,
                   "plain_mean": not study.balanced, **fields, "accuracy": accuracy(correct.numpy(), counts.numpy()),
                   "accuracy_lo": lo, "accuracy_hi": hi, "n_tokens": int(counts.sum()), "n_docs": len(docs)}
            frames[i] = run.point(fields, lambda frame=pl.DataFrame([row]): frame)
        study.computed += len(block)
        if log:
            log("  tax: " + ", ".join(f"{entries[i][0]['vector']}{entries[i][0]['multiplier']:+g}" for i in block))
    return frames
