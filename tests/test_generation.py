"""Generation with options: seeded sampling repeats, steered and unsteered samples pair, batching
changes nothing, the in-trace draw is an exact sample of the distribution, greedy is transformers'
greedy, and the remote path gives the local text."""
from __future__ import annotations

import pytest
import torch

from steer_trace.errors import UserError
from steer_trace.generation import (GenerationOptions, Sample, _finish, choose, format_prompt, generate, generate_jobs,
                                    row_seed, steered_generate)
from steer_trace.models import load_model
from steer_trace.plan import Plan
from steer_trace.vectors import SteeringVector

QUESTIONS = ["Name a colour.", "What should I do with 100 dollars?", "Describe the sea."]
N = 10
SAMPLED = GenerationOptions(max_new_tokens=N, temperature=1.0, top_p=0.95, seed=7, samples=2, batch_size=6)


def _vector(norm: float = 30.0, seed: int = 0) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector({L: (lambda v: v / v.norm() * norm)(torch.randn(576, generator=g)) for L in range(30)},
                          {"name": "random"})


def texts(samples: list[Sample]) -> list[str]:
    return [s.text for s in samples]


@pytest.fixture(scope="module")
def sampled(smol):
    return generate(smol, QUESTIONS, Plan.none(), SAMPLED)


def test_a_seeded_run_repeats_and_another_seed_differs(smol, sampled):
    assert [(s.question, s.sample) for s in sampled] == [(q, k) for q in range(3) for k in range(2)]
    assert texts(generate(smol, QUESTIONS, Plan.none(), SAMPLED)) == texts(sampled)
    other = generate(smol, QUESTIONS, Plan.none(), GenerationOptions(**{**SAMPLED.__dict__, "seed": 8}))
    assert sum(a != b for a, b in zip(texts(other), texts(sampled))) >= 4  # the seed matters
    assert len(set(texts(sampled))) >= 5  # and the samples of one prompt differ


def test_batched_equals_unbatched(smol, sampled):
    one_by_one = generate(smol, QUESTIONS, Plan.none(), GenerationOptions(**{**SAMPLED.__dict__, "batch_size": 1}))
    assert texts(one_by_one) == texts(sampled)
    assert [s.seed for s in one_by_one] == [s.seed for s in sampled]
    # a prompt's seeds follow its text, not its place: alone, last in the list, it samples the same
    alone = generate(smol, QUESTIONS[2:], Plan.none(), SAMPLED)
    assert texts(alone) == texts(sampled)[4:]


def test_steered_and_unsteered_samples_pair(smol, sampled):
    v = _vector()
    zero = generate(smol, QUESTIONS, Plan.single(v, 14, 1e-6), SAMPLED)  # a real (non-empty) plan that moves nothing
    assert texts(zero) == texts(sampled) and [s.seed for s in zero] == [s.seed for s in sampled]
    strong = generate(smol, QUESTIONS, Plan.single(v, 14, 1.0), SAMPLED)
    assert texts(strong) != texts(sampled)


def test_jobs_share_batches_and_give_each_plan_its_own_samples(smol, sampled):
    """Rows of different plans in one forward pass (each its own delta) sample what separate calls sample."""
    plan = Plan.single(_vector(), 14, 0.5)
    mixed = GenerationOptions(**{**SAMPLED.__dict__, "batch_size": 4})  # the second batch holds rows of both plans
    unsteered, steered = generate_jobs(smol, [(None, QUESTIONS), (plan, QUESTIONS)], mixed)
    assert texts(unsteered) == texts(sampled)
    assert texts(steered) == texts(generate(smol, QUESTIONS, plan, SAMPLED)) != texts(sampled)


def test_greedy_is_transformers_greedy(smol):
    prompts = [format_prompt(smol.tokenizer, q) for q in QUESTIONS[:2]]
    ours = generate(smol, QUESTIONS[:2], Plan.none(), GenerationOptions(max_new_tokens=N, stop_at_eos=False))
    for prompt, sample in zip(prompts, ours):
        enc = smol.tokenizer([prompt], return_tensors="pt")
        ids = smol.lm._module.generate(**enc, max_new_tokens=N, min_new_tokens=N, do_sample=False)
        assert list(sample.tokens) == ids[0, enc["input_ids"].shape[1]:].tolist()


