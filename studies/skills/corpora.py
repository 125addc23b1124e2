"""Plain-text, code and Python documents for the skills experiment, split into
a vector set and an evaluation set that never share a document or a problem.

Three sources, same result (a `Corpus`):

- ``project``: the repository's own ``data/skills/{text,code,python}.jsonl`` (40
  documents each, field ``text``), split in half per domain (seeded).
- ``shared`` (``--data-dir``, the offline stand-in for the paper's data):
  plain text = WikiText-2 sections (vectors from ``valid.txt``, evaluation from
  ``test.txt``); general code = HumanEval-X in C++, Go, Java, JavaScript and Rust
  (prompt + canonical solution, so documents reach the code bodies); Python =
  OpenAI HumanEval. HumanEval and HumanEval-X are the same 164 problems in several
  languages, so the task numbers are cut once (seeded) into four disjoint groups:
  Python vector, Python evaluation, code vector, code evaluation. No problem is on
  both sides, and the code problems are never the Python problems.
- ``hub``: the paper's data streamed through ``datasets`` (the Pile without /
  with GitHub from ``monology/pile-uncopyrighted``, Python from
  ``codeparrot/codeparrot-clean``; evaluation from the Pile's validation split and
  ``codeparrot/codeparrot-clean-valid``). Needs the Hugging Face hub.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from steer_trace.errors import UserError

DOMAINS = ("text", "code", "python")
ROLES = ("vector", "eval")
CODE_LANGUAGES = ("cpp", "go", "java", "js", "rust")  # general code; Python is its own domain
LANGUAGES = ("text", "python", *CODE_LANGUAGES)  # the columns of the language matrix
N_PROBLEMS = 164
# problems per group of the shared split (sums to 164): Python evaluation is the largest because a
# HumanEval document is ~200 tokens and ~20k Python tokens are scored; a code problem gives five documents
PROBLEM_GROUPS = {"python/vector": 22, "python/eval": 112, "code/vector": 12, "code/eval": 18}
PROJECT_DIR = Path(__file__).resolve().parents[2] / "data" / "skills"

WIKITEXT = "pytorch_examples/word_language_model/data/wikitext-2"
HUMANEVAL_X = "THUDM_CodeGeeX/codegeex/benchmark/humaneval-x"
HUMANEVAL = "openai_human-eval/data/HumanEval.jsonl.gz"


@dataclass(frozen=True)
class Document:
    domain: str
    source: str  # where it came from, e.g. "humaneval-x/go", "wikitext-2/test"
    group: str  # unit that may not straddle the split: "problem/12", "article/<title>"
    text: str
    language: str = ""  # text, python, cpp, go, java, js, rust ("" = the domain's name)

    @property
    def lang(self) -> str:
        return self.language or self.domain


@dataclass
class Corpus:
    origin: str  # project | shared | hub
    docs: dict[str, dict[str, list[Document]]] = field(default_factory=dict)  # role -> domain -> documents

    def get(self, role: str, domain: str) -> list[Document]:
        return self.docs[role][domain]

    def texts(self, role: str, domain: str) -> list[str]:
        return [d.text for d in self.get(role, domain)]

    def summary(self) -> dict:
        return {role: {dom: len(docs) for dom, docs in by.items()} for role, by in self.docs.items()}


def check_disjoint(corpus: Corpus) -> None:
    """Raise if a document text or a group (problem, article) is in both the vector and the eval set."""
    vec = [d for docs in corpus.docs["vector"].values() for d in docs]
    ev = [d for docs in corpus.docs["eval"].values() for d in docs]
    shared_text = {d.text for d in vec} & {d.text for d in ev}
    shared_group = {d.group for d in vec} & {d.group for d in ev}
    if shared_text or shared_group:
        example = sorted(shared_group)[:3] or [t[:40] for t in list(shared_text)[:2]]
        raise UserError(f"vector and evaluation documents overlap ({len(shared_group)} groups, "
                        f"{len(shared_text)} texts; e.g. {example})")


# -- project data ---------------------------------------------------------------

def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        raise UserError(f"data file {path} does not exist") from None
    except EOFError:  # a truncated .gz (click would print "Aborted!" for it)
        raise UserError(f"{path} is truncated (the compressed stream ends early): download it again") from None
    except (json.JSONDecodeError, OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not readable JSON lines ({error})") from None


_LANGUAGE_NAMES = {"javascript": "js", "c++": "cpp"}


def load_project(folder: Path = PROJECT_DIR, n_vector: int | None = None, n_eval: int | None = None,
                 seed: int = 13) -> Corpus:
    """The repository's small offline set: each domain's rows split in half (seeded)."""
    corpus = Corpus("project", {role: {} for role in ROLES})
    for domain in DOMAINS:
        rows = _read_jsonl(Path(folder) / f"{domain}.jsonl")
        docs = [Document(domain, f"project/{domain}", f"project/{domain}/{i}", str(r["text"]),
                         _LANGUAGE_NAMES.get(str(r.get("language", "")), str(r.get("language", ""))))
                for i, r in enumerate(rows) if str(r.get("text", "")).strip()]
        random.Random(f"{seed}/{domain}").shuffle(docs)
        half = len(docs) // 2
        corpus.docs["vector"][domain] = docs[:half][:n_vector]
        corpus.docs["eval"][domain] = docs[half:][:n_eval]
    return corpus


# -- shared (offline stand-in) data -----------------------------------------------

_HEADING = re.compile(r"^(= )+(?P<title>[^=].*?)( =)+$")
_DETOK = [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" ,", ","), (" .", "."), (" ;", ";"), (" :", ":"),
          (" 's", "'s"), ("( ", "("), (" )", ")")]


def _detokenize(text: str) -> str:
    for old, new in _DETOK:
        text = text.replace(old, new)
    return text


def wikitext_sections(path: Path, min_words: int = 40) -> list[tuple[str, str]]:
    """(article title, section text) for every section of a WikiText file, heading included."""
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise UserError(f"WikiText file {path} does not exist") from None
    sections: list[tuple[str, list[str]]] = []
    article = ""
    for line in lines:
        stripped = line.strip()
        match = _HEADING.match(stripped)
        if match:
            title = match.group("title")
            if not stripped.startswith("= ="):
                article = title
            sections.append((article, [title]))
        elif stripped and sections:
            sections[-1][1].append(_detokenize(stripped))
    return [(art, "\n".join(parts)) for art, parts in sections if len(" ".join(parts).split()) >= min_words]


def _article_group(file: str, title: str) -> str:
    """An article's identity: its title, unless WikiText masked part of it (then it is not unique)."""
    return f"article/{file}/{title}" if "<unk>" in title else f"article/{title}"


