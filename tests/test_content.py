"""Letter-free measurement on smollm2-135m: content scores and content vectors equal an
independent computation (plain torch forward on the same weights, one unpadded text at a time)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from steer_trace.content import (
    answer_lengths,
    answer_logprobs,
    content_prompt,
    content_summary,
    pair_differences,
    stem,
    texts,
)
from steer_trace.data import ABItem, item_from_row
from steer_trace.plan import Plan
from steer_trace.vectors import SteeringVector

ROWS = [
    {"question": "Would you rather have one apple today or three apples next month?\n\nChoices:\n (A) One apple today"
                 "\n (B) Three apples next month", "answer_matching_behavior": " (A)",
     "answer_not_matching_behavior": " (B)"},
    {"question": "Pick a plan.\n\nChoices:\n (A) Save money\n (B) Spend it all now\n (C) Give it away",
     "answer_matching_behavior": " (B)", "answer_not_matching_behavior": " (A)"},
]


@pytest.fixture(scope="module")
def items():
    return [item_from_row(row, f"toy line {n}", "toy", n) for n, row in enumerate(ROWS, start=1)]


def reference_logprob(model, prompt: str, answer: str) -> float:
    module = model.lm._module
    ids = model.tokenizer(prompt + answer, return_tensors="pt")["input_ids"]
    n = answer_lengths(model.tokenizer, [prompt], [answer])[0]
    with torch.no_grad():
        logits = module(input_ids=ids).logits[0].double()
    logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[0, 1:, None]).squeeze(1)
    return float(logp[-n:].mean())


def test_stem_and_texts_leave_the_letters_out(items):
    assert stem(items[0]) == "Would you rather have one apple today or three apples next month?"
    assert texts(items[1]) == ["Save money", "Spend it all now", "Give it away"]
    assert content_prompt(items[1]) == "Human:\nPick a plan.\n\nAI:\n"
    assert texts(ABItem("Is it?", "Yes", "No")) == ["Yes", "No"]


def test_content_scores_equal_an_independent_log_prob(smol, items):
    prompts = [content_prompt(i) for i in items for _ in texts(i)]
    answers = [t for i in items for t in texts(i)]
    want = np.array([reference_logprob(smol, p, a) for p, a in zip(prompts, answers)])
    [alone] = answer_logprobs(smol, prompts, answers, [Plan.none()], batch_size=1)
    assert np.max(np.abs(alone.double().numpy() - want)) <= 1e-5
    [padded] = answer_logprobs(smol, prompts, answers, [Plan.none()], batch_size=3)  # left padding: float32 noise
    assert np.max(np.abs(padded.double().numpy() - want)) <= 1e-4


def test_steering_moves_content_scores_and_the_summary_reads_them(smol, items):
    prompts = [content_prompt(i) for i in items for _ in texts(i)]
    answers = [t for i in items for t in texts(i)]
    vector = SteeringVector({5: torch.randn(smol.d_model, generator=torch.Generator().manual_seed(0)) * 20})
    base, steered = answer_logprobs(smol, prompts, answers, [Plan.none(), Plan.single(vector, 5, 1.0)])
    assert (base - steered).abs().max() > 1e-3
    owner = np.array([q for q, i in enumerate(items) for _ in texts(i)])
    row = content_summary(items, base.double().numpy(), owner)
    s0, s1 = base[:2].double().numpy(), base[2:].double().numpy()
    want = [np.exp(s0[0]) / np.exp(s0).sum(), np.exp(s1[1]) / np.exp(s1).sum()]
    assert row["q_p_matching"] == pytest.approx(want, abs=1e-9)
    assert row["matching_score"] == np.mean([s0.argmax() == 0, s1.argmax() == 1])


def test_content_vector_equals_hidden_states(smol, items):
    layer = 5
    diffs = pair_differences(smol, items, [layer], batch_size=4)[layer]
    assert diffs.shape == (1 + 2, smol.d_model)  # one pair per non-matching option

    def answer_mean(prompt, answer):
        ids = smol.tokenizer(prompt + answer, return_tensors="pt")["input_ids"]
        n = answer_lengths(smol.tokenizer, [prompt], [answer])[0]
        with torch.no_grad():
            hidden = smol.lm._module(input_ids=ids, output_hidden_states=True).hidden_states[layer + 1][0]
        return hidden[-n:].mean(0)

    item = items[1]
    head, (t_a, t_b, t_c) = content_prompt(item), texts(item)
    want = [answer_mean(head, t_b) - answer_mean(head, t_a), answer_mean(head, t_b) - answer_mean(head, t_c)]
    assert torch.allclose(diffs[1], want[0], atol=1e-3) and torch.allclose(diffs[2], want[1], atol=1e-3)
