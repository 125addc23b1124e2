"""Unsteered layer outputs kept across scoring calls, so a sweep runs the layers below L once.

What it is for: a sweep at layer L scores the same documents at coefficient after coefficient; nothing
below L is steered, so layers < L compute the same thing every step. `measure` (score.py) already runs
them once per call for all of a call's plans; with a `PrefixCache` it runs them once per sweep, and a
single plan at L > 0 starts from the cached output too.

Pattern:
    cache = PrefixCache()
    for coef in coefs:
        token_accuracy(model, docs, [Plan.single(v, L, coef)], prefix_cache=cache)   # layers < L: first call only

Gotchas: a key is the chunk's texts, the token cap and the layer, so the same documents in other
chunks are computed again; entries are dropped oldest first beyond `max_bytes`; local runs only
(remotely the prefixes stay on the server within one request).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

DEFAULT_MAX_BYTES = 4 * 2**30


class PrefixCache:
    """Layer-(L-1) outputs of prefix passes by (texts, max_tokens, L); bounded, oldest dropped first."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(texts: Sequence[str], max_tokens: int | None, layer: int) -> tuple:
        return (tuple(texts), max_tokens, int(layer))

    def get(self, key: tuple) -> torch.Tensor | None:
        hidden = self._entries.get(key)
        if hidden is None:
            self.misses += 1
        else:
            self.hits += 1
            self._entries.move_to_end(key)
        return hidden

    def put(self, key: tuple, hidden: torch.Tensor) -> None:
        size = _nbytes(hidden)
        if size > self.max_bytes:
            return
        if key in self._entries:
            self.bytes -= _nbytes(self._entries.pop(key))
        while self._entries and self.bytes + size > self.max_bytes:
            self.bytes -= _nbytes(self._entries.popitem(last=False)[1])
        self._entries[key] = hidden
        self.bytes += size

    def __len__(self) -> int:
        return len(self._entries)


def _nbytes(t: torch.Tensor) -> int:
    return t.element_size() * t.nelement()
