"""Contrastive multiple-choice (A/B ... A-H, and Yes/No) datasets: load, validate, split, prompt.

Accepted files: Anthropic model-written-evals JSONL (answers " (A)" / " Yes"),
CAA JSON lists (answers "(A)"), and the paper's processed JSON (answers "A",
question already wrapped in its Human/AI prompt). Every row becomes an
`ABItem` with the bare question and normalised answers. Letter questions may show
two to eight options (A)...(H); the options are parsed from the question, so a
rotation moves each option's text to another letter and the labels follow it.
"""

from __future__ import annotations

import json
import random
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import UserError

LETTERS = ("A", "B")
ALL_LETTERS = tuple("ABCDEFGH")
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
    flipped: bool = False  # options shown in another order than the file's
    # letters shown when there are more than two ((A)...(H)); () means A/B. Out of the repr,
    # so the content hash (and so the result keys) of two-option data is what it was.
    labels: tuple[str, ...] = field(default=(), repr=False)
    rotation: int = field(default=0, repr=False)  # options rotated this many places from the file's order

    @property
    def options(self) -> tuple[str, ...]:
        if self.matching in YES_NO:
            return YES_NO
        return self.labels or LETTERS

    @property
    def family(self) -> str:
        return "yes/no" if self.matching in YES_NO else "letters"

    @property
    def matching_index(self) -> int:
        return self.options.index(self.matching)

    @property
    def non_matching(self) -> tuple[str, ...]:
        """Every shown option but the matching one (the vector pairs the matching answer with each)."""
        return tuple(o for o in self.options if o != self.matching)

    @property
    def original_matching(self) -> str:
        """The matching label in the file's own order (the label a slice is balanced on)."""
        if self.family == "yes/no" or not self.rotation:
            return self.matching
        k = len(self.options)
        return self.options[(self.options.index(self.matching) + self.rotation) % k]


def _normalise(answer, where: str) -> str:
    if not isinstance(answer, str):
        raise UserError(f"{where}: answer must be a string, got {type(answer).__name__}")
    bare = answer.strip().strip("()").strip()
    if bare not in ALL_LETTERS + YES_NO:
        raise UserError(f"{where}: answer {answer!r} is not a letter (A)-(H) or Yes/No")
    return bare


def option_starts(question: str) -> list[int]:
    """Where the markers (A), (B), ... of the question's last option list start: the last
    "(A)" followed by "(B)", "(C)" ... in sequence. [] when there is no (A) ... (B)."""
    start = question.rfind("(A)")
    if start < 0:
        return []
    starts = [start]
    for letter in ALL_LETTERS[1:]:
        at = question.find(f"({letter})", starts[-1] + 3)
        if at < 0:
            break
        starts.append(at)
    return starts if len(starts) >= 2 else []


def item_from_row(row, where: str, source: str = "", index: int = -1) -> ABItem:
    if not isinstance(row, dict):
        raise UserError(f"{where}: row is not an object")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}: missing or empty 'question'")
    if not any(key.startswith("answer_") for key in row):
        raise UserError(f"{where}: a question without answers (an open-ended set?): behaviour commands need "
                        "'answer_matching_behavior' and 'answer_not_matching_behavior'")
    for key in ("answer_matching_behavior", "answer_not_matching_behavior"):
        if key not in row:
            raise UserError(f"{where}: missing {key!r}")
    match = _normalise(row["answer_matching_behavior"], where)
    other = row["answer_not_matching_behavior"]
    if isinstance(other, list):  # some Anthropic sets list several non-matching answers
        other = other[0] if other else ""
    other = _normalise(other, where)
    if (match in YES_NO) != (other in YES_NO) or other == match:
        raise UserError(f"{where}: answers {match!r} / {other!r} are not two options of one question")
    if question.startswith(PAPER_PREFIX) and PAPER_SUFFIX_RE.search(question):
        question = PAPER_SUFFIX_RE.sub("", question[len(PAPER_PREFIX) :])
        if not question.strip():
            raise UserError(f"{where}: empty 'question' inside the paper's Human/AI prompt")
    labels: tuple[str, ...] = ()
    if match not in YES_NO:
        shown = ALL_LETTERS[: len(option_starts(question))]
        if len(shown) > 2:
            labels = shown
        elif match not in LETTERS or other not in LETTERS:  # beyond (B) but no option list to read
            raise UserError(f"{where}: answer ({max(match, other)}) but the question shows no options "
                            "(A), (B), (C) ... to parse")
        if match not in (labels or LETTERS) or other not in (labels or LETTERS):
            raise UserError(f"{where}: answer ({match}) / ({other}) is not among the options shown "
                            f"({', '.join(labels or LETTERS)})")
    return ABItem(question, match, other, source, index, labels=labels)


