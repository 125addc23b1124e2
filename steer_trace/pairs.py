"""Fast contrastive extraction when a pair's two texts share everything but the answer.

An A/B pair is ``prompt + matching`` vs ``prompt + not_matching``: the same
prompt with a different final token. `read.contrastive_vector` runs both full
texts; here the prompt runs once (one trace keeps its KV cache, and skips the
vocabulary projection for all but the last position), then a second trace runs
only the two answer tokens of every prompt, as one batch of 2B one-token rows,
on the cache repeated for the two answers. The activations read at each answer
token are the same as in the full-text forward (equal up to float rounding), so
the vector is too, for about half the work on A/B prompts.

Both traces go through nnsight; remotely they share one session (one request
per batch), so the cache stays on the server.
"""

from __future__ import annotations

from typing import Callable, Hashable, Iterable, Sequence

import torch

from .batching import chunks, encode, request
from .errors import UserError
from .models import Model
from .read import GroupMeans, _layers_arg, _with_version
from .vectors import SteeringVector


def answer_token_ids_after(tokenizer, prompts: Sequence[str], answers: Sequence[str]) -> list[int]:
    """The one token `answer` adds to each prompt: tokens(prompt + answer) must be
    tokens(prompt) plus exactly one id, else the shared-prompt reading would differ."""
    if len(prompts) != len(answers):
        raise UserError(f"{len(prompts)} prompts but {len(answers)} answers")
    heads = tokenizer(list(prompts))["input_ids"]
    fulls = tokenizer([p + a for p, a in zip(prompts, answers)])["input_ids"]
    ids = []
    for n, (head, full) in enumerate(zip(heads, fulls)):
        if len(full) != len(head) + 1 or full[: len(head)] != head:
            raise UserError(
                f"pair {n}: answer {answers[n]!r} is not exactly one extra token after its prompt; "
                "use read.contrastive_vector for such pairs"
            )
        ids.append(full[-1])
    return ids


def shared_prompt_batch(
    model: Model, prompts: Sequence[str], pos_ids: Sequence[int], neg_ids: Sequence[int], layers: list[int]
) -> torch.Tensor:
    """[len(layers), B, d] activation(prompt + pos) - activation(prompt + neg) at the
    answer token, every requested layer: a prompt trace, then an answer-token trace."""
    enc = encode(model.tokenizer, prompts)
    mask = enc["attention_mask"]
    rows = 2 * len(prompts)
    answer_ids = torch.tensor([[t] for pair in zip(pos_ids, neg_ids) for t in pair])  # pos0, neg0, pos1, ...
    answer_mask = torch.cat([mask.repeat_interleave(2, dim=0), torch.ones(rows, 1, dtype=mask.dtype)], dim=1)
    answer_pos = mask.sum(dim=1).repeat_interleave(2).unsqueeze(1)  # next position after each real prompt
    last_only = model.last_logits_only()  # the prompt pass needs no vocabulary projection
    envoys = model.layers()
    kwargs = {} if model.remote else model.trace_kwargs()
    with torch.no_grad(), request(model):
        with model.lm.trace(enc, use_cache=True, **last_only, **kwargs):
            cache = model.lm.output.past_key_values.save()
        cache.batch_repeat_interleave(2)  # each prompt's cache twice, next to each other
        answers = dict(input_ids=answer_ids, attention_mask=answer_mask, position_ids=answer_pos, **last_only, **kwargs)
        with model.lm.trace(past_key_values=cache, **answers):  # one line: a session re-parses this source
            rows_by_layer = []
            for L in layers:  # forward order; a plain loop (a comprehension fails in a session)
                rows_by_layer.append(envoys[L].output[:, -1, :])
            acts = torch.stack(rows_by_layer)
            diff = (acts[:, 0::2, :] - acts[:, 1::2, :]).save()
    return diff.detach().to(torch.float32)


def contrastive_vector_shared_prompt(
    model: Model,
    prompts: Sequence[str],
    answers_pos: Sequence[str],
    answers_neg: Sequence[str],
    groups: Sequence[Hashable] | None = None,
    layers: Iterable[int] | None = None,
    batch_size: int = 8,
    balanced: bool = True,
    meta: dict | None = None,
    progress: Callable[[int], None] | None = None,
) -> SteeringVector:
    """`read.contrastive_vector` on pairs (prompt + pos, prompt + neg), reading each
    prompt once. `batch_size` prompts per prompt trace (2 x that many answer rows).

    Same vector (up to float rounding), same grouping/balancing and provenance;
    meta["reader"] records the shared-prompt path.
    """
    prompts = list(prompts)
    if not prompts:
        raise UserError("no contrastive pairs to read")
    if not (len(prompts) == len(answers_pos) == len(answers_neg)):
        raise UserError(f"{len(prompts)} prompts, {len(answers_pos)} positive and {len(answers_neg)} negative answers")
    layers = _layers_arg(model, layers)
    groups = list(groups) if groups is not None else ["all"] * len(prompts)
    if len(groups) != len(prompts):
        raise UserError(f"{len(groups)} groups for {len(prompts)} pairs")
    pos_ids = answer_token_ids_after(model.tokenizer, prompts, list(answers_pos))
    neg_ids = answer_token_ids_after(model.tokenizer, prompts, list(answers_neg))
    acc = GroupMeans()
    indexed = list(zip(prompts, pos_ids, neg_ids, groups))
    for batch in chunks(indexed, batch_size):
        diff = shared_prompt_batch(model, [b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch], layers)
        for i, (_, _, _, g) in enumerate(batch):
            for k, L in enumerate(layers):
                acc.add(g, L, diff[k, i : i + 1])
            acc.count(g, 1)
        if progress:
            progress(len(batch))
    if balanced:
        means = [acc.mean(g) for g in sorted(acc.counts, key=str)]
        layers_out = {L: sum(m[L] for m in means) / len(means) for L in layers}
    else:
        n = sum(acc.counts.values())
        layers_out = {L: (sum(acc.sums[g][L] for g in acc.counts) / n).to(torch.float32) for L in layers}
    info = {
        "method": "mean-difference" + ("-balanced" if balanced else ""),
        "site": "decoder-layer-output",
        "position": "last",
        "reader": "shared-prompt-kv-cache",
        "n_pairs": len(prompts),
        "groups": {str(g): n for g, n in sorted(acc.counts.items(), key=lambda kv: str(kv[0]))},
        "model": model.name,
        "model_revision": model.revision,
    }
    info.update(meta or {})
    return SteeringVector(layers_out, _with_version(info))
