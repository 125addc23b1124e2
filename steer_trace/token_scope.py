"""Which token positions an injection acts on.

Positions are counted among each row's real tokens (left padding is skipped: index 0 is a
row's first real token), across a whole generation: the first forward call (step 0) sees the
prompt, each later step one new token whose index continues after the prompt.

- all:        every position, padding included (the default; the summed fast path)
- prompt:     the prompt's real tokens (step 0); in a plain forward pass, every real token
- generated:  generated tokens only (steps >= 1); a plain forward pass is left untouched
- from:K      real positions >= K (CAA steers after the instruction)
- last:       each row's last prompt token
- mask:       an explicit boolean mask per row, indexed by real position (`Scope.rows(...)`);
              positions past a row's mask are not steered
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import UserError

NAMES = ("all", "prompt", "generated", "from:K", "last")
DEFAULT_SCOPE = "all"


@dataclass(frozen=True)
class Where:
    """The positions of one forward call: real-token index per column (-1 for padding)."""

    index: torch.Tensor  # [B, T] long
    prompt_len: torch.Tensor  # [B] real prompt tokens per row
    step: int


def where(attention_mask: torch.Tensor | None, width: int, step: int = 0, rows: int = 1) -> Where:
    """Positions of a forward call of `width` columns at generation `step` (0 = the prompt pass).

    `attention_mask` is the prompt's [B, T] mask (left padded); None means unpadded rows of `width`."""
    if attention_mask is None:
        if step:
            raise UserError("a token scope in generation needs the prompt's attention_mask")
        attention_mask = torch.ones(rows, width, dtype=torch.long)
    mask = attention_mask.long()
    prompt_len = mask.sum(-1)
    if step == 0:
        index = torch.where(mask.bool(), mask.cumsum(-1) - 1, torch.full_like(mask, -1))
    else:  # the last `width` tokens so far (1 with the KV cache)
        index = prompt_len[:, None] + step - width + torch.arange(width)[None, :]
    return Where(index, prompt_len, int(step))


@dataclass(frozen=True)
class Scope:
    kind: str = DEFAULT_SCOPE
    start: int = 0  # from:K
    mask_rows: tuple[tuple[bool, ...], ...] = ()  # kind "mask"

    @classmethod
    def rows(cls, mask: Sequence[Sequence[bool]] | torch.Tensor) -> "Scope":
        """An explicit mask: `rows[b][j]` steers row b's real token j."""
        return cls("mask", mask_rows=tuple(tuple(bool(x) for x in row) for row in mask))

    @property
    def everywhere(self) -> bool:
        return self.kind == "all"

    def describe(self) -> str:
        return f"from:{self.start}" if self.kind == "from" else self.kind

    def select(self, at: Where) -> torch.Tensor | None:
        """[B, T] bool of the positions to steer; None = every position."""
        return SELECTORS[self.kind](self, at)


def _mask_rows(s: Scope, at: Where) -> torch.Tensor:
    if len(s.mask_rows) != at.index.shape[0]:
        raise UserError(f"the scope mask has {len(s.mask_rows)} rows, the batch {at.index.shape[0]}")
    width = max((len(r) for r in s.mask_rows), default=0) + 1  # the last column stays False
    table = torch.zeros(len(s.mask_rows), width, dtype=torch.bool)
    for b, row in enumerate(s.mask_rows):
        table[b, : len(row)] = torch.tensor(row, dtype=torch.bool)
    return (at.index >= 0) & table.gather(1, at.index.clamp(0, width - 1))


# kind -> (scope, positions) -> [B, T] bool, or None for every position
SELECTORS = {
    "all": lambda s, at: None,
    "prompt": lambda s, at: (at.index >= 0) & (at.step == 0),
    "generated": lambda s, at: (at.index >= 0) & (at.step > 0),
    "from": lambda s, at: at.index >= s.start,
    "last": lambda s, at: (at.index == at.prompt_len[:, None] - 1) & (at.step == 0),
    "mask": _mask_rows,
}


def scope(spec: "str | Scope") -> Scope:
    """'all' | 'prompt' | 'generated' | 'from:K' | 'last', or a Scope."""
    if isinstance(spec, Scope):
        return spec
    text = str(spec).strip()
    if text.startswith("from:"):
        try:
            start = int(text[5:])
        except ValueError:
            start = -1
        if start < 0:
            raise UserError(f"scope {text!r}: K in from:K must be a whole number >= 0")
        return Scope("from", start)
    if text in SELECTORS and text not in ("from", "mask"):
        return Scope(text)
    raise UserError(f"unknown token scope {text!r} (known: {', '.join(NAMES)}, or a mask per row)")
