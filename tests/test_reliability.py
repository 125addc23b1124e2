"""Reliability through the real CLI: every user mistake is one `error:` line and exit code 2 (never a
traceback), the same command gives the same table twice, no unsafe deserialisation anywhere in the
code, out-of-memory batches are halved (and a single item that does not fit is a clean error), and
dataset files stream."""
from __future__ import annotations

import ast
import itertools
import json
import pickle
import tracemalloc
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from steer_trace import data as data_module
from steer_trace.cache import load_tables
from steer_trace.errors import UserError, halve_on_oom, is_out_of_memory
from studies.behaviours.profiles import model_layer
from steer_trace.read import read_batch
from steer_trace.vectors import SteeringVector
from tasks.cli import main
from cli_checks import one_error_line

REPO = Path(__file__).resolve().parents[1]
LAYER = model_layer(10, 30)  # 9 on smollm2-135m, the test profile's report layer




@pytest.fixture(scope="module")
def behaviours(smol, behaviour_sets, tmp_path_factory):
    """`steer-trace behaviours ...` on the session's smollm2 (no reload), profile test, one small behaviour;
    the results root is shared by the module so the behaviour's vector is extracted once."""
    root = tmp_path_factory.mktemp("reliability") / "results"
    patch = pytest.MonkeyPatch()
    patch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)

    def invoke(command, *args, data=True, results=None, behaviour="myopic"):
        argv = ["behaviours", command, "--profile", "test", "--n-test", "2", "--results", str(results or root), *args]
        if data:
            argv += ["--data-dir", str(behaviour_sets), "--behaviours", behaviour]
        return CliRunner().invoke(main, argv)

    invoke.root = root
    yield invoke
    patch.undo()


# -- layers, options ----------------------------------------------------------------------------------------


def test_layer_out_of_range_on_behaviours(behaviours):
    one_error_line(behaviours("single", "--layers", "99", "--add-coef", "1", "--subtract-coef", "1"),
                   "layer 99 is out of range", "0..29")


def test_layer_out_of_range_on_skills(smol, skills_data_args, tmp_path, monkeypatch):
    monkeypatch.setattr("studies.skills.cli.open_model", lambda spec: smol)
    root = tmp_path / "results"
    common = [*skills_data_args, "--results", str(root)]
    # no saved vectors: the layer is checked before the sweep would extract them (minutes on a large model)
    result = CliRunner().invoke(main, ["skills", "sweep", *common, "--n-eval", "2", "--max-tokens", "16",
                                       "--layers", "99", "--coefs", "1"])
    one_error_line(result, "layer 99 is out of range")
    assert "extracting" not in result.output and not (root / "skills_extract").exists()


@pytest.mark.parametrize("where", ["--dataset", "--data-dir"])
def test_a_missing_data_path_is_an_error_before_the_model_opens(where, tmp_path, monkeypatch):
    def no_model(spec):
        raise AssertionError("the model was opened")

    monkeypatch.setattr("studies.behaviours.cli.open_model", no_model)
    result = CliRunner().invoke(main, ["behaviours", "single", where, str(tmp_path / "missing"), "--results",
                                       str(tmp_path / "results"), "--add-coef", "1", "--subtract-coef", "1"])
    one_error_line(result, "does not exist")


@pytest.mark.parametrize("args, needle", [
    (["simultaneous", "--layers", "3"], "one layer per behaviour"),  # two behaviours, one layer
    (["single", "--n-test", "-3"], "--n-test must be at least 1"),
    (["single", "--n-vector", "0"], "--n-vector must be at least 1"),
    (["single", "--batch-size", "-2"], "-2 is not in the range x>=1"),  # was taken as 1, silently
    (["single", "--add-coef", "2"], "give both --add-coef and --subtract-coef"),
    (["single", "--layers", "9,x", "--add-coef", "1", "--subtract-coef", "1"], "cannot read '9,x'"),
    (["single", "--layers", "9,,14", "--add-coef", "1", "--subtract-coef", "1"], "'9,,14' has an empty item"),
    (["single", "--n-test", "two"], "'two' is not a valid integer"),
    (["single", "--profile", "huge"], "'huge' is not one of"),
    (["single", "--orders", "random"], "'random' is not one of"),
])
def test_contradictory_or_bad_options(behaviours, args, needle):
    command, *rest = args
    one_error_line(behaviours(command, *rest, behaviour="myopic,agreeableness"), needle)


@pytest.mark.parametrize("args, needle", [
    (["single", "--layers", str(LAYER), "--add-coef", "nan", "--subtract-coef", "1"], "is not a finite number"),
    (["simultaneous", "--coefs", "1,inf"], "numbers must be finite"),
    (["grid", "--coefs", "nan"], "numbers must be finite"),
])
def test_non_finite_multipliers(behaviours, args, needle):
    command, *rest = args
    one_error_line(behaviours(command, *rest), needle)


