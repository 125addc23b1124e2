"""Lay out a sweep (plans x texts) as forward passes whose rows carry different plans.

A row is one (plan, text) pair. Texts are cut into chunks of `batch_size`; within
a chunk, the rows of every pure-add plan (plan-major, then text order) are cut
into batches of at most `batch_size` rows, so K pure-add plans over N texts take
ceil(K*N/B) forward passes instead of K*ceil(N/B). Each row of such a batch gets
its own summed delta per layer (`row_deltas`: zero where its plan adds nothing).

Layer-prefix sharing: when the pure-add plans of a call first differ at layer
L > 0 (no plan adds anything below L), every chunk's layers < L run once (a
"prefix" pass over the chunk's texts); the chunk's batches then skip layers < L
and start from that output. A K-point sweep at layer L of n then costs
(L + K(n - L)) / n forward-equivalents per chunk instead of K.

Plans that are not pure adds keep one plan per batch (the chunk's texts). A gated plan (gates.py) is
one of them: its batch's rows are the chunk's texts, and each row's gate decides for that row alone, so a
batch holds steered and unsteered rows side by side.
Everything here is plain bookkeeping: deterministic, no model calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .plan import Plan


@dataclass(frozen=True)
class Batch:
    """One forward pass: `rows` are (plan index, text index) pairs, all from chunk `chunk`.

    `plan` is the single (not pure-add) plan of every row, or None when each row
    carries its own pure-add deltas. `shared_below` = L > 0: layers < L come
    from the chunk's prefix pass."""

    chunk: int
    rows: tuple[tuple[int, int], ...]
    plan: int | None = None
    shared_below: int = 0


def first_layer(plan: Plan, n_layers: int) -> int:
    """The lowest layer the plan changes (n_layers if it changes nothing)."""
    return min((layer for layer, _ in plan.deltas()), default=n_layers)


def shared_prefix(plans: Sequence[Plan], n_layers: int, min_plans: int = 2) -> int:
    """L such that all these pure-add plans agree on layers < L; 0 when sharing gains nothing
    (fewer than `min_plans` plans - one, unless the prefix is kept across calls - or a plan that
    already adds at layer 0)."""
    if len(plans) < max(1, min_plans):
        return 0
    lowest = min(first_layer(p, n_layers) for p in plans)
    return lowest if 0 < lowest < n_layers else 0


def text_chunks(n_texts: int, batch_size: int) -> list[tuple[int, ...]]:
    size = max(1, int(batch_size))
    return [tuple(range(s, min(s + size, n_texts))) for s in range(0, n_texts, size)]


def layout(plans: Sequence[Plan], n_texts: int, batch_size: int, n_layers: int,
           share_prefix: bool = True, min_plans: int = 2) -> tuple[list[tuple[int, ...]], list[Batch]]:
    """(text chunks, batches) for every plan over every text; each (plan, text) row occurs once."""
    size = max(1, int(batch_size))
    chunks = text_chunks(n_texts, size)
    pure = [k for k, p in enumerate(plans) if p.pure_add]
    other = [k for k, p in enumerate(plans) if not p.pure_add]
    shared = shared_prefix([plans[k] for k in pure], n_layers, min_plans) if share_prefix else 0
    batches = []
    for c, texts in enumerate(chunks):
        rows = [(k, j) for k in pure for j in texts]
        for start in range(0, len(rows), size):
            batches.append(Batch(c, tuple(rows[start : start + size]), None, shared))
        for k in other:
            batches.append(Batch(c, tuple((k, j) for j in texts), k, 0))
    return chunks, batches


def row_deltas(plans: Sequence[Plan], rows: Sequence[tuple[int, int]]) -> list[tuple[int, torch.Tensor]]:
    """(layer, [len(rows), d] deltas) in forward order: row r gets its plan's summed delta at
    that layer, zeros where its plan adds nothing there. Layers no row touches are left out."""
    per_plan = {k: dict(plans[k].deltas()) for k in {k for k, _ in rows}}
    layers = sorted({layer for d in per_plan.values() for layer in d})
    out = []
    for layer in layers:
        sample = next(d[layer] for d in per_plan.values() if layer in d)
        zero = torch.zeros_like(sample)
        out.append((layer, torch.stack([per_plan[k].get(layer, zero) for k, _ in rows])))
    return out


def forward_equivalents(batches: Sequence[Batch], chunks: Sequence[tuple[int, ...]], n_layers: int) -> float:
    """Layer-rows computed, in units of one full forward over one text (prefix passes included)."""
    layer_rows = 0
    prefixes = set()
    for b in batches:
        layer_rows += len(b.rows) * (n_layers - b.shared_below)
        if b.shared_below:
            prefixes.add((b.chunk, b.shared_below))
    layer_rows += sum(len(chunks[c]) * L for c, L in prefixes)
    return layer_rows / n_layers
