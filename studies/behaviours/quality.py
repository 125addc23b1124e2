"""Is a behaviour vector a direction or sampling noise? (`behaviours diagnose`)

Per behaviour and layer, from the per-pair differences of the vector split (letter: the
answer-letter token, as CAA; content: the answer-text tokens, see content.py):
- split-half reliability: cosine between the vectors of two disjoint random halves;
- a label-permutation null: each pair's (matching, non-matching) labels swapped at random;
  the vector's norm and reliability against it, with p-values;
each computed for the vector as it is built: letter vectors (unless --plain-mean) as the mean of the
per-matching-answer group means, with a swapped pair moving to its other answer's group
(`stats.sign_flip_null`); content vectors as the plain mean;
- held-out AUC: the projection on the vector separating matching from non-matching
  activations of the test split's questions (0.5: no separation);
plus the unsteered precondition row (order consistency) from the letter scores.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import torch

from steer_trace.batching import chunks
from steer_trace.cache import Run, merged
from steer_trace.content import pair_means
from steer_trace.read import read_batch
from steer_trace.stats import heldout_auc, sign_flip_null
from .scoring import Log, unsteered_in_parts
from .vectors import per_behaviour_table, vectors_config


def _read(model, texts: list[str], layers: list[int], batch_size: int, position: str) -> dict[int, torch.Tensor]:
    out: dict[int, list] = {L: [] for L in layers}
    for batch in chunks(texts, batch_size):
        acts = read_batch(model, batch, layers, position)
        for L in layers:
            out[L].append(acts[L])
    return {L: torch.cat(parts) for L, parts in out.items()}


def pair_activations(study, items, layers: list[int]) -> tuple[dict, dict]:
    """({layer: [pairs, d]} matching, same for non-matching): one pair per non-matching option."""
    model, bs = study.model, study.profile.batch_size
    if study.vector_source == "content":
        return pair_means(model, items, layers, study.prompt_style, bs)
    pos, neg = [], []
    for item in items:
        prompt = study.prompt(item)
        for other in item.non_matching:
            pos.append(prompt + item.matching)
            neg.append(prompt + other)
    return _read(model, pos, layers, bs, "last"), _read(model, neg, layers, bs, "last")


def _letter_balanced(study) -> bool:
    """Letter vectors are the mean of per-matching-answer group means unless --plain-mean; content vectors a
    plain mean. The statistics measure the vector as it is built."""
    return study.vector_source == "letter" and study.balanced


def quality_rows(study, name: str, layers: list[int], log: Log | None = None) -> pl.DataFrame:
    vector_items = study.part(name, "vector")
    train_pos, train_neg = pair_activations(study, vector_items, layers)
    test_pos, test_neg = pair_activations(study, study.part(name, "test"), layers)
    groups = swapped = None
    if _letter_balanced(study):  # pairs in pair_activations' order: per question, per non-matching answer
        groups = [item.matching for item in vector_items for _ in item.non_matching]
        swapped = [other for item in vector_items for other in item.non_matching]
    rows = []
    for L in layers:
        diffs = (train_pos[L] - train_neg[L]).double().numpy()
        quality = sign_flip_null(diffs, groups=groups, swapped=swapped)
        rows.append({"model": study.model.name, "profile": study.profile.name, "behaviour": name, "layer": L,
                     "vector_source": study.vector_source, "n_pairs": int(diffs.shape[0]),
                     "estimator": "group-balanced" if groups is not None else "plain mean", **quality.as_dict(),
                     "heldout_auc": heldout_auc(diffs, test_pos[L].double().numpy(), test_neg[L].double().numpy(),
                                                groups),
                     "n_test_pairs": int(test_pos[L].shape[0])})
    if log:
        log(f"  vector quality {name}: {diffs.shape[0]} pairs, layers {', '.join(map(str, layers))}")
    return pl.DataFrame(rows)


def run_quality(study, layers: list[int], log: Log | None = None) -> pl.DataFrame:
    run = Run("behaviours_quality", merged(vectors_config(study), {
        "vector_source": study.vector_source, "layers": layers, "null": "sign-flip/200", "version": 1,
        **({"estimator": "group-balanced"} if _letter_balanced(study) else {})}), study.root)
    table = per_behaviour_table(study, run, lambda study, name: quality_rows(study, name, layers, log))
    built = pl.lit("group-balanced" if _letter_balanced(study) else "plain mean")
    return table.with_columns(pl.col("estimator").fill_null(built) if "estimator" in table.columns
                              else built.alias("estimator"))  # rows cached before the column


def run_precondition(study, log: Log | None = None) -> pl.DataFrame:
    """The unsteered letter scores of the test split (every rotation): order consistency."""
    letters = replace(study, scoring="letter")
    run = Run("behaviours_precondition", letters.scored_config("test"), study.root)
    table = run.finished()
    if table is None:  # scored in parts of a few questions, each cached: a stopped run keeps what it finished
        table = run.finish([unsteered_in_parts(letters, run, name, "test", log) for name in study.names])
    study.computed += letters.computed
    return table
