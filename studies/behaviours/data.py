"""Where the behaviour datasets and the plain text for the alignment tax come from.

A behaviour is a named list of `ABItem`s. A data folder may be laid out as the
paper's processed folder (``<name>.json``), as the project's small sets
(``<name>.jsonl``), as the Anthropic model-written-evals repository
(``persona/agreeableness.jsonl`` ...), or be the shared data root holding both.
Without a folder the project's own small sets (40 rows each) are used; the hub
copy of Anthropic/model-written-evals is read through `datasets`.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from dataclasses import replace
from pathlib import Path

from steer_trace.data import ABItem, deduplicate, item_from_row, load_ab_file
from steer_trace.errors import UserError

# name -> path inside the Anthropic evals repository (the paper's sources)
BEHAVIOURS = {
    "myopic": "advanced-ai-risk/human_generated_evals/myopic-reward.jsonl",
    "wealth_seeking": "advanced-ai-risk/human_generated_evals/wealth-seeking-inclination.jsonl",
    "sycophancy": "sycophancy/sycophancy_on_political_typology_quiz.jsonl",
    "agreeableness": "persona/agreeableness.jsonl",
    "anti_immigration": "persona/anti-immigration.jsonl",
}
PAPER_SETS = Path("extending-activation-addition/data/datasets")
ANTHROPIC_ROOTS = (Path("."), Path("anthropics_evals"), Path("evals"))
HUB_ID = "Anthropic/model-written-evals"
PAPER_SAMPLE = 1000  # the paper kept at most 1000 rows per behaviour (random.seed(13))
WIKITEXT = Path("skills_samples/pytorch_examples/word_language_model/data/wikitext-2/test.txt")
REPO = Path(__file__).resolve().parents[2]


def project_data_dir() -> Path:
    """The project's own small letter-balanced sets (offline demo, quick profile)."""
    return REPO / "data" / "behaviours"


def shared_data_dir() -> Path:
    """The public data next to the repository (tests, CI, real runs)."""
    return Path(os.environ.get("STEER_TRACE_SHARED_DATA") or REPO.parent / "shared" / "data")


def find_file(folder: Path, name: str) -> Path | None:
    """The file for behaviour `name` in `folder`, whichever supported layout it has."""
    candidates = [folder / f"{name}.json", folder / f"{name}.jsonl",
                  folder / PAPER_SETS / f"{name}.json"]
    if name in BEHAVIOURS:
        candidates += [folder / root / BEHAVIOURS[name] for root in ANTHROPIC_ROOTS]
    return next((path for path in candidates if path.is_file()), None)


def clean(items: list[ABItem]) -> list[ABItem]:
    """The paper's question clean-up: drop 'Question:' / 'Answer:' labels; then each
    question once (duplicated rows would leak across the splits)."""
    out = []
    for item in items:
        q = item.question.replace("Question:", "").replace("Answer:", "").strip()
        if not q:
            raise UserError(f"{item.source} row {item.row}: the question is empty without its 'Question:' / "
                            "'Answer:' labels")
        out.append(replace(item, question=q) if q != item.question else item)
    families = {item.family for item in out}
    if len(families) > 1:
        raise UserError(f"{items[0].source}: mixes letter and Yes/No questions; split it into two files")
    return deduplicate(out, items[0].source if items else "")


def load_from_folder(folder: str | Path, names: list[str], skip_bad_rows: bool = False
                     ) -> dict[str, tuple[list[ABItem], str]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"data folder {folder} does not exist")
    out = {}
    for name in names:
        path = find_file(folder, name)
        if path is None:
            raise UserError(f"no dataset for behaviour {name!r} in {folder} "
                            f"(looked for {name}.json(l) and the Anthropic layout)")
        out[name] = (clean(load_ab_file(path, skip_bad_rows)), str(path))
    return out


def load_from_hub(names: list[str]) -> dict[str, tuple[list[ABItem], str]]:
    """Rows of Anthropic/model-written-evals through `datasets` (needs the hub)."""
    try:
        import datasets  # deferred: only the hub path needs it, and it imports in ~9 s on a loaded 2-core machine
    except ImportError:
        raise UserError("reading the hub needs the `datasets` package") from None
    out = {}
    for name in names:
        if name not in BEHAVIOURS:
            raise UserError(f"behaviour {name!r} is not in {HUB_ID}; pass --dataset FILE")
        try:
            table = datasets.load_dataset(HUB_ID, data_files=BEHAVIOURS[name], split="train")
        except Exception as error:  # offline, hub down, file moved
            first = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            raise UserError(f"cannot read {HUB_ID}/{BEHAVIOURS[name]} from the hub ({first}); "
                            f"pass --data-dir or set STEER_TRACE_DATA") from None
        rows = list(table)
        if len(rows) > PAPER_SAMPLE:
            rows = random.Random(13).sample(rows, PAPER_SAMPLE)
        where = f"{HUB_ID}/{BEHAVIOURS[name]}"
        items = [item_from_row(row, f"{where} row {i}", name, i) for i, row in enumerate(rows, start=1)]
        out[name] = (clean(items), "hub:" + where)
    return out


def load_behaviours(names: list[str], data_dir: str | Path | None = None, files: tuple = (),
                    use_hub: bool = False, skip_bad_rows: bool = False) -> dict[str, tuple[list[ABItem], str]]:
    """{behaviour: (items, where they came from)}: named behaviours, then custom files.

    Folder: `data_dir`, else $STEER_TRACE_DATA, else the hub (`use_hub`), else the
    project's small sets.
    """
    out: dict[str, tuple[list[ABItem], str]] = {}
    if names:
        folder = data_dir or os.environ.get("STEER_TRACE_DATA")
        if folder:
            out.update(load_from_folder(folder, names, skip_bad_rows))
        elif use_hub:
            out.update(load_from_hub(names))
        else:
            out.update(load_from_folder(project_data_dir(), names))
    for file in files:
        name = Path(file).stem.replace("-", "_")  # as always: the names (and result keys) of earlier runs hold
        if name != Path(file).stem:
            warnings.warn(f"dataset {Path(file).name} is the behaviour {name!r} (hyphens become underscores in "
                          "behaviour names)", stacklevel=2)
        if name in out:
            raise UserError(f"two datasets named {name!r}")
        out[name] = (clean(load_ab_file(file, skip_bad_rows)), str(file))
    if not out:
        raise UserError("no behaviours selected")
    return out


def _wikitext_paragraphs(path: Path) -> list[str]:
    paragraphs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("="):
            continue
        for raw, plain in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", ".")):
            line = line.replace(raw, plain)
        paragraphs.append(line)
    return paragraphs


def plain_text(n_docs: int, min_words: int = 40) -> tuple[list[str], str]:
    """Plain-text documents for the alignment tax: WikiText-2 test paragraphs from the
    shared data, else the project's data/skills/text.jsonl (offline)."""
    wiki = shared_data_dir() / WIKITEXT
    if wiki.is_file():
        docs, source = _wikitext_paragraphs(wiki), "wikitext-2/test.txt"
    else:
        path = REPO / "data" / "skills" / "text.jsonl"
        if not path.is_file():
            raise UserError(f"no plain text found ({wiki} or {path})")
        docs = [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
        source = "data/skills/text.jsonl"
    docs = [d for d in docs if len(d.split()) >= min_words][:n_docs]
    if not docs:
        raise UserError(f"no plain-text documents with at least {min_words} words in {source}")
    return docs, source
