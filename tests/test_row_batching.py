"""Rows of one forward pass carry different plans; layers below the first steered layer run once.

Both must give what separate traces give (|Δ| <= 1e-5) with left-padded prompts of
different lengths, in the exact order of the plans and prompts.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from steer_trace.batching import encode
from steer_trace.plan import Injection, Plan, apply_plan
from steer_trace.prefix_cache import PrefixCache
from steer_trace.row_plans import first_layer, forward_equivalents, layout, row_deltas, shared_prefix
from steer_trace.score import Readout, answer_probs, measure, token_accuracy
from steer_trace.vectors import SteeringVector

PROMPTS = [
    "Question: is the sky blue?\nAnswer: I choose (",
    "Hi",
    "A much longer prompt, with several clauses, that pads every shorter prompt of its batch on the left. (",
    "Two words",
    "The capital of France is",
]
N_LAYERS, D = 30, 576


def _vec(seed: int, layers=range(N_LAYERS)) -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    return SteeringVector({L: torch.randn(D, generator=gen) * 3 for L in layers}, {"name": f"r{seed}"})


@dataclass(frozen=True)
class NotPureAdd(Plan):
    """Applies like its parent, but claims not to be a pure add: the runner must keep it in its own traces."""

    @property
    def pure_add(self) -> bool:
        return False


def _last_logits(model, enc):
    return (model.lm.output.logits[:, -1, :].save(),)


def _separate(model, plan, prompts, batch_size):
    """The reference: one trace per plan per batch of prompts (the same left padding)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            enc = encode(model.tokenizer, prompts[start : start + batch_size])
            with model.lm.trace(enc):
                apply_plan(model, plan, attention_mask=enc["attention_mask"])
                out.append(model.lm.output.logits[:, -1, :].save())
    return torch.cat(out)


# -- layout (no model) ---------------------------------------------------------------


