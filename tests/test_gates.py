"""Gates (always, projection) against forward hooks: per-row decisions in left-padded batches.

The reference (tests/steering_reference.py) decides each row itself from the first call's output of
layer Lc (mean or last of the real prompt tokens, cosine with the condition vector) and holds the
decision for every generated token. The threshold is put between the rows' own scores, so a batch
always has steered and unsteered rows, and the gated rows must equal the plain model exactly.
"""
from __future__ import annotations

import pytest
import torch
from ndif_fixture import ndif_host, ndif_stack  # noqa: F401  (fixtures)
from steering_reference import generated, hook_generate, hook_logits, traced

from steer_trace.batching import encode
from steer_trace.errors import UserError
from steer_trace.gates import ALWAYS, Gate, projection
from steer_trace.generation import steered_generate
from steer_trace.plan import Injection, Plan
from steer_trace.score import Readout, measure

TEXTS = [
    "def add(a, b):\n    return a + b",
    "The weather today is",
    "for i in range(10):\n    print(i * i)",
    "My favourite season is autumn because the leaves",
]
LC, L, N = 8, 10, 4


def vector(seed: int, norm: float = 8.0) -> torch.Tensor:
    v = torch.randn(576, generator=torch.Generator().manual_seed(seed))
    return v / v.norm() * norm


def pooled_outputs(smol, enc, layer: int, pool: str) -> torch.Tensor:
    """[B, d] from transformers' own hidden states (hidden_states[L + 1] is layer L's output)."""
    with torch.no_grad():
        h = smol.lm._module(**enc, output_hidden_states=True).hidden_states[layer + 1]
    rows = []
    for b, m in enumerate(enc["attention_mask"].tolist()):
        real = [t for t, x in enumerate(m) if x]
        rows.append(h[b, real].mean(0) if pool == "mean" else h[b, real[-1]])
    return torch.stack(rows)


@pytest.fixture(scope="module")
def enc(smol):
    batch = encode(smol.tokenizer, TEXTS)
    assert len(set(batch["attention_mask"].sum(-1).tolist())) == len(TEXTS)  # every row padded differently
    return batch


def gate_between(smol, enc, pool: str = "mean", layer: int = LC) -> tuple[dict, Gate, list[bool]]:
    """A code-minus-prose condition vector and a threshold between the rows' scores: (reference spec, gate,
    expected decisions)."""
    h = pooled_outputs(smol, enc, layer, pool)
    c = (h[0] + h[2] - h[1] - h[3]) / 2
    scores = (h @ c / (h.norm(dim=-1) * c.norm())).tolist()
    ordered = sorted(scores)
    threshold = (ordered[1] + ordered[2]) / 2  # two rows above, two below
    on = [s > threshold for s in scores]
    assert sum(on) == 2
    spec = {"layer": layer, "vector": c, "threshold": threshold, "pool": pool}
    return spec, projection(c, layer, threshold, pool), on


@pytest.mark.parametrize("pool", ["mean", "last"])
def test_gated_forward_equals_hook_reference(smol, enc, pool):
    spec, gate, on = gate_between(smol, enc, pool)
    v = vector(1)
    plan = Plan((Injection(L, v, 4.0, gate=gate),))
    assert not plan.pure_add
    logits, _ = traced(smol, enc, plan)
    ref = hook_logits(smol, enc, [(L, v, 4.0, "add", "all", spec)])
    assert float((logits - ref).abs().max()) <= 1e-5
    plain = hook_logits(smol, enc, [])
    for b, steered in enumerate(on):
        moved = float((logits[b] - plain[b]).abs().max())
        assert moved > 0.1 if steered else moved <= 1e-5, (b, moved)


def test_gate_with_ungated_injections_below_and_at_its_layer(smol, enc):
    """An ungated injection below Lc changes what the gate reads; one at Lc acts after the gate read it;
    a scope and an operator combine with the gate."""
    spec, gate, _ = gate_between(smol, enc)
    a, b, c = vector(2, 3.0), vector(3), vector(4)
    plan = Plan((Injection(4, a, 1.0), Injection(LC, b, 2.0), Injection(L, c, 3.0, "project-out-then-add", "from:3",
                                                                        gate)))
    logits, _ = traced(smol, enc, plan)
    ref = hook_logits(smol, enc, [(4, a, 1.0, "add", "all"), (LC, b, 2.0, "add", "all"),
                                  (L, c, 3.0, "project-out-then-add", "from:3", spec)])
    assert float((logits - ref).abs().max()) <= 1e-5
    wrong = hook_logits(smol, enc, [(4, a, 1.0, "add", "all"), (LC, b, 2.0, "add", "all"),
                                    (L, c, 3.0, "project-out-then-add", "from:3")])
    assert float((logits - wrong).abs().max()) > 0.1  # the gate switched some rows off


def test_gated_generation_equals_hook_reference(smol, enc):
    """Decided on the prompt pass, held for every generated token."""
    spec, gate, on = gate_between(smol, enc)
    v = vector(5)
    plan = Plan((Injection(L, v, 6.0, gate=gate),))
    ids, logits = generated(smol, enc, plan, N)
    ref_ids, ref_logits = hook_generate(smol, enc, [(L, v, 6.0, "add", "all", spec)], N)
    assert torch.equal(ids, ref_ids)
    assert float((logits - ref_logits).abs().max()) <= 1e-5
    plain_ids, plain_logits = hook_generate(smol, enc, [], N)
    for b, steered in enumerate(on):
        moved = float((logits[:, b] - plain_logits[:, b]).abs().max())
        assert moved > 0.1 if steered else moved <= 1e-5, (b, moved)
    assert float((logits[1:, on.index(True)] - plain_logits[1:, on.index(True)]).abs().max()) > 0.1


