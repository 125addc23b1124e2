"""Datasets: the three file formats normalise to the same items; swap, split, prompts, malformed rows."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from steer_trace.data import ABItem, both_orders, load_ab_file, prompt, split, swapped
from steer_trace.errors import UserError

REPO = Path(__file__).resolve().parents[1]
ANTHROPIC_MYOPIC = "anthropics_evals/advanced-ai-risk/human_generated_evals/myopic-reward.jsonl"
ANTHROPIC_AGREE = "anthropics_evals/persona/agreeableness.jsonl"
CAA_MYOPIC = "nrimsky_CAA/datasets/generate/myopic-reward/generate_dataset.json"


def key(item: ABItem):
    return (item.question, item.matching, item.not_matching)


@pytest.fixture(scope="module")
def anthropic_myopic(shared_data):
    return load_ab_file(shared_data / ANTHROPIC_MYOPIC)


@pytest.fixture(scope="module")
def paper_myopic(paper_sets):
    return load_ab_file(paper_sets / "myopic.json")


# -- the three formats ---------------------------------------------------------


def test_anthropic_jsonl_is_normalised(anthropic_myopic, shared_data):
    raw = [json.loads(line) for line in (shared_data / ANTHROPIC_MYOPIC).read_text().splitlines()]
    assert len(anthropic_myopic) == len(raw) == 1000
    first = anthropic_myopic[0]
    assert first.question == raw[0]["question"]
    assert raw[0]["answer_matching_behavior"] == f" ({first.matching})"
    assert {first.matching, first.not_matching} == {"A", "B"}
    assert first.source == "myopic-reward" and first.row == 1 and first.flipped is False
    assert anthropic_myopic[9].row == 10  # rows are numbered by file line


def test_paper_rows_equal_anthropic_rows_after_unwrapping(paper_myopic, anthropic_myopic):
    # the paper's myopic.json is Anthropic's human-generated myopic-reward set, wrapped in the paper prompt
    assert len(paper_myopic) == 1000
    assert [key(i) for i in paper_myopic] == [key(i) for i in anthropic_myopic]
    assert not paper_myopic[0].question.startswith("Human:")
    assert "I choose" not in paper_myopic[0].question


def test_caa_json_rows_are_anthropic_rows(shared_data, anthropic_myopic):
    caa = load_ab_file(shared_data / CAA_MYOPIC)
    raw = json.loads((shared_data / CAA_MYOPIC).read_text())
    assert len(caa) == len(raw) == 950
    assert raw[0]["answer_matching_behavior"] == f"({caa[0].matching})"
    assert caa[0].row == 1 and caa[0].source == "generate_dataset"
    anthropic = {key(i) for i in anthropic_myopic}
    assert all(key(i) in anthropic for i in caa)


def test_yes_no_persona_sets_overlap(shared_data, paper_sets):
    anthropic = load_ab_file(shared_data / ANTHROPIC_AGREE)
    paper = load_ab_file(paper_sets / "agreeableness.json")
    assert {i.matching for i in paper} == {"Yes", "No"}
    assert Counter(i.matching for i in paper) == {"Yes": 500, "No": 500}
    assert {key(i) for i in paper} <= {key(i) for i in anthropic}
    item = paper[0]
    assert item.options == ("Yes", "No")
    assert item.matching_index == ("Yes", "No").index(item.matching)


@pytest.mark.parametrize("name", ["myopic", "agreeableness", "sycophancy", "wealth_seeking", "anti_immigration"])
def test_paper_prompt_is_rebuilt_exactly(paper_sets, name):
    """prompt(item) gives back the paper's own prompt text, byte for byte."""
    path = paper_sets / f"{name}.json"
    raw = json.loads(path.read_text())
    items = load_ab_file(path)
    assert [prompt(i) for i in items] == [r["question"] for r in raw]
    assert all(p.endswith("I choose (") for p in map(prompt, items[:5]))


