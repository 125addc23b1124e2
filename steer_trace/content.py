"""Letter-free measurement: score and build vectors from the answer texts, not their letters.

A question's stem is its text without the option list; each option text is the
continuation of ``Human:\\n{stem}\\n\\nAI:\\n`` (or the chat template's head).

- content scoring: per option, the mean log-probability of its text tokens given the stem
  prompt (length-normalised); p(matching) is the softmax of those scores over the shown
  options, and the question "prefers" the matching answer when its score is the highest;
- content vectors: the mean over the answer-text tokens of the residual stream of
  stem + matching text minus stem + non-matching text, one pair per non-matching option,
  averaged over pairs (no letters anywhere, so no letter balancing is needed).

Both run through nnsight: scoring is a `score.Readout` for the one measurement runner
(`score.measure`); vectors read every requested layer in one trace per batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import nnsight
import numpy as np
import torch

from .batching import chunks, encode
from .data import ABItem, option_starts, option_texts
from .errors import UserError
from .metrics import COLLAPSE, bootstrap_ci, question_columns
from .models import Model
from .plan import Plan
from .packing import answer_weights, by_length, encode_packed, option_logprobs, option_targets, pack, packable
from .score import ROW_DATA, Readout, measure, model_inputs

CHOICES_LABEL = re.compile(r"\s*(Choices|Options|Answers?)\s*:\s*$", re.IGNORECASE)


def stem(item: ABItem) -> str:
    """The question without its option list (and without a trailing 'Choices:' label)."""
    if item.family == "yes/no":
        return item.question.strip()
    starts = option_starts(item.question)
    if not starts:
        raise UserError(f"{item.source} row {item.row}: no options (A), (B) ... to score by content")
    return CHOICES_LABEL.sub("", item.question[: starts[0]]).strip()


def texts(item: ABItem) -> list[str]:
    """The option texts in the order of item.options."""
    return list(item.options) if item.family == "yes/no" else option_texts(item)


def content_prompt(item: ABItem, style: str = "paper", tokenizer=None) -> str:
    if style == "paper":
        return f"Human:\n{stem(item)}\n\nAI:\n"
    if style == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UserError("prompt style 'chat' needs a tokenizer with a chat template")
        return tokenizer.apply_chat_template([{"role": "user", "content": stem(item)}], tokenize=False,
                                             add_generation_prompt=True)
    raise UserError(f"unknown prompt style {style!r} (paper or chat)")


def answer_lengths(tokenizer, prompts: Sequence[str], answers: Sequence[str]) -> list[int]:
    """Tokens of each answer after its prompt: those of prompt + answer past their common
    prefix with the prompt's own tokens (a merge at the boundary counts to the answer)."""
    heads = tokenizer(list(prompts))["input_ids"]
    fulls = tokenizer([p + a for p, a in zip(prompts, answers)])["input_ids"]
    out = []
    for n, (head, full) in enumerate(zip(heads, fulls)):
        common = 0
        while common < min(len(head), len(full)) and head[common] == full[common]:
            common += 1
        if common >= len(full):
            raise UserError(f"answer {answers[n]!r} adds no tokens to its prompt")
        out.append(len(full) - common)
    return out


def answer_logprobs(model: Model, prompts: Sequence[str], answers: Sequence[str], plans: Sequence[Plan],
                    batch_size: int = 8, points_per_request: int = 16) -> list[torch.Tensor]:
    """For each plan: [N] mean log p(answer tokens | prompt) of each (prompt, answer)."""
    lengths = torch.tensor(answer_lengths(model.tokenizer, prompts, answers))
    texts_ = [p + a for p, a in zip(prompts, answers)]
    # logits only where they predict an answer token: the last (longest answer + 1) positions
    readout = Readout(_answer_mean_logprob, per_text=lengths, logit_positions=int(lengths.max()) + 1)
    return [out[0] for out in measure(model, texts_, plans, readout, batch_size, points_per_request)]


def packed_answer_logprobs(model: Model, prompts: Sequence[str], answers: Sequence[Sequence[str]],
                           plans: Sequence[Plan], batch_size: int = 8, points_per_request: int = 16
                           ) -> list[torch.Tensor]:
    """As `answer_logprobs` over every `(prompts[q], answers[q][j])`, in that order, from one packed row per
    prompt (packing.py: its stem read once). Needs `packing.packable(model, plans)`."""
    rows, questions = by_length([pack(model.tokenizer, p, a) for p, a in zip(prompts, answers)],
                                list(range(len(prompts))))
    targets, positions = option_targets(rows)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else model.tokenizer.eos_token_id
    dtype = getattr(model, "dtype", None) or torch.float32
    readout = Readout(_packed_option_logprobs, per_text=targets, logit_positions=positions,
                      encode=lambda _model, chunk: encode_packed(chunk, pad, dtype))
    back = torch.tensor(questions).argsort()  # question order again
    shown = torch.tensor([len(a) for a in answers])
    present = torch.arange(targets.shape[2])[None, :] < shown[:, None]
    return [out[0][back][present] for out in measure(model, rows, plans, readout, batch_size, points_per_request)]