def test_steered_generate_holds_the_decision(smol, enc):
    spec, gate, on = gate_between(smol, enc)
    v = vector(6)
    texts = steered_generate(smol, TEXTS, Plan((Injection(L, v, 8.0, gate=gate),)), N)
    ref_ids, _ = hook_generate(smol, enc, [(L, v, 8.0, "add", "all", spec)], N)
    assert texts == [smol.tokenizer.decode(r, skip_special_tokens=True) for r in ref_ids]
    ungated = steered_generate(smol, TEXTS, Plan((Injection(L, v, 8.0),)), N)
    plain = steered_generate(smol, TEXTS, Plan.none(), N)
    for b, steered in enumerate(on):
        assert texts[b] == (ungated[b] if steered else plain[b])
    assert ungated != plain


def logits_readout() -> Readout:
    def save(model, enc):
        return (model.lm.output.logits[:, -1, :].float().save(),)

    return Readout(save, logit_positions=1)


def test_gated_plans_in_a_sweep_with_ungated_rows(smol, enc):
    """measure() with unsteered, ungated and gated plans and small batches: each plan equals its reference."""
    spec, gate, on = gate_between(smol, enc)
    v = vector(7)
    plans = [Plan.none(), Plan((Injection(L, v, 3.0),)), Plan((Injection(L, v, 3.0, gate=gate),)),
             Plan((Injection(L, v, -3.0, gate=gate),))]
    got = measure(smol, TEXTS, plans, logits_readout(), batch_size=3)
    refs = [[], [(L, v, 3.0, "add", "all")], [(L, v, 3.0, "add", "all", spec)], [(L, v, -3.0, "add", "all", spec)]]
    for (last,), ref in zip(got, refs):
        assert float((last - hook_logits(smol, enc, ref)[:, -1]).abs().max()) <= 1e-4
    for b, steered in enumerate(on):
        assert torch.allclose(got[2][0][b], got[1 if steered else 0][0][b], atol=1e-4)


def test_always_gate_is_the_plain_fast_path():
    v = vector(8)
    assert Plan((Injection(L, v, 1.0, gate=ALWAYS),)).pure_add
    assert Plan((Injection(L, v, 1.0),)).with_steering(gate=projection(v, 3, 0.1)).gates()
    assert "cos(L3.mean,c)>0.1" in Plan((Injection(L, v, 1.0, gate=projection(v, 3, 0.1)),)).describe()


def test_gate_errors(smol):
    v = vector(9)
    with pytest.raises(UserError, match="cannot decide an injection at layer 10"):
        Plan((Injection(L, v, 1.0, gate=projection(v, L + 1, 0.0)),)).check(smol)
    with pytest.raises(UserError, match="width 5"):
        Plan((Injection(L, v, 1.0, gate=projection(torch.ones(5), 2, 0.0)),)).check(smol)
    with pytest.raises(UserError, match="unknown gate"):
        Gate("sometimes")
    with pytest.raises(UserError, match="pool"):
        projection(v, 2, 0.0, "max")
    with pytest.raises(UserError, match="non-zero"):
        projection(torch.zeros(576), 2, 0.0)
    with pytest.raises(UserError, match="cosine"):
        projection(v, 2, 1.5)


def test_generation_step_without_held_decisions_is_a_user_error(smol, enc):
    from steer_trace.plan import apply_plan

    gate = projection(vector(10), LC, 0.0)
    with pytest.raises(UserError, match="held"):
        apply_plan(smol, Plan((Injection(L, vector(11), 1.0, gate=gate),)), enc["attention_mask"], step=1)


# --------------------------------------------------------------------------- remote: nnsight's serialisation, NDIF


def _remote_equals_local(remote, smol, enc):
    spec, gate, on = gate_between(smol, enc)
    v = vector(12)
    plans = [Plan((Injection(L, v, 3.0),)), Plan((Injection(L, v, 3.0, gate=gate),))]
    got = measure(remote, TEXTS, plans, logits_readout(), batch_size=3, points_per_request=4)
    want = measure(smol, TEXTS, plans, logits_readout(), batch_size=3)
    for (a,), (b,) in zip(got, want):
        # raw logits reach ~30, where float32's spacing is 3.8e-6; the server packs both plans in one batch (a
        # different matmul shape than local): a few ulps at that scale (2e-5 seen), far below the 0.1 of a gate
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    assert float((got[1][0][on.index(False)] - got[0][0][on.index(False)]).abs().max()) > 0.1  # gated off
    steered = Plan((Injection(L, v, 8.0, gate=gate),))
    assert steered_generate(remote, TEXTS, steered, N) == steered_generate(smol, TEXTS, steered, N)


def test_gates_through_nnsight_remote_serialisation_equal_local(smol, enc):
    from steer_trace.models import load_model

    _remote_equals_local(load_model("smollm2-135m", remote="local"), smol, enc)


@pytest.mark.remote
def test_gates_on_the_local_ndif_server_equal_local(ndif_host, smol, enc):
    from steer_trace.models import load_model

    _remote_equals_local(load_model("smollm2-135m", remote=True), smol, enc)
