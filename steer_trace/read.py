"""Read residual-stream activations with nnsight, and contrastive vectors from full texts.

One trace per batch reads every requested layer at a position rule:
``last`` (each row's last real token; with left padding that is column -1 —
also the answer token when the prompt ends with it) or ``mean`` (mean over
non-pad tokens). Sums are streamed per group; how pair differences become a vector is
`steer_trace.aggregators`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Sequence

import nnsight
import torch

from .aggregators import DEFAULT_METHOD, GroupMeans, PairDifferences, check_groups, to_vector
from .batching import chunks, encode
from .errors import UserError, halve_on_oom
from .models import Model
from .vectors import SteeringVector

POSITIONS = ("last", "answer", "mean")  # "answer": texts end with their answer token (CAA pairs), so the last


def _layers_arg(model: Model, layers: Iterable[int] | None) -> list[int]:
    if layers is None:
        return list(range(model.n_layers))
    return sorted({model.check_layer(L) for L in layers})


def read_batch(
    model: Model, texts: Sequence[str], layers: list[int], position: str = "last", max_tokens: int | None = None
):
    """{layer: [B, d_model]} for one batch of texts (one nnsight trace)."""
    if position not in POSITIONS:
        raise UserError(f"unknown position rule {position!r} (one of {', '.join(POSITIONS)})")
    return halve_on_oom(lambda part: _read_once(model, part, layers, position, max_tokens), list(texts), _join_layers)


def _join_layers(parts: list[dict]) -> dict:
    return {L: torch.cat([part[L] for part in parts]) for L in parts[0]}


def _read_once(model: Model, texts: Sequence[str], layers: list[int], position: str, max_tokens: int | None):
    layers = _layers_arg(model, layers)  # in range, and in forward order (nnsight needs it)
    enc = model.on_device(encode(model.tokenizer, texts, max_tokens))
    mask = enc["attention_mask"]
    envoys = model.layers()
    # no layer read here needs the vocabulary projection at every position
    with torch.no_grad(), model.lm.trace(enc, **model.last_logits(), **model.trace_kwargs()):
        saved = nnsight.save({})  # created and saved inside: remotely only saved values come back
        for L in layers:  # forward order
            h = model.residual(envoys[L])
            if position in ("last", "answer"):
                saved[L] = h[:, -1, :].save()
            else:
                m = mask.unsqueeze(-1).to(h.dtype)
                saved[L] = ((h * m).sum(1) / m.sum(1)).save()
    return {L: v.detach().to("cpu", torch.float32) for L, v in saved.items()}


def mean_activations(
    model: Model,
    texts: Sequence[str],
    layers: Iterable[int] | None = None,
    position: str = "last",
    batch_size: int = 8,
    max_tokens: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[int, torch.Tensor]:
    """Mean activation per layer over `texts`."""
    layers = _layers_arg(model, layers)
    acc = GroupMeans()
    for batch in chunks(list(texts), batch_size):
        out = read_batch(model, batch, layers, position, max_tokens)
        for L in layers:
            acc.add("all", L, out[L])
        acc.count("all", len(batch))
        if progress:
            progress(len(batch))
    if not acc.counts:
        raise UserError("no texts to read")
    return acc.mean("all")


def contrastive_vector(
    model: Model,
    pairs: Sequence[tuple[str, str]],
    groups: Sequence[Hashable] | None = None,
    layers: Iterable[int] | None = None,
    batch_size: int = 8,
    balanced: bool = True,
    meta: dict | None = None,
    progress: Callable[[int], None] | None = None,
    method: str = DEFAULT_METHOD,
) -> SteeringVector:
    """act(positive) - act(negative) at the last token of each pair, every layer, aggregated by
    `method` (`aggregators.METHODS`; default the mean difference).

    With `groups` (e.g. the matching answer letter of each pair) and `balanced`, every group weighs the
    same: the mean vector is the mean of the per-group mean differences, so a group that is more
    frequent (one answer letter) does not dominate the direction.
    """
    if not pairs:
        raise UserError("no contrastive pairs to read")
    layers = _layers_arg(model, layers)
    stats = PairDifferences(method)
    read_full_text(model, pairs, check_groups(groups, len(pairs)), layers, batch_size, stats, progress)
    return to_vector(stats, model, layers, balanced, "full-text", meta)


def read_full_text(model: Model, pairs: Sequence[tuple[str, str]], groups: Sequence[Hashable], layers: list[int],
                   batch_size: int, stats: PairDifferences, progress: Callable[[int], None] | None = None):
    """Stream each pair's difference into `stats`: both full texts in one trace, batch_size texts per trace."""
    indexed = list(zip(pairs, groups))
    for batch in chunks(indexed, max(1, batch_size // 2)):
        texts = [p for (p, _), _ in batch] + [n for (_, n), _ in batch]
        out = read_batch(model, texts, layers, "last")
        k = len(batch)
        for i, (_, g) in enumerate(batch):
            for L in layers:
                stats.add(g, L, out[L][i : i + 1] - out[L][k + i : k + i + 1])
            stats.count(g, 1)
        if progress:
            progress(k)


def residual_norms(
    model: Model, texts: Sequence[str], layers: Iterable[int] | None = None, batch_size: int = 8
) -> dict[int, float]:
    """Mean L2 norm of the residual stream per layer (over last tokens of `texts`)."""
    layers = _layers_arg(model, layers)
    sums = {L: 0.0 for L in layers}
    n = 0
    for batch in chunks(list(texts), batch_size):
        out = read_batch(model, batch, layers, "last")
        for L in layers:
            sums[L] += float(out[L].norm(dim=-1).sum())
        n += len(batch)
    return {L: s / max(n, 1) for L, s in sums.items()}


def content_hash(items: Iterable) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(repr(item).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
