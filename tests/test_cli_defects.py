"""Reliability defects found by the red team of 9bf8c2f, each through the real CLI (`tasks.cli:main`):
too few questions for a verdict, cache keys that drop an option, damaged files on every reader,
truncated inputs, and the messages that tell the user what to do."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from steer_trace.cache import Run
from steer_trace.stats import MIN_PER_LABEL
from tasks.cli import main
from cli_checks import one_error_line  # noqa: F401 - used by the tests below


def _ab_row(vector, direction, coef, scores, labels, layer=9, **extra):
    n = len(scores)
    return {"model": "tiny", "profile": "quick", "split_rule": "seeded", "scoring": "content",
            "vector_source": "content", "relative": True, "behaviour": "myopic", "vector": vector, "layer": layer,
            "layers": str(layer), "direction": direction, "coef": float(coef), "split": "test",
            "q_id": list(range(n)), "q_label": labels, "q_p_matching": [float(v) for v in scores],
            "p_matching_balanced": float(np.mean(scores)), "n_questions": n, **extra}


def _single_table(root, per_label: int, planted: float = 0.3):
    """A cached single-steering run with `per_label` questions per answer label: the vector moves every
    question by `planted`, its random control by nothing."""
    labels = ["A", "B"] * per_label
    base = np.linspace(0.2, 0.6, 2 * per_label)
    rows = [_ab_row("none", "default", 0, base, labels),
            _ab_row("myopic", "add", 1, base + planted, labels),
            _ab_row("random", "add", 1, base, labels)]
    Run("behaviours_single", {"synthetic": per_label}, root).finish([pl.DataFrame(rows)])


# -- too few questions: no interval, p-value or verdict -------------------------------------------------------


def test_report_says_too_few_questions_instead_of_a_verdict(tmp_path):
    """One question per label (`--n-test 2`): the bootstrap cannot vary; the report said 'moves' with a
    zero-width interval and p < 0.001. It must say 'too few questions' and state the minimum."""
    root = tmp_path / "results"
    _single_table(root, per_label=1)
    result = CliRunner().invoke(main, ["behaviours", "report", "--results", str(root), "--profile", "quick",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "tiny.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| myopic"))
    assert "too few questions" in row and "| moves" not in row and "< 0.001" not in row
    assert f"needs at least {MIN_PER_LABEL} questions per answer label" in text


def test_report_gives_a_verdict_at_the_minimum(tmp_path):
    root = tmp_path / "results"
    _single_table(root, per_label=MIN_PER_LABEL)
    result = CliRunner().invoke(main, ["behaviours", "report", "--results", str(root), "--profile", "quick",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    row = next(line for line in (tmp_path / "out" / "tiny.md").read_text().splitlines() if line.startswith("| myopic"))
    assert row.rstrip(" |").split("|")[-2].strip() == "moves"


def test_paired_shift_below_the_minimum_has_no_interval():
    from steer_trace.stats import paired_shift

    few = paired_shift([0.5, 0.9], [0.1, 0.2], ["A", "B"])
    assert few.too_few and few.per_label == 1 and np.isnan([few.lo, few.hi, few.p, few.mde]).all()
    assert few.shift == pytest.approx(0.55)
    base = np.random.default_rng(0).uniform(0, 1, 20)
    enough = paired_shift(base + 0.1 + np.random.default_rng(1).normal(0, 0.05, 20), base, ["A", "B"] * 10)
    assert not enough.too_few and enough.lo < enough.shift < enough.hi and enough.p < 0.01


# -- cache keys: every option that changes the work changes the key ----------------------------------------


class _Keyed(Exception):
    """Raised when the command builds its own table's Run: carries the key (no model work is done)."""


TARGETS = {"precondition": "behaviours_precondition", "single": "behaviours_single", "grid": "behaviours_grid",
           "diagnose": "behaviours_quality", "simultaneous": "behaviours_simultaneous",
           "combined": "behaviours_combined", "interference": "behaviours_interference", "tax": "behaviours_tax",
           "extract": "behaviours_vectors"}
