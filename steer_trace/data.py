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
from typing import Iterator

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
        if not question.strip():
            raise UserError(f"{where}: empty 'question' inside the paper's Human/AI prompt")
    return ABItem(question, match, other, source, index)


def _parse(text: str, where: str, whole_file: bool):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        at = f" at line {error.lineno}" if whole_file else ""
        raise UserError(f"{where}: not valid JSON ({error.msg}{at})") from None
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply") from None


def iter_ab_file(path: str | Path) -> Iterator[ABItem]:
    """Rows of one dataset file, one at a time.

    JSONL is read line by line, so a file of any size streams; a JSON list is
    parsed whole. Errors name the file and the line (JSONL) or item (JSON list).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"dataset file {path} is a folder, not a file")
    if not path.is_file():
        raise UserError(f"dataset file {path} does not exist")
    lineno = seen = 0
    has_text = False
    try:
        with open(path, encoding="utf-8-sig") as lines:
            for lineno, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                if not has_text and line.lstrip().startswith("["):  # a JSON list: the whole file is one value
                    rows = _parse("\n" * (lineno - 1) + line + lines.read(), str(path), True)
                    has_text = True
                    if not isinstance(rows, list):
                        raise UserError(f"{path}: expected a JSON list of rows")
                    for n, row in enumerate(rows, start=1):
                        seen += 1
                        yield item_from_row(row, f"{path} item {n}", path.stem, n)
                    break
                has_text = True
                row = _parse(line, f"{path} line {lineno}", False)
                seen += 1
                yield item_from_row(row, f"{path} line {lineno}", path.stem, lineno)
    except UnicodeDecodeError as error:
        raise UserError(f"cannot read dataset {path} near line {lineno + 1}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise UserError(f"cannot read dataset {path}: {error.strerror or error}") from None
    if not has_text:
        raise UserError(f"dataset file {path} is empty")
    if not seen:
        raise UserError(f"dataset file {path} has no rows")


def load_ab_file(path: str | Path) -> list[ABItem]:
    """Rows of one dataset file (JSONL or a JSON list)."""
    return list(iter_ab_file(path))


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
