"""The ad-hoc CLI (`steer-trace models / vectors / generate`) through click's CliRunner on smollm2-135m:
help everywhere, --model/--remote on every command that runs a model, extraction equal to the library,
provenance, generation with and without a vector, and one `error:` line (exit 2) for bad input."""
from __future__ import annotations

import ast
import json
import random
import re
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

import tasks.common
import tasks.core_commands
from steer_trace.data import load_ab_file, prompt
from steer_trace.models import EMBEDDED
from steer_trace.read import content_hash, contrastive_vector
from steer_trace.vectors import SteeringVector
from tasks.cli import main
from cli_checks import one_error_line

REPO = Path(__file__).resolve().parents[1]
MYOPIC = f"{REPO}/data/behaviours/myopic.jsonl"
N_PAIRS = 6
BATCH = 2 * N_PAIRS  # one trace reads every pair (the reference uses the same batching)
LAYER = 10
TOKENS = 4
GROUPS = ("models", "vectors", "generate", "text", "behaviours", "skills", "gates", "evaluate", "interop", "figures",
          "report",
          "docs", "results", "bench", "demo")
# commands that run a model only beside a local program (llama.cpp's server reads the same GGUF on this machine)
LOCAL_ONLY = {("interop", "llamacpp")}
# commands that never run a model (bench compares fixed embedded models and names them with --score-model)
NO_MODEL = {("figures",), ("report",), ("models",), ("vectors", "info"), ("vectors", "export"), ("vectors", "import"),
            ("bench",), ("skills", "report"), ("behaviours", "report"), ("docs",), ("results",), ("gates", "report"),
            ("behaviours", "restat"), ("text", "report")}


def run(*argv):
    return CliRunner().invoke(main, [str(a) for a in argv])


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result




def use_session_model(patch: pytest.MonkeyPatch, smol):
    """Commands get the session's smollm2 instead of loading it again; the spec they ask for is checked."""
    asked = []

    def fake_open(spec):
        asked.append(spec)
        assert spec == {"name": "smollm2-135m", "remote": False, "host": None, "layers_path": None, "device": "auto",
                        "dtype": "float32"}, spec
        return smol

    patch.setattr("tasks.core_commands.open_model", fake_open)
    return asked


@pytest.fixture
def cli_model(smol, monkeypatch):
    return use_session_model(monkeypatch, smol)


def walk(command, path=()):
    """(path, command) for the root and every command and subcommand below it."""
    yield path, command
    if isinstance(command, click.Group):  # through list/get_command: the studies' groups load lazily
        ctx = click.Context(command)
        for name in sorted(command.list_commands(ctx)):
            yield from walk(command.get_command(ctx, name), (*path, name))


ALL_COMMANDS = list(walk(main))
LEAVES = [(path, cmd) for path, cmd in ALL_COMMANDS if path and not isinstance(cmd, click.Group)]


def generations(output: str) -> dict[str, str]:
    """{"unsteered": text, "steered": text, "plan": description} from `generate`'s output."""
    out = {}
    for line in output.splitlines():
        if line.startswith("unsteered: "):
            out["unsteered"] = ast.literal_eval(line[len("unsteered: "):])
        elif line.startswith("steered ("):
            match = re.match(r"steered \((.*?)\): (['\"].*)$", line)
            out["plan"], out["steered"] = match.group(1), ast.literal_eval(match.group(2))
    return out


@pytest.fixture(scope="module")
def extracted(smol, tmp_path_factory):
    """`vectors extract` on the first 6 (shuffled) rows of myopic.jsonl, run once for the module."""
    out = tmp_path_factory.mktemp("vectors") / "myopic.safetensors"
    with pytest.MonkeyPatch.context() as patch:
        asked = use_session_model(patch, smol)
        result = ok(run("vectors", "extract", "--model", "smollm2-135m", "--dataset", MYOPIC, "--out", out,
                        "--limit", N_PAIRS, "--batch-size", BATCH))
    assert len(asked) == 1
    assert f"saved {out}: 30 layers, {N_PAIRS} pairs, d=576" in result.output
    return out


# -- help and the command tree -------------------------------------------------------------


def test_top_level_help_lists_every_group():
    result = ok(run("--help"))
    listed = set(re.findall(r"^  (\S+)", result.output.split("Commands:", 1)[1], re.M))  # commands and studies
    assert listed == set(GROUPS)
    assert set(main.list_commands(click.Context(main))) == set(GROUPS)


