"""Tokenise prompts into left-padded batches, and group traces into remote requests."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Iterator, Sequence


def encode(tokenizer, texts: Sequence[str], max_tokens: int | None = None) -> dict:
    """Left-padded input_ids / attention_mask / mask-derived position_ids.

    Truncation keeps the *first* `max_tokens` tokens (documents are read from the start).
    """
    saved_side = tokenizer.truncation_side
    tokenizer.truncation_side = "right"
    try:
        enc = tokenizer(
            list(texts),
            return_tensors="pt",
            padding=True,
            truncation=max_tokens is not None,
            max_length=max_tokens,
        )
    finally:
        tokenizer.truncation_side = saved_side
    mask = enc["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": enc["input_ids"], "attention_mask": mask, "position_ids": positions}


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    size = max(1, int(size))
    for start in range(0, len(items), size):
        yield items[start : start + size]


def request(model):
    """One remote request for every trace opened inside (an nnsight session); no-op locally."""
    if model.remote:
        return model.lm.session(remote=model.remote)
    return nullcontext()
