"""One Profile concept for every study: a named, frozen set of sizes and lists (how many questions or
documents, which layers, which coefficients) that a command starts from, with overrides from its options.

Pattern: a study subclasses `Profile` with its own fields, lists its profiles once (`{name: Profile}`) in
a light module its CLI can read without heavy imports, and picks one with `pick(PROFILES, name, **options)`.
Gotcha: a profile's name is part of the study's cache keys; its fields enter a key only where the study
puts them there.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from steer_trace.errors import UserError

PAPER_N_LAYERS = 32  # decoder layers of the paper's model (Llama-2-7b-chat): its layer numbers are out of these


@dataclass(frozen=True)
class Profile:
    name: str


P = TypeVar("P", bound=Profile)


def pick(profiles: Mapping[str, P], name: str, counts: tuple[str, ...] = (), **overrides) -> P:
    """`profiles[name]` with every override that is not None; each field named in `counts` must be at least 1
    (its option is named in the error). An unknown name is a UserError that lists the known ones."""
    if name not in profiles:
        raise UserError(f"unknown profile {name!r} (one of {', '.join(profiles)})")
    given = {k: v for k, v in overrides.items() if v is not None}
    for key in counts:
        if key in given and int(given[key]) < 1:
            raise UserError(f"--{key.replace('_', '-')} must be at least 1")
    return replace(profiles[name], **given)
