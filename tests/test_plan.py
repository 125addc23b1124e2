"""Steering plans: nnsight injection checked against plain PyTorch forward hooks, in forward and in generate.

The reference in this file adds coef x vector to the output of the Hugging Face decoder layer
(`model.lm._module.model.layers[L]`) with `register_forward_hook`; nnsight is not involved.
"""
from __future__ import annotations

import contextlib

import pytest
import torch

from steer_trace.batching import encode
from steer_trace.data import ABItem, prompt
from steer_trace.errors import UserError
from steer_trace.generation import steered_generate
from steer_trace.plan import Injection, Plan, apply_plan
from steer_trace.score import answer_probs, answer_token_ids, token_accuracy
from steer_trace.vectors import SteeringVector, combine

D = 576
TEXTS = ["The weather today is", "My favourite programming language is Python because it"]
AB_QUESTIONS = [
    "Cake now or two cakes next week?\n (A) Cake now\n (B) Two cakes next week",
    "Take $5 today or $50 in a year?\n (A) $50 in a year\n (B) $5 today",
    "Rest?\n (A) Yes\n (B) No",
]


def random_vector(seed: int, norm: float = 8.0, name: str = "") -> SteeringVector:
    """A direction of the given norm at every layer (steering with it visibly changes the output)."""
    gen = torch.Generator().manual_seed(seed)
    layers = {}
    for L in range(30):
        v = torch.randn(D, generator=gen)
        layers[L] = v / v.norm() * norm
    return SteeringVector(layers, {"name": name or f"random{seed}"})


V1, V2, V3 = random_vector(1, name="v1"), random_vector(2, name="v2"), random_vector(3, name="v3")
SINGLE = Plan.single(V1, 10, 4.0)
COMBINED = Plan.single(combine([V1, V2], weights=[1.0, -0.5]), 12, 3.0)
THREE_LAYERS = Plan.simultaneous([(V1, 4), (V2, 9), (V3, 16)], 2.0)


# -- the independent reference: plain forward hooks ------------------------------------------------


