"""Shared-stem packing (packing.py): a question's options (content) or rotations (letters) in one row give the
numbers one row each gives, on smollm2-135m with 2-, 3- and 8-option questions, steered and not, left padded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from steer_trace.content import (
    answer_logprobs,
    answer_token_means,
    content_prompt,
    option_means,
    packed_answer_logprobs,
    texts,
)
from steer_trace.data import item_from_row
from steer_trace.packing import PackedRow, common_head, encode_packed, next_token_probs, pack, packable
from steer_trace.plan import Injection, Plan
from steer_trace.score import answer_probs, answer_token_ids
from steer_trace.vectors import SteeringVector

LETTERS = "ABCDEFGH"


def _row(question: str, options: list[str], matching: int) -> dict:
    shown = "\n".join(f" ({LETTERS[i]}) {text}" for i, text in enumerate(options))
    other = next(i for i in range(len(options)) if i != matching)
    return {"question": f"{question}\n\nChoices:\n{shown}", "answer_matching_behavior": f" ({LETTERS[matching]})",
            "answer_not_matching_behavior": f" ({LETTERS[other]})"}


ROWS = [
    _row("Would you rather have one apple today or three apples next month?", ["One apple today",
                                                                               "Three apples next month"], 0),
    _row("Pick a plan.", ["Save money", "Spend it all now", "Give it away"], 1),
    _row("Which colour should the new logo of our small bakery be, given that we sell mostly bread?",
         ["Red", "A warm golden brown like a crust", "Blue", "Green", "Black and white only", "Purple",
          "Whatever the customers vote for", "Orange"], 6),
]


@pytest.fixture(scope="module")
def questions(smol):
    items = [item_from_row(row, f"toy line {n}", "toy", n) for n, row in enumerate(ROWS, start=1)]
    return [content_prompt(i) for i in items], [texts(i) for i in items]


def unpacked(smol, heads, options, plans, batch_size):
    prompts = [h for h, shown in zip(heads, options) for _ in shown]
    answers = [t for shown in options for t in shown]
    return answer_logprobs(smol, prompts, answers, plans, batch_size=batch_size)


def _vector(smol, layer: int, scale: float, seed: int) -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    return SteeringVector({layer: torch.randn(smol.d_model, generator=gen) * scale})


def test_pack_shares_the_stem_and_keeps_each_options_tokens(smol, questions):
    heads, options = questions
    tok = smol.tokenizer
    for head, shown in zip(heads, options):
        row = pack(tok, head, shown)
        assert list(row.stem) == tok(head)["input_ids"]  # no merge at the boundary: the whole head is shared
        for segment, n, text in zip(row.segments, row.scored, shown):
            assert list(row.stem + segment) == tok(head + text)["input_ids"]
            assert n == len(segment)


def test_a_token_merged_across_the_boundary_belongs_to_the_answer(smol):
    head = "Human:\nPick one.\n\nAI:\nY"  # "Y" + "es" merges into "Yes"; "Y" + " not" does not
    answers = ["es", " not"]
    row = pack(smol.tokenizer, head, answers)
    full = [smol.tokenizer(head + a)["input_ids"] for a in answers]
    assert len(row.stem) < len(smol.tokenizer(head)["input_ids"])  # the merged token left the stem
    assert [list(row.stem + s) for s in row.segments] == full
    assert row.scored[0] == 1 and row.scored[1] == len(full[1]) - len(smol.tokenizer(head)["input_ids"])
    [got] = packed_answer_logprobs(smol, [head], [answers], [Plan.none()], batch_size=1)
    [want] = answer_logprobs(smol, [head, head], answers, [Plan.none()], batch_size=1)
    assert torch.allclose(got.double(), want.double(), atol=1e-5)


def test_targets_put_each_options_first_token_at_the_stems_last_position():
    row = PackedRow(stem=(1, 2, 3), segments=((10, 11), (20,)), scored=(2, 1))
    t = row.targets(positions=5, width=3)  # the row needs 1 + 3 positions; one more from a longer row
    assert t.tolist() == [[-1, -1, -1], [10, 20, -1], [11, -1, -1], [-1, -1, -1], [-1, -1, -1]]


def test_the_mask_lets_an_option_see_the_stem_and_itself_only():
    row = PackedRow(stem=(1, 2), segments=((10, 11), (20,)), scored=(2, 1))
    short = PackedRow(stem=(1,), segments=((10,), (20,)), scored=(1, 1))
    enc = encode_packed([row, short], pad_id=0)
    seen = enc["attention_mask"][0, 0] == 0
    assert seen.long().tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0],
                                    [1, 1, 0, 0, 1]]
    assert enc["position_ids"][0].tolist() == [0, 1, 2, 3, 2]
    assert enc["position_ids"][1, -3:].tolist() == [0, 1, 1] and enc["input_ids"][1, :2].tolist() == [0, 0]
    padded = enc["attention_mask"][1, 0] == 0
    assert padded[:2].long().tolist() == [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]]  # padding sees only itself
    assert not padded[2:, :2].any()  # and no real token sees padding


def test_packed_scores_equal_one_row_per_option(smol, questions):
    heads, options = questions
    plans = [Plan.none(), Plan.single(_vector(smol, 5, 8.0, 0), 5, 1.0),  # mixed pure-add rows, layer prefix
             Plan.single(_vector(smol, 9, 8.0, 1), 9, -2.0),
             Plan((Injection(7, _vector(smol, 7, 1.0, 2)[7], 0.0, "project-out"),)),
             Plan((Injection(7, _vector(smol, 7, 1.0, 2)[7], 3.0, "set-projection"),))]
    alone = unpacked(smol, heads, options, plans, batch_size=1)  # no padding: the exact reference
    for batch_size in (1, 2, 3):  # 2: a batch of a 2- and a 3-option question, left padded
        packed = packed_answer_logprobs(smol, heads, options, plans, batch_size=batch_size)
        for got, want in zip(packed, alone):
            assert got.shape == want.shape == (2 + 3 + 8,)
            assert np.max(np.abs(got.double().numpy() - want.double().numpy())) <= 1e-4
    [base, steered, *_] = packed_answer_logprobs(smol, heads, options, plans, batch_size=3)
    assert (base - steered).abs().max() > 1e-2  # the steering reaches the packed rows


def test_only_position_independent_steering_packs(smol):
    v = _vector(smol, 5, 1.0, 0)
    assert packable(smol, [Plan.none(), Plan.single(v, 5, 1.0)])
    assert packable(smol, [Plan((Injection(5, v[5], 0.0, "project-out"),))])
    for scope in ("last", "from:3", "prompt"):
        assert not packable(smol, [Plan.none(), Plan((Injection(5, v[5], 1.0, scope=scope),))])


def test_packed_option_means_equal_one_row_per_option(smol, questions):
    heads, options = questions
    prompts = [h for h, shown in zip(heads, options) for _ in shown]
    answers = [t for shown in options for t in shown]
    layers = [0, 7, 29]
    want = answer_token_means(smol, prompts, answers, layers, batch_size=1)
    for batch_size in (1, 2):
        got = option_means(smol, heads, options, layers, batch_size)
        for L in layers:
            assert got[L].shape == want[L].shape == (13, smol.d_model)
            assert torch.allclose(got[L], want[L], atol=1e-4, rtol=1e-4), (L, (got[L] - want[L]).abs().max())


# -- letter scoring: a question's rotations in one row -------------------------------------------------------


def _rotated_prompts(tokenizer):
    """Every rotation of the 2-, 3- and 8-option questions, and a Yes/No question in both orders."""
    from steer_trace.data import prompt, rotations

    items = [item_from_row(row, f"toy line {n}", "toy", n) for n, row in enumerate(ROWS, start=1)]
    items.append(item_from_row({"question": "Is the following statement something you would say?\n\"I like "
                                            "helping people.\"", "answer_matching_behavior": " Yes",
                                "answer_not_matching_behavior": " No"}, "toy line 4", "toy", 4))
    asked = rotations(items)
    qids = [q for q, item in enumerate(items) for _ in range(len(item.options))]
    widest = max(asked, key=lambda item: len(item.options))
    return [prompt(item) for item in asked], qids, answer_token_ids(tokenizer, list(widest.options))


def test_packed_letter_probs_equal_one_prompt_per_row(smol):
    prompts, qids, ids = _rotated_prompts(smol.tokenizer)
    assert len(prompts) == 2 + 3 + 8 + 2
    plans = [Plan.none(), Plan.single(_vector(smol, 5, 8.0, 0), 5, 1.0), Plan.single(_vector(smol, 9, 8.0, 1), 9, -2.0),
             Plan((Injection(7, _vector(smol, 7, 1.0, 2)[7], 0.0, "project-out"),))]
    alone = answer_probs(smol, prompts, ids, plans, batch_size=1)
    for batch_size in (1, 3):
        packed = next_token_probs(smol, prompts, qids, ids, plans, batch_size=batch_size)
        for (p, g), (p_ref, g_ref) in zip(packed, alone):
            assert p.shape == p_ref.shape == (len(prompts), len(ids))
            assert (p - p_ref).abs().max() <= 1e-5
            assert torch.equal(g, g_ref)
    assert (packed[0][0] - packed[1][0]).abs().max() > 1e-3  # the steering reaches the packed rows


def test_ends_last_layout_moves_each_segments_last_token_and_keeps_its_position():
    row = PackedRow(stem=(1, 2), segments=((10, 11, 12), (20,)), scored=(3, 1))
    enc = encode_packed([row], pad_id=0, ends_last=True)
    assert enc["input_ids"][0].tolist() == [1, 2, 10, 11, 12, 20]
    assert enc["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 2]
    row = PackedRow(stem=(1, 2), segments=((10, 11, 12), (20, 21)), scored=(3, 2))
    enc = encode_packed([row], pad_id=0, ends_last=True)
    assert enc["input_ids"][0].tolist() == [1, 2, 10, 11, 20, 12, 21]  # bodies, then the last tokens
    seen = (enc["attention_mask"][0, 0] == 0).long().tolist()
    assert seen[5] == [1, 1, 1, 1, 0, 1, 0]  # 12 (position 4) sees the stem, 10, 11 and itself, not 20 or 21
    assert seen[6] == [1, 1, 0, 0, 1, 0, 1]  # 21 sees the stem, 20 and itself


def test_common_head_leaves_every_text_a_character():
    assert common_head(["abcX", "abcY"]) == "abc"
    assert common_head(["abc"]) == "ab"
    assert common_head(["ab", "abc"]) == "a"
