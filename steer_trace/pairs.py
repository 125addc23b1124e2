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

`extract_vector` is the entry point the commands use: it picks this reader for every pair it applies
to and the full-text reader for the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence

import torch

from .aggregators import DEFAULT_METHOD, PairDifferences, check_groups, to_vector
from .batching import chunks, encode, request
from .errors import UserError, halve_on_oom
from .models import Model
from .read import _layers_arg, read_full_text
from .vectors import SteeringVector

SHARED_READER = "shared-prompt-kv-cache"


def one_token_answers(tokenizer, prompts: Sequence[str], answers: Sequence[str]) -> list[int | None]:
    """The one token `answer` adds to each prompt, or None where tokens(prompt + answer) is not
    tokens(prompt) plus exactly one id (there the shared-prompt reading would differ)."""
    if len(prompts) != len(answers):
        raise UserError(f"{len(prompts)} prompts but {len(answers)} answers")
    if not prompts:
        return []
    heads = tokenizer(list(prompts))["input_ids"]
    fulls = tokenizer([p + a for p, a in zip(prompts, answers)])["input_ids"]
    return [full[-1] if len(full) == len(head) + 1 and full[: len(head)] == head else None
            for head, full in zip(heads, fulls)]


def answer_token_ids_after(tokenizer, prompts: Sequence[str], answers: Sequence[str]) -> list[int]:
    """`one_token_answers`, refusing a pair whose answer is not exactly one extra token."""
    ids = one_token_answers(tokenizer, prompts, answers)
    for n, token in enumerate(ids):
        if token is None:
            raise UserError(
                f"pair {n}: answer {answers[n]!r} is not exactly one extra token after its prompt; "
                "use read.contrastive_vector (or pairs.extract_vector) for such pairs"
            )
    return ids


def shared_prompt_batch(
    model: Model, prompts: Sequence[str], pos_ids: Sequence[int], neg_ids: Sequence[int], layers: list[int]
) -> torch.Tensor:
    """[len(layers), B, d] activation(prompt + pos) - activation(prompt + neg) at the
    answer token, every requested layer: a prompt trace, then an answer-token trace."""
    enc = model.on_device(encode(model.tokenizer, prompts))
    mask = enc["attention_mask"]
    rows = 2 * len(prompts)
    # pos0, neg0, ..
    answer_ids = torch.tensor([[t] for pair in zip(pos_ids, neg_ids) for t in pair], device=mask.device)
    ones = torch.ones(rows, 1, dtype=mask.dtype, device=mask.device)
    answer_mask = torch.cat([mask.repeat_interleave(2, dim=0), ones], dim=1)
    answer_pos = mask.sum(dim=1).repeat_interleave(2).unsqueeze(1)  # next position after each real prompt
    last_only = model.last_logits()  # the prompt pass needs no vocabulary projection
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
                rows_by_layer.append(model.residual(envoys[L])[:, -1, :])
            acts = torch.stack(rows_by_layer)
            diff = (acts[:, 0::2, :] - acts[:, 1::2, :]).save()
    return diff.detach().to("cpu", torch.float32)


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
    method: str = DEFAULT_METHOD,
) -> SteeringVector:
    """`read.contrastive_vector` on pairs (prompt + pos, prompt + neg), reading each
    prompt once. `batch_size` prompts per prompt trace (2 x that many answer rows).

    Same vector (up to float rounding), same grouping/balancing, methods and provenance;
    meta["reader"] records the shared-prompt path. Every answer must be one token after its prompt.
    """
    prompts = _check_pairs(prompts, answers_pos, answers_neg)
    layers = _layers_arg(model, layers)
    groups = check_groups(groups, len(prompts))
    pos_ids = answer_token_ids_after(model.tokenizer, prompts, list(answers_pos))
    neg_ids = answer_token_ids_after(model.tokenizer, prompts, list(answers_neg))
    stats = PairDifferences(method)
    read_shared_prompt(model, prompts, pos_ids, neg_ids, groups, layers, batch_size, stats, progress)
    return to_vector(stats, model, layers, balanced, SHARED_READER, meta)


def _check_pairs(prompts, answers_pos, answers_neg) -> list[str]:
    prompts = list(prompts)
    if not prompts:
        raise UserError("no contrastive pairs to read")
    if not (len(prompts) == len(answers_pos) == len(answers_neg)):
        raise UserError(f"{len(prompts)} prompts, {len(answers_pos)} positive and {len(answers_neg)} negative answers")
    return prompts