@pytest.mark.parametrize("path,command", ALL_COMMANDS, ids=[" ".join(p) or "steer-trace" for p, _ in ALL_COMMANDS])
def test_every_command_has_help(path, command):
    assert (command.help or "").strip(), f"{' '.join(path) or 'steer-trace'} has no help text"
    result = ok(run(*path, "--help"))
    first = command.help.strip().splitlines()[0]
    assert first[:40] in " ".join(result.output.split())
    for param in command.params:  # every option explains itself too
        if isinstance(param, click.Option) and path[:1] in (("models",), ("vectors",), ("generate",)):
            assert (param.help or "").strip(), f"{' '.join(path)} {param.opts[0]} has no help"


def test_commands_that_run_a_model_take_model_and_remote():
    checked = []
    for path, command in LEAVES:
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        if path in NO_MODEL:
            assert "--remote" not in options, path
            continue
        if path in LOCAL_ONLY:
            assert "--model" in options and "--remote" not in options, path
            continue
        assert {"--model", "--remote", "--ndif-host"} <= options, (path, sorted(options))
        checked.append(path)
    assert ("generate",) in checked and ("vectors", "extract") in checked and ("demo",) in checked
    assert len(checked) >= 13  # 2 core + 8 behaviours + 2 skills + demo
    bench = main.commands["bench"]
    assert "--score-model" in {opt for param in bench.params for opt in param.opts}


def test_models_lists_both_embedded_models(smol):
    result = ok(run("models"))
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:] if line.strip()}
    for spec in EMBEDDED.values():
        assert rows[spec.name][1:3] == [str(spec.n_layers), str(spec.d_model)]
        assert rows[spec.name][3] in ("yes", "no")
    assert rows["smollm2-135m"][3] == "yes"  # the session fixture's load cached it
    assert "cache:" in result.output


# -- vectors extract / info ----------------------------------------------------------------


def test_extracted_vector_carries_its_provenance(extracted):
    vector = SteeringVector.load(extracted)
    items = load_ab_file(MYOPIC)
    random.Random(13).shuffle(items)
    meta = vector.meta
    assert meta["model"] == "smollm2-135m" and meta["model_revision"].startswith("gguf-sha256:")
    assert meta["dataset"] == "myopic.jsonl" and meta["name"] == "myopic"
    assert meta["dataset_hash"] == content_hash(items[:N_PAIRS]) != content_hash(items[:N_PAIRS + 1])
    assert meta["method"] == "mean-difference-balanced"
    assert meta["n_pairs"] == N_PAIRS and meta["groups"] == {"A": 2, "B": 4}  # both letters, balanced
    assert meta["steer_trace_version"]
    assert meta["prompt_style"] == "paper"
    assert sorted(vector.layers) == list(range(30)) and vector.d_model == 576


def test_vectors_info_prints_provenance_and_norms(extracted, smol):
    result = ok(run("vectors", "info", extracted))
    head, table = result.output.split("layer      norm  residual  norm/residual\n")
    vector = SteeringVector.load(extracted)
    assert json.loads(head) == {k: v for k, v in vector.meta.items() if k != "residual_norms"}
    rows = [line.split() for line in table.splitlines() if line and not line.startswith("(")]
    printed = {int(L): (float(n), float(r), float(q)) for L, n, r, q in rows}
    norms = vector.norms()
    assert printed.keys() == norms.keys()
    assert all(abs(printed[L][0] - norms[L]) < 1e-4 for L in norms)
    # the residual norms recorded at extraction: the residual stream at each layer's output, last prompt token
    items = load_ab_file(MYOPIC)
    random.Random(13).shuffle(items)
    texts = [prompt(i) + i.matching for i in items[:N_PAIRS]]
    with torch.no_grad():
        hidden = smol.lm._module(**smol.tokenizer(texts[:1], return_tensors="pt"), output_hidden_states=True)
    layer = 14  # hidden_states[L + 1] is decoder layer L's output
    first = float(hidden.hidden_states[layer + 1][0, -1].norm())
    assert 0.5 * first < printed[layer][1] < 2 * first  # a mean over prompts, of the size of one prompt's norm
    assert all(abs(n / r - q) < 1e-3 for n, r, q in printed.values())


def test_extracted_vector_equals_the_library(extracted, smol):
    items = load_ab_file(MYOPIC)
    random.Random(13).shuffle(items)
    items = items[:N_PAIRS]
    pairs = [(prompt(i) + i.matching, prompt(i) + i.not_matching) for i in items]
    reference = contrastive_vector(smol, pairs, groups=[i.matching for i in items], batch_size=BATCH)
    vector = SteeringVector.load(extracted)
    assert vector.meta["reader"] == "shared-prompt-kv-cache"  # the command reads each prompt once
    for L in range(30):  # the full-text reader as reference: equal up to float rounding
        scale = max(1.0, float(reference[L].abs().max()))
        assert float((vector[L] - reference[L]).abs().max()) <= 1e-4 * scale, L
        assert float(torch.nn.functional.cosine_similarity(vector[L], reference[L], dim=0)) >= 0.99999, L
        assert vector[L].norm() > 0


