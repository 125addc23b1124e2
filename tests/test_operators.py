"""Steering operators (add, project-out, project-out-then-add, set-projection) against forward hooks.

The reference (tests/steering_reference.py) applies each formula with `register_forward_hook` on the
Hugging Face decoder layer; the batch is left padded (prompts of different lengths).
"""
from __future__ import annotations

import pytest
import torch
from steering_reference import generated, hook_generate, hook_logits, traced

from steer_trace.batching import encode
from steer_trace.errors import UserError
from steer_trace.plan import Injection, Plan, apply_plan
from steer_trace.steering_operators import OPERATORS, operator

TEXTS = ["The weather today is", "My favourite programming language is Python because it"]
L = 10
OPS = tuple(OPERATORS)


def unit_vector(seed: int, d: int = 576) -> torch.Tensor:
    v = torch.randn(d, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


@pytest.fixture(scope="module")
def enc(smol):
    batch = encode(smol.tokenizer, TEXTS)
    assert (batch["attention_mask"] == 0).any()
    return batch


@pytest.fixture(scope="module")
def direction(smol, enc):
    """The mean layer-L activation direction: h has a large component along it, so removing it shows."""
    _, saved = traced(smol, enc, Plan.none(), after=L)
    h = saved[L][enc["attention_mask"].bool()]
    return h.mean(0)


@pytest.fixture(scope="module")
def unsteered(smol, enc):
    return traced(smol, enc, Plan.none())[0]


def plan_of(op, v, coef=4.0, scope="all", layer=L):
    return Plan((Injection(layer, v, coef, op, scope),))


@pytest.mark.parametrize("op", OPS)
def test_operator_equals_hook_reference_forward(smol, enc, unsteered, direction, op):
    v = direction + 8 * unit_vector(1)
    logits, _ = traced(smol, enc, plan_of(op, v))
    reference = hook_logits(smol, enc, [(L, v, 4.0, op, "all")])
    assert float((logits - reference).abs().max()) <= 1e-5
    assert float((logits - unsteered).abs().max()) > 0.1  # it really steered


@pytest.mark.parametrize("op", OPS)
def test_operator_equals_hook_reference_generate(smol, enc, direction, op):
    v = direction + 8 * unit_vector(2)
    ids, logits = generated(smol, enc, plan_of(op, v), 4)
    ref_ids, ref_logits = hook_generate(smol, enc, [(L, v, 4.0, op, "all")], 4)
    assert torch.equal(ids, ref_ids)
    assert float((logits - ref_logits).abs().max()) <= 1e-5
    plain_ids, _ = hook_generate(smol, enc, [], 4)
    assert not torch.equal(plain_ids, ref_ids)


def test_project_out_leaves_no_component_and_earlier_layers_alone(smol, enc, direction):
    plan = plan_of("project-out", direction, coef=123.0)  # the coefficient is ignored
    plain_logits, plain = traced(smol, enc, Plan.none(), before=(L - 3, L - 1), after=L)
    logits, steered = traced(smol, enc, plan, before=(L - 3, L - 1), after=L)
    u = direction / direction.norm()
    assert float((plain[L] @ u).abs().max()) > 1.0  # there was a component to remove
    assert float((steered[L] @ u).abs().max()) <= 1e-4
    for below in (L - 3, L - 1):
        assert torch.equal(steered[below], plain[below])
    assert torch.equal(logits, traced(smol, enc, plan_of("project-out", direction, coef=0.0))[0])
    assert float((logits - plain_logits).abs().max()) > 0.1


def test_set_projection_sets_the_value_and_then_add_shifts_it(smol, enc, direction):
    u = direction / direction.norm()
    _, plain = traced(smol, enc, Plan.none(), after=L)
    _, clamped = traced(smol, enc, plan_of("set-projection", direction, coef=-3.0), after=L)
    assert float((clamped[L] @ u + 3.0).abs().max()) <= 1e-4
    _, shifted = traced(smol, enc, plan_of("project-out-then-add", direction, coef=0.5), after=L)
    assert float((shifted[L] @ u - 0.5 * direction.norm()).abs().max()) <= 1e-3
    # the orthogonal part is untouched by both
    rest = plain[L] - (plain[L] @ u)[..., None] * u
    assert float((clamped[L] - (clamped[L] @ u)[..., None] * u - rest).abs().max()) <= 1e-4


@pytest.mark.parametrize("order", ["ablate-first", "add-first"])
def test_mixed_plan_at_one_layer_acts_in_plan_order(smol, enc, direction, order):
    v = 8 * unit_vector(3) + 0.3 * direction
    out = (L, direction, 0.0, "project-out", "all")
    add = (L, v, 2.0, "add", "all")
    steps = [out, add] if order == "ablate-first" else [add, out]
    plan = Plan(tuple(Injection(*s) for s in steps))
    assert not plan.pure_add
    logits, saved = traced(smol, enc, plan, after=L)
    assert float((logits - hook_logits(smol, enc, steps)).abs().max()) <= 1e-5
    u = direction / direction.norm()
    after = float((saved[L] @ u).abs().max())
    assert after > 1.0 if order == "ablate-first" else after <= 1e-4


def test_mixed_plan_across_layers_equals_reference(smol, enc, direction):
    steps = [(4, unit_vector(4) * 8, 1.5, "add", "all"), (L, direction, 1.0, "set-projection", "all"),
             (16, unit_vector(5) * 8, -2.0, "project-out-then-add", "all")]
    plan = Plan(tuple(Injection(*s) for s in steps))
    logits, _ = traced(smol, enc, plan)
    assert float((logits - hook_logits(smol, enc, steps)).abs().max()) <= 1e-5


def test_pure_add_and_the_summed_fast_path():
    v, w = unit_vector(6), unit_vector(7)
    plain = Plan((Injection(3, v, 2.0), Injection(3, w, -1.0)))
    assert plain.pure_add and Plan.none().pure_add
    assert torch.allclose(plain.deltas()[0][1], 2 * v - w)
    assert plain.injections[0].op == "add" and plain.injections[0].scope.kind == "all"
    for op in ("project-out", "project-out-then-add", "set-projection"):
        other = plain.with_steering(op)
        assert not other.pure_add and not other.is_empty
        with pytest.raises(ValueError, match="not pure add"):
            other.deltas()
    assert not plain.with_steering("add", "prompt").pure_add
    assert plain.with_steering().pure_add
    assert Plan((Injection(3, v, 0.0),)).is_empty and not Plan((Injection(3, v, 0.0, "project-out"),)).is_empty
    assert plain.with_steering("set-projection", "from:2").scaled(2).injections[1].op == "set-projection"
    assert plain.with_steering("project-out", "last").describe() == "L3x2:project-out@last+L3x-1:project-out@last"


def test_relative_scales_the_added_norm_or_the_set_value():
    v = unit_vector(8) * 3
    add = plan_of("add", v, 0.5, layer=3).relative_to({3: 10.0}).injections[0]
    assert float((add.coef * add.vector).norm()) == pytest.approx(5.0, rel=1e-5)
    value = plan_of("set-projection", v, 0.5, layer=3).relative_to({3: 10.0}).injections[0]
    assert value.coef == pytest.approx(5.0) and value.op == "set-projection"


def test_bad_operator_is_a_user_error():
    with pytest.raises(UserError, match="unknown operator 'ablate'.*project-out"):
        Injection(3, unit_vector(1), 1.0, "ablate")
    with pytest.raises(UserError, match="unknown operator"):
        operator("")


def test_apply_plan_without_mask_treats_rows_as_unpadded(smol):
    """A single unpadded prompt: the mask is optional for every scope in a forward pass."""
    e = smol.tokenizer([TEXTS[1]], return_tensors="pt")
    plan = plan_of("project-out-then-add", unit_vector(9) * 8, 3.0, "from:4")
    with torch.no_grad(), smol.lm.trace(e):
        apply_plan(smol, plan)
        logits = smol.lm.output.logits.save()
    reference = hook_logits(smol, e, [(L, plan.injections[0].vector, 3.0, "project-out-then-add", "from:4")])
    assert float((logits - reference).abs().max()) <= 1e-5
