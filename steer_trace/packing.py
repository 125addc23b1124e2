"""Shared-stem packing: a question's options scored in one row, its stem read once.

What it is for: content scoring reads log p(option text | stem prompt) for every option of a
question. Run one row per option and the stem (30-116 tokens on the paper's sets) is read once
per option, though the options (1-10 tokens) are the only part that differs. A packed row holds
the stem once and then every option's tokens; a 4D attention mask lets each option attend to the
stem and to its own earlier tokens only, and its positions continue from the stem, so each
option sees exactly the context it has alone. The same scores from about half the tokens.

Pattern: `pack(tokenizer, head, answers)` per question -> `encode_packed(rows)` per batch (left
padded; the mask is additive, 0 or the dtype's minimum) -> inside the trace, `option_logprobs`
reads each option's mean log-probability from the logits at the row's last positions.
Letter scoring packs the rotations of a question the same way (`next_token_probs`): they share the
stem; each rotation's last token moves to the end of the row (attention follows position ids, not row
order), so logits are read at as many positions as there are rotations.

Gotchas:
- a token the tokenizer merges across the stem/answer boundary belongs to the answer (as in
  `content.answer_lengths`): the shared stem is the prefix every option's tokens agree on;
- every position of a packed row is steered alike, so only position-independent steering
  (scope `all`) gives the unpacked numbers; `packable` says when a call may pack;
- the model must take a 4D mask as given (transformers' sdpa and eager attention do; flash attention does
  not); `packable` checks the attention implementation. On NDIF the client's counts: nnsight sends it with
  every request and the server switches to it or refuses the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import UserError
from .score import ROW_DATA, STEER_MASK, Readout, measure

MASKED_ATTENTION = ("sdpa", "eager")  # implementations that apply a custom 4D additive mask as given


@dataclass(frozen=True)
class PackedRow:
    """A question's tokens: the shared stem, then each option's tokens past it."""
    stem: tuple[int, ...]
    segments: tuple[tuple[int, ...], ...]  # per option: its tokens after the stem
    scored: tuple[int, ...]  # per option: how many of its last segment tokens are the answer's

    @property
    def length(self) -> int:
        return len(self.stem) + sum(len(s) for s in self.segments)

    @property
    def logit_positions(self) -> int:
        """The last positions whose logits predict an answer token: the stem's last and every option token."""
        return 1 + sum(len(s) for s in self.segments)

    def targets(self, positions: int, width: int) -> torch.Tensor:
        """[positions, width] long: at each of the row's last `positions` logit positions, the token it
        predicts for option j (column j), -1 where it predicts none. The stem's last position predicts every
        option's first token."""
        out = torch.full((positions, width), -1, dtype=torch.long)
        stem_last = positions - self.logit_positions  # index of the stem's last position
        start = stem_last + 1
        for j, (segment, n) in enumerate(zip(self.segments, self.scored)):
            for k in range(len(segment) - n, len(segment)):
                out[start + k - 1 if k else stem_last, j] = segment[k]
            start += len(segment)
        return out


def pack(tokenizer, head: str, answers: Sequence[str]) -> PackedRow:
    """One question: `head` (the stem prompt) and its option texts."""
    base = tokenizer(head)["input_ids"]
    fulls = tokenizer([head + a for a in answers])["input_ids"]
    commons = []
    for answer, full in zip(answers, fulls):
        common = 0
        while common < min(len(base), len(full)) and base[common] == full[common]:
            common += 1
        if common >= len(full):
            raise UserError(f"answer {answer!r} adds no tokens to its prompt")
        commons.append(common)
    shared = min(commons)
    if shared == 0:
        raise UserError(f"the options of {head[:40]!r}... share no prompt tokens to pack")
    return PackedRow(tuple(base[:shared]), tuple(tuple(full[shared:]) for full in fulls),
                     tuple(len(full) - c for full, c in zip(fulls, commons)))


def _row_layout(row: PackedRow, ends_last: bool = False) -> tuple[list[int], list[int], list[int]]:
    """Per token: id, position, and segment (0 the stem, j + 1 option j). `ends_last`: every segment's last
    token moved to the end of the row, in segment order (attention follows positions, not row order)."""
    ids, pos, seg = list(row.stem), list(range(len(row.stem))), [0] * len(row.stem)
    ends = []
    for j, segment in enumerate(row.segments):
        at = range(len(row.stem), len(row.stem) + len(segment))
        body = len(segment) - 1 if ends_last else len(segment)
        ids += segment[:body]
        pos += at[:body]
        seg += [j + 1] * body
        ends += [(segment[-1], at[-1], j + 1)] if ends_last else []
    for token, where, j in ends:
        ids.append(token)
        pos.append(where)
        seg.append(j)
    return ids, pos, seg


def encode_packed(rows: Sequence[PackedRow], pad_id: int, dtype: torch.dtype = torch.float32,
                  ends_last: bool = False) -> dict:
    """Left-padded input_ids, position_ids, a [B, 1, T, T] additive attention mask (a token sees the stem
    and the tokens of its own segment at positions up to its own) and the [B, T] real-token mask
    (`STEER_MASK`, for token scopes). `ends_last`: see `_row_layout`."""
    width = max(row.length for row in rows)
    n = len(rows)
    ids = torch.full((n, width), int(pad_id), dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    seg = torch.full((n, width), -1, dtype=torch.long)
    for b, row in enumerate(rows):
        i, p, s = _row_layout(row, ends_last)
        ids[b, width - len(i):] = torch.tensor(i)
        pos[b, width - len(p):] = torch.tensor(p)
        seg[b, width - len(s):] = torch.tensor(s)
    real = seg >= 0
    causal = pos[:, None, :] <= pos[:, :, None]  # [B, query, key]: by position, so a row's order is free
    same = (seg[:, :, None] == seg[:, None, :]) | (seg[:, None, :] == 0)  # own segment, or the stem
    allowed = causal & same & real[:, None, :] & real[:, :, None]
    allowed |= torch.eye(width, dtype=torch.bool)[None]  # a padding query sees itself: no empty softmax row
    mask = torch.zeros((n, 1, width, width), dtype=dtype).masked_fill(~allowed[:, None], torch.finfo(dtype).min)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos, STEER_MASK: real.long()}