# -- generate -----------------------------------------------------------------------------


def test_generate_without_a_vector_prints_only_the_unsteered_text(cli_model):
    texts = generations(ok(run("generate", "Name a colour.", "--max-new-tokens", TOKENS)).output)
    assert set(texts) == {"unsteered"} and texts["unsteered"].strip()
    assert len(cli_model) == 1


def test_generate_with_coefficient_zero_is_unsteered(cli_model, extracted):
    result = ok(run("generate", "Name a colour.", "--vector", extracted, "--layer", LAYER, "--coef", 0,
                    "--max-new-tokens", TOKENS))
    texts = generations(result.output)
    assert texts["plan"] == f"L{LAYER}x0"
    assert texts["steered"] == texts["unsteered"] and texts["unsteered"].strip()


def test_generate_with_a_strong_vector_changes_the_text(cli_model, extracted):
    result = ok(run("generate", "Name a colour.", "--vector", extracted, "--layer", LAYER, "--coef", 40,
                    "--max-new-tokens", TOKENS))
    texts = generations(result.output)
    assert texts["plan"] == f"L{LAYER}x40"
    assert texts["steered"] != texts["unsteered"]


# -- bad input: one line, exit 2 ------------------------------------------------------------


def test_unknown_model_is_one_line_with_the_real_loader(tmp_path):
    assert tasks.core_commands.open_model is tasks.common.open_model  # not patched here
    one_error_line(run("generate", "hi", "--model", "no-such-model"), "unknown model 'no-such-model'",
                   "smollm2-135m")
    one_error_line(run("vectors", "extract", "--model", "./no/such/folder", "--dataset", MYOPIC,
                       "--out", tmp_path / "v.safetensors", "--limit", 2), "'./no/such/folder'")
    assert not (tmp_path / "v.safetensors").exists()


@pytest.fixture
def full_width(tmp_path):
    gen = torch.Generator().manual_seed(0)
    return SteeringVector({L: torch.randn(576, generator=gen) for L in range(30)}, {"name": "r"}).save(
        tmp_path / "full.safetensors")


def test_layer_out_of_range(cli_model, full_width):
    for layer in (30, -1):
        one_error_line(run("generate", "hi", "--vector", full_width, "--layer", layer),
                       f"layer {layer} is out of range for smollm2-135m (0..29)")


def test_vector_of_the_wrong_width(cli_model, tmp_path):
    narrow = SteeringVector({LAYER: torch.ones(10)}, {"name": "narrow"}).save(tmp_path / "narrow.safetensors")
    one_error_line(run("generate", "hi", "--vector", narrow, "--layer", LAYER),
                   f"vector for layer {LAYER} has width 10", "576")
    one_error_line(run("generate", "hi", "--vector", narrow, "--layer", LAYER + 1), f"no layer {LAYER + 1}")


@pytest.mark.parametrize("kind", ["text", "pickle", "missing"])
def test_vector_file_that_is_not_safetensors(cli_model, tmp_path, kind):
    path = tmp_path / "v.safetensors"
    if kind == "text":
        path.write_text("not a tensor file\n")
    elif kind == "pickle":
        torch.save({"layer.3": torch.ones(576)}, path)
    needle = {"text": "not a readable safetensors", "pickle": "never unpickled", "missing": "does not exist"}[kind]
    for argv in (("generate", "hi", "--vector", path, "--layer", 3), ("vectors", "info", path)):
        one_error_line(run(*argv), str(path), needle)
    assert not cli_model  # refused before any model was opened


def test_vector_and_layer_go_together(cli_model, full_width):
    one_error_line(run("generate", "hi", "--vector", full_width), "--vector and --layer go together")
    one_error_line(run("generate", "hi", "--layer", 3), "--vector and --layer go together")


def test_missing_or_bad_dataset(cli_model, tmp_path):
    out = tmp_path / "v.safetensors"
    one_error_line(run("vectors", "extract", "--dataset", tmp_path / "nope.jsonl", "--out", out),
                   "nope.jsonl does not exist")
    one_error_line(run("vectors", "extract", "--dataset", tmp_path, "--out", out), "is a folder")
    one_error_line(run("vectors", "extract", "--dataset", MYOPIC, "--out", out, "--limit", 0), "--limit")
    one_error_line(run("vectors", "extract", "--out", out), "--dataset")
    assert not cli_model and not out.exists()