def read_shared_prompt(model: Model, prompts: Sequence[str], pos_ids: Sequence[int], neg_ids: Sequence[int],
                       groups: Sequence[Hashable], layers: list[int], batch_size: int, stats: PairDifferences,
                       progress: Callable[[int], None] | None = None):
    """Stream each pair's difference into `stats`, `batch_size` prompts per prompt trace."""
    def run(part):
        return shared_prompt_batch(model, [b[0] for b in part], [b[1] for b in part], [b[2] for b in part], layers)

    indexed = list(zip(prompts, pos_ids, neg_ids, groups))
    for batch in chunks(indexed, batch_size):
        diff = halve_on_oom(run, batch, lambda parts: torch.cat(parts, dim=1))
        for i, (_, _, _, g) in enumerate(batch):
            for k, L in enumerate(layers):
                stats.add(g, L, diff[k, i : i + 1])
            stats.count(g, 1)
        if progress:
            progress(len(batch))


def read_pairs(
    model: Model,
    prompts: Sequence[str],
    answers_pos: Sequence[str],
    answers_neg: Sequence[str],
    groups: Sequence[Hashable] | None = None,
    layers: Iterable[int] | None = None,
    batch_size: int = 8,
    method: str = DEFAULT_METHOD,
    progress: Callable[[int], None] | None = None,
) -> tuple[PairDifferences, str]:
    """The differences of pairs (prompt + pos, prompt + neg), each read the fastest exact way, and the
    reader used: the shared-prompt reader for every pair whose two answers are each one token after the
    prompt (every A/B pair), the full-text reader for the rest. Pairs run shortest prompt first (less
    padding); `batch_size` texts per forward pass (a shared prompt counts once, a full-text pair twice)."""
    prompts = _check_pairs(prompts, answers_pos, answers_neg)
    layers = _layers_arg(model, layers)
    groups = check_groups(groups, len(prompts))
    pos_ids = one_token_answers(model.tokenizer, prompts, list(answers_pos))
    neg_ids = one_token_answers(model.tokenizer, prompts, list(answers_neg))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    shared = [i for i in order if pos_ids[i] is not None and neg_ids[i] is not None]
    full = [i for i in order if pos_ids[i] is None or neg_ids[i] is None]
    stats = PairDifferences(method)
    if shared:
        read_shared_prompt(model, [prompts[i] for i in shared], [pos_ids[i] for i in shared],
                           [neg_ids[i] for i in shared], [groups[i] for i in shared], layers, batch_size, stats,
                           progress)
    if full:
        pairs = [(prompts[i] + answers_pos[i], prompts[i] + answers_neg[i]) for i in full]
        read_full_text(model, pairs, [groups[i] for i in full], layers, batch_size, stats, progress)
    reader = SHARED_READER if not full else "full-text" if not shared else \
        f"{SHARED_READER} ({len(shared)} pairs) + full-text ({len(full)} pairs)"
    return stats, reader


def extract_vector(
    model: Model,
    prompts: Sequence[str],
    answers_pos: Sequence[str],
    answers_neg: Sequence[str],
    groups: Sequence[Hashable] | None = None,
    layers: Iterable[int] | None = None,
    batch_size: int = 8,
    method: str = DEFAULT_METHOD,
    balanced: bool = True,
    meta: dict | None = None,
    progress: Callable[[int], None] | None = None,
) -> SteeringVector:
    """The contrastive vector of pairs (prompt + pos, prompt + neg) by `method`, read by `read_pairs`
    (shared-prompt reader where it applies): what `vectors extract` and `behaviours extract` run."""
    layers = _layers_arg(model, layers)
    stats, reader = read_pairs(model, prompts, answers_pos, answers_neg, groups, layers, batch_size, method, progress)
    return to_vector(stats, model, layers, balanced, reader, meta)


def extract(
    model: Model,
    pairs: Sequence[tuple[str, str, str]],
    method: str = DEFAULT_METHOD,
    layers: Iterable[int] | None = None,
    groups: Sequence[Hashable] | None = None,
    **options,
) -> SteeringVector:
    """The library's one way to read a steering vector: `pairs` are (prompt, matching answer, other answer)
    triples; `method` names an extraction method of `aggregators.METHODS` (mean, pca, ...).

    Pattern: `v = extract(model, [(q, " (A)", " (B)"), ...], method="mean", layers=[14])`.

    Gotchas: the reader is picked per pair (`read_pairs`): a prompt read once with both one-token answers
    (every A/B pair), else both full texts; the vector is the same either way up to float rounding, and its
    provenance (`meta["reader"]`) says which ran. `groups` (e.g. each pair's matching letter) are what
    the balanced mean weighs equally; other options (`batch_size`, `balanced`, `meta`, `progress`) as
    `extract_vector`."""
    pairs = list(pairs)
    if not pairs or any(len(p) != 3 for p in pairs):
        raise UserError("extract: pairs must be a non-empty list of (prompt, matching answer, other answer) triples")
    prompts, pos, neg = (list(column) for column in zip(*pairs))
    return extract_vector(model, prompts, pos, neg, groups=groups, layers=layers,
                          method=method, **options)
