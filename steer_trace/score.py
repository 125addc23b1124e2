"""Run plans over texts and bring back only what the metrics need.

One runner, `measure`, does the job assembly for every measurement: it lays the
(plan, text) rows out in forward passes (row_plans.py: rows of one pass may carry
different pure-add plans; layers below the first steered layer run once per chunk
of texts), runs them, and returns per plan what a `Readout` saved inside the
trace. Locally each pass is one trace (a pass that runs out of memory is split in
halves); remotely `points_per_request` passes share one nnsight session, i.e.
one request, together with the prefix passes they read from.

Measurements built on it:
- `answer_probs`: per prompt, the probability of each answer token at the next
  position and the greedy token id (A/B or Yes/No scoring);
- `token_accuracy`: per document, correct top-1 next-token predictions and the
  number of predicted tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nnsight
import torch

from .batching import chunks, encode
from .errors import UserError, halve_on_oom
from .models import Model
from .plan import Plan, apply_plan
from .prefix_cache import PrefixCache
from .row_plans import Batch, layout, row_deltas


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


@dataclass(frozen=True)
class Readout:
    """What one trace saves, per row: `save(model, enc)` runs inside the trace after the
    steering and returns a tuple of tensors whose first dimension is the batch's rows.
    `logit_positions`: the trace reads logits at the last this many positions only (None: all)."""

    save: Callable[[Model, dict], tuple]
    logit_positions: int | None = None
    max_tokens: int | None = None
    per_text: torch.Tensor | None = None  # [len(texts), ...]: reaches `save` as enc[ROW_DATA], per row
    encode: Callable[[Model, Sequence], dict] | None = None  # a chunk of texts -> the pass's inputs (None: text)


ROW_DATA = "readout_row_data"  # key of a pass's rows' `per_text` values in the encoding `save` sees
STEER_MASK = "readout_token_mask"  # [B, T] real tokens, where the model's own attention_mask is not 2D (packing)


def model_inputs(enc: dict) -> dict:
    """What the model is called with: the encoding without the readout's own keys."""
    return {key: value for key, value in enc.items() if not key.startswith("readout_")}


# -- inside a trace --------------------------------------------------------------


def _steer(model: Model, plan: Plan | None, deltas: list, enc: dict) -> None:
    """One plan for every row (`plan`), or per-row pure-add deltas ([rows, d] per layer)."""
    if plan is not None:
        apply_plan(model, plan, attention_mask=enc.get(STEER_MASK, enc["attention_mask"]))
        return
    layers = model.layers()
    for layer, delta in deltas:
        hidden = model.residual(layers[layer])
        hidden[:] += delta.to(hidden.device, hidden.dtype)[:, None, :]


def _start_at(model: Model, layer: int, hidden) -> None:
    """Skip layers < `layer`: layer-1 returns `hidden` (the prefix pass's output for these
    rows), the ones below pass their input through (a stand-in nobody reads)."""
    layers = model.layers()
    for i in range(layer - 1):
        layers[i].skip(layers[i].input)
    layers[layer - 1].skip(hidden)


def _prefix_pass(model: Model, enc: dict, layer: int, kwargs: dict, keep: bool):
    """Layers < `layer` over the chunk's texts; the layers above are skipped. Returns layer-1's output."""
    layers = model.layers()
    with model.lm.trace(model_inputs(enc), **kwargs):
        hidden = layers[layer - 1].output
        if keep:
            hidden = hidden.save()
        for i in range(layer, model.n_layers):
            layers[i].skip(layers[i].input)
    return hidden


def _fit_kept(kwargs: dict, enc: dict) -> dict:
    """Kept positions as an index (models.last_logits) no longer than the rows: an int slice clamps, an index
    would raise (a readout may ask for more positions than a short batch has)."""
    keep, length = kwargs.get("logits_to_keep"), enc["input_ids"].shape[1]
    if torch.is_tensor(keep) and keep.numel() > length:
        return {**kwargs, "logits_to_keep": keep[-length:]}
    return kwargs


