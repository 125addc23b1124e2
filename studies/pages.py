"""Docs pages whose numbers come from the committed result tables, never typed by hand.

What it is for: a page's numbers can no longer drift from the tables they describe. A page is written
from a template (`docs/src/<page>.md`, the README from `docs/src/README.md`) in which `{{name}}` stands
for a value; every study computes its values from the result tables (`pages(results_root) -> dict[str,
str]`, named in its `Study`), and the generator puts them in, each name prefixed with the study's name
(`{{behaviours.smollm2.content.L14.myopic.add.shift}}`). `steer-trace docs` writes the pages;
`steer-trace docs --check` (and the test) says which committed page differs from its re-rendering.

Pattern: `values(root)` -> `render(template, values)` -> `build(root, check)`.

Gotchas: an unknown name is an error naming the page and the name (a typo never renders as text); a
value that is `None` is an error too (a table lacks the number). Templates are plain markdown, so a
literal `{{` cannot appear in a page. Values are strings, formatted once by the study.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from steer_trace.errors import UserError

from .protocol import hook
from .registry import all_studies

REPO = Path(__file__).resolve().parents[1]
SRC = Path("docs/src")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.+\-]+)\s*\}\}")


def _study_page_functions() -> list[tuple[str, Callable]]:
    """(study name, pages function) of every registered study that has one."""
    return [(study.name, hook(study, "pages")) for study in all_studies() if study.pages]


def values(results_root: Path | str | None = None, studies: Iterable[tuple[str, Callable]] | None = None) -> dict:
    """Every study's named values, `<study>.<name>` -> text."""
    root = Path(results_root) if results_root else REPO / "results"
    out: dict[str, str] = {}
    for name, pages in (studies if studies is not None else _study_page_functions()):
        for key, value in pages(root).items():
            out[f"{name}.{key}"] = value
    return out


def render(template: str, named: dict, page: str = "page") -> str:
    """The template with every `{{name}}` replaced by its value."""
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in named:
            raise UserError(f"{page}: no value named {name!r} (a typo, or a table that lacks it)")
        if named[name] is None:
            raise UserError(f"{page}: the value {name!r} is missing from its table")
        return str(named[name])
    return PLACEHOLDER.sub(one, template)


def targets(repo: Path = REPO) -> dict[Path, Path]:
    """template -> the page it writes: docs/src/README.md -> README.md, docs/src/X.md -> docs/X.md."""
    out = {}
    for src in sorted((repo / SRC).glob("*.md")):
        out[src] = repo / "README.md" if src.name == "README.md" else repo / "docs" / src.name
    return out


def rendered(repo: Path = REPO, results_root: Path | str | None = None, named: dict | None = None) -> dict[Path, str]:
    """page path -> its text rendered from the tables now."""
    named = values(results_root or repo / "results") if named is None else named
    return {page: render(src.read_text(), named, src.relative_to(repo).as_posix())
            for src, page in targets(repo).items()}


def build(repo: Path = REPO, results_root: Path | str | None = None, check: bool = False,
          named: dict | None = None) -> list[Path]:
    """Write every generated page (check: write nothing); returns the pages that differed from the disk."""
    changed = []
    for page, text in rendered(repo, results_root, named).items():
        if not page.is_file() or page.read_text() != text:
            changed.append(page)
            if not check:
                page.write_text(text)
    return changed
