"""Every study the CLI and the figures/report commands know: the packages under studies/ that define STUDY.

Pattern: `all_studies()` imports each `studies/<pkg>/__init__.py` (light by the protocol) and keeps those
with a `STUDY`; `register(study)` adds one more (tests register a toy study this way). Names are unique.
"""
from __future__ import annotations

import importlib
import pkgutil

import studies

from .protocol import Study

_registered: dict[str, Study] = {}


def _discovered() -> list[Study]:
    found = []
    for info in sorted(pkgutil.iter_modules(studies.__path__), key=lambda i: i.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        study = getattr(importlib.import_module(f"studies.{info.name}"), "STUDY", None)
        if isinstance(study, Study):
            found.append(study)
    return found


def register(study: Study) -> Study:
    """Add a study (one defined outside studies/, e.g. in a test); its name must be new."""
    if study.name in {s.name for s in all_studies()} and _registered.get(study.name) is not study:
        raise ValueError(f"a study named {study.name!r} is registered already")
    _registered[study.name] = study
    return study


def unregister(name: str) -> None:
    """Remove a study added by `register` (tests clean up with it)."""
    _registered.pop(name, None)


def all_studies() -> list[Study]:
    """The discovered studies (by package name), then the registered ones (in order of registration)."""
    studies = _discovered()
    names = {s.name for s in studies}
    return studies + [s for name, s in _registered.items() if name not in names]


def get(name: str) -> Study:
    for study in all_studies():
        if study.name == name:
            return study
    raise KeyError(name)