def problem_split(seed: int = 13, n_problems: int = N_PROBLEMS) -> dict[str, list[int]]:
    """Task numbers of each group of PROBLEM_GROUPS: one seeded shuffle, cut into consecutive slices."""
    ids = list(range(n_problems))
    random.Random(seed).shuffle(ids)
    out, start = {}, 0
    for name, size in PROBLEM_GROUPS.items():
        out[name] = ids[start:start + size]
        start += size
    return out


def _task_number(task_id: str) -> int:
    return int(str(task_id).rsplit("/", 1)[1])


def _humaneval_x(root: Path, lang: str) -> dict[int, str]:
    rows = _read_jsonl(root / HUMANEVAL_X / lang / "data" / f"humaneval_{lang}.jsonl.gz")
    return {_task_number(r["task_id"]): r["prompt"] + r["canonical_solution"] for r in rows}


def _shared_root(data_dir: str | Path) -> Path:
    root = Path(data_dir)
    if (root / "skills_samples").is_dir():
        root = root / "skills_samples"
    if not (root / HUMANEVAL).exists():
        raise UserError(f"--data-dir {data_dir} does not hold the skills samples "
                        f"(expected {HUMANEVAL} and {HUMANEVAL_X}/<lang>/ under it or under its skills_samples/)")
    return root


def _code_documents(code: dict[str, dict[int, str]], ids: list[int]) -> list[Document]:
    """Every language of every problem, languages rotated so that any prefix is language-balanced."""
    docs = []
    for rotation in range(len(CODE_LANGUAGES)):
        for k, pid in enumerate(ids):
            lang = CODE_LANGUAGES[(k + rotation) % len(CODE_LANGUAGES)]
            if pid in code[lang]:
                docs.append(Document("code", f"humaneval-x/{lang}", f"problem/{pid}", code[lang][pid], lang))
    return docs


