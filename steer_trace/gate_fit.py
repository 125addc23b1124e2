"""Fit a projection gate on labelled prompts: the condition vector, the layer and the threshold.

Pattern (CAST's recipe, with a held-out check): the prompts (with / without the condition) are split,
stratified and seeded, into a fit part and a held-out part. On the fit part, per candidate layer: the
condition vector c = mean pooled output of the prompts with the condition - mean of those without
(pooled as the gate pools: the mean over real tokens, or the last token); each prompt's score is the
gate's cosine; the threshold is the midpoint between two sorted fit scores that maximises F1 (ties: the
middle of the best run). The layer with the best fit F1 wins (ties: the lowest). The held-out part
is scored once, with that gate: F1, precision, recall, and a percentile bootstrap interval of F1
(held-out prompts resampled within each label).

Gotcha: the held-out F1 is only honest if the held-out prompts never shaped c, the layer or the
threshold; everything here is chosen on the fit part.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .gates import Gate, projection
from .models import Model
from .read import read_batch

MIN_PER_LABEL = 4


def load_condition_data(path: str | Path) -> tuple[list[str], list[bool]]:
    """JSONL rows {"text": str, "condition": bool}: the prompts and their labels."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UserError(f"cannot read condition data {path} ({error.strerror or error})") from None
    texts, labels = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise UserError(f"{path}:{n} is not a JSON object") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip() \
                or not isinstance(row.get("condition"), bool):
            raise UserError(f"{path}:{n} needs a non-empty \"text\" and a true/false \"condition\"")
        texts.append(row["text"])
        labels.append(row["condition"])
    for value in (True, False):
        if labels.count(value) < MIN_PER_LABEL:
            raise UserError(f"{path} has {labels.count(value)} prompts with condition={str(value).lower()}: "
                            f"give at least {MIN_PER_LABEL} of each")
    return texts, labels


def split(labels: Sequence[bool], fit_fraction: float = 0.5, seed: int = 0) -> tuple[list[int], list[int]]:
    """(fit indices, held-out indices), stratified by label, seeded; each part holds >= 2 of each label."""
    if not 0 < fit_fraction < 1:
        raise UserError(f"--fit-fraction {fit_fraction} must lie strictly between 0 and 1")
    rng = random.Random(seed)
    fit, held = [], []
    for value in (True, False):
        index = [i for i, x in enumerate(labels) if x == value]
        rng.shuffle(index)
        k = min(max(2, round(len(index) * fit_fraction)), len(index) - 2)
        fit += index[:k]
        held += index[k:]
    return sorted(fit), sorted(held)


def pooled_outputs(model: Model, texts: Sequence[str], layers: Sequence[int], pool: str,
                   batch_size: int = 8, max_tokens: int | None = None) -> dict[int, torch.Tensor]:
    """{layer: [N, d]} each text's output of the layer, pooled as the gate pools (mean of real tokens, or last)."""
    position = {"mean": "mean", "last": "last"}[pool]
    parts: dict[int, list[torch.Tensor]] = {int(L): [] for L in layers}
    for start in range(0, len(texts), batch_size):
        out = read_batch(model, list(texts[start : start + batch_size]), list(parts), position, max_tokens)
        for L in parts:
            parts[L].append(out[L])
    return {L: torch.cat(p) for L, p in parts.items()}


def cosines(pooled: torch.Tensor, vector: torch.Tensor) -> np.ndarray:
    """The gate's score of each row: cos(pooled, c)."""
    p = pooled.double()
    c = vector.double()
    return (p @ c / (p.norm(dim=-1).clamp_min(1e-12) * c.norm())).numpy()