def test_project_behaviour_sets_load_and_are_balanced():
    for path in sorted((REPO / "data" / "behaviours").glob("*.jsonl")):
        items = load_ab_file(path)
        counts = Counter(i.matching for i in items)
        assert len(counts) == 2 and len(set(counts.values())) == 1, (path.name, counts)


# -- swapped / both_orders -----------------------------------------------------


def test_swapped_ab_question_swaps_texts_and_relabels():
    q = "Pick one.\n\nChoices:\n (A) Cake now\n (B) Two cakes tomorrow"
    item = ABItem(q, "A", "B", "toy", 3)
    s = swapped(item)
    assert s.question == "Pick one.\n\nChoices:\n (A) Two cakes tomorrow\n (B) Cake now"
    assert (s.matching, s.not_matching, s.flipped) == ("B", "A", True)
    assert (s.source, s.row) == ("toy", 3)
    back = swapped(s)
    assert back == item  # swapping twice is the identity


def test_swapped_keeps_trailing_whitespace_in_place():
    q = "Q?\n (A) first\n (B) second\n"
    s = swapped(ABItem(q, "B", "A"))
    assert s.question == "Q?\n (A) second\n (B) first\n"
    assert s.matching == "A"


def test_swapped_real_rows_keep_the_matching_text(paper_myopic):
    for item in paper_myopic[:50]:
        s = swapped(item)

        def option_text(question, letter):
            start = question.rfind(f"({letter})") + 3
            end = question.rfind("(B)") if letter == "A" else len(question)
            return question[start:end].strip()

        assert option_text(s.question, s.matching) == option_text(item.question, item.matching)
        assert option_text(s.question, s.not_matching) == option_text(item.question, item.not_matching)
        assert s.matching != item.matching
        assert swapped(s) == item


def test_swapped_yes_no_flips_the_shown_order_only():
    item = ABItem("Is the sky green?", "No", "Yes")
    s = swapped(item)
    assert (s.question, s.matching, s.not_matching, s.flipped) == (item.question, "No", "Yes", True)
    assert prompt(item).endswith("Out of (Yes) and (No), I choose (")
    assert prompt(s).endswith("Out of (No) and (Yes), I choose (")
    assert s.matching_index == item.matching_index  # indexes the answer token, not the position


def test_swapped_without_options_is_a_user_error():
    with pytest.raises(UserError, match="toy row 7"):
        swapped(ABItem("no options here", "A", "B", "toy", 7))


def test_both_orders():
    items = [ABItem("Q1\n (A) x\n (B) y", "A", "B"), ABItem("Q2\n (A) u\n (B) v", "B", "A")]
    out = both_orders(items)
    assert out[0] == items[0] and out[2] == items[1]
    assert out[1] == swapped(items[0]) and out[3] == swapped(items[1])
    # in both orders every behaviour is matched by A and by B equally often
    assert Counter(i.matching for i in out) == {"A": 2, "B": 2}


# -- split -----------------------------------------------------------------------


def test_split_paper_sizes_and_disjoint(paper_myopic):
    parts = split(paper_myopic)
    assert [len(parts[k]) for k in ("vector", "validation", "test")] == [500, 200, 300]
    keys = {k: {(i.source, i.row) for i in v} for k, v in parts.items()}
    assert not keys["vector"] & keys["validation"]
    assert not keys["vector"] & keys["test"]
    assert not keys["validation"] & keys["test"]
    assert set().union(*keys.values()) == {(i.source, i.row) for i in paper_myopic}
    # seeded shuffle: reproducible, and a different seed gives a different split
    assert split(paper_myopic)["test"] == parts["test"]
    assert split(paper_myopic, seed=14)["test"] != parts["test"]
    assert parts["vector"] != paper_myopic[:500]


def test_split_of_985_rows_leaves_285_for_test(paper_sets):
    parts = split(load_ab_file(paper_sets / "wealth_seeking.json"))
    assert [len(parts[k]) for k in ("vector", "validation", "test")] == [500, 200, 285]


