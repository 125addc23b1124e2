"""Token scopes (all, prompt, generated, from:K, last, a mask per row) against forward hooks.

Left-padded batches of prompts of different lengths, in a forward pass and in nnsight generation
(`tracer.iter[:n]`: step 0 is the prompt, each later step one new token). The hook reference in
tests/steering_reference.py counts each row's real positions itself.
"""
from __future__ import annotations

import pytest
import torch
from steering_reference import generated, hook_generate, hook_logits, traced

from steer_trace.batching import encode
from steer_trace.errors import UserError
from steer_trace.generation import steered_generate
from steer_trace.plan import Injection, Plan
from steer_trace.token_scope import Scope, scope, where

TEXTS = ["The weather today is", "My favourite programming language is Python because it"]
L = 10
MASK_ROWS = [[False, True, False, True], [True, True, True, False, False, True]]
SCOPES = ["all", "prompt", "generated", "from:5", "last", MASK_ROWS]
IDS = ["all", "prompt", "generated", "from5", "last", "mask"]
N = 4


def vector(seed: int = 1, norm: float = 8.0) -> torch.Tensor:
    v = torch.randn(576, generator=torch.Generator().manual_seed(seed))
    return v / v.norm() * norm


def spec_of(s):
    return Scope.rows(s) if isinstance(s, list) else s


@pytest.fixture(scope="module")
def enc(smol):
    batch = encode(smol.tokenizer, TEXTS)
    lengths = batch["attention_mask"].sum(-1).tolist()
    assert lengths[0] < 5 < lengths[1]  # from:5 starts inside the long prompt and after the short one
    return batch


@pytest.fixture(scope="module")
def unsteered(smol, enc):
    return traced(smol, enc, Plan.none())[0]


@pytest.fixture(scope="module")
def unsteered_generation(smol, enc):
    return hook_generate(smol, enc, [], N)


@pytest.mark.parametrize("op", ["add", "project-out-then-add"])
@pytest.mark.parametrize("spec", SCOPES, ids=IDS)
def test_scope_equals_hook_reference_forward(smol, enc, unsteered, spec, op):
    v = vector()
    logits, _ = traced(smol, enc, Plan((Injection(L, v, 4.0, op, spec_of(spec)),)))
    assert float((logits - hook_logits(smol, enc, [(L, v, 4.0, op, spec)])).abs().max()) <= 1e-5
    changed = float((logits - unsteered).abs().max())
    assert changed == 0.0 if spec == "generated" else changed > 0.1


@pytest.mark.parametrize("spec", SCOPES, ids=IDS)
def test_scope_equals_hook_reference_generate(smol, enc, unsteered_generation, spec):
    v = vector(2)
    plan = Plan((Injection(L, v, 6.0, "add", spec_of(spec)),))
    ids, logits = generated(smol, enc, plan, N)
    ref_ids, ref_logits = hook_generate(smol, enc, [(L, v, 6.0, "add", spec)], N)
    assert torch.equal(ids, ref_ids)
    assert float((logits - ref_logits).abs().max()) <= 1e-5
    plain_logits = unsteered_generation[1]
    assert float((logits - plain_logits).abs().max()) > 0.1  # every scope steers something here
    if spec == "generated":  # the prompt pass (the first token's logits) is exactly unsteered
        assert torch.equal(logits[0], plain_logits[0])


def test_generated_scope_leaves_the_prompt_pass_unsteered(smol, enc):
    """In generation, the prompt pass (every position, not only the last logits) is exactly unsteered;
    the next step is not."""
    import nnsight

    from steer_trace.plan import apply_plan

    def hidden(plan):
        with torch.no_grad(), smol.lm.generate(enc, max_new_tokens=2, min_new_tokens=2, do_sample=False,
                                               **smol.trace_kwargs()) as tracer:
            out = nnsight.save([])
            for step in tracer.iter[:2]:
                apply_plan(smol, plan, enc["attention_mask"], step)
                out.append(smol.layers()[L + 5].output.clone())
        return out

    steered = hidden(Plan((Injection(L, vector(3), 8.0, "add", "generated"),)))
    plain = hidden(Plan.none())
    assert steered[0].shape[1] == enc["input_ids"].shape[1]
    assert torch.equal(steered[0], plain[0])
    assert float((steered[1] - plain[1]).abs().max()) > 1.0


def test_steered_generate_uses_the_scope(smol):
    v = vector(4)
    prompt_only = Plan((Injection(L, v, 8.0, "add", "prompt"),))
    steered = Plan((Injection(L, v, 8.0),))
    texts = steered_generate(smol, TEXTS, prompt_only, N)
    enc = encode(smol.tokenizer, TEXTS)
    ref_ids, _ = hook_generate(smol, enc, [(L, v, 8.0, "add", "prompt")], N)
    assert texts == [smol.tokenizer.decode(r, skip_special_tokens=True) for r in ref_ids]
    assert texts != steered_generate(smol, TEXTS, steered, N)


def test_positions_count_real_tokens_across_steps():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    first = where(mask, 4)
    assert first.index.tolist() == [[-1, -1, 0, 1], [0, 1, 2, 3]] and first.prompt_len.tolist() == [2, 4]
    third = where(mask, 1, step=2)
    assert third.index.tolist() == [[3], [5]]
    assert scope("last").select(first).tolist() == [[False, False, False, True], [False, False, False, True]]
    assert scope("last").select(third).tolist() == [[False], [False]]
    assert scope("from:3").select(first).tolist() == [[False] * 4, [False, False, False, True]]
    assert scope("from:3").select(third).tolist() == [[True], [True]]
    assert scope("prompt").select(first)[0].tolist() == [False, False, True, True]
    assert not scope("generated").select(first).any() and scope("generated").select(third).all()
    assert scope("all").select(first) is None
    rows = Scope.rows([[True, False, True], [False] * 5 + [True]])
    assert rows.select(first).tolist() == [[False, False, True, False], [False] * 4]
    assert rows.select(third).tolist() == [[False], [True]]
    assert where(None, 3).index.tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("bad", ["everywhere", "from:", "from:-1", "from:x", "last:2"])
def test_bad_scope_is_a_user_error(bad):
    with pytest.raises(UserError, match="scope"):
        Injection(L, vector(), 1.0, "add", bad)


def test_scope_errors_at_run_time():
    with pytest.raises(UserError, match="2 rows.*batch 1"):
        Scope.rows([[True], [False]]).select(where(None, 3))
    with pytest.raises(UserError, match="attention_mask"):
        where(None, 1, step=1)