def _parse(text: str, where: str, whole_file: bool):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        at = f" at line {error.lineno}" if whole_file else ""
        raise UserError(f"{where}: not valid JSON ({error.msg}{at})") from None
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply") from None


def iter_ab_file(path: str | Path, skipped: list[str] | None = None) -> Iterator[ABItem]:
    """Rows of one dataset file, one at a time.

    JSONL is read line by line, so a file of any size streams; a JSON list is
    parsed whole. Errors name the file and the line (JSONL) or item (JSON list).
    With a `skipped` list, a row that cannot be parsed is left out and its error
    appended there instead (file-level errors still raise).
    """

    def row_item(parse):
        try:
            return parse()
        except UserError as error:
            if skipped is None:
                raise
            skipped.append(str(error))
            return None

    path = Path(path)
    if path.is_dir():
        raise UserError(f"dataset file {path} is a folder, not a file")
    if not path.is_file():
        raise UserError(f"dataset file {path} does not exist")
    lineno = seen = 0
    has_text = False

    def text(raw: bytes, first_line: int) -> str:
        """Bytes as UTF-8 (a BOM at the start dropped); a bad byte names its own line, not the chunk's first."""
        try:
            return raw.decode("utf-8-sig" if first_line == 1 else "utf-8")
        except UnicodeDecodeError as error:
            line = first_line + raw[: error.start].count(b"\n")
            raise UserError(f"cannot read dataset {path} at line {line}: not UTF-8 text ({error.reason})") from None

    try:
        with open(path, "rb") as lines:
            for lineno, raw in enumerate(lines, start=1):
                line = text(raw, lineno)
                if not line.strip():
                    continue
                if not has_text and line.lstrip().startswith("["):  # a JSON list: the whole file is one value
                    rows = _parse("\n" * (lineno - 1) + line + text(lines.read(), lineno + 1), str(path), True)
                    has_text = True
                    if not isinstance(rows, list):
                        raise UserError(f"{path}: expected a JSON list of rows")
                    for n, row in enumerate(rows, start=1):
                        seen += 1
                        item = row_item(lambda row=row, n=n: item_from_row(row, f"{path} item {n}", path.stem, n))
                        if item is not None:
                            yield item
                    break
                has_text = True
                seen += 1
                item = row_item(lambda line=line, lineno=lineno: item_from_row(
                    _parse(line, f"{path} line {lineno}", False), f"{path} line {lineno}", path.stem, lineno))
                if item is not None:
                    yield item
    except OSError as error:
        raise UserError(f"cannot read dataset {path}: {error.strerror or error}") from None
    if not has_text:
        raise UserError(f"dataset file {path} is empty")
    if not seen:
        raise UserError(f"dataset file {path} has no rows")


def load_ab_file(path: str | Path, skip_bad_rows: bool = False) -> list[ABItem]:
    """Rows of one dataset file (JSONL or a JSON list). `skip_bad_rows`: rows that cannot be parsed are
    left out with one warning that counts them and names the first; a file left with no row is an error."""
    skipped: list[str] | None = [] if skip_bad_rows else None
    items = list(iter_ab_file(path, skipped))
    if skipped:
        if not items:
            raise UserError(f"{path}: no row could be parsed ({len(skipped)} rows; first: {skipped[0]})")
        warnings.warn(f"{path}: skipped {len(skipped)} of {len(items) + len(skipped)} rows that cannot be parsed "
                      f"(first: {skipped[0]})", stacklevel=2)
    return items