# -- vector files ---------------------------------------------------------------------------------------------


def _vector_file(tmp_path, kind: str) -> Path:
    path = tmp_path / f"{kind}.safetensors"
    if kind == "wide":
        SteeringVector({LAYER: torch.ones(100)}, {"name": "wide"}).save(path)
    elif kind == "truncated":
        SteeringVector({LAYER: torch.ones(576)}, {"name": "ok"}).save(path)
        path.write_bytes(path.read_bytes()[:-700])
    elif kind == "nan":
        SteeringVector({LAYER: torch.full((576,), float("nan"))}, {"name": "nan"}).save(path)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"layer.9": [0.0] * 576}))
    elif kind == "torch-save":
        torch.save({f"layer.{LAYER}": torch.ones(576)}, path)
    return path


@pytest.mark.parametrize("kind, needle", [
    ("wide", "has width 100, model smollm2-135m has 576"),
    ("truncated", "is not a readable safetensors vector file"),
    ("nan", "contains NaN or inf"),
    ("pickle", "never unpickled"),
    ("torch-save", "never unpickled"),
])
def test_bad_vector_files_on_tax(behaviours, tmp_path, kind, needle):
    path = _vector_file(tmp_path, kind)
    result = behaviours("tax", "--vectors", str(path), "--layers", str(LAYER), "--coefs", "1")
    one_error_line(result, needle)


# -- dataset files --------------------------------------------------------------------------------------------

GOOD_ROW = {"question": "Pick one?\n\nChoices:\n (A) yes\n (B) no", "answer_matching_behavior": " (A)",
            "answer_not_matching_behavior": " (B)"}


@pytest.mark.parametrize("content, needle", [
    (None, "does not exist"),
    ("", "is empty"),
    ("\n  \n", "is empty"),
    ("this is not json\n", "line 1: not valid JSON"),
    (json.dumps(GOOD_ROW) + "\n" + json.dumps({"answer_matching_behavior": " (A)",
                                               "answer_not_matching_behavior": " (B)"}),
     "line 2: missing or empty 'question'"),
    (json.dumps(GOOD_ROW) + "\n" + json.dumps({**GOOD_ROW, "answer_matching_behavior": " (C)"}),
     "line 2: answer (C) but the question shows no options"),
    (json.dumps([GOOD_ROW, {**GOOD_ROW, "answer_not_matching_behavior": "Maybe"}]),
     "item 2: answer 'Maybe' is not a letter (A)-(H) or Yes/No"),
    (json.dumps({**GOOD_ROW, "answer_not_matching_behavior": " No"}), "are not two options of one question"),
])
def test_bad_dataset_files(behaviours, tmp_path, content, needle):
    path = tmp_path / "custom.jsonl"
    if content is not None:
        path.write_text(content)
    line = one_error_line(behaviours("single", "--dataset", str(path), data=False), needle)
    assert str(path) in line  # names the file


def test_dataset_that_is_a_folder(behaviours, tmp_path):
    one_error_line(behaviours("single", "--dataset", str(tmp_path), data=False), "is a folder")


# -- results folder -------------------------------------------------------------------------------------------