def f1_score(predicted, labels) -> tuple[float, float, float]:
    """(F1, precision, recall) of the positive class; 0 where undefined."""
    predicted, labels = np.asarray(predicted, bool), np.asarray(labels, bool)
    tp = int(np.sum(predicted & labels))
    precision = tp / max(1, int(predicted.sum()))
    recall = tp / max(1, int(labels.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f1, precision, recall


def best_threshold(scores, labels) -> tuple[float, float]:
    """(threshold, fit F1): the F1-maximising cut among midpoints of the sorted scores (ties: the middle one)."""
    s = np.sort(np.asarray(scores, np.float64))
    cuts = np.concatenate([[s[0] - 1e-6], (s[1:] + s[:-1]) / 2, [s[-1] + 1e-6]])
    f1s = np.array([f1_score(np.asarray(scores) > t, labels)[0] for t in cuts])
    best = np.flatnonzero(f1s >= f1s.max() - 1e-12)
    return float(np.clip(cuts[best[len(best) // 2]], -1.0, 1.0)), float(f1s.max())


def separation(scores, labels) -> float:
    """d': the labels' mean score difference in pooled standard deviations."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    spread = np.sqrt((pos.var(ddof=1) + neg.var(ddof=1)) / 2)
    return float((pos.mean() - neg.mean()) / max(spread, 1e-12))


def bootstrap_f1(predicted, labels, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of F1, prompts resampled within each label."""
    predicted, labels = np.asarray(predicted, bool), np.asarray(labels, bool)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels), np.flatnonzero(~labels)]
    values = []
    for _ in range(n_boot):
        pick = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        values.append(f1_score(predicted[pick], labels[pick])[0])
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class GateFit:
    gate: Gate
    fit_f1: float
    heldout_f1: float
    heldout_lo: float
    heldout_hi: float
    heldout_precision: float
    heldout_recall: float
    n_fit: int
    n_heldout: int
    fit_f1_by_layer: dict[int, float]
    fit_separation_by_layer: dict[int, float]  # d' of the fit scores, the tie-break between layers of equal F1

    def provenance(self) -> dict:
        return {"fit_f1": self.fit_f1, "heldout_f1": self.heldout_f1,
                "heldout_f1_ci": [self.heldout_lo, self.heldout_hi],
                "heldout_precision": self.heldout_precision, "heldout_recall": self.heldout_recall,
                "n_fit": self.n_fit, "n_heldout": self.n_heldout,
                "fit_f1_by_layer": {str(k): v for k, v in self.fit_f1_by_layer.items()},
                "fit_separation_by_layer": {str(k): v for k, v in self.fit_separation_by_layer.items()}}


def fit_gate(model: Model, texts: Sequence[str], labels: Sequence[bool], layers: Sequence[int], pool: str = "mean",
             fit_fraction: float = 0.5, seed: int = 0, batch_size: int = 8, n_boot: int = 2000) -> GateFit:
    layers = [model.check_layer(L) for L in layers]
    fit, held = split(labels, fit_fraction, seed)
    pooled = pooled_outputs(model, texts, layers, pool, batch_size)
    y = np.asarray(labels, bool)
    candidates = {}
    for L in layers:
        p = pooled[L][fit]
        c = p[y[fit]].mean(0) - p[~y[fit]].mean(0)
        if float(c.norm()) == 0:
            raise UserError(f"layer {L}: the prompts with and without the condition have the same mean output")
        scores = cosines(p, c)
        threshold, f1 = best_threshold(scores, y[fit])
        candidates[L] = (f1, separation(scores, y[fit]), c, threshold)
    layer = max(layers, key=lambda L: (round(candidates[L][0], 9), candidates[L][1], -L))
    f1_fit, _, c, threshold = candidates[layer]
    predicted = cosines(pooled[layer][held], c) > threshold
    f1, precision, recall = f1_score(predicted, y[held])
    lo, hi = bootstrap_f1(predicted, y[held], n_boot, seed)
    return GateFit(projection(c, layer, threshold, pool), f1_fit, f1, lo, hi, precision, recall, len(fit), len(held),
                   {L: candidates[L][0] for L in layers}, {L: candidates[L][1] for L in layers})
