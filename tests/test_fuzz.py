"""Fuzzing (hypothesis): whatever a dataset file or an option value holds, the loaders and parsers either
work or raise `UserError`, and the CLI answers with exit code 0 or 2, never 1 and never a traceback."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from steer_trace import data
from steer_trace.errors import UserError
from studies.behaviours import data as behaviour_data
from studies.behaviours.profiles import PROFILES, make_profile
from tasks.common import parse_numbers
from studies.skills import profiles
from tasks.cli import main

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
KEYS = ("question", "answer_matching_behavior", "answer_not_matching_behavior")

# -- dataset rows ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
valid_pairs = st.sampled_from([(" (A)", " (B)"), ("(B)", "(A)"), ("A", "B"), (" Yes", " No"), ("No", "Yes"),
                               (" (A)", [" (B)", " (A)"])])
junk_answers = st.sampled_from(["C", "(C)", "", " ", "a", "yes", "A B", "(A", "AB", "Ä", "٣", "(Yes)"]) \
    | st.text(max_size=6) | json_values
questions = st.one_of(
    st.builds(lambda a, b, c: f"{a}\n\nChoices:\n (A) {b}\n (B) {c}", st.text(max_size=20), st.text(max_size=10),
              st.text(max_size=10)),
    st.builds(lambda q: f"Human:\n{q}\n\nAI:\nOut of (A) and (B), I choose (", st.text(max_size=20)),
    st.text(max_size=60),
    st.sampled_from(["Question:", " Question: Answer: ", "Question: Is it?\nAnswer:"]),  # the paper's labels
)


@st.composite
def rows(draw):
    """A valid row three times in four; otherwise one mutation: a key missing, a value replaced by
    anything JSON can hold, stray keys, or not an object at all."""
    question = draw(questions)
    match, other = draw(valid_pairs)
    row = {KEYS[0]: question, KEYS[1]: match, KEYS[2]: other}
    mutation = draw(st.sampled_from(["none"] * 12 + ["drop", "replace", "answer", "stray"]))
    if draw(st.integers(0, 29)) == 0:
        mutation = "not a dict"
    if mutation == "drop":
        del row[draw(st.sampled_from(KEYS))]
    elif mutation == "replace":
        row[draw(st.sampled_from(KEYS))] = draw(json_values)
    elif mutation == "answer":
        row[draw(st.sampled_from(KEYS[1:]))] = draw(junk_answers)
    elif mutation == "stray":
        row.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    elif mutation == "not a dict":
        return draw(json_values)
    return row


@st.composite
def dataset_texts(draw) -> str:
    """The text of a JSONL file or a JSON list file; now and then a line that is not JSON at all."""
    items = draw(st.lists(rows(), max_size=4))
    if draw(st.booleans()):
        return json.dumps(items, ensure_ascii=draw(st.booleans()))
    lines = [json.dumps(row, ensure_ascii=draw(st.booleans())) for row in items]
    if draw(st.integers(0, 9)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=30).filter(lambda t: "\n" not in t)))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))


def _write(folder: Path, text: str | bytes) -> Path:
    path = folder / "fuzzed-set.jsonl"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _check_items(items) -> None:
    assert items and all(isinstance(item, data.ABItem) for item in items)
    for item in items:
        assert item.matching in item.options and item.not_matching in item.options
        assert item.matching != item.not_matching and isinstance(item.question, str) and item.question.strip()
        assert data.prompt(item).endswith(f"Out of ({item.options[0]}) and ({item.options[1]}), I choose (")


@FUZZ
@given(dataset_texts())
def test_fuzzed_dataset_files_load_or_raise_user_error(text):
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder), text)
        try:
            items = data.load_ab_file(path)
        except UserError as error:
            assert "\n" not in str(error) and str(path) in str(error)
            return
        _check_items(items)
        try:  # the behaviour loader on top: the paper's clean-up, one answer family per file
            loaded = behaviour_data.load_behaviours([], files=(path,))
        except UserError:
            return
        assert list(loaded) == ["fuzzed_set"] and len(loaded["fuzzed_set"][0]) == len(
            data.deduplicate(behaviour_data.clean(items)))
        _check_items(loaded["fuzzed_set"][0])
        try:
            asked = data.both_orders(loaded["fuzzed_set"][0])
        except UserError:  # an A/B question whose options cannot be found to swap
            return
        assert len(asked) == 2 * len(loaded["fuzzed_set"][0])  # each (deduplicated) A/B question in both orders


@FUZZ
@given(st.binary(max_size=200))
def test_fuzzed_bytes_load_or_raise_user_error(raw):
    with tempfile.TemporaryDirectory() as folder:
        try:
            items = data.load_ab_file(_write(Path(folder), raw))
        except UserError:
            return
        _check_items(items)


def test_the_file_fuzzer_also_makes_loadable_files():
    """A fuzzer that only ever produced broken files would test the error paths alone."""
    def loads_several(text: str) -> bool:
        with tempfile.TemporaryDirectory() as folder:
            try:
                return len(data.load_ab_file(_write(Path(folder), text))) >= 2
            except UserError:
                return False

    found = find(dataset_texts(), loads_several, settings=settings(max_examples=500, database=None))
    with tempfile.TemporaryDirectory() as folder:
        _check_items(data.load_ab_file(_write(Path(folder), found)))


# -- option values, parsed directly -----------------------------------------------------------------------------

number_lists = st.one_of(
    st.text(max_size=20),
    st.lists(st.one_of(st.integers(-10**6, 10**6).map(str), st.floats().map(repr), st.text(max_size=4)),
             max_size=5).map(",".join),
    st.sampled_from(["", ",", " , ", "1,,2", "nan", "inf", "-inf", "1e999", "1_000", "٣", "0x10", "+3", "1e-3"]),
)


@FUZZ
@given(number_lists, st.sampled_from([int, float]))
def test_parse_numbers_returns_numbers_or_user_error(text, kind):
    try:
        numbers = parse_numbers(text, kind)
    except UserError as error:
        assert "\n" not in str(error)
        return
    assert numbers is None or all(isinstance(n, kind) for n in numbers)
    assert numbers is None or all(n == n and abs(n) != float("inf") for n in numbers)


@FUZZ
@given(st.sampled_from([*PROFILES, "", "Quick", "papers"]) | st.text(max_size=8),
       *[st.none() | st.integers(-5, 10**9)] * 3)
def test_make_profile_returns_a_profile_or_user_error(name, n_vector, n_validation, n_test):
    try:
        profile = make_profile(name, n_vector, n_validation, n_test)
    except UserError:
        assert name not in PROFILES or min(n for n in (n_vector, n_validation, n_test, 1) if n is not None) < 1
        return
    assert profile.name == name
    assert profile.n_test == (n_test if n_test is not None else PROFILES[name].n_test)


@FUZZ
@given(st.sampled_from(["quick", "paper", "test"]) | st.text(max_size=6), number_lists,
       st.none() | st.integers(-3, 10**6), st.none() | st.integers(-3, 10**6))
def test_skills_profile_and_coefs_parse_or_user_error(name, coefs, n_eval, batch_size):
    try:
        profile = profiles.make_profile(name, coefs=parse_numbers(coefs), n_eval=n_eval, batch_size=batch_size)
    except UserError:
        return
    assert 0.0 in profile.coefs and all(c == c for c in profile.coefs)


# -- option values through the CLI, stopped before any model runs ---------------------------------------------

option_text = st.text(max_size=12)
int_text = st.integers(-3, 10**12).map(str)  # of click's type; its own check of the text is click's job
layer_lists = st.one_of(st.lists(st.integers(-2, 40), min_size=1, max_size=3).map(lambda ns: ",".join(map(str, ns))),
                        number_lists)


def with_junk(options: dict, names: list[str]):
    """Options of the right type (so most examples get past click), and now and then one of them
    replaced by arbitrary text (given last, so it wins)."""
    return st.tuples(st.fixed_dictionaries({}, optional=options),
                     st.none() | st.tuples(st.sampled_from(names), option_text))


def _argv(drawn) -> list[str]:
    options, junk = drawn
    argv = [f"{key}={value}" for key, value in options.items()]
    return argv + ([f"{junk[0]}={junk[1]}"] if junk else [])


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "tiny.jsonl"
    rows = [{"question": f"Pick {i}?\n\nChoices:\n (A) x{i}\n (B) y{i}", "answer_matching_behavior": " (A)"
             if i % 2 else " (B)", "answer_not_matching_behavior": " (B)" if i % 2 else " (A)"} for i in range(12)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def _outcome(result) -> None:
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr


BEHAVIOUR_OPTIONS = {
    "--profile": st.sampled_from(["quick", "paper", "test"]), "--n-test": int_text, "--n-vector": int_text,
    "--n-validation": int_text, "--batch-size": int_text, "--layers": layer_lists,
    "--orders": st.sampled_from(["both", "given"]), "--prompt-style": st.sampled_from(["paper", "chat"]),
    "--behaviours": st.sampled_from(["myopic", " agreeableness, myopic ", "myopic,tiny", ","]) | option_text,
}


@FUZZ
@given(drawn=with_junk(BEHAVIOUR_OPTIONS, list(BEHAVIOUR_OPTIONS)))
def test_behaviours_options_fuzzed_through_the_cli(drawn, smol, tiny_set, tmp_path_factory, monkeypatch):
    """`single` with --add-coef but no --subtract-coef: every path ends in a validation error before a
    model runs (the model is the session's smollm2, already loaded)."""
    monkeypatch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)
    monkeypatch.setenv("STEER_TRACE_DATA", str(behaviour_data.project_data_dir()))  # never the hub
    root = tmp_path_factory.getbasetemp() / "fuzz-results"
    argv = ["behaviours", "single", "--dataset", str(tiny_set), "--results", str(root), "--add-coef", "1",
            *_argv(drawn)]
    result = CliRunner().invoke(main, argv)
    _outcome(result)
    assert result.exit_code == 2  # never reaches a model run
    assert not (root / "behaviours_single").exists()


SKILLS_OPTIONS = {
    "--coefs": st.lists(st.floats(-100, 100), min_size=1, max_size=4).map(lambda xs: ",".join(map(repr, xs)))
    | number_lists,
    "--n-eval": int_text, "--max-tokens": int_text, "--batch-size": int_text, "--seed": int_text,
    "--layers": layer_lists, "--profile": st.sampled_from(["quick", "paper"]),
}


@FUZZ
@given(drawn=with_junk(SKILLS_OPTIONS, list(SKILLS_OPTIONS)))
def test_skills_options_fuzzed_through_the_cli(drawn, tmp_path_factory, monkeypatch):
    """`skills sweep` with an unknown --targets stops before the (lazily loaded) model is needed."""
    def no_model(spec):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("studies.skills.cli.open_model", no_model)
    monkeypatch.delenv("STEER_TRACE_DATA", raising=False)  # the project's small skills set
    root = tmp_path_factory.getbasetemp() / "fuzz-skills"
    argv = ["skills", "sweep", "--targets", "telepathy", "--results", str(root), *_argv(drawn)]
    result = CliRunner().invoke(main, argv)
    _outcome(result)
    assert result.exit_code == 2