FIXED = ["--add-coef", "4", "--subtract-coef", "4"]  # single / combined: no grid
BASE = {"single": FIXED, "combined": FIXED}
STUDY_OPTIONS = [["--n-test", "3"], ["--orders", "given"], ["--slices", "plain"], ["--split", "paper"],
                 ["--behaviours", "agreeableness"]]
VECTOR_OPTIONS = [["--n-vector", "5"], ["--plain-mean"], ["--method", "pca"], ["--split", "paper"],
                  ["--behaviours", "agreeableness"]]
STEER_OPTIONS = [["--scoring", "content"], ["--vector-source", "content"], ["--relative"], ["--op", "project-out"],
                 ["--scope", "prompt"], ["--n-vector", "5"], ["--plain-mean"], ["--method", "pca"]]
CHANGES = {
    "precondition": STUDY_OPTIONS,
    "single": STUDY_OPTIONS + STEER_OPTIONS + [["--layers", "5"], ["--add-coef", "8"], ["--subtract-coef", "8"],
                                               ["--more-random", "2"]],
    "grid": [["--n-validation", "3"], ["--split", "paper"], ["--layers", "5"], ["--coefs", "3"],
             ["--scoring", "content"], ["--relative"], ["--plain-mean"], ["--op", "project-out"]],
    "diagnose": VECTOR_OPTIONS + [["--layers", "5"], ["--vector-source", "content"]],
    "simultaneous": STUDY_OPTIONS + [["--coefs", "1,2"], ["--layers", "3"], ["--relative"], ["--plain-mean"],
                                     ["--scoring", "content"]],
    "combined": STUDY_OPTIONS + [["--coefs", "2"], ["--add-coef", "8"], ["--layers", "5"], ["--relative"]],
    "interference": [["--coefs", "3"], ["--layers", "5"], ["--n-test", "3"], ["--split", "paper"],
                     ["--scoring", "content"], ["--relative"]],
    "tax": [["--tax-docs", "3"], ["--coefs", "1"], ["--layers", "5"], ["--relative"], ["--plain-mean"],
            ],
    "extract": VECTOR_OPTIONS,
}


@pytest.fixture
def key_of_command(smol, behaviour_sets, tmp_path_factory):
    """key_of_command(command, *args) -> the cache key of the table `command` writes, read when the command
    builds that Run, before any scoring: vectors are random stand-ins, the model is the session's smollm2."""
    import torch

    from steer_trace import cache
    from steer_trace.vectors import SteeringVector

    root = tmp_path_factory.mktemp("keys") / "results"
    patch = pytest.MonkeyPatch()
    patch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)
    original = cache.Run.__init__
    target = {}

    def init(self, experiment, config, root=None):
        original(self, experiment, config, root)
        if experiment == target["experiment"]:
            raise _Keyed(self.key)

    def stand_ins(study, log=None):
        gen = torch.Generator().manual_seed(0)
        layers = {L: torch.randn(smol.d_model, generator=gen) for L in range(smol.n_layers)}
        return {name: SteeringVector(layers, {"name": name}) for name in study.names}

    patch.setattr(cache.Run, "__init__", init)
    patch.setattr("studies.behaviours.run.load_vectors", stand_ins)

    def run(command, *args):
        target["experiment"] = TARGETS[command]
        argv = ["behaviours", command, "--profile", "test", "--results", str(root), "--data-dir",
                str(behaviour_sets), *(["--behaviours", "myopic"] if "--behaviours" not in args else []),
                *BASE.get(command, []), *args]
        result = CliRunner().invoke(main, argv)
        assert isinstance(result.exception, _Keyed), (argv, result.output, result.exception)
        return result.exception.args[0]

    yield run
    patch.undo()