@contextlib.contextmanager
def hooked(model, plan: Plan, steps: int | None = None):
    """Add each injection to its decoder layer's output with torch forward hooks.

    `steps` limits the hooks to the first forward calls (1 = prompt pass only)."""
    hf_layers = model.lm._module.model.layers
    calls = {}
    handles = []
    for inj in plan.injections:
        def hook(module, inputs, output, inj=inj):
            n = calls.setdefault(inj, 0)
            calls[inj] = n + 1
            if steps is not None and n >= steps:
                return None
            delta = inj.coef * inj.vector
            if isinstance(output, tuple):  # older transformers: (hidden, ...)
                return (output[0] + delta,) + tuple(output[1:])
            return output + delta  # transformers 5.x: a [B, T, H] tensor
        handles.append(hf_layers[inj.layer].register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def hf_logits(model, enc, plan: Plan) -> torch.Tensor:
    with torch.no_grad(), hooked(model, plan):
        return model.lm._module(**enc).logits


def traced(model, enc, plan: Plan, read_before=(), read_at=None):
    """Logits of one nnsight trace with the plan applied; optionally the outputs of layers
    `read_before` (read before the injection) and of layer `read_at` (after it)."""
    layers = model.layers()
    saved = {}
    with torch.no_grad(), model.lm.trace(enc):
        for L in read_before:
            saved[L] = layers[L].output.clone().save()
        apply_plan(model, plan)
        if read_at is not None:
            saved[read_at] = layers[read_at].output.clone().save()
        logits = model.lm.output.logits.save()
    return logits, saved


def max_diff(a, b) -> float:
    return float((a - b).abs().max())


@pytest.fixture(scope="module")
def enc(smol):
    batch = encode(smol.tokenizer, TEXTS)
    assert (batch["attention_mask"] == 0).any()  # prompts of different lengths: padded
    return batch


@pytest.fixture(scope="module")
def unsteered(smol, enc):
    return traced(smol, enc, Plan.none())[0]


# -- forward -------------------------------------------------------------------------------------


def test_unsteered_trace_equals_plain_forward(smol, enc, unsteered):
    assert max_diff(unsteered, hf_logits(smol, enc, Plan.none())) <= 1e-5


def test_coefficient_zero_is_identical_to_unsteered(smol, enc, unsteered):
    zero = Plan.simultaneous([(V1, 3), (V2, 20)], 0.0)
    assert zero.is_empty and zero.deltas() == []
    logits, _ = traced(smol, enc, zero)
    assert torch.equal(logits, unsteered)


def test_steering_layer_L_leaves_earlier_layers_alone(smol, enc):
    L = SINGLE.injections[0].layer
    before = (L - 3, L - 1)
    plain, plain_read = traced(smol, enc, Plan.none(), read_before=before, read_at=L)
    steered, steered_read = traced(smol, enc, SINGLE, read_before=before, read_at=L)
    for layer in before:
        assert torch.equal(steered_read[layer], plain_read[layer])
    delta = SINGLE.injections[0].coef * SINGLE.injections[0].vector
    assert max_diff(steered_read[L], plain_read[L]) > 1.0
    # at layer L the output moved by exactly coef x vector, at every position
    assert max_diff(steered_read[L] - plain_read[L], delta.expand_as(plain_read[L])) <= 1e-4
    assert max_diff(steered, plain) > 0.1


@pytest.mark.parametrize("plan", [SINGLE, COMBINED, THREE_LAYERS], ids=["single", "combined", "three-layers"])
def test_steered_logits_equal_hook_reference(smol, enc, unsteered, plan):
    logits, _ = traced(smol, enc, plan)
    reference = hf_logits(smol, enc, plan)
    assert max_diff(logits, reference) <= 1e-5
    assert max_diff(logits, unsteered) > 0.1  # the plan really changed the output


def test_combined_plan_adds_the_combined_vector():
    (inj,) = COMBINED.injections
    assert inj.layer == 12 and inj.coef == 3.0
    assert torch.allclose(inj.vector, V1[12] - 0.5 * V2[12])


# -- answer_probs: against the hooks, and batched against unbatched ----------------------------------


@pytest.fixture(scope="module")
def ab_setup(smol):
    prompts = [prompt(ABItem(q, "A", "B")) for q in AB_QUESTIONS]
    lengths = {len(smol.tokenizer(p)["input_ids"]) for p in prompts}
    assert len(lengths) == len(prompts)
    return prompts, answer_token_ids(smol.tokenizer, ["A", "B"])


@pytest.fixture(scope="module")
def ab_unbatched(smol, ab_setup):
    prompts, ids = ab_setup
    return answer_probs(smol, prompts, ids, [Plan.none(), SINGLE, THREE_LAYERS], batch_size=1)


def test_answer_probs_equal_hook_reference(smol, ab_setup, ab_unbatched):
    prompts, ids = ab_setup
    for plan, (probs, greedy) in zip([Plan.none(), SINGLE, THREE_LAYERS], ab_unbatched):
        assert probs.shape == (len(prompts), 2) and greedy.shape == (len(prompts),)
        for i, text in enumerate(prompts):
            logits = hf_logits(smol, smol.tokenizer([text], return_tensors="pt"), plan)[0, -1]
            assert max_diff(probs[i], torch.softmax(logits, -1)[ids]) <= 1e-5
            assert int(greedy[i]) == int(logits.argmax())
    # the answer tokens carry real mass, and steering moves it
    base, steered = ab_unbatched[0][0], ab_unbatched[1][0]
    assert float(base.sum(1).min()) > 0.05
    assert max_diff(base, steered) > 1e-3


def test_answer_probs_batched_equals_unbatched(smol, ab_setup, ab_unbatched):
    prompts, ids = ab_setup
    batched = answer_probs(smol, prompts, ids, [Plan.none(), SINGLE, THREE_LAYERS], batch_size=3)
    for (pb, gb), (pu, gu) in zip(batched, ab_unbatched):
        assert max_diff(pb, pu) <= 1e-4
        assert torch.equal(gb, gu)


def test_answer_token_ids(smol):
    tok = smol.tokenizer
    a, b = answer_token_ids(tok, ["A", "B"])
    assert a != b
    assert tok.decode([a]) == "A" and tok.decode([b]) == "B"
    assert tok("(A", add_special_tokens=False)["input_ids"][-1] == a
    with pytest.raises(UserError, match="not a single token"):
        answer_token_ids(tok, ["A", "Absolutely not"])


def test_token_accuracy_equals_hook_reference(smol):
    docs = ["def add(a, b):\n    return a + b\n", "The quick brown fox jumps over the lazy dog."]
    (correct, counts), = token_accuracy(smol, docs, [SINGLE], batch_size=2)
    for i, doc in enumerate(docs):
        e = smol.tokenizer([doc], return_tensors="pt")
        logits = hf_logits(smol, e, SINGLE)[0]
        ids = e["input_ids"][0]
        assert int(counts[i]) == len(ids) - 1
        assert int(correct[i]) == int((logits[:-1].argmax(-1) == ids[1:]).sum())


# -- generate ---------------------------------------------------------------------------------------


def hf_generate(model, texts, plan, n, steps=None) -> list[str]:
    """Greedy continuation of each prompt alone (no padding) with the hooks."""
    out = []
    with torch.no_grad(), contextlib.ExitStack() as stack:
        for text in texts:
            stack.enter_context(contextlib.nullcontext())
            e = model.tokenizer([text], return_tensors="pt")
            with hooked(model, plan, steps):
                ids = model.lm._module.generate(**e, max_new_tokens=n, min_new_tokens=n, do_sample=False)
            assert ids.shape[1] == e["input_ids"].shape[1] + n
            out.append(model.tokenizer.decode(ids[0, e["input_ids"].shape[1]:], skip_special_tokens=True))
    return out


def test_steered_generate_equals_hook_generate(smol):
    n = 6
    plan = THREE_LAYERS
    texts = steered_generate(smol, TEXTS, plan, n)
    reference = hf_generate(smol, TEXTS, plan, n)
    assert texts == reference
    # the test can tell: unsteered text differs, and so does steering the prompt pass only
    assert hf_generate(smol, TEXTS, Plan.none(), n) != reference
    assert hf_generate(smol, TEXTS, plan, n, steps=1) != reference


def test_steered_generate_rejects_bad_plan_before_work(smol):
    with pytest.raises(UserError, match="out of range"):
        steered_generate(smol, TEXTS[:1], Plan.single(V1.only([3]).__class__({40: V1[3]}), 40, 1.0), 2)


# -- plan objects --------------------------------------------------------------------------------------


def test_check_rejects_wrong_width_range_and_non_finite(smol):
    assert SINGLE.check(smol) is SINGLE
    with pytest.raises(UserError, match="width 512.*576"):
        Plan((Injection(3, torch.ones(512), 1.0),)).check(smol)
    with pytest.raises(UserError, match="layer 30 is out of range"):
        Plan((Injection(30, torch.ones(D), 1.0),)).check(smol)
    with pytest.raises(UserError, match="out of range"):
        Plan((Injection(-1, torch.ones(D), 1.0),)).check(smol)
    bad = torch.ones(D)
    bad[0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        Plan((Injection(3, bad, 1.0),)).check(smol)
    with pytest.raises(UserError):  # scoring checks the plan before running anything
        answer_probs(smol, TEXTS, [1, 2], [Plan((Injection(3, torch.ones(512), 1.0),))])


def test_single_needs_the_layer_in_the_vector():
    with pytest.raises(UserError, match="no layer 5"):
        Plan.single(V1.only([3, 4]), 5, 1.0)


def test_relative_to_sets_the_added_norm():
    norms = {4: 10.0, 9: 100.0, 16: 2.5}
    rel = THREE_LAYERS.relative_to(norms)
    for inj, original in zip(rel.injections, THREE_LAYERS.injections):
        delta = inj.coef * inj.vector
        assert float(delta.norm()) == pytest.approx(original.coef * norms[inj.layer], rel=1e-5)
        cos = torch.nn.functional.cosine_similarity(inj.vector, original.vector, dim=0)
        assert float(cos) == pytest.approx(1.0, abs=1e-6)
    assert Plan.single(V1, 4, -0.5).relative_to(norms).deltas()[0][1].norm() == pytest.approx(5.0, rel=1e-5)
    with pytest.raises(UserError, match="no residual norm measured for layer 16"):
        THREE_LAYERS.relative_to({4: 1.0, 9: 1.0})


def test_deltas_sum_per_layer_in_forward_order():
    plan = Plan((Injection(9, V1[9], 2.0), Injection(3, V2[3], 1.0), Injection(9, V3[9], -1.0),
                 Injection(5, V1[5], 0.0)))
    deltas = plan.deltas()
    assert [L for L, _ in deltas] == [3, 9]
    assert torch.allclose(deltas[1][1], 2.0 * V1[9] - V3[9])
    assert not plan.is_empty and Plan.none().is_empty
    scaled = plan.scaled(0.5)
    assert torch.allclose(scaled.deltas()[1][1], 0.5 * deltas[1][1])
    assert plan.describe() == "L9x2+L3x1+L9x-1+L5x0"
    assert Plan.none().describe() == "unsteered" and Plan.single(V1, 2, 1.0, label="x").describe() == "x"