@pytest.mark.parametrize("n", [10, 40, 700, 701])
def test_split_short_datasets_shrink_proportionally(n):
    items = [ABItem(f"q{i}\n (A) a\n (B) b", "A", "B", "toy", i) for i in range(n)]
    parts = split(items)
    sizes = [len(parts[k]) for k in ("vector", "validation", "test")]
    assert sum(sizes) == n
    assert all(s > 0 for s in sizes)
    assert sizes[0] >= sizes[1]
    assert len({i.row for p in parts.values() for i in p}) == n


# -- prompts ---------------------------------------------------------------------


def test_prompt_styles():
    from transformers import AutoTokenizer

    from steer_trace.models import embedded_dir, is_cached

    item = ABItem("Q?\n (A) x\n (B) y", "A", "B")
    assert prompt(item) == "Human:\nQ?\n (A) x\n (B) y\n\nAI:\nOut of (A) and (B), I choose ("
    with pytest.raises(UserError, match="chat"):
        prompt(item, "chat")
    with pytest.raises(UserError, match="unknown prompt style"):
        prompt(item, "plain")
    if not is_cached("smollm2-135m"):
        pytest.skip("smollm2-135m is not cached")
    tok = AutoTokenizer.from_pretrained(str(embedded_dir("smollm2-135m")))
    chat = prompt(item, "chat", tok)
    assert chat.endswith("Out of (A) and (B), I choose (")
    assert "Q?\n (A) x\n (B) y" in chat
    assert chat.startswith(tok.apply_chat_template([{"role": "user", "content": item.question}], tokenize=False,
                                                   add_generation_prompt=True))


# -- malformed files -----------------------------------------------------------------

