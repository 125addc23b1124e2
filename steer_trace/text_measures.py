"""Fluency and relevance of generated texts, and the AxBench-style combined score.

Per sample, under the *unsteered* model (the judge of "is this still language it would write"):
- `perplexity`: exp(-mean log p(text tokens | prompt));
- `distinct`: distinct-2 of its words (unique word bigrams / bigrams): 1 for text that never
  repeats itself, near 0 for a loop ("the the the ..."), which a language model finds *easy*
  to predict, so perplexity alone never flags it;
- `relevance_pmi`: mean log p(token | question prompt) - mean log p(token | the same prompt with an
  empty question), per token: how much the question helps predict the text.

Scaled to [0, 1] against the unsteered samples of the same run (`References`, medians):
fluency = clip(1 - log(ppl / ppl_ref) / log(PPL_CUT), 0, 1) x min(1, distinct / distinct_ref) - a text
PPL_CUT (50) times as perplexing as the model's own unsteered samples scores 0, ~7 times 0.5 (hand-written
fluent sentences vary ~5x in perplexity under a small model, so a plain ratio would flag them);
relevance = clip(pmi / pmi_ref, 0, 1). The combined score (AxBench: concept, instruction, fluency) is the
harmonic mean of concept, relevance and fluency, 0 if any is 0. An empty text scores 0 fluency
and 0 relevance. Gotcha: the scales are relative to this model's own unsteered text, not
absolute quality; a sample is "not fluent" below FLUENT (0.5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .content import answer_logprobs
from .models import Model
from .plan import Plan

FLUENT = 0.5  # fluency below this: the sample is flagged "not fluent"
PPL_CUT = 50.0  # perplexity this many times the unsteered median: fluency 0


def words(text: str) -> list[str]:
    return text.lower().split()


def distinct_n(text: str, n: int = 2) -> float:
    """Unique word n-grams / word n-grams; NaN for a text with fewer than n words."""
    w = words(text)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else math.nan


def mean_logprobs(model: Model, prompts: Sequence[str], texts: Sequence[str], batch_size: int = 8) -> np.ndarray:
    """Mean log p(text tokens | prompt) per (prompt, text), unsteered; NaN for an empty text."""
    out = np.full(len(texts), np.nan)
    keep = [i for i, t in enumerate(texts) if t.strip()]
    if keep:
        [scores] = answer_logprobs(model, [prompts[i] for i in keep], [texts[i] for i in keep], [Plan.none()],
                                   batch_size=batch_size)
        out[keep] = scores.double().numpy()
    return out


@dataclass(frozen=True)
class References:
    """The unsteered samples' medians that scale fluency and relevance to [0, 1]."""

    perplexity: float
    distinct: float
    relevance_pmi: float

    @classmethod
    def of(cls, perplexity, distinct, relevance_pmi) -> "References":
        def median(x):
            x = np.asarray(x, dtype=np.float64)
            x = x[np.isfinite(x)]
            return float(np.median(x)) if x.size else math.nan
        return cls(median(perplexity), median(distinct), median(relevance_pmi))


def fluency(perplexity, distinct, ref: References) -> np.ndarray:
    """clip(1 - log(ppl / ppl_ref) / log(PPL_CUT), 0, 1) x min(1, distinct / distinct_ref); 0 where the text is
    empty (NaN ppl). A text too short for a bigram keeps its perplexity part only."""
    ppl = np.asarray(perplexity, dtype=np.float64)
    dist = np.asarray(distinct, dtype=np.float64)
    ratio = np.log(np.where(np.isfinite(ppl), ppl, 1.0) / ref.perplexity) / math.log(PPL_CUT)
    part_ppl = np.where(np.isfinite(ppl), np.clip(1.0 - ratio, 0.0, 1.0), 0.0)
    part_rep = np.where(np.isfinite(dist), np.minimum(1.0, dist / max(ref.distinct, 1e-9)), 1.0)
    return part_ppl * part_rep


def relevance(pmi, ref: References) -> np.ndarray:
    """clip(pmi / pmi_ref, 0, 1); 0 for an empty text; NaN everywhere when the unsteered samples'
    own median is not positive (the question does not help predict even them: nothing to scale by)."""
    pmi = np.asarray(pmi, dtype=np.float64)
    if not (math.isfinite(ref.relevance_pmi) and ref.relevance_pmi > 0):
        return np.full(pmi.shape, np.nan)
    return np.where(np.isfinite(pmi), np.clip(pmi / ref.relevance_pmi, 0.0, 1.0), 0.0)


def harmonic(*parts) -> np.ndarray:
    """Elementwise harmonic mean of parts in [0, 1]: 0 if any part is 0, NaN if any is NaN."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in parts])
    with np.errstate(divide="ignore", invalid="ignore"):
        hm = len(parts) / np.sum(1.0 / stacked, axis=0)
    return np.where(np.any(stacked <= 0, axis=0) & ~np.any(np.isnan(stacked), axis=0), 0.0, hm)


def text_measures(model: Model, prompts: Sequence[str], empty_prompts: Sequence[str], texts: Sequence[str],
                  batch_size: int = 8) -> dict[str, np.ndarray]:
    """Per text: perplexity (given its prompt), distinct-2, relevance_pmi (prompt vs empty-question
    prompt), all under `model` unsteered."""
    cond = mean_logprobs(model, prompts, texts, batch_size)
    bare = mean_logprobs(model, empty_prompts, texts, batch_size)
    return {"perplexity": np.exp(-cond), "distinct": np.array([distinct_n(t) for t in texts]),
            "relevance_pmi": cond - bare}
