"""Run plans over prompts and bring back only what the metrics need.

- `answer_probs`: per prompt, the probability of each answer token at the next
  position and the greedy token id (A/B or Yes/No scoring);
- `token_accuracy`: per document, correct top-1 next-token predictions and the
  number of predicted tokens.

Work is a list of (plan, batch) jobs. Locally each job is one trace; remotely
`points_per_request` jobs share one nnsight session, i.e. one request.
"""

from __future__ import annotations

from typing import Callable, Sequence

import nnsight
import torch

from .batching import chunks, encode
from .errors import UserError, halve_on_oom
from .models import Model
from .plan import Plan, apply_plan


def answer_token_ids(tokenizer, answers: Sequence[str], prefix: str = "I choose (") -> list[int]:
    """Token id of each answer as it follows `prefix` (the prompts end with "I choose (").
    Some tokenizers (qwen2.5) merge "(A" into one token, so the prefix keeps its context."""
    base = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    ids = []
    for answer in answers:
        full = tokenizer(prefix + answer, add_special_tokens=False)["input_ids"]
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise UserError(f"answer {answer!r} is not a single token after {prefix!r} for this tokenizer")
        ids.append(full[-1])
    return ids


def _join_rows(parts: list) -> tuple:
    """Concatenate the per-row results of the halves of one batch."""
    return tuple(torch.cat(pieces) for pieces in zip(*parts))


def _run(model: Model, jobs: list, one_trace: Callable, points_per_request: int, progress=None) -> list:
    results = []
    per_request = max(1, points_per_request) if model.remote else 1
    for group in chunks(jobs, per_request):
        with torch.no_grad():
            if model.remote:
                with model.lm.session(remote=model.remote):
                    saved = nnsight.save([])  # only saved values come back from a session
                    for job in group:  # a plain loop: a comprehension fails inside a session
                        saved.append(one_trace(job, {}))
                model.extra["requests"] = model.extra.get("requests", 0) + 1
            else:  # locally, a batch that runs out of memory is split in halves
                saved = [halve_on_oom(lambda part, plan=job[0]: one_trace((plan, part), {}), job[1], _join_rows)
                         for job in group]
        results.extend(tuple(t.detach().cpu().clone() for t in s) for s in saved)
        if progress:
            progress(sum(len(job[1]) for job in group))
    return results


def answer_probs(
    model: Model,
    prompts: Sequence[str],
    answer_ids: Sequence[int],
    plans: Sequence[Plan],
    batch_size: int = 8,
    points_per_request: int = 16,
    progress=None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each plan: (probs [N, len(answer_ids)], greedy ids [N])."""
    for plan in plans:
        plan.check(model)
    ids = torch.tensor(list(answer_ids))
    batches = list(chunks(list(prompts), batch_size))
    jobs = [(plan, batch) for plan in plans for batch in batches]
    last_only = model.last_logits_only()

    def one_trace(job, _):
        plan, batch = job
        enc = model.on_device(encode(model.tokenizer, batch))
        kwargs = {**last_only, **({} if model.remote else model.trace_kwargs())}
        with model.lm.trace(enc, **kwargs):
            apply_plan(model, plan, attention_mask=enc["attention_mask"])
            logits = model.lm.output.logits[:, -1, :]
            probs = torch.softmax(logits.float(), dim=-1)[:, ids].save()
            greedy = logits.argmax(dim=-1).save()
        return probs, greedy

    flat = _run(model, jobs, one_trace, points_per_request, progress)
    out = []
    for k in range(len(plans)):
        part = flat[k * len(batches) : (k + 1) * len(batches)]
        out.append((torch.cat([p for p, _ in part]), torch.cat([g for _, g in part])))
    return out


def token_accuracy(
    model: Model,
    documents: Sequence[str],
    plans: Sequence[Plan],
    batch_size: int = 4,
    max_tokens: int = 256,
    points_per_request: int = 16,
    progress=None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each plan: (correct top-1 predictions [D], predicted tokens [D]) per document."""
    for plan in plans:
        plan.check(model)
    batches = list(chunks(list(documents), batch_size))
    jobs = [(plan, batch) for plan in plans for batch in batches]

    def one_trace(job, _):
        plan, batch = job
        enc = model.on_device(encode(model.tokenizer, batch, max_tokens))
        target = enc["input_ids"][:, 1:]
        valid = (enc["attention_mask"][:, 1:] * enc["attention_mask"][:, :-1]).bool()
        kwargs = {} if model.remote else model.trace_kwargs()
        with model.lm.trace(enc, **kwargs):
            apply_plan(model, plan, attention_mask=enc["attention_mask"])
            pred = model.lm.output.logits[:, :-1, :].argmax(dim=-1)
            correct = ((pred == target) & valid).sum(dim=1).save()
        return correct, valid.sum(dim=1)

    flat = _run(model, jobs, one_trace, points_per_request, progress)
    out = []
    for k in range(len(plans)):
        part = flat[k * len(batches) : (k + 1) * len(batches)]
        out.append((torch.cat([c for c, _ in part]), torch.cat([n for _, n in part])))
    return out