@pytest.mark.parametrize("command,change", [(c, ch) for c, changes in CHANGES.items() for ch in changes],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_option_that_changes_the_work_changes_the_key(key_of_command, command, change):
    """`behaviours precondition --split paper` once returned the cached `--split seeded` table: its key
    overwrote the split rule with the split part ('test'). Each option here changes what is computed."""
    assert key_of_command(command, *change) != key_of_command(command)


def test_the_same_command_keeps_its_key(key_of_command):
    assert key_of_command("single", "--batch-size", "3") == key_of_command("single")  # batch size: same numbers


def test_a_config_field_given_twice_is_a_bug_not_an_overwrite():
    from steer_trace.cache import merged

    assert merged({"a": 1}, {"b": 2}, {"a": 1}) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="'split' given twice"):
        merged({"split": "paper"}, {"split": "test"})


# -- damaged or odd inputs: one error line, exit 2 ------------------------------------------------------------


def test_npz_with_a_member_that_is_not_npy(tmp_path):
    """A zip whose only member is not a .npy: numpy hands back its bytes, which gave an AttributeError."""
    import zipfile

    path = tmp_path / "vector.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not an array")
    result = CliRunner().invoke(main, ["vectors", "import", "--from-array", str(path), "--out",
                                       str(tmp_path / "out.safetensors")])
    one_error_line(result, "member 'notes.txt' is not a .npy array")