def load_shared(data_dir: str | Path, n_vector: int | None = None, n_eval: int | None = None,
                seed: int = 13) -> Corpus:
    """WikiText-2 / HumanEval-X / HumanEval, split by article file and by problem number."""
    root = _shared_root(data_dir)
    corpus = Corpus("shared", {role: {} for role in ROLES})
    problems = problem_split(seed)
    code = {lang: _humaneval_x(root, lang) for lang in CODE_LANGUAGES}
    python = {_task_number(r["task_id"]): r["prompt"] + r["canonical_solution"] for r in _read_jsonl(root / HUMANEVAL)}
    for role, wiki in (("vector", "valid"), ("eval", "test")):
        limit = n_vector if role == "vector" else n_eval
        sections = wikitext_sections(root / WIKITEXT / f"{wiki}.txt")
        text_docs = [Document("text", f"wikitext-2/{wiki}", _article_group(wiki, art), body, "text")
                     for art, body in sections]
        random.Random(f"{seed}/text/{role}").shuffle(text_docs)
        corpus.docs[role]["text"] = text_docs[:limit]
        corpus.docs[role]["code"] = _code_documents(code, problems[f"code/{role}"])[:limit]
        corpus.docs[role]["python"] = [Document("python", "humaneval", f"problem/{pid}", python[pid], "python")
                                       for pid in problems[f"python/{role}"] if pid in python][:limit]
    return corpus


# -- the paper's data through the hub ------------------------------------------------

PILE = "monology/pile-uncopyrighted"
CODEPARROT = "codeparrot/codeparrot-clean"
CODEPARROT_VALID = "codeparrot/codeparrot-clean-valid"


def _stream(name: str, split: str, seed: int | None):
    try:
        from datasets import load_dataset  # deferred: only the hub path needs it (~9 s to import, loaded machine)

        stream = load_dataset(name, split=split, streaming=True)
    except Exception as error:  # network, auth, missing dataset: one clear line
        raise UserError(f"cannot stream {name} ({split}) from the hub: {str(error).splitlines()[0][:160]}") from None
    return stream.shuffle(seed=seed, buffer_size=10_000) if seed is not None else stream


def load_hub(n_vector: int, n_eval: int, seed: int = 13) -> Corpus:  # pragma: no cover - needs the hub
    """The paper's documents, streamed: train splits for vectors, validation splits for evaluation."""
    corpus = Corpus("hub", {role: {} for role in ROLES})
    for role, split, shuffle, n in (("vector", "train", seed, n_vector), ("eval", "validation", None, n_eval)):
        text, code = [], []
        for i, row in enumerate(_stream(PILE, split, shuffle)):
            is_code = row["meta"]["pile_set_name"] == "Github"
            bucket = code if is_code else text
            if len(bucket) < n:
                dom = "code" if is_code else "text"
                bucket.append(Document(dom, f"pile/{split}", f"pile/{split}/{i}", row["text"], dom))
            if len(text) >= n and len(code) >= n:
                break
        corpus.docs[role]["text"], corpus.docs[role]["code"] = text, code
    py_sources = (("vector", CODEPARROT, "train", seed, n_vector), ("eval", CODEPARROT_VALID, "train", None, n_eval))
    for role, name, split, shuffle, n in py_sources:
        docs = []
        for i, row in enumerate(_stream(name, split, shuffle)):
            docs.append(Document("python", name, f"{name}/{i}", row["content"], "python"))
            if len(docs) >= n:
                break
        corpus.docs[role]["python"] = docs
    return corpus


def load_corpus(data_dir: str | Path | None = None, hub: bool = False, n_vector: int | None = None,
                n_eval: int | None = None, seed: int = 13) -> Corpus:
    """Pick the source: the hub, a shared data folder (or $STEER_TRACE_DATA), else the project's set."""
    if hub:
        corpus = load_hub(n_vector or 5000, n_eval or 500, seed)
    else:
        data_dir = data_dir or os.environ.get("STEER_TRACE_DATA")
        if data_dir:
            corpus = load_shared(data_dir, n_vector, n_eval, seed)
        else:
            corpus = load_project(PROJECT_DIR, n_vector, n_eval, seed)
    for role in ROLES:
        for domain in DOMAINS:
            if not corpus.docs[role].get(domain):
                raise UserError(f"no {domain} documents for the {role} set ({corpus.origin} data)")
    check_disjoint(corpus)
    return corpus