def _rows_pass(model: Model, enc: dict, plan, deltas, shared_below: int, hidden, readout: Readout, kwargs: dict):
    with model.lm.trace(model_inputs(enc), **_fit_kept(kwargs, enc)):
        if shared_below:
            _start_at(model, shared_below, hidden)
        _steer(model, plan, deltas, enc)
        saved = nnsight.save(readout.save(model, enc))  # the tuple itself must be saved to leave the trace
    return saved


# -- the runner ---------------------------------------------------------------------


def _join_rows(parts: list) -> tuple:
    """Concatenate the per-row results of the halves of one batch."""
    return tuple(torch.cat(pieces) for pieces in zip(*parts))


def _select(enc: dict, index: torch.Tensor) -> dict:
    return {key: value[index] for key, value in enc.items()}


def measure(
    model: Model,
    texts: Sequence[str],
    plans: Sequence[Plan],
    readout: Readout,
    batch_size: int = 8,
    points_per_request: int = 16,
    progress=None,
    share_prefix: bool = True,
    prefix_cache: PrefixCache | None = None,
) -> list[tuple[torch.Tensor, ...]]:
    """For each plan, the readout's tensors stacked over `texts` (in order). `prefix_cache` (local runs):
    prefix outputs are looked up there and kept there, and a single plan at L > 0 starts from one too."""
    for plan in plans:
        plan.check(model)
    plans = list(plans)
    share_prefix = share_prefix and model.layers_output_tensors  # skipping a layer must return what it returns
    cache = prefix_cache if prefix_cache is not None and not model.remote else None
    chunk_texts, batches = layout(plans, len(texts), batch_size, model.n_layers, share_prefix,
                                  min_plans=1 if cache is not None else 2)
    kwargs = model.last_logits(readout.logit_positions) if readout.logit_positions else {}
    prefix_kwargs = model.last_logits()  # a prefix pass reads no logits
    encoded: dict[int, dict] = {}

    def chunk_enc(c: int) -> dict:
        if c not in encoded:
            encoded.clear()  # batches come chunk by chunk
            chunk = [texts[j] for j in chunk_texts[c]]
            inputs = readout.encode(model, chunk) if readout.encode else encode(model.tokenizer, chunk,
                                                                                readout.max_tokens)
            encoded[c] = model.on_device(inputs)
        return encoded[c]

    def prepared(batch: Batch) -> tuple:
        """(row encoding, plan, per-row deltas, positions of the rows in their chunk, chunk encoding)."""
        first = chunk_texts[batch.chunk][0]
        where = torch.tensor([j - first for _, j in batch.rows])
        plan = plans[batch.plan] if batch.plan is not None else None
        deltas = [] if plan is not None else row_deltas(plans, batch.rows)
        full = chunk_enc(batch.chunk)
        rows = _select(full, where)
        if readout.per_text is not None:
            rows[ROW_DATA] = readout.per_text[torch.tensor([j for _, j in batch.rows])]
        return rows, plan, deltas, where, full

    values: dict[tuple[int, int], tuple] = {}
    per_request = max(1, points_per_request) if model.remote else 1
    prefixes: dict[tuple[int, int], torch.Tensor] = {}

    def prefix_of(batch: Batch, full: dict) -> torch.Tensor:
        """The chunk's layer-(L-1) output: from this call, the cache, or a prefix pass (halved on OOM)."""
        key = (batch.chunk, batch.shared_below)
        if key not in prefixes:
            prefixes.clear()  # batches come chunk by chunk
            kept = cache.key([texts[j] for j in chunk_texts[batch.chunk]], readout.max_tokens,
                             batch.shared_below) if cache is not None else None
            hidden = cache.get(kept) if kept else None
            if hidden is None:
                hidden = halve_on_oom(
                    lambda part: _prefix_pass(model, _select(full, torch.tensor(list(part))), batch.shared_below,
                                              prefix_kwargs, True),
                    list(range(full["input_ids"].shape[0])), torch.cat)
                if kept:
                    cache.put(kept, hidden)
            prefixes[key] = hidden
        return prefixes[key]

    for group in chunks(batches, per_request):
        ready = [prepared(b) for b in group]
        with torch.no_grad():
            if model.remote:
                with model.lm.session(remote=model.remote):
                    saved = nnsight.save([])  # only saved values come back from a session
                    hidden: dict = {}  # prefix outputs stay on the server, within this request
                    for batch, (enc, plan, deltas, where, full) in zip(group, ready):  # a plain loop
                        h = None
                        if batch.shared_below:
                            key = (batch.chunk, batch.shared_below)
                            if key not in hidden:
                                hidden[key] = _prefix_pass(model, full, batch.shared_below, prefix_kwargs, False)
                            h = hidden[key][where]
                        saved.append(_rows_pass(model, enc, plan, deltas, batch.shared_below, h, readout, kwargs))
                model.extra["requests"] = model.extra.get("requests", 0) + 1
            else:
                saved = [_local_pass(model, b, r, prefix_of, readout, kwargs) for b, r in zip(group, ready)]
        for batch, s in zip(group, saved):
            for r, row in enumerate(batch.rows):
                values[row] = tuple(t[r].detach().cpu().clone() for t in s)
        if progress:
            progress(sum(len(b.rows) for b in group))
    return [tuple(torch.stack(parts) for parts in zip(*(values[(k, j)] for j in range(len(texts)))))
            for k in range(len(plans))]