def test_truncated_jsonl_gz_is_one_error_line(tmp_path):
    """A HumanEval-X file cut short: gzip raises EOFError, which click turned into 'Aborted!' and exit 1."""
    import gzip

    from studies.skills.corpora import HUMANEVAL, HUMANEVAL_X

    data = tmp_path / "data"
    (data / HUMANEVAL).parent.mkdir(parents=True)
    python = b'{"task_id": "HumanEval/0", "prompt": "", "canonical_solution": ""}\n'
    (data / HUMANEVAL).write_bytes(gzip.compress(python))
    whole = gzip.compress(b'{"task_id": "CPP/0", "prompt": "int f();", "canonical_solution": "}"}\n' * 50)
    for lang in ("cpp", "go", "java", "js", "rust"):
        target = data / HUMANEVAL_X / lang / "data" / f"humaneval_{lang}.jsonl.gz"
        target.parent.mkdir(parents=True)
        target.write_bytes(whole[: len(whole) // 2])
    result = CliRunner().invoke(main, ["skills", "extract", "--data-dir", str(data), "--results",
                                       str(tmp_path / "results")])
    one_error_line(result, "is truncated", "humaneval_")


def test_two_writers_of_one_vector_both_succeed(tmp_path, monkeypatch):
    """Vector saves used one fixed temporary name: a second writer of the same file, interleaved with the first,
    renamed the first one's temporary file away and the first failed with 'No such file or directory'."""
    import safetensors.torch
    import torch

    from steer_trace.vectors import SteeringVector

    source = tmp_path / "array.npy"
    np.save(source, np.ones((3, 8), dtype=np.float32))
    out = tmp_path / "v.safetensors"
    real = safetensors.torch.save_file
    other = {"writing": False}

    def interleaved(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        if not other["writing"]:  # another process saves the same vector between this write and its rename
            other["writing"] = True
            SteeringVector({0: torch.ones(8)}, {"name": "other"}).save(out)

    monkeypatch.setattr(safetensors.torch, "save_file", interleaved)
    result = CliRunner().invoke(main, ["vectors", "import", "--from-array", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(SteeringVector.load(out).layers) == [0, 1, 2]  # the last rename wins, whole
    assert not list(tmp_path.glob("*.tmp"))


def test_a_bad_byte_names_its_own_line(tmp_path, monkeypatch):
    monkeypatch.setattr("studies.behaviours.cli.open_model", lambda spec: pytest.fail("the model was opened"))
    row = '{"question": "Q? (A) x (B) y", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}\n'
    path = tmp_path / "custom.jsonl"
    path.write_bytes(row.encode() * 3 + b'{"question": "caf\xe9"}\n' + row.encode() * 2000)
    result = CliRunner().invoke(main, ["behaviours", "single", "--dataset", str(path), "--results",
                                       str(tmp_path / "results"), "--add-coef", "1", "--subtract-coef", "1"])
    one_error_line(result, "at line 4", "not UTF-8")


def test_a_file_where_a_folder_should_be_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr("studies.behaviours.cli.open_model", lambda spec: pytest.fail("the model was opened"))
    blocker = tmp_path / "results"
    blocker.write_text("a file")
    result = CliRunner().invoke(main, ["behaviours", "precondition", "--results", str(blocker / "inner")])
    one_error_line(result, f"{blocker} is a file, not a folder")
    source = tmp_path / "array.npy"
    np.save(source, np.ones((2, 4), dtype=np.float32))
    result = CliRunner().invoke(main, ["vectors", "import", "--from-array", str(source), "--out",
                                       str(blocker / "v.safetensors")])
    one_error_line(result, f"{blocker} is a file, not a folder")


# -- one damaged-file path for every table reader -------------------------------------------------------------


def _skills_points(root, damaged: int = 1):
    """Cached skills points (baseline + steered, three domains, 8 documents each) as a sweep writes them,
    with `damaged` of the files overwritten by random bytes of the same size."""
    import json

    from studies.skills import run as skills

    config = {"experiment": skills.POINTS, "model": "tiny", "revision": "r", "data": "project", "seed": 13}
    store = Run(skills.POINTS, config, root)
    (store.dir / f"{store.key}.config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    domains = ["text", "code", "python"] * 8

    def frame(accuracy):
        counts = rng.integers(20, 40, len(domains))
        return pl.DataFrame({"doc": list(range(len(domains))), "domain": domains, "language": domains,
                             "correct": (counts * accuracy).astype(int).tolist(), "count": counts.tolist()},
                            schema={"doc": pl.Int32, "domain": pl.Utf8, "language": pl.Utf8, "correct": pl.Int64,
                                    "count": pl.Int64})

    store.point({"kind": "baseline", "size": "sweep"}, lambda: frame(0.6))
    for coef in (1.0, 4.0, 16.0):
        store.point({"kind": "steered", "target": "code", "layer": 2, "coef": coef, "control": "none",
                     "size": "sweep"}, lambda coef=coef: frame(0.6 / coef))
    files = sorted(store.points_dir.glob("*.parquet"))
    for path in files[:damaged]:
        path.write_bytes(rng.bytes(path.stat().st_size))  # same size: only the checksum can tell
    return files[:damaged]


def test_a_damaged_skills_point_is_reported_and_skipped_by_report_and_figures(tmp_path):
    """One damaged point file crashed `skills report` and `figures` with polars' ComputeError."""
    root = tmp_path / "results"
    [bad] = _skills_points(root)
    with pytest.warns(UserWarning, match=f"cache entry {bad} is damaged or unreadable .*skipped"):
        report = CliRunner().invoke(main, ["skills", "report", "--results", str(root), "--out", str(tmp_path / "r")])
    assert report.exit_code == 0 and "wrote" in report.output, (report.output, report.exception)
    with pytest.warns(UserWarning, match=f"cache entry {bad} is damaged or unreadable .*skipped"):
        figures = CliRunner().invoke(main, ["figures", "--results", str(root), "--out", str(tmp_path / "f")])
    assert figures.exit_code == 0, (figures.output, figures.exception)
    assert bad.exists()  # readers never delete


@pytest.mark.slow
def test_a_damaged_point_of_a_finished_sweep_is_recomputed(smol, tmp_path, monkeypatch):
    """`skills sweep` run again over a finished sweep with a damaged point: it crashed; now the point is
    reported, deleted and recomputed (one point), and the sweep's table is whole again."""
    import re

    monkeypatch.setattr("studies.skills.cli._open", lambda spec: smol)
    monkeypatch.delenv("STEER_TRACE_DATA", raising=False)
    root = tmp_path / "results"
    args = ["skills", "sweep", "--results", str(root), "--sweep-tokens", "20", "--headline-tokens", "20",
            "--max-tokens", "16", "--layers", "14", "--coefs", "1,30", "--no-control", "--targets", "code"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, (first.output, first.exception)
    points = sorted((root / "skills_points").glob("*.points/*.parquet"))
    points[0].write_bytes(b"\0" * points[0].stat().st_size)
    with pytest.warns(UserWarning, match=f"cache entry {points[0]} is corrupt .*recomputing"):
        again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, (again.output, again.exception)
    assert re.search(r"\b1 points computed", again.output), again.output


def test_reports_of_a_missing_results_folder_error_like_figures(tmp_path):
    for command in (["behaviours", "report"], ["skills", "report"], ["figures"]):
        result = CliRunner().invoke(main, [*command, "--results", str(tmp_path / "missing")])
        one_error_line(result, "does not exist")


# -- vector files carry a checksum ----------------------------------------------------------------------------


def _alter(path, layer: int, factor: float = 100.0):
    """Rewrite a valid safetensors vector with one layer scaled, keeping its header (as a hand edit would)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
        tensors = {k: f.get_tensor(k).clone() for k in f.keys()}
    tensors[f"layer.{layer}"] *= factor
    save_file(tensors, str(path), metadata=header)


def test_an_altered_vector_file_is_named(tmp_path):
    """An altered but valid vector (one layer's norm x100) was used without a word and changed the table."""
    import torch

    from steer_trace.vectors import SteeringVector

    vector = SteeringVector({L: torch.ones(8) * (L + 1) for L in range(4)}, {"name": "v"})
    path = vector.save(tmp_path / "v.safetensors")
    assert CliRunner().invoke(main, ["vectors", "info", str(path)]).exit_code == 0
    _alter(path, 2)
    one_error_line(CliRunner().invoke(main, ["vectors", "info", str(path)]), f"vector file {path} was altered")


def test_an_altered_cached_vector_is_recomputed(smol, behaviour_sets, tmp_path, monkeypatch):
    from steer_trace.vectors import SteeringVector

    monkeypatch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)
    argv = ["behaviours", "extract", "--profile", "test", "--results", str(tmp_path / "results"), "--data-dir",
            str(behaviour_sets), "--behaviours", "agreeableness"]
    first = CliRunner().invoke(main, argv)
    assert first.exit_code == 0, (first.output, first.exception)
    [path] = (tmp_path / "results" / "vectors").glob("*/agreeableness-*.safetensors")
    good = SteeringVector.load(path).layers[9].clone()
    _alter(path, 9)
    with pytest.warns(UserWarning, match=f"vector file {path} was altered .*recomputing it"):
        again = CliRunner().invoke(main, argv)
    assert again.exit_code == 0, (again.output, again.exception)
    assert np.allclose(SteeringVector.load(path).layers[9].numpy(), good.numpy(), atol=1e-5)


# -- models: context, tokenizer, chat template ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A random 2-layer llama with a 64-token context and the smollm2 tokenizer, no chat template; and the
    same folder without its tokenizer."""
    import shutil

    import torch
    import transformers as T

    from steer_trace.models import ensure_cached

    tokenizer_dir = ensure_cached("smollm2-135m")
    folder = tmp_path_factory.mktemp("tiny") / "model"
    config = T.LlamaConfig(vocab_size=49152, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                           bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    T.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    bare = folder.parent / "no_tokenizer"
    shutil.copytree(folder, bare)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, folder / name)
    return folder, bare


def test_a_prompt_longer_than_the_context_is_refused(tiny_folder):
    """12.6k tokens into an 8k context ran for 16 minutes and printed degenerate text: now one error line."""
    folder, _ = tiny_folder
    ok = CliRunner().invoke(main, ["generate", "--model", str(folder), "--no-chat", "--max-new-tokens", "4",
                                   "one two three"])
    assert ok.exit_code == 0, (ok.output, ok.exception)
    long = CliRunner().invoke(main, ["generate", "--model", str(folder), "--no-chat", "--max-new-tokens", "4",
                                     "word " * 80])
    one_error_line(long, "tokens + 4 to generate is longer than", "context of 64 tokens")


def test_a_folder_model_without_tokenizer_says_what_to_do(tiny_folder):
    _, bare = tiny_folder
    one_error_line(CliRunner().invoke(main, ["generate", "--model", str(bare), "hi"]),
                   "has no tokenizer", "save one into the folder")


def test_a_model_without_chat_template_says_so(tiny_folder):
    folder, _ = tiny_folder
    with pytest.warns(UserWarning, match="has no chat template: the prompt goes in as plain text"):
        result = CliRunner().invoke(main, ["generate", "--model", str(folder), "--max-new-tokens", "2", "hi"])
    assert result.exit_code == 0, (result.output, result.exception)


def test_vectors_extract_checks_its_out_before_the_work(behaviour_file, tmp_path, monkeypatch):
    """An unwritable --out failed only after the model had loaded and every pair was read (38 s)."""
    monkeypatch.setattr("tasks.core_commands.open_model", lambda spec: pytest.fail("the model was opened"))
    dataset = str(behaviour_file("myopic"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["vectors", "extract", "--dataset", dataset, "--out",
                                       str(blocker / "v.safetensors")])
    one_error_line(result, f"cannot write vector file {blocker / 'v.safetensors'} ({blocker} is a file")
    one_error_line(CliRunner().invoke(main, ["vectors", "extract", "--dataset", dataset, "--out", str(tmp_path)]),
                   "(it is a folder)")


# -- precondition: cached point by point ----------------------------------------------------------------------


def test_a_stopped_precondition_keeps_its_finished_parts(smol, behaviour_sets, tmp_path, monkeypatch):
    """`precondition` wrote its result only when a whole behaviour finished: a run stopped at 15 minutes on a
    1.5B model lost all of it. Now each part of PART_QUESTIONS questions is cached as it finishes; the rerun
    scores only the rest, and the table equals an uninterrupted run's."""
    from studies.behaviours import scoring as behaviour_eval

    monkeypatch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)
    monkeypatch.setattr(behaviour_eval, "PART_QUESTIONS", 2)
    real = behaviour_eval.letter_probs
    calls = []

    def stopping(*args, **kwargs):
        if len(calls) == 1:
            raise KeyboardInterrupt  # Ctrl-C after the first part
        calls.append(1)
        return real(*args, **kwargs)

    def run(root):
        return CliRunner().invoke(main, ["behaviours", "precondition", "--profile", "test", "--n-test", "6",
                                         "--results", str(root), "--data-dir", str(behaviour_sets),
                                         "--behaviours", "agreeableness"])

    monkeypatch.setattr(behaviour_eval, "letter_probs", stopping)
    stopped = run(tmp_path / "a")
    assert stopped.exit_code == 130, stopped.output
    monkeypatch.setattr(behaviour_eval, "letter_probs", real)
    resumed = run(tmp_path / "a")
    assert resumed.exit_code == 0, (resumed.output, resumed.exception)
    assert "2 points computed" in resumed.output  # 6 questions in 3 parts: the first was kept
    whole = run(tmp_path / "b")
    assert "3 points computed" in whole.output
    from steer_trace.cache import load_tables

    a, b = (load_tables("behaviours_precondition", tmp_path / r) for r in ("a", "b"))
    for column in ("p_matching", "order_consistency", "answer_mass"):
        assert a[column].to_list() == pytest.approx(b[column].to_list(), abs=1e-6)


def test_an_unreachable_hub_is_one_line_without_retries(monkeypatch):
    """An offline hub id printed eleven 'Retrying in …' lines over a minute and a half before its error."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    result = CliRunner().invoke(main, ["generate", "--model", "someorg/not-cached-anywhere", "hi"])
    one_error_line(result, "cannot reach the hub (127.0.0.1", "'someorg/not-cached-anywhere'", "not in the hub cache")
    assert "Retrying" not in result.output


SWEEP_BASE = ["--sweep-tokens", "20", "--headline-tokens", "40", "--max-tokens", "16", "--layers", "14",
              "--coefs", "1,30"]
# (--n-eval changes the work only where the token targets do not already stop before that many documents; the
# key hashes the documents scored, so it changes exactly then)
SWEEP_CHANGES = [["--sweep-tokens", "30"], ["--headline-tokens", "50"], ["--rule", "max"],
                 ["--max-tokens", "8"], ["--layers", "5"], ["--coefs", "1,2"], ["--targets", "code"],
                 ["--no-control"], ["--seed", "7"], ["--op", "project-out"], ["--scope", "prompt"],
                 ["--dtype", "bfloat16"]]


@pytest.fixture(scope="module")
def sweep_key(tmp_path_factory):
    """sweep_key(*args) -> the key of the `skills sweep` table, read when the sweep builds its Run (no model is
    loaded: vectors are stand-ins, only the tokenizer is read to size the evaluation sets)."""
    import torch

    from steer_trace import cache
    from studies.skills import run as skills
    from steer_trace.vectors import SteeringVector

    root = tmp_path_factory.mktemp("sweep_keys") / "results"
    patch = pytest.MonkeyPatch()
    patch.delenv("STEER_TRACE_DATA", raising=False)
    original = cache.Run.__init__

    def init(self, experiment, config, root=None):
        original(self, experiment, config, root)
        if experiment == skills.SWEEP:
            raise _Keyed(self.key)

    def stand_ins(root, model_name):
        layers = {L: torch.ones(576) for L in range(30)}
        return {key: SteeringVector(layers, {"model": model_name}) for key in
                [(t, c) for t in skills.TARGETS for c in skills.CONTROLS]}

    patch.setattr(cache.Run, "__init__", init)
    patch.setattr(skills, "load_vectors", stand_ins)
    patch.setattr(skills, "check_vectors_match", lambda *args: None)
    patch.setattr("studies.skills.cli._open", lambda spec: pytest.fail("the model was loaded"))

    def run(*args):
        result = CliRunner().invoke(main, ["skills", "sweep", "--results", str(root), *SWEEP_BASE, *args])
        assert isinstance(result.exception, _Keyed), (args, result.output, result.exception)
        return result.exception.args[0]

    yield run
    patch.undo()


@pytest.mark.parametrize("change", SWEEP_CHANGES, ids=" ".join)
def test_every_sweep_option_that_changes_the_work_changes_the_key(sweep_key, change):
    assert sweep_key(*change) != sweep_key()


# -- consistent defaults, no silent renames --------------------------------------------------------------------


def test_report_defaults_to_the_profile_every_command_defaults_to_and_names_the_others(tmp_path):
    """`behaviours report` defaulted to --profile paper while every other command defaults to quick; a first try
    printed "No behaviour results … for profile paper" with no hint."""
    root = tmp_path / "results"
    labels = ["A", "B"] * MIN_PER_LABEL
    base = np.linspace(0.2, 0.6, len(labels))
    rows = [{**_ab_row("none", "default", 0, base, labels), "profile": "paper"},
            {**_ab_row("myopic", "add", 1, base + 0.3, labels), "profile": "paper"}]
    Run("behaviours_single", {"synthetic": "paper"}, root).finish([pl.DataFrame(rows)])
    result = CliRunner().invoke(main, ["behaviours", "report", "--results", str(root), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "for profile quick; there are for paper: give --profile paper" in result.output
    _single_table(root, per_label=MIN_PER_LABEL)  # a quick run: the default reports it
    result = CliRunner().invoke(main, ["behaviours", "report", "--results", str(root), "--out", str(tmp_path / "o")])
    assert "wrote" in result.output


def test_a_hyphen_in_a_dataset_name_is_said(tmp_path, monkeypatch):
    from steer_trace.errors import UserError

    def stop(spec):
        raise UserError("stopped before the model")

    monkeypatch.setattr("studies.behaviours.cli.open_model", stop)
    row = '{"question": "Q? (A) x (B) y", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}\n'
    path = tmp_path / "my-set.jsonl"
    path.write_text(row * 4)
    with pytest.warns(UserWarning, match="dataset my-set.jsonl is the behaviour 'my_set' \\(hyphens become"):
        result = CliRunner().invoke(main, ["behaviours", "precondition", "--dataset", str(path), "--results",
                                           str(tmp_path / "results")])
    one_error_line(result, "stopped before the model")
