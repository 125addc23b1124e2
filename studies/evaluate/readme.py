"""python -m studies.evaluate.readme [--check]: the README's "Does steering work on my model?" verdict lines,
rebuilt from the committed reports (results/evaluate_*/), between the markers `<!-- evaluate:verdicts -->` and
`<!-- /evaluate:verdicts -->`. `--check`: exit 1 when the README differs from the reports (numbers in the
README come from tables, never typed by hand)."""

from __future__ import annotations

import sys
from pathlib import Path

from .report import pages

REPO = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- evaluate:verdicts -->", "<!-- /evaluate:verdicts -->"


def rebuilt(readme: str, root: Path) -> str:
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{pages(root)['evaluate_verdicts']}\n{END}{tail}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = REPO / "README.md"
    text = path.read_text()
    new = rebuilt(text, REPO / "results")
    if "--check" in argv:
        return 0 if new == text else 1
    path.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