def answer_weights(rows: Sequence[PackedRow], width: int) -> torch.Tensor:
    """[B, O, width]: 1/n at the n answer tokens of each row's option j (left-padded rows of `width`), 0
    elsewhere; `weights @ hidden` is each option's mean over its answer tokens."""
    out = torch.zeros(len(rows), max(len(row.segments) for row in rows), width)
    for b, row in enumerate(rows):
        start = width - row.length + len(row.stem)
        for j, (segment, n) in enumerate(zip(row.segments, row.scored)):
            out[b, j, start + len(segment) - n: start + len(segment)] = 1.0 / n
            start += len(segment)
    return out


def option_targets(rows: Sequence[PackedRow]) -> tuple[torch.Tensor, int]:
    """[Q, K, O] targets of every question (`PackedRow.targets`, K = the most logit positions, O = the
    most options) and K."""
    positions = max(row.logit_positions for row in rows)
    width = max(len(row.segments) for row in rows)
    return torch.stack([row.targets(positions, width) for row in rows]), positions


def option_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, O] mean log-probability of each option's answer tokens (NaN for an option a row lacks), from
    the logits at the rows' last K positions ([B, >= K, V]) and `option_targets`' [B, K, O]."""
    kept = min(targets.shape[1], logits.shape[1])  # a batch shorter than K: its rows need no more than it has
    logits, targets = logits[:, -kept:, :].double(), targets[:, -kept:]  # float64: the vocabulary sum keeps 1e-6
    scored = (targets >= 0).to(logits.device)
    picked = logits.gather(2, targets.clamp(min=0).to(logits.device)) - torch.logsumexp(logits, dim=-1)[..., None]
    return (picked * scored).sum(dim=1) / scored.sum(dim=1)


def common_head(texts: Sequence[str]) -> str:
    """The longest common prefix of `texts`, short enough that every text keeps at least one character."""
    head = texts[0][: min(len(t) for t in texts) - 1]
    for text in texts[1:]:
        k = 0
        while k < len(head) and head[k] == text[k]:
            k += 1
        head = head[:k]
    return head


def by_length(rows: list[PackedRow], *tags: list) -> tuple[list, ...]:
    """The rows (and what goes with each) in order of length, so a batch holds rows of similar length
    (padding is wasted work)."""
    order = sorted(range(len(rows)), key=lambda i: (rows[i].length, i))
    return tuple([items[i] for i in order] for items in (rows, *tags))


def end_positions(rows: Sequence[PackedRow]) -> torch.Tensor:
    """[Q, O] where each segment's last token sits among the last O positions of its row in the `ends_last`
    layout (O = the most segments; -1 where a row has fewer)."""
    width = max(len(row.segments) for row in rows)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for q, row in enumerate(rows):
        k = len(row.segments)
        out[q, :k] = torch.arange(width - k, width)
    return out


def next_token_probs(model, prompts: Sequence[str], groups: Sequence, answer_ids: Sequence[int], plans,
                     batch_size: int = 8, points_per_request: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """As `score.answer_probs` (per plan: probabilities of `answer_ids` after each prompt [N, A], greedy ids
    [N]), with the prompts of one group (e.g. a question's rotations) packed in one row: their common head
    read once, each prompt's last token at the end of the row. Needs `packable(model, plans)`."""
    members: dict = {}
    for n, key in enumerate(groups):
        members.setdefault(key, []).append(n)
    rows, order = [], []
    for indices in members.values():
        texts = [prompts[n] for n in indices]
        head = common_head(texts)
        rows.append(pack(model.tokenizer, head, [t[len(head):] for t in texts]))
        order.append(indices)
    rows, order = by_length(rows, order)
    ends = end_positions(rows)
    ids = torch.tensor(list(answer_ids))
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else model.tokenizer.eos_token_id
    dtype = getattr(model, "dtype", None) or torch.float32

    def save(model, enc):
        logits = model.lm.output.logits
        where = enc[ROW_DATA] - (enc[ROW_DATA].shape[1] - logits.shape[1])  # a batch narrower than O: shift
        picked = logits.gather(1, where.clamp(min=0).to(logits.device)[:, :, None].expand(-1, -1, logits.shape[2]))
        return torch.softmax(picked.float(), dim=-1)[:, :, ids].save(), picked.argmax(dim=-1).save()

    readout = Readout(save, per_text=ends, logit_positions=ends.shape[1],
                      encode=lambda _model, chunk: encode_packed(chunk, pad, dtype, ends_last=True))
    flat = torch.tensor([n for indices in order for n in indices])
    present = ends >= 0
    out = []
    for probs, greedy in measure(model, rows, plans, readout, batch_size, points_per_request):
        p, g = torch.empty(len(prompts), len(ids)), torch.empty(len(prompts), dtype=torch.long)
        p[flat], g[flat] = probs[present], greedy[present]
        out.append((p, g))
    return out


def packable(model, plans) -> bool:
    """True when packing gives the unpacked numbers: every injection steers every position, and the
    model applies a custom 4D mask as given."""
    config = getattr(model, "config", None)
    implementation = getattr(config, "_attn_implementation", None) or "sdpa"
    if implementation not in MASKED_ATTENTION:
        return False
    return all(i.scope.everywhere for plan in plans for i in plan.injections)
