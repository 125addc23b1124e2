"""What an injection does to a layer's output h ([..., d_model]) given its vector v and coefficient c.

Each operator is one entry of `OPERATORS`; v̂ = v / |v|.

- add:                   h + c·v                     (the default)
- project-out:           h − (h·v̂)v̂                  (c is ignored)
- project-out-then-add:  h − (h·v̂)v̂ + c·v
- set-projection:        h − (h·v̂)v̂ + c·v̂            (h·v̂ is clamped to the value c)

`coef` says how a coefficient is read, so `Plan.relative_to` can scale it: a multiplier of v,
a value along v̂, or nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import UserError


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-12)


def _without(h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    u = _unit(v).to(h.dtype)
    return h - (h * u).sum(-1, keepdim=True) * u


@dataclass(frozen=True)
class Operator:
    name: str
    apply: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]  # (h, v, c) -> new h
    coef: str  # "multiplier" (of v), "value" (along v̂) or "ignored"
    summary: str


OPERATORS = {op.name: op for op in (
    Operator("add", lambda h, v, c: h + c * v.to(h.dtype), "multiplier", "h + c·v"),
    Operator("project-out", lambda h, v, c: _without(h, v), "ignored", "h − (h·v̂)v̂; the coefficient is ignored"),
    Operator("project-out-then-add", lambda h, v, c: _without(h, v) + c * v.to(h.dtype), "multiplier",
             "h − (h·v̂)v̂ + c·v"),
    Operator("set-projection", lambda h, v, c: _without(h, v) + c * _unit(v).to(h.dtype), "value",
             "h − (h·v̂)v̂ + c·v̂: the projection on v̂ becomes c"),
)}
DEFAULT_OP = "add"


def operator(name: str) -> Operator:
    if name not in OPERATORS:
        raise UserError(f"unknown operator {name!r} (known: {', '.join(OPERATORS)})")
    return OPERATORS[name]