def test_layout_fills_batches_with_rows_of_different_plans():
    v = _vec(0)
    plans = [Plan.single(v, 10, c) for c in (-2.0, 1.0, 3.0)]
    chunks, batches = layout(plans, 5, 4, N_LAYERS)
    assert chunks == [(0, 1, 2, 3), (4,)]
    assert len(batches) == 4 == -(-3 * 5 // 4)  # ceil(K*N/B)
    rows = [row for b in batches for row in b.rows]
    assert sorted(rows) == [(k, j) for k in range(3) for j in range(5)] and len(set(rows)) == 15
    assert all(len(b.rows) <= 4 and b.plan is None and b.shared_below == 10 for b in batches)
    assert all(all(j in chunks[b.chunk] for _, j in b.rows) for b in batches)
    assert layout(plans, 5, 4, N_LAYERS) == (chunks, batches)  # deterministic


def test_layout_keeps_plans_that_are_not_pure_adds_in_their_own_batches():
    v = _vec(0)
    odd = NotPureAdd((Injection(3, v[3], 1.0),), "odd")
    plans = [Plan.single(v, 10, 1.0), odd, Plan.single(v, 12, 1.0)]
    _, batches = layout(plans, 3, 8, N_LAYERS)
    own = [b for b in batches if b.plan is not None]
    assert [b.rows for b in own] == [((1, 0), (1, 1), (1, 2))] and own[0].shared_below == 0
    mixed = [b for b in batches if b.plan is None]
    assert [b.rows for b in mixed] == [tuple((k, j) for k in (0, 2) for j in range(3))]
    assert mixed[0].shared_below == 10  # the odd plan's layer 3 does not lower the pure plans' prefix


def test_shared_prefix_is_the_lowest_steered_layer_when_it_pays():
    v = _vec(0)
    assert shared_prefix([Plan.single(v, 9, 1.0), Plan.single(v, 14, 2.0), Plan.none()], N_LAYERS) == 9
    assert shared_prefix([Plan.single(v, 9, 1.0)], N_LAYERS) == 0  # one plan: nothing to share
    assert shared_prefix([Plan.single(v, 0, 1.0), Plan.single(v, 9, 1.0)], N_LAYERS) == 0
    assert shared_prefix([Plan.none(), Plan.single(v, 9, 0.0)], N_LAYERS) == 0  # nothing steered anywhere
    assert first_layer(Plan.simultaneous([(v, 20), (v, 7)], 1.0), N_LAYERS) == 7


def test_forward_equivalents_of_a_prefix_shared_sweep():
    v = _vec(0)
    L, K, N = 15, 13, 8
    chunks, batches = layout([Plan.single(v, L, c) for c in range(1, K + 1)], N, 8, N_LAYERS)
    assert forward_equivalents(batches, chunks, N_LAYERS) == pytest.approx(N * (L + K * (N_LAYERS - L)) / N_LAYERS)
    chunks, batches = layout([Plan.single(v, L, c) for c in range(1, K + 1)], N, 8, N_LAYERS, share_prefix=False)
    assert forward_equivalents(batches, chunks, N_LAYERS) == K * N


def test_row_deltas_are_each_rows_own_summed_delta():
    v, w = _vec(1), _vec(2)
    plans = [Plan.single(v, 4, 2.0), Plan((Injection(4, w[4], 1.0), Injection(4, v[4], -1.0), Injection(9, w[9], 0.5))),
             Plan.none()]
    got = dict(row_deltas(plans, [(0, 0), (1, 0), (2, 0), (0, 1)]))
    assert sorted(got) == [4, 9]
    torch.testing.assert_close(got[4], torch.stack([2 * v[4], w[4] - v[4], torch.zeros(D), 2 * v[4]]))
    torch.testing.assert_close(got[9], torch.stack([torch.zeros(D), 0.5 * w[9], torch.zeros(D), torch.zeros(D)]))


# -- on smollm2 ------------------------------------------------------------------------


def _sweep_plans():
    v, w = _vec(3), _vec(4)
    return [
        Plan.none(),
        Plan.single(v, 10, 4.0),
        Plan.single(v, 10, -3.0),
        Plan.simultaneous([(v, 5), (w, 20)], 2.0),
        Plan((Injection(12, v[12], 1.5), Injection(12, w[12], -1.0))),
        NotPureAdd((Injection(8, w[8], 2.5),), "odd"),
    ]


def _close(logits, ref, what):
    """Probabilities within 1e-5; logits within 1e-5 of their scale (float32 sums over a
    batch of another size round differently: ~2e-6 relative, as in any batching)."""
    assert logits.shape == ref.shape
    dp = float((torch.softmax(logits, -1) - torch.softmax(ref, -1)).abs().max())
    assert dp <= 1e-5, (what, dp)
    assert float((logits - ref).abs().max()) <= 1e-5 * float(ref.abs().max()), what


def test_heterogeneous_batches_equal_separate_traces(smol):
    plans = _sweep_plans()
    got = measure(smol, PROMPTS, plans, Readout(_last_logits), batch_size=4)
    assert len(got) == len(plans)
    for plan, (logits,) in zip(plans, got):
        _close(logits, _separate(smol, plan, PROMPTS, 4), plan.describe())


def test_prefix_shared_sweep_equals_separate_traces_and_skips_the_prefix(smol):
    v = _vec(5)
    L = 15
    plans = [Plan.single(v, L, c) for c in (-4.0, -1.0, 2.0, 6.0)]
    chunks, batches = layout(plans, len(PROMPTS), 8, smol.n_layers)
    assert {b.shared_below for b in batches} == {L}
    calls = {"layer0": 0, f"layer{L}": 0}
    layers = smol.lm._module.model.layers
    # hooks on each layer's MLP only count calls: an independent check of which layers really ran
    # (a skipped layer's own pre-hooks still fire, its MLP does not)
    hooks = [layers[0].mlp.register_forward_hook(lambda *_: calls.__setitem__("layer0", calls["layer0"] + 1)),
             layers[L].mlp.register_forward_hook(lambda *_: calls.__setitem__(f"layer{L}", calls[f"layer{L}"] + 1))]
    try:
        got = measure(smol, PROMPTS, plans, Readout(_last_logits), batch_size=8)
    finally:
        for h in hooks:
            h.remove()
    assert calls == {"layer0": len(chunks), f"layer{L}": len(batches)}  # layer 0 once per chunk, not per batch
    for plan, (logits,) in zip(plans, got):
        _close(logits, _separate(smol, plan, PROMPTS, 8), plan.describe())


def test_answer_probs_and_token_accuracy_keep_plan_and_prompt_order(smol):
    plans = _sweep_plans()[:2] + _sweep_plans()[3:4]
    ids = [330, 389]
    together = answer_probs(smol, PROMPTS, ids, plans, batch_size=3)
    for k, plan in enumerate(plans):
        for j, p in enumerate(PROMPTS):
            (probs, greedy), = answer_probs(smol, [p], ids, [plan], batch_size=1)
            assert float((together[k][0][j] - probs[0]).abs().max()) <= 1e-5
            assert int(together[k][1][j]) == int(greedy[0])
    docs = PROMPTS[:2]
    acc = token_accuracy(smol, docs, plans, batch_size=2, max_tokens=12)
    for k, plan in enumerate(plans):
        (correct, counts), = token_accuracy(smol, docs, [plan], batch_size=1, max_tokens=12)
        assert torch.equal(acc[k][0], correct) and torch.equal(acc[k][1], counts)


def test_prefix_cache_runs_the_layers_below_once_across_calls_and_changes_nothing(smol):
    """A sweep's steps as separate calls: with a PrefixCache, layer 0 runs once per chunk over all of them
    (a single plan at L > 0 starts from the cache too), the logits equal separate traces, and a call at
    another layer or on other texts does not read the first layer's entries."""
    v = _vec(7)
    L = 12
    cache = PrefixCache()
    chunks, _ = layout([Plan.single(v, L, 1.0)], len(PROMPTS), 2, smol.n_layers, min_plans=1)
    calls = {"layer0": 0}
    layer0 = smol.lm._module.model.layers[0].mlp
    hook = layer0.register_forward_hook(lambda *_: calls.__setitem__("layer0", calls["layer0"] + 1))
    try:
        steps = [[Plan.single(v, L, c) for c in coefs] for coefs in ((-2.0,), (1.0, 3.0), (5.0,))]
        got = [measure(smol, PROMPTS, plans, Readout(_last_logits), batch_size=2, prefix_cache=cache)
               for plans in steps]
        assert calls["layer0"] == len(chunks)  # the first call's prefix passes only
        assert (cache.misses, cache.hits, len(cache)) == (len(chunks), 2 * len(chunks), len(chunks))
        measure(smol, PROMPTS, [Plan.single(v, L + 3, 1.0)], Readout(_last_logits), batch_size=2,
                prefix_cache=cache)
        measure(smol, PROMPTS[:2], [Plan.single(v, L, 1.0)], Readout(_last_logits), batch_size=1,
                prefix_cache=cache)
        assert calls["layer0"] == 2 * len(chunks) + 2 and cache.hits == 2 * len(chunks)
    finally:
        hook.remove()
    for plans, results in zip(steps, got):
        for plan, (logits,) in zip(plans, results):
            _close(logits, _separate(smol, plan, PROMPTS, 2), plan.describe())


def test_prefix_cache_drops_the_oldest_entries_beyond_its_budget():
    cache = PrefixCache(max_bytes=3 * 4 * 10)  # three float32 tensors of 10 values
    for k in range(5):
        cache.put(("texts", None, k), torch.zeros(10))
    assert len(cache) == 3 and cache.bytes == 120
    assert cache.get(("texts", None, 0)) is None and cache.get(("texts", None, 4)) is not None
    cache.put(("big",), torch.zeros(100))  # over the whole budget: not kept, nothing dropped for it
    assert len(cache) == 3 and cache.get(("big",)) is None