def _unwritable_by_mode(tmp_path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:  # root ignores the mode bits (os.access says writable too): then there is nothing to test
        (folder / "probe").write_text("")
    except OSError:
        return folder / "results"
    folder.chmod(0o700)
    pytest.skip("running as root: a 0o500 folder is still writable")


@pytest.mark.parametrize("how", ["mode-0o500", "under-a-regular-file"])
def test_results_folder_that_is_not_writable(behaviours, tmp_path, how):
    if how == "under-a-regular-file":  # fails for root too
        (tmp_path / "file.txt").write_text("a file, not a folder")
        root = tmp_path / "file.txt" / "sub"
    else:
        root = _unwritable_by_mode(tmp_path)
    try:
        result = behaviours("single", "--layers", str(LAYER), "--add-coef", "1", "--subtract-coef", "1",
                            results=root)
    finally:
        if how == "mode-0o500":
            root.parent.chmod(0o700)
    one_error_line(result, f"results folder {root} is not writable")  # checked before any model runs


# -- NDIF -----------------------------------------------------------------------------------------------------


@pytest.fixture
def nnsight_host(monkeypatch):
    """The real open_model (the module's fixture may have patched it); --remote points nnsight's global
    config at the host: put it back afterwards."""
    from nnsight import CONFIG

    from tasks import common

    monkeypatch.setattr("studies.behaviours.cli.open_model", common.open_model)

    saved = (CONFIG.API.HOST, CONFIG.API.APIKEY, CONFIG.APP.REMOTE_LOGGING)
    yield
    CONFIG.API.HOST, CONFIG.API.APIKEY, CONFIG.APP.REMOTE_LOGGING = saved


def test_unreachable_ndif_host_is_one_line(behaviour_sets, tmp_path, nnsight_host):
    # --remote checks the host before any model is loaded
    result = CliRunner().invoke(main, ["behaviours", "single", "--remote", "--ndif-host", "http://127.0.0.1:9",
                                       "--profile", "test", "--data-dir", str(behaviour_sets), "--behaviours",
                                       "myopic", "--results", str(tmp_path)])
    one_error_line(result, "NDIF host http://127.0.0.1:9 unreachable")


def test_ndif_host_that_is_not_a_url(behaviour_sets, tmp_path, nnsight_host):
    result = CliRunner().invoke(main, ["behaviours", "single", "--remote", "--ndif-host", "127.0.0.1:9",
                                       "--profile", "test", "--data-dir", str(behaviour_sets),
                                       "--results", str(tmp_path)])
    one_error_line(result, "must start with http:// or https://")


# -- determinism ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_same_command_twice_gives_identical_tables(smol, behaviour_sets, tmp_path, monkeypatch):
    monkeypatch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)
    tables = []
    for run in ("first", "second"):
        root = tmp_path / run
        result = CliRunner().invoke(main, [
            "behaviours", "single", "--profile", "test", "--n-test", "2", "--data-dir", str(behaviour_sets),
            "--behaviours", "myopic,agreeableness", "--layers", str(LAYER), "--add-coef", "4",
            "--subtract-coef", "4", "--results", str(root)])
        assert result.exit_code == 0, result.output
        assert "points computed" in result.stderr
        tables.append(load_tables("behaviours_single", root))
    first, second = tables
    assert first is not None and first.height == 2 * 5  # behaviours x (default, ±vector, ±random)
    assert first["p_matching"].n_unique() > 1  # steering changed something: the comparison is not vacuous
    assert first.equals(second)


# -- no unsafe deserialisation --------------------------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
# (path relative to the repository, what) pairs that are allowed, each with its reason; none today
ALLOWED_UNSAFE: dict[tuple[str, str], str] = {}