def _packed_option_logprobs(model: Model, enc: dict) -> tuple:
    return (option_logprobs(model.lm.output.logits, enc[ROW_DATA]).cpu().save(),)


def _answer_mean_logprob(model: Model, enc: dict) -> tuple:
    """Inside the trace: each row's mean log-probability of its last enc[ROW_DATA] tokens (its answer).
    The logits may cover only the last positions (`logits_to_keep`); rows are left padded."""
    logits = model.lm.output.logits
    kept = min(logits.shape[1], enc["input_ids"].shape[1])
    logits = logits[:, -kept:-1, :].double()  # float64: the vocabulary sum keeps 1e-6
    target = enc["input_ids"][:, -(kept - 1):]
    width = target.shape[1]
    n_answer = enc[ROW_DATA]
    answer = (torch.arange(width)[None, :] >= (width - n_answer)[:, None]).to(logits.device)
    picked = logits.gather(2, target.to(logits.device).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return (((picked * answer).sum(dim=1) / n_answer.to(logits.device)).cpu().save(),)


@dataclass(frozen=True)
class ContentQuestions:
    """Questions ready for content scoring: the items, each one's stem prompt (`heads`), its shown option
    texts, and per option its question (`owner`). Build once per question set with `content_questions`."""

    items: list[ABItem]
    heads: list[str]
    options: list[list[str]]
    owner: np.ndarray


def content_questions(items: list[ABItem], prompt_style: str, tokenizer) -> ContentQuestions:
    heads = [content_prompt(item, prompt_style, tokenizer) for item in items]
    options = [texts(item) for item in items]
    owner = np.asarray([q for q, shown in enumerate(options) for _ in shown])
    return ContentQuestions(list(items), heads, options, owner)


def content_summary(items: list[ABItem], scores: np.ndarray, owner: np.ndarray) -> dict:
    """A result row from per-option scores: the same columns as letter scoring where they
    mean the same (n, p_matching and its interval, matching_score, top share, collapse) and the
    per-question columns. Letter-only columns (faulty, answer mass, order consistency) are NaN."""
    n = len(items)
    p_match, chosen, matching = np.zeros(n), np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    for q, item in enumerate(items):
        s = scores[owner == q]
        weights = np.exp(s - s.max())
        p_match[q] = weights[item.matching_index] / weights.sum()
        chosen[q] = int(np.argmax(s))
        matching[q] = item.matching_index
    counts = np.bincount(chosen)
    top = float(counts.max()) / n if n else 0.0
    per = {"p_matching": torch.tensor(p_match), "matching": torch.tensor((chosen == matching).astype(float)),
           "chosen": torch.full((n,), -1)}
    per_prompt = {"qid": torch.arange(n), "rotation": torch.zeros(n, dtype=torch.long),
                  "n_shown": torch.tensor([len(item.options) for item in items])}
    lo, hi = bootstrap_ci(p_match)
    row = {"n": n, "p_matching": float(p_match.mean()), "matching_score": float((chosen == matching).mean()),
           "faulty": float("nan"), "answer_mass": float("nan"), "top_answer_share": top, "collapsed": top >= COLLAPSE,
           "p_matching_lo": lo, "p_matching_hi": hi, "top_answer": f"option {int(np.argmax(counts)) + 1}"}
    return {**row, **question_columns(per, per_prompt, [item.original_matching for item in items],
                                       scoring="content")}


def content_rows(model: Model, questions: ContentQuestions, plans: list[Plan], batch_size: int | None,
                 points_per_request: int = 16) -> list[dict]:
    """One result row per plan, scored by answer texts (see `content_summary`); a question's options share
    one packed row where the plans allow it (`packing.packable`), else one row each."""
    heads, options, owner = questions.heads, questions.options, questions.owner
    if packable(model, plans):
        results = packed_answer_logprobs(model, heads, options, plans, batch_size, points_per_request)
    else:
        prompts = [heads[q] for q in owner]
        answers = [text for shown in options for text in shown]
        results = answer_logprobs(model, prompts, answers, plans, batch_size, points_per_request)
    return [content_summary(questions.items, scores.double().numpy(), owner) for scores in results]


# -- content vectors ----------------------------------------------------------------------


def answer_token_means(model: Model, prompts: Sequence[str], answers: Sequence[str], layers: list[int],
                       batch_size: int = 8) -> dict[int, torch.Tensor]:
    """{layer: [N, d]} mean residual stream over the answer's tokens of prompt + answer."""
    layers = sorted({model.check_layer(L) for L in layers})
    lengths = answer_lengths(model.tokenizer, prompts, answers)
    out: dict[int, list[torch.Tensor]] = {L: [] for L in layers}
    envoys = model.layers()
    rows = list(zip([p + a for p, a in zip(prompts, answers)], lengths))
    for batch in chunks(rows, batch_size):
        enc = encode(model.tokenizer, [text for text, _ in batch])
        model.check_context(enc)
        width = enc["input_ids"].shape[1]
        n_answer = torch.tensor([n for _, n in batch])
        mask = (torch.arange(width)[None, :] >= (width - n_answer)[:, None]).float().unsqueeze(-1)
        with torch.no_grad(), model.lm.trace(enc, **model.last_logits(), **model.trace_kwargs()):
            saved = nnsight.save({})
            for L in layers:  # forward order
                h = envoys[L].output
                saved[L] = ((h * mask.to(h.dtype)).sum(1) / mask.sum(1)).save()
        for L in layers:
            out[L].append(saved[L].detach().float())
    return {L: torch.cat(parts) for L, parts in out.items()}


def option_means(model: Model, prompts: Sequence[str], answers: Sequence[Sequence[str]], layers: list[int],
                 batch_size: int = 8) -> dict[int, torch.Tensor]:
    """{layer: [every option, d]} as `answer_token_means` over every `(prompts[q], answers[q][j])`, in that order;
    one packed row per prompt (its stem read once) where the model takes a 4D mask (`packing.packable`)."""
    if not packable(model, []):
        flat = [p for p, shown in zip(prompts, answers) for _ in shown]
        return answer_token_means(model, flat, [a for shown in answers for a in shown], layers, batch_size)
    layers = sorted({model.check_layer(L) for L in layers})
    rows = [pack(model.tokenizer, p, a) for p, a in zip(prompts, answers)]
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else model.tokenizer.eos_token_id
    out: dict[int, list[torch.Tensor]] = {L: [] for L in layers}
    envoys = model.layers()
    for batch in chunks(rows, batch_size):
        enc = encode_packed(batch, pad, getattr(model, "dtype", None) or torch.float32)
        weights = answer_weights(batch, enc["input_ids"].shape[1])
        with torch.no_grad(), model.lm.trace(model.on_device(model_inputs(enc)), **model.last_logits(),
                                             **model.trace_kwargs()):
            saved = nnsight.save({})
            for L in layers:  # forward order
                h = envoys[L].output
                saved[L] = (weights.to(h.device, h.dtype) @ h).save()
        shown = torch.tensor([len(row.segments) for row in batch])
        present = torch.arange(weights.shape[1])[None, :] < shown[:, None]
        for L in layers:
            out[L].append(saved[L].detach().float()[present])
    return {L: torch.cat(parts) for L, parts in out.items()}


def content_pairs(items: list[ABItem], style: str = "paper", tokenizer=None) -> tuple[list, list, list]:
    """(prompts, matching texts, non-matching texts): one pair per non-matching option."""
    prompts, pos, neg = [], [], []
    for item in items:
        head = content_prompt(item, style, tokenizer)
        shown = dict(zip(item.options, texts(item)))
        for other in item.non_matching:
            prompts.append(head)
            pos.append(shown[item.matching])
            neg.append(shown[other])
    return prompts, pos, neg


def pair_means(model: Model, items: list[ABItem], layers: list[int], style: str = "paper",
               batch_size: int = 8) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """({layer: [pairs, d]} answer-token mean of stem + matching text, the same of stem + non-matching text),
    pairs as `content_pairs`; each option is read once (`option_means`)."""
    if not any(item.non_matching for item in items):
        raise UserError("no content pairs to read")
    heads = [content_prompt(item, style, model.tokenizer) for item in items]
    means = option_means(model, heads, [texts(item) for item in items], layers, batch_size)
    pos, neg, first = [], [], 0
    for item in items:
        where = {option: first + j for j, option in enumerate(item.options)}
        pos += [where[item.matching]] * len(item.non_matching)
        neg += [where[other] for other in item.non_matching]
        first += len(item.options)
    return {L: m[pos] for L, m in means.items()}, {L: m[neg] for L, m in means.items()}


def pair_differences(model: Model, items: list[ABItem], layers: list[int], style: str = "paper",
                     batch_size: int = 8) -> dict[int, torch.Tensor]:
    """{layer: [pairs, d]} answer-token mean of stem + matching minus stem + non-matching."""
    plus, minus = pair_means(model, items, layers, style, batch_size)
    return {L: plus[L] - minus[L] for L in plus}