def deduplicate(items: list[ABItem], where: str = "") -> list[ABItem]:
    """The items with each question text once (the first row kept), so that no split
    part shares a question with another; warns with the number of rows dropped."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = " ".join(item.question.split())
        if key not in seen:
            seen.add(key)
            out.append(item)
    if len(out) < len(items):
        warnings.warn(f"{where or (items[0].source if items else 'dataset')}: dropped {len(items) - len(out)} "
                      f"duplicated question(s) of {len(items)} rows, so the splits stay disjoint by content",
                      stacklevel=2)
    return out


def balanced_slice(items: list[ABItem], n: int | None = None) -> list[ABItem]:
    """Up to `n` items (all when None) with as many matching with each answer label,
    taken in the given order. Labels are the file's matching labels (A / B, Yes / No);
    a many-option set is balanced by rotation instead (see `rotations`), so it is
    sliced as given."""
    if not items or len(items[0].options) > 2 or any(len(i.options) > 2 for i in items):
        return list(items[:n] if n else items)
    groups: dict[str, list[ABItem]] = {}
    for item in items:
        groups.setdefault(item.original_matching, []).append(item)
    if len(groups) < 2:
        return list(items[:n] if n else items)
    per_label = min(len(g) for g in groups.values())
    if n:
        per_label = min(per_label, n // len(groups))
    chosen = {id(item) for g in groups.values() for item in g[:per_label]}
    return [item for item in items if id(item) in chosen]


# the paper's processed files and their lengths, in the order its loader shuffled them
PAPER_ORDER = {"myopic": 1000, "wealth_seeking": 985, "sycophancy": 1000, "agreeableness": 1000,
               "anti_immigration": 1000}


def paper_order(items: list[ABItem], name: str) -> list[ABItem]:
    """The rows in the order the paper used them: its loader seeds `random` with 13 once and
    shuffles the five processed files in sequence (myopic, wealth_seeking, sycophancy,
    agreeableness, anti_immigration), so each file's order depends on the files before it."""
    if name not in PAPER_ORDER:
        raise UserError(f"--split paper: {name!r} is not one of the paper's behaviours ({', '.join(PAPER_ORDER)})")
    if len(items) != PAPER_ORDER[name]:
        raise UserError(f"--split paper: {name} has {len(items)} rows, the paper's processed file has "
                        f"{PAPER_ORDER[name]} (use the paper's data/datasets/{name}.json)")
    rng = random.Random(13)
    for other, length in PAPER_ORDER.items():
        rows = list(items) if other == name else list(range(length))
        rng.shuffle(rows)  # a shuffle draws the same numbers for any list of that length
        if other == name:
            return rows
    raise AssertionError("unreachable")


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


def option_texts(item: ABItem) -> list[str]:
    """The text of each shown letter option, stripped (for content scoring)."""
    q = item.question
    starts = option_starts(q)[: len(item.options)]
    if len(starts) != len(item.options):
        raise UserError(f"{item.source} row {item.row}: cannot find options "
                        f"{' ... '.join(f'({x})' for x in item.options)} in the question")
    ends = starts[1:] + [len(q)]
    return [q[a + 3 : b].strip() for a, b in zip(starts, ends)]


def rotated(item: ABItem, shift: int = 1) -> ABItem:
    """The question with its options rotated `shift` places: the text shown at letter i is
    the text that was at letter i + shift; the answer labels follow their texts. Whitespace
    after each option stays in place. Yes/No questions swap their shown order instead."""
    if item.family == "yes/no":  # the prompt names the options: show "(No) and (Yes)"
        return replace(item, flipped=not item.flipped) if shift % 2 else item
    q, k = item.question, len(item.options)
    starts = option_starts(q)[:k]
    if len(starts) != k:
        raise UserError(f"{item.source} row {item.row}: cannot find options "
                        f"{' ... '.join(f'({x})' for x in item.options)} to rotate")
    shift %= k
    if not shift:
        return item
    ends = starts[1:] + [len(q)]
    raw = [q[a + 3 : b] for a, b in zip(starts, ends)]
    cores = [r.rstrip() for r in raw]
    pieces = [q[: starts[0]]]
    for i, letter in enumerate(item.options):
        pieces.append(f"({letter})" + cores[(i + shift) % k] + raw[i][len(cores[i]) :])
    moved = {label: item.options[(j - shift) % k] for j, label in enumerate(item.options)}
    rotation = (item.rotation + shift) % k
    return replace(item, question="".join(pieces), matching=moved[item.matching],
                   not_matching=moved[item.not_matching], rotation=rotation, flipped=rotation != 0)


def swapped(item: ABItem) -> ABItem:
    """The same question with its two options in the other order, answers relabelled."""
    if item.family == "letters" and len(item.options) != 2:
        raise UserError(f"{item.source} row {item.row}: swapping needs two options; use rotated()")
    return rotated(item, 1)


def prompt(item: ABItem, style: str = "paper", tokenizer=None) -> str:
    """The text the model continues with its answer token.

    paper: ``Human:\\n{q}\\n\\nAI:\\nOut of (A) and (B), I choose (``;
    chat: the tokenizer's chat template around the question, then the same answer prefix.
    """
    shown = list(item.options)
    if item.flipped and item.family == "yes/no":
        shown.reverse()
    named = [f"({o})" for o in shown]
    tail = f"Out of {', '.join(named[:-1])} and {named[-1]}, I choose ("
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


def rotations(items: list[ABItem]) -> list[ABItem]:
    """Each item in every rotation of its options (as given first): k versions of a
    k-option question, so every option text is shown at every letter once."""
    return [rotated(item, r) for item in items for r in range(len(item.options))]


def both_orders(items: list[ABItem]) -> list[ABItem]:
    """Each item as given, then with its options swapped (`rotations` of two-option items)."""
    return rotations(items)