def _local_pass(model: Model, batch: Batch, ready: tuple, prefix_of: Callable, readout: Readout, kwargs: dict):
    """One batch locally; its prefix (`prefix_of`) is computed once per chunk. Out of memory: halves."""
    enc, plan, deltas, where, full = ready
    hidden = prefix_of(batch, full)[where] if batch.shared_below else None

    def run(part):
        index = torch.tensor(list(part))
        return _rows_pass(model, _select(enc, index), plan, [(L, d[index]) for L, d in deltas], batch.shared_below,
                          None if hidden is None else hidden[index], readout, kwargs)

    return halve_on_oom(run, list(range(len(batch.rows))), _join_rows)


# -- measurements -------------------------------------------------------------------


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
    return measure(model, prompts, plans, answer_readout(answer_ids), batch_size, points_per_request, progress)


def answer_readout(answer_ids: Sequence[int]) -> Readout:
    """Next-token probability of each answer id, and the greedy id, at the last position."""
    ids = torch.tensor(list(answer_ids))

    def save(model, enc):
        logits = model.lm.output.logits[:, -1, :]
        probs = torch.softmax(logits.float(), dim=-1)[:, ids].save()
        greedy = logits.argmax(dim=-1).save()
        return probs, greedy

    return Readout(save, logit_positions=1)


def token_accuracy(
    model: Model,
    documents: Sequence[str],
    plans: Sequence[Plan],
    batch_size: int = 4,
    max_tokens: int = 256,
    points_per_request: int = 16,
    progress=None,
    prefix_cache: PrefixCache | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each plan: (correct top-1 predictions [D], predicted tokens [D]) per document."""

    def save(model, enc):
        target = enc["input_ids"][:, 1:]
        valid = (enc["attention_mask"][:, 1:] * enc["attention_mask"][:, :-1]).bool()
        pred = model.lm.output.logits[:, :-1, :].argmax(dim=-1)
        correct = ((pred == target.to(pred.device)) & valid.to(pred.device)).sum(dim=1).cpu().save()
        return correct, valid.sum(dim=1)

    return measure(model, documents, plans, Readout(save, max_tokens=max_tokens), batch_size, points_per_request,
                   progress, prefix_cache=prefix_cache)