def _unsafe_uses(path: Path) -> list[str]:
    """Imports of pickle-like modules, torch.load, weights_only=False, eval(/exec( — in code, not in text
    (a docstring that says 'never unpickled' is fine)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"from {node.module} import")
        elif isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            found.append("from torch import load")
        elif isinstance(node, ast.Attribute) and node.attr == "load" and isinstance(node.value, ast.Name) \
                and node.value.id == "torch":
            found.append("torch.load")
        elif isinstance(node, ast.Name) and node.id in UNSAFE_MODULES | {"eval", "exec"}:
            found.append(f"{node.id}")
        elif isinstance(node, ast.keyword) and node.arg == "weights_only" and \
                isinstance(node.value, ast.Constant) and node.value.value is False:
            found.append("weights_only=False")
    return [f"{path.relative_to(REPO)}:{what}" for what in found
            if (str(path.relative_to(REPO)), what) not in ALLOWED_UNSAFE]


def test_no_unsafe_deserialisation_in_the_code():
    files = [p for folder in ("steer_trace", "tasks", "ndif_local") for p in sorted((REPO / folder).rglob("*.py"))]
    assert len(files) > 20
    hits = [hit for path in files for hit in _unsafe_uses(path)]
    assert hits == [], hits


def test_the_scanner_finds_what_it_looks_for(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nfrom dill import loads\nimport torch\nx = torch.load('f', weights_only=False)\n"
                   "y = eval('1')\n'''a docstring about pickle and torch.load is fine'''\nmodel.eval()\n")
    assert sorted(h.split(":", 1)[1] for h in _unsafe_uses(bad)) == sorted(
        ["import pickle", "from dill import", "torch.load", "weights_only=False", "eval"])


# -- out of memory --------------------------------------------------------------------------------------------


def _oom(message="CUDA out of memory. Tried to allocate 2.00 GiB"):
    return torch.OutOfMemoryError(message)


@pytest.mark.parametrize("error", [_oom(), RuntimeError("DefaultCPUAllocator: can't allocate memory: 8 GB"),
                                   MemoryError()])
def test_out_of_memory_is_recognised(error):
    assert is_out_of_memory(error)
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("memory"))


def test_halve_on_oom_halves_until_it_fits_and_keeps_the_order():
    calls = []

    def run(batch):
        calls.append(len(batch))
        if len(batch) > 2:
            raise _oom()
        return torch.tensor([x * x for x in batch])

    items = list(range(7))
    with pytest.warns(UserWarning, match="out of memory at batch size 7"):
        got = halve_on_oom(run, items, torch.cat)
    assert calls == [7, 3, 1, 2, 4, 2, 2]  # 7 -> 3 + 4; 3 -> 1 + 2; 4 -> 2 + 2
    in_twos = torch.cat([run(items[i:i + 2]) for i in range(0, 7, 2)])
    assert torch.equal(got, in_twos)


def test_halve_on_oom_other_errors_pass_through_and_one_item_is_a_user_error():
    def failing(error):
        def run(batch):
            raise error
        return run

    with pytest.raises(ValueError, match="a bug"):
        halve_on_oom(failing(ValueError("a bug")), [1, 2, 3], list)
    with pytest.warns(UserWarning), pytest.raises(UserError, match="out of memory on a single item even at "
                                                                    "--batch-size 1"):
        halve_on_oom(failing(_oom()), [1, 2, 3], list)


class BatchLimit:
    """A forward pre-hook on layer 0 that raises torch.OutOfMemoryError for batches above `limit` rows (the
    real model runs; only the allocator failure is simulated)."""

    def __init__(self, model, limit: int):
        self.limit, self.sizes = limit, []
        self.handle = model.lm._module.model.layers[0].register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        rows = (args[0] if args else kwargs["hidden_states"]).shape[0]
        self.sizes.append(rows)
        if rows > self.limit:
            raise _oom()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_reading_halves_a_batch_that_runs_out_of_memory(smol):
    texts = [f"Sentence number {i} is " + "rather long " * i for i in range(5)]
    with BatchLimit(smol, 2) as limit, pytest.warns(UserWarning, match="out of memory at batch size 5"):
        got = read_batch(smol, texts, [3, LAYER])
    assert limit.sizes == [5, 2, 3, 1, 2]  # 5 -> 2 + 3; 3 -> 1 + 2
    whole = read_batch(smol, texts, [3, LAYER])  # no limit: one batch of 5, padded differently
    for L in (3, LAYER):
        assert got[L].shape == (5, 576)
        assert torch.allclose(got[L], whole[L], atol=1e-3, rtol=1e-4)


def test_scoring_halves_a_batch_that_runs_out_of_memory(smol):
    from steer_trace.plan import Plan
    from steer_trace.score import answer_probs, answer_token_ids

    prompts = [f"Question {i}: pick one.\n(A) yes (B) no\nI choose (" for i in range(4)]
    ids = answer_token_ids(smol.tokenizer, ["A", "B"])
    [(expected, greedy_expected)] = answer_probs(smol, prompts, ids, [Plan.none()], batch_size=2)
    with BatchLimit(smol, 2) as limit, pytest.warns(UserWarning, match="out of memory at batch size 4"):
        [(probs, greedy)] = answer_probs(smol, prompts, ids, [Plan.none()], batch_size=4)
    assert limit.sizes == [4, 2, 2]
    assert torch.allclose(probs, expected, atol=1e-5) and torch.equal(greedy, greedy_expected)


def test_cli_out_of_memory_even_at_batch_size_one_is_one_line(smol, behaviour_sets, tmp_path, monkeypatch):
    monkeypatch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)
    with BatchLimit(smol, 0) as limit:
        result = CliRunner().invoke(main, [
            "behaviours", "extract", "--profile", "test", "--data-dir", str(behaviour_sets), "--behaviours", "myopic",
            "--results", str(tmp_path / "results"), "--batch-size", "4"])
    one_error_line(result, "out of memory", "--batch-size 1")
    assert limit.sizes[0] >= 2 and limit.sizes[-1] == 1  # halved down to one text before giving up


# -- streaming ------------------------------------------------------------------------------------------------


class CountingFile:
    """A text file that counts the lines handed out (iteration and read())."""

    def __init__(self, *args, **kwargs):
        self.file = open(*args, **kwargs)  # noqa: SIM115 - closed in __exit__
        self.lines = 0
        CountingFile.last = self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def __iter__(self):
        return self

    def __next__(self):
        line = next(self.file)
        self.lines += 1
        return line

    def read(self, *args):
        text = self.file.read(*args)
        self.lines += text.count("\n")
        return text


def test_jsonl_dataset_streams(tmp_path, monkeypatch):
    path = tmp_path / "big.jsonl"
    row = json.dumps(GOOD_ROW)
    with open(path, "w") as f:
        for _ in range(200_000):
            f.write(row + "\n")
    assert path.stat().st_size > 15_000_000
    monkeypatch.setattr(data_module, "open", CountingFile, raising=False)  # the module's `open` only
    tracemalloc.start()
    try:
        first = list(itertools.islice(data_module.iter_ab_file(path), 10))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(first) == 10 and [item.row for item in first] == list(range(1, 11))
    assert CountingFile.last.lines == 10  # read no further than asked
    assert peak < 2_000_000  # the 15 MB file was never held in memory