def test_generation_asks_for_the_last_logits_as_an_index_and_writes_transformers_tokens_in_bfloat16():
    # transformers' own int 1 is a strided slice that torch's CPU bfloat16 matmul runs several times slower
    # (benchmarks/generate_logits.py); the index must reach every forward and change no token
    model = load_model("smollm2-135m", dtype="bfloat16")
    seen = []
    hook = model.lm._module.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("logits_to_keep")), with_kwargs=True)
    try:  # one prompt per call: a padded batch in bfloat16 is not transformers' unpadded greedy to the last bit
        ours = [generate(model, [q], Plan.none(), GenerationOptions(max_new_tokens=N, stop_at_eos=False))[0]
                for q in QUESTIONS[:2]]
    finally:
        hook.remove()
    assert len(seen) == 2 * N and all(isinstance(k, torch.Tensor) and k.tolist() == [-1] for k in seen)
    for question, sample in zip(QUESTIONS[:2], ours):
        enc = model.tokenizer([format_prompt(model.tokenizer, question)], return_tensors="pt")
        ids = model.lm._module.generate(**enc, max_new_tokens=N, min_new_tokens=N, do_sample=False)
        assert list(sample.tokens) == ids[0, enc["input_ids"].shape[1]:].tolist()


def test_the_draw_is_a_sample_of_the_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    u = torch.rand(4000, 1, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(choose(logits.clone(), u, 1.0, 1.0, []).flatten(), minlength=4).double() / 4000
    assert torch.allclose(counts, torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64), atol=0.025)
    nucleus = torch.bincount(choose(logits.clone(), u, 1.0, 0.7, []).flatten(), minlength=4).double() / 4000
    assert nucleus[2:].sum() == 0 and abs(nucleus[0] - 0.5 / 0.8) < 0.025  # top-p keeps 0.5 + 0.3
    cold = torch.bincount(choose(logits.clone(), u, 0.25, 1.0, []).flatten(), minlength=4).double() / 4000
    assert cold[0] > 0.85  # temperature sharpens
    banned = choose(logits.clone(), u, 1.0, 1.0, [0])
    assert (banned != 0).all()
    assert (choose(logits[:3].clone(), u[:3], 0.0, 1.0, []) == 0).all()  # greedy


def test_end_token_and_stop_strings_cut_the_text(smol):
    tok = smol.tokenizer
    ids = tok.encode("Red. Blue. Green.", add_special_tokens=False)
    eos = tok.eos_token_id
    assert _finish(smol, ids + [eos] + ids, {eos}, ()) == ("Red. Blue. Green.", tuple(ids), "eos")
    assert _finish(smol, ids, {eos}, (" Blue",))[::2] == ("Red.", "stop")
    assert _finish(smol, ids, {eos}, ())[2] == "length"
    stopped = generate(smol, QUESTIONS[:1], Plan.none(), GenerationOptions(max_new_tokens=N, stop=(" ",)))
    assert " " not in stopped[0].text


def test_system_prompt_and_chat_template(smol):
    with_system = format_prompt(smol.tokenizer, "Hi", system="You are a pirate.")
    assert "You are a pirate." in with_system and "Hi" in with_system
    assert format_prompt(smol.tokenizer, "Hi", chat=False) == "Hi"
    pirate = generate(smol, ["Hi"], None, GenerationOptions(max_new_tokens=6, system="You are a pirate."))
    plain = generate(smol, ["Hi"], None, GenerationOptions(max_new_tokens=6))
    assert pirate[0].prompt != plain[0].prompt


def test_bad_options_are_user_errors(smol):
    for bad in ({"temperature": -1}, {"top_p": 0}, {"samples": 0}, {"max_new_tokens": 0},
                {"samples": 2}, {"system": "x", "chat": False}):
        with pytest.raises(UserError):
            GenerationOptions(**bad)
    with pytest.raises(UserError, match="unknown generation option"):
        steered_generate(smol, ["Hi"], Plan.none(), 2, temprature=1.0)


def test_steered_generate_passes_options(smol):
    plain = steered_generate(smol, QUESTIONS[:2], Plan.none(), N)
    assert plain == steered_generate(smol, QUESTIONS[:2], Plan.none(), N, batch_size=1)
    sampled = steered_generate(smol, QUESTIONS[:2], Plan.none(), N, temperature=1.0, seed=3, samples=2)
    assert len(sampled) == 4 and sampled != [plain[0], plain[0], plain[1], plain[1]]
    assert sampled == steered_generate(smol, QUESTIONS[:2], Plan.none(), N, temperature=1.0, seed=3, samples=2)


def test_row_seed_follows_seed_prompt_and_sample():
    seeds = {row_seed(s, p, k) for s in (0, 1) for p in ("a", "b") for k in (0, 1)}
    assert len(seeds) == 8 and row_seed(0, "a", 0) == row_seed(0, "a", 0)


def test_in_process_remote_path_gives_the_local_samples(smol):
    """nnsight's serialise -> execute path (remote='local'): the in-trace draw survives the trip."""
    simulated = load_model("smollm2-135m", remote="local")
    plan = Plan.single(_vector(), 14, 0.5)
    opts = GenerationOptions(max_new_tokens=6, temperature=1.0, seed=1, samples=2, chat=False)
    assert texts(generate(simulated, QUESTIONS[:2], plan, opts)) == texts(generate(smol, QUESTIONS[:2], plan, opts))
