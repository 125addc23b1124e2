"""Contrastive A/B (and Yes/No) datasets: load, validate, split, prompt.

Accepted files: Anthropic model-written-evals JSONL (answers " (A)" / " Yes"),
CAA JSON lists (answers "(A)"), and the paper's processed JSON (answers "A",
question already wrapped in its Human/AI prompt). Every row becomes an
`ABItem` with the bare question and normalised answers.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import UserError

LETTERS = ("A", "B")
YES_NO = ("Yes", "No")
PAPER_PREFIX = "Human:\n"
PAPER_SUFFIX_RE = re.compile(r"\n\nAI:\nOut of \((A|Yes)\) and \((B|No)\), I choose \($")


@dataclass(frozen=True)
class ABItem:
    question: str
    matching: str  # "A" / "B" / "Yes" / "No"
    not_matching: str
    source: str = ""
    row: int = -1
    flipped: bool = False  # options shown in the other order

    @property
    def options(self) -> tuple[str, str]:
        return LETTERS if self.matching in LETTERS else YES_NO

    @property
    def matching_index(self) -> int:
        return self.options.index(self.matching)


def _normalise(answer, where: str) -> str:
    if not isinstance(answer, str):
        raise UserError(f"{where}: answer must be a string, got {type(answer).__name__}")
    bare = answer.strip().strip("()").strip()
    if bare not in LETTERS + YES_NO:
        raise UserError(f"{where}: answer {answer!r} is not A/B or Yes/No")
    return bare


def item_from_row(row, where: str, source: str = "", index: int = -1) -> ABItem:
    if not isinstance(row, dict):
        raise UserError(f"{where}: row is not an object")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}: missing or empty 'question'")
    for key in ("answer_matching_behavior", "answer_not_matching_behavior"):
        if key not in row:
            raise UserError(f"{where}: missing {key!r}")
    match = _normalise(row["answer_matching_behavior"], where)
    other = row["answer_not_matching_behavior"]
    if isinstance(other, list):  # some Anthropic sets list several non-matching answers
        other = other[0] if other else ""
    other = _normalise(other, where)
    family = LETTERS if match in LETTERS else YES_NO
    if other not in family or other == match:
        raise UserError(f"{where}: answers {match!r} / {other!r} are not the two options of one question")
    if question.startswith(PAPER_PREFIX) and PAPER_SUFFIX_RE.search(question):
        question = PAPER_SUFFIX_RE.sub("", question[len(PAPER_PREFIX) :])
    return ABItem(question, match, other, source, index)


def load_ab_file(path: str | Path) -> list[ABItem]:
    """Rows of one dataset file (JSONL or a JSON list)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"dataset file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read dataset {path}: {error}") from None
    if not text.strip():
        raise UserError(f"dataset file {path} is empty")
    rows: list
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise UserError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
        numbered = list(enumerate(rows, start=1))
        label = "item"
    else:
        numbered = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((lineno, json.loads(line)))
            except json.JSONDecodeError:
                raise UserError(f"{path} line {lineno}: not valid JSON") from None
        label = "line"
    items = [item_from_row(row, f"{path} {label} {n}", path.stem, n) for n, row in numbered]
    if not items:
        raise UserError(f"dataset file {path} has no rows")
    return items


def split(items: list[ABItem], seed: int = 13, sizes: tuple[int, int] = (500, 200)) -> dict[str, list[ABItem]]:
    """Paper split: shuffle with `seed`; first sizes[0] build the vector, next sizes[1]
    validate, the rest test. Shorter datasets shrink each part proportionally."""
    rows = list(items)
    random.Random(seed).shuffle(rows)
    n_vec, n_val = sizes
    if n_vec + n_val >= len(rows):
        n_vec = int(len(rows) * n_vec / (n_vec + n_val + 300))
        n_val = int(len(rows) * n_val / (sizes[0] + n_val + 300))
    return {"vector": rows[:n_vec], "validation": rows[n_vec : n_vec + n_val], "test": rows[n_vec + n_val :]}


def swapped(item: ABItem) -> ABItem:
    """The same question with its two options in the other order, answers relabelled."""
    if item.options == YES_NO:  # the prompt names the options: show "(No) and (Yes)"
        return replace(item, flipped=not item.flipped)
    q = item.question
    ia, ib = q.rfind("(A)"), q.rfind("(B)")
    if ia < 0 or ib < ia:
        raise UserError(f"{item.source} row {item.row}: cannot find options (A) ... (B) to swap")
    a_raw, b_raw = q[ia + 3 : ib], q[ib + 3 :]
    a_text, b_text = a_raw.rstrip(), b_raw.rstrip()
    new_q = q[: ia + 3] + b_text + a_raw[len(a_text) :] + "(B)" + a_text + b_raw[len(b_text) :]
    flip = {"A": "B", "B": "A"}
    return replace(
        item, question=new_q, matching=flip[item.matching], not_matching=flip[item.not_matching], flipped=not item.flipped
    )


def prompt(item: ABItem, style: str = "paper", tokenizer=None) -> str:
    """The text the model continues with its answer token.

    paper: ``Human:\\n{q}\\n\\nAI:\\nOut of (A) and (B), I choose (``;
    chat: the tokenizer's chat template around the question, then the same answer prefix.
    """
    first, second = item.options
    if item.flipped and item.options == YES_NO:
        first, second = second, first
    tail = f"Out of ({first}) and ({second}), I choose ("
    if style == "paper":
        return f"Human:\n{item.question}\n\nAI:\n{tail}"
    if style == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UserError("prompt style 'chat' needs a tokenizer with a chat template")
        head = tokenizer.apply_chat_template(
            [{"role": "user", "content": item.question}], tokenize=False, add_generation_prompt=True
        )
        return head + tail
    raise UserError(f"unknown prompt style {style!r} (paper or chat)")


def both_orders(items: list[ABItem]) -> list[ABItem]:
    """Each item as given, then with its options swapped."""
    return [variant for item in items for variant in (item, swapped(item))]
