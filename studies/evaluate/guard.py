"""The coherence guard: a steering strength counts only where the model still works.

Two checks at every (layer, coef) the search tries, both against the unsteered model:
- plain-text next-token accuracy (the alignment tax, `score.token_accuracy` through
  `behaviour_eval.tax_points`) must keep at least (1 - max_loss) of the unsteered accuracy;
- the greedy continuations of a few fixed prompts (`plan.steered_generate`) must not collapse:
  their distinct-token ratio (distinct tokens / tokens, averaged over the prompts) must stay at
  least `min_distinct` x the unsteered ratio. "nowhere now nowhere nowhere ..." has a ratio near 0.1.

Pattern: `GuardBounds` states the bounds; `judge(row, unsteered, bounds)` returns (ok, reason).
Gotcha: a content score can be pushed by a model that no longer writes text, so the guard reads
only plain text and free generation, never the behaviour's own questions.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from steer_trace.cache import Run
from steer_trace.generation import steered_generate
from steer_trace.plan import Plan

PROMPTS = (
    "The history of the city begins",
    "Here is a simple recipe for dinner:",
    "When I woke up this morning,",
)


@dataclass(frozen=True)
class GuardBounds:
    max_loss: float = 0.1  # a steered point keeps >= (1 - max_loss) x the unsteered next-token accuracy
    min_distinct: float = 0.6  # ... and >= min_distinct x the unsteered distinct-token ratio of greedy text

    def describe(self) -> str:
        return (f"next-token accuracy on plain text at least {1 - self.max_loss:.0%} of unsteered, and the "
                f"distinct-token ratio of greedy continuations of {len(PROMPTS)} fixed prompts at least "
                f"{self.min_distinct:.0%} of unsteered")


def distinct_ratio(token_lists: list[list[int]]) -> float:
    """Mean over texts of distinct tokens / tokens (1: no token repeats; 1/n: one token n times)."""
    ratios = [len(set(t)) / len(t) for t in token_lists if t]
    return float(sum(ratios) / len(ratios)) if ratios else 0.0


def greedy_point(study, run: Run, fields: dict, plan: Plan, n_tokens: int) -> pl.DataFrame:
    """Greedy continuations of `PROMPTS` under `plan` (cached as one point) and their distinct-token ratio."""
    params = {"kind": "greedy", "n_tokens": n_tokens, "prompts": list(PROMPTS), **fields}

    def compute() -> pl.DataFrame:
        texts = steered_generate(study.model, list(PROMPTS), study.ready(plan), n_tokens)
        tokens = [study.model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        study.computed += 1
        return pl.DataFrame([{**fields, "distinct": distinct_ratio(tokens), "texts": texts,
                              "prompts": list(PROMPTS)}])

    return run.point(params, compute)


def judge(row: dict, unsteered: dict, bounds: GuardBounds) -> tuple[bool, str]:
    """(ok, the reason in words) for one steered point's `accuracy` and `distinct` against unsteered."""
    floor_acc = (1 - bounds.max_loss) * unsteered["accuracy"]
    floor_distinct = bounds.min_distinct * unsteered["distinct"]
    problems = []
    if row["accuracy"] < floor_acc:
        problems.append(f"next-token accuracy {row['accuracy']:.3f} < {floor_acc:.3f}")
    if row["distinct"] < floor_distinct:
        problems.append(f"greedy text collapsed (distinct-token ratio {row['distinct']:.2f} < {floor_distinct:.2f})")
    if problems:
        return False, "refused: " + "; ".join(problems)
    return True, f"ok (accuracy {row['accuracy']:.3f}, distinct {row['distinct']:.2f})"