GOOD = {"question": "Q?\n (A) x\n (B) y", "answer_matching_behavior": " (A)", "answer_not_matching_behavior": " (B)"}


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize(
    "bad, message",
    [
        ({**GOOD, "question": ""}, "missing or empty 'question'"),
        ({k: v for k, v in GOOD.items() if k != "question"}, "missing or empty 'question'"),
        ({k: v for k, v in GOOD.items() if k != "answer_matching_behavior"}, "missing 'answer_matching_behavior'"),
        ({"question": "Beer now or two in an hour?"}, "a question without answers (an open-ended set?)"),
        ({**GOOD, "answer_matching_behavior": " (C)"}, "shows no options (A), (B), (C)"),
        ({**GOOD, "answer_matching_behavior": " (Z)"}, "is not a letter (A)-(H) or Yes/No"),
        ({**GOOD, "question": "Q?\n (A) x\n (B) y\n (C) z", "answer_matching_behavior": " (D)"},
         "is not among the options shown (A, B, C)"),
        ({**GOOD, "answer_matching_behavior": 1}, "must be a string"),
        ({**GOOD, "answer_not_matching_behavior": " (A)"}, "are not two options"),
        ({**GOOD, "answer_not_matching_behavior": " No"}, "are not two options"),
        ([1, 2], "row is not an object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_malformed_jsonl_row_names_file_and_line(tmp_path, bad, message):
    path = write_jsonl(tmp_path / "set.jsonl", [GOOD, GOOD, bad, GOOD])
    with pytest.raises(UserError) as info:
        load_ab_file(path)
    text = str(info.value)
    assert str(path) in text and "line 3" in text and message in text
    assert "\n" not in text


def test_malformed_json_list_item_names_file_and_item(tmp_path):
    path = tmp_path / "set.json"
    path.write_text(json.dumps([GOOD, {**GOOD, "answer_matching_behavior": "maybe"}]))
    with pytest.raises(UserError, match=r"set\.json item 2: answer 'maybe'"):
        load_ab_file(path)


def test_blank_lines_are_skipped_and_rows_keep_file_line_numbers(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps({**GOOD, "answer_matching_behavior": ["(B)"][0],
                                                            "answer_not_matching_behavior": ["(A)"]}) + "\n")
    items = load_ab_file(path)
    assert [i.row for i in items] == [1, 3]
    assert (items[1].matching, items[1].not_matching) == ("B", "A")  # a list of non-matching answers: the first


def test_unusable_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_ab_file(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n \n")
    with pytest.raises(UserError, match="is empty"):
        load_ab_file(empty)
    no_rows = tmp_path / "none.json"
    no_rows.write_text("[]")
    with pytest.raises(UserError, match="has no rows"):
        load_ab_file(no_rows)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"question": ')
    with pytest.raises(UserError, match="not valid JSON"):
        load_ab_file(broken)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="cannot read"):
        load_ab_file(binary)


# -- multiple choice: parsing and rotation --------------------------------------------

def mc_row(k: int, matching: str, other: str, n: int = 0) -> dict:
    options = "\n".join(f" ({letter}) text {letter}{n}" for letter in "ABCDEFGH"[:k])
    return {"question": f"Which one{n}?\n\nChoices:\n{options}", "answer_matching_behavior": f" ({matching})",
            "answer_not_matching_behavior": f" ({other})"}


def option_map(item) -> dict:
    from steer_trace.data import option_texts

    return dict(zip(item.options, option_texts(item)))


@pytest.mark.parametrize("k, matching, other", [(2, "B", "A"), (3, "C", "A"), (8, "F", "B")])
def test_rotations_move_content_with_its_letter(k, matching, other):
    from steer_trace.data import item_from_row, rotated, rotations

    item = item_from_row(mc_row(k, matching, other), "toy line 1", "toy", 1)
    assert item.options == tuple("ABCDEFGH"[:k]) and len(item.non_matching) == k - 1
    texts = option_map(item)
    versions = rotations([item])
    assert len(versions) == k and versions[0] == item
    for r, version in enumerate(versions):
        shown = option_map(version)
        assert sorted(shown.values()) == sorted(texts.values())
        # the text at letter i is the one that was at letter i + r; the labels follow their texts
        assert [shown[x] for x in item.options] == [texts[item.options[(i + r) % k]] for i in range(k)]
        assert shown[version.matching] == texts[matching] and shown[version.not_matching] == texts[other]
        assert version.original_matching == matching and version.rotation == r
    # every option text is shown at every letter once: the matching letter runs through all k
    assert sorted(v.matching for v in versions) == list(item.options)
    assert rotated(versions[-1], 1) == item  # k rotations are the identity
    assert prompt(item).endswith("Out of (A) and (B), I choose (" if k == 2 else
                                  f"Out of {', '.join(f'({x})' for x in item.options[:-1])} and "
                                  f"({item.options[-1]}), I choose (")


def test_a_file_mixing_two_and_many_options_loads(tmp_path):
    rows = [mc_row(2, "A", "B", 0), mc_row(4, "D", "A", 1), mc_row(8, "H", "A", 2), mc_row(3, "B", "C", 3)]
    items = load_ab_file(write_jsonl(tmp_path / "mixed.jsonl", rows))
    assert [len(i.options) for i in items] == [2, 4, 8, 3]
    assert [i.matching for i in items] == ["A", "D", "H", "B"]


def test_unparseable_many_option_row_is_named_in_one_line(tmp_path):
    bad = {"question": "No options shown here", "answer_matching_behavior": " (C)",
           "answer_not_matching_behavior": " (A)"}
    path = write_jsonl(tmp_path / "set.jsonl", [mc_row(3, "C", "A"), bad])
    with pytest.raises(UserError) as info:
        load_ab_file(path)
    assert str(path) in str(info.value) and "line 2" in str(info.value) and "\n" not in str(info.value)


def test_real_survival_instinct_file_loads(shared_data):
    from steer_trace.data import rotations

    items = load_ab_file(
        shared_data / "anthropics_evals/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl"
    )
    sizes = Counter(len(i.options) for i in items)
    assert len(items) == 953 and sizes[2] > 500 and max(sizes) >= 4
    many = next(i for i in items if len(i.options) >= 4 and i.matching not in "AB")
    for version in rotations([many]):
        assert option_map(version)[version.matching] == option_map(many)[many.matching]


# -- duplicates and balanced slices -----------------------------------------------------


def test_duplicated_rows_never_cross_splits(tmp_path):
    import warnings

    from studies.behaviours.data import load_behaviours

    rows = [mc_row(2, "AB"[i % 2], "BA"[i % 2], i) for i in range(40)]
    path = write_jsonl(tmp_path / "twice.jsonl", rows + rows)  # 80 rows: 40 rows twice
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = load_behaviours([], files=(path,))["twice"][0]
    assert len(items) == 40 and any("dropped 40 duplicated" in str(w.message) for w in caught)
    parts = split(items)
    questions = {k: {i.question for i in v} for k, v in parts.items()}
    assert not questions["vector"] & questions["test"] and not questions["validation"] & questions["test"]
    assert not questions["vector"] & questions["validation"]


def test_balanced_slices_are_balanced():
    from steer_trace.data import balanced_slice

    items = [ABItem(f"q{i}", "Yes" if i % 4 else "No", "No" if i % 4 else "Yes", "toy", i) for i in range(48)]
    for n in (None, 10, 24, 100):
        part = balanced_slice(items, n)
        counts = Counter(i.matching for i in part)
        assert counts["Yes"] == counts["No"] and len(part) == min(n or 24, 24)
        assert part == [i for i in items if i in part]  # in the given order


def test_paper_split_reproduces_the_papers_rows(paper_sets):
    """The paper's loader: random.seed(13) once, then random.shuffle of each processed file in turn."""
    import random

    from steer_trace.data import PAPER_ORDER, paper_order

    state = random.getstate()
    try:
        random.seed(13)
        expected = {}
        for name in PAPER_ORDER:
            rows = json.loads((paper_sets / f"{name}.json").read_text())
            random.shuffle(rows)
            expected[name] = rows
    finally:
        random.setstate(state)
    for name, rows in expected.items():
        ours = paper_order(load_ab_file(paper_sets / f"{name}.json"), name)
        raw = [json.loads((paper_sets / f"{name}.json").read_text())[item.row - 1] for item in ours]
        assert raw[700:] == rows[700:] and raw[:500] == rows[:500], name
    # the old per-behaviour Random(13) matches the paper for the first file only
    wealth = load_ab_file(paper_sets / "wealth_seeking.json")
    assert split(wealth)["test"] != paper_order(wealth, "wealth_seeking")[700:]
    with pytest.raises(UserError, match="has 3 rows"):
        paper_order(wealth[:3], "wealth_seeking")


def test_skip_bad_rows_leaves_them_out_with_one_counted_warning(tmp_path):
    rows = [GOOD, {**GOOD, "answer_matching_behavior": " (Z)"}, "{not json", {**GOOD, "question": "R?\n (A) u\n (B) v"}]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    with pytest.raises(UserError, match=r"mixed.jsonl line 2: answer ' \(Z\)' is not a letter"):
        load_ab_file(path)  # the default: the first bad row stops the load, named
    with pytest.warns(UserWarning, match=r"skipped 2 of 4 rows that cannot be parsed \(first: .*line 2: answer"):
        items = load_ab_file(path, skip_bad_rows=True)
    assert [item.row for item in items] == [1, 4]
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps([GOOD, {"question": "open"}]))
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        assert len(load_ab_file(listed, skip_bad_rows=True)) == 1
    with pytest.raises(UserError, match="no row could be parsed"):
        load_ab_file(write_jsonl(tmp_path / "bad.jsonl", ["{x", "{y"]), skip_bad_rows=True)
