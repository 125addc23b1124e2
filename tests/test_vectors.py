"""SteeringVector files and arithmetic: exact round trip, refusal of unsafe or broken files, combine, cosine."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from steer_trace.errors import UserError
from steer_trace.vectors import FORMAT, SteeringVector, combine, cosine

D = 16


def random_vector(seed: int, layers=(0, 3, 7), name: str = "v") -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    return SteeringVector({L: torch.randn(D, generator=gen) for L in layers}, {"name": name, "model": "m"})


# -- files -------------------------------------------------------------------


def test_save_load_round_trip_is_exact(tmp_path):
    meta = {
        "name": "myopic",
        "n_pairs": 8,
        "groups": {"A": 3, "B": 5},
        "weights": [0.5, -1.25],
        "note": "ünïcödé \"quoted\" text",
        "nested": {"list": [1, None, True]},
    }
    gen = torch.Generator().manual_seed(0)
    layers = {L: torch.randn(576, generator=gen) * 10.0 ** (L / 3 - 5) for L in (29, 0, 12, 5)}
    vector = SteeringVector(layers, meta)
    path = vector.save(tmp_path / "sub" / "v.safetensors")
    assert path.is_file()
    assert not path.with_name(path.name + ".tmp").exists()
    loaded = SteeringVector.load(path)
    assert list(loaded.layers) == [0, 5, 12, 29]
    for L, v in layers.items():
        assert loaded.layers[L].dtype == torch.float32
        assert torch.equal(loaded.layers[L], v)  # bit-exact
    assert loaded.meta == meta


def test_file_header_names_the_format(tmp_path):
    from safetensors import safe_open

    path = random_vector(1).save(tmp_path / "v.safetensors")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
        keys = sorted(f.keys())
    assert header["format"] == FORMAT
    assert json.loads(header["provenance"])["name"] == "v"
    assert keys == ["layer.0", "layer.3", "layer.7"]


def test_pickle_file_is_refused(tmp_path):
    path = tmp_path / "v.pt"
    torch.save({"layer.0": torch.zeros(D)}, path)
    with pytest.raises(UserError, match="not a readable safetensors"):
        SteeringVector.load(path)
    # even named like a safetensors file
    disguised = tmp_path / "v.safetensors"
    disguised.write_bytes(path.read_bytes())
    with pytest.raises(UserError, match="not a readable safetensors"):
        SteeringVector.load(disguised)


def test_pickle_is_never_unpickled(tmp_path, monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("load() unpickled something")

    path = tmp_path / "v.safetensors"
    torch.save({"layer.0": torch.zeros(D)}, path)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(UserError):
        SteeringVector.load(path)


def test_truncated_and_garbage_files_are_refused(tmp_path):
    good = random_vector(2).save(tmp_path / "good.safetensors")
    data = good.read_bytes()
    for name, content in [
        ("truncated.safetensors", data[: len(data) // 2]),
        ("short.safetensors", data[:5]),
        ("empty.safetensors", b""),
        ("text.safetensors", b"layer.0 = [1, 2, 3]\n"),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(UserError):
            SteeringVector.load(path)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        SteeringVector.load(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_refused(tmp_path, bad):
    t = torch.ones(D)
    t[3] = bad
    path = tmp_path / "bad.safetensors"
    save_file({"layer.0": torch.ones(D), "layer.4": t}, str(path), metadata={"provenance": "{}"})
    with pytest.raises(UserError, match="layer 4 contains NaN or inf"):
        SteeringVector.load(path)


def test_file_without_layers_or_with_bad_metadata_is_refused(tmp_path):
    empty = tmp_path / "nolayers.safetensors"
    save_file({"weight": torch.ones(D)}, str(empty))
    with pytest.raises(UserError, match="no 'layer.<L>' tensors"):
        SteeringVector.load(empty)
    bad_key = tmp_path / "badkey.safetensors"
    save_file({"layer.x": torch.ones(D)}, str(bad_key))
    with pytest.raises(UserError):
        SteeringVector.load(bad_key)
    bad_meta = tmp_path / "badmeta.safetensors"
    save_file({"layer.0": torch.ones(D)}, str(bad_meta), metadata={"provenance": "{not json"})
    with pytest.raises(UserError, match="provenance"):
        SteeringVector.load(bad_meta)


def test_file_without_provenance_loads_with_empty_meta(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"layer.2": torch.arange(D, dtype=torch.float32)}, str(path))
    v = SteeringVector.load(path)
    assert v.meta == {} and torch.equal(v[2], torch.arange(D, dtype=torch.float32))


# -- arithmetic --------------------------------------------------------------


def test_construction_normalises_keys_dtype_and_shape():
    v = SteeringVector({3: torch.ones(1, D, dtype=torch.float64), 1: torch.zeros(D)})
    assert list(v.layers) == [1, 3]
    assert v[3].shape == (D,) and v[3].dtype == torch.float32
    assert v.d_model == D


def test_missing_layer_is_a_user_error():
    v = random_vector(3, name="myopic")
    with pytest.raises(UserError, match="no layer 5"):
        v[5]
    with pytest.raises(UserError):
        v.only([0, 5])


def test_norms_scaled_only():
    v = random_vector(4)
    assert v.norms() == pytest.approx({L: float(t.norm()) for L, t in v.layers.items()})
    s = v.scaled(-2.5)
    for L in v.layers:
        assert torch.allclose(s[L], -2.5 * v[L])
    assert s.meta == v.meta
    assert list(v.only([7, 0]).layers) == [0, 7]
    assert torch.equal(v.only([3])[3], v[3])


def test_permuted_keeps_components_and_norm_changes_direction():
    v = random_vector(5, layers=(0, 1))
    p = v.permuted(seed=7)
    for L in v.layers:
        assert torch.equal(torch.sort(p[L]).values, torch.sort(v[L]).values)
        assert p.norms()[L] == pytest.approx(v.norms()[L])
        assert not torch.equal(p[L], v[L])
    assert torch.equal(v.permuted(seed=7)[0], p[0])  # seeded
    assert not torch.equal(v.permuted(seed=8)[0], p[0])
    assert p.meta["permute_seed"] == 7 and p.meta["method"].endswith("+permuted")
    assert max(abs(c) for c in cosine(v, p).values()) < 0.9


def test_combine_sum_mean_weighted():
    a, b, c = random_vector(10, name="a"), random_vector(11, name="b"), random_vector(12, (0, 7), name="c")
    total = combine([a, b])
    for L in (0, 3, 7):
        assert torch.allclose(total[L], a[L] + b[L])
    mean = combine([a, b], how="mean")
    assert torch.allclose(mean[3], (a[3] + b[3]) / 2)
    weighted = combine([a, b, c], weights=[2.0, -1.0, 0.5])
    assert list(weighted.layers) == [0, 7]  # only shared layers
    assert torch.allclose(weighted[7], 2 * a[7] - b[7] + 0.5 * c[7])
    wmean = combine([a, b, c], weights=[2.0, -1.0, 0.5], how="mean")
    assert torch.allclose(wmean[0], (2 * a[0] - b[0] + 0.5 * c[0]) / 3)
    assert weighted.meta["parts"] == ["a", "b", "c"] and weighted.meta["weights"] == [2.0, -1.0, 0.5]
    assert weighted.meta["method"] == "combined-sum" and wmean.meta["method"] == "combined-mean"


def test_combine_errors():
    a = random_vector(1)
    with pytest.raises(UserError):
        combine([])
    with pytest.raises(UserError, match="unknown combination"):
        combine([a, a], how="max")
    with pytest.raises(UserError, match="weights"):
        combine([a, a], weights=[1.0])
    with pytest.raises(UserError, match="share no layer"):
        combine([a, random_vector(2, layers=(1, 2))])


def test_cosine_known_values():
    e0, e1 = torch.zeros(D), torch.zeros(D)
    e0[0], e1[1] = 1.0, 1.0
    a = SteeringVector({0: e0, 1: e0, 2: e0})
    b = SteeringVector({0: 3 * e0, 1: e1, 2: -e0, 9: e1})
    assert cosine(a, b) == pytest.approx({0: 1.0, 1: 0.0, 2: -1.0})


# -- extraction through the commands (vectors extract, behaviours extract) on smollm2 -------------------------

REPO = Path(__file__).resolve().parents[1]
MYOPIC = REPO / "data" / "behaviours" / "myopic.jsonl"
N_PAIRS = 6


def cli(*argv):
    """The command's result, its warnings printed as a user sees them (pytest's config ignores UserWarning)."""
    import sys
    import warnings

    from click.testing import CliRunner

    from tasks.cli import main

    def show(message, category, filename, lineno, file=None, line=None):  # as Python does outside pytest
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = show
        return CliRunner().invoke(main, [str(a) for a in argv])


def first_rows(n: int):
    import random

    from steer_trace.data import load_ab_file

    items = load_ab_file(MYOPIC)
    random.Random(13).shuffle(items)
    return items[:n]


@pytest.fixture
def cli_smol(smol, monkeypatch):
    monkeypatch.setattr("tasks.core_commands.open_model", lambda spec: smol)
    monkeypatch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)
    return smol


@pytest.mark.parametrize("method", ["mean", "pca"])
def test_vectors_extract_uses_the_shared_prompt_reader_and_equals_the_full_text_reader(cli_smol, tmp_path, method):
    from steer_trace.data import prompt
    from steer_trace.read import contrastive_vector

    out = tmp_path / "v.safetensors"
    result = cli("vectors", "extract", "--dataset", MYOPIC, "--out", out, "--limit", N_PAIRS, "--method", method)
    assert result.exit_code == 0, (result.output, result.exception)
    vector = SteeringVector.load(out)
    assert vector.meta["reader"] == "shared-prompt-kv-cache"
    assert vector.meta["method"] == {"mean": "mean-difference", "pca": "pca"}[method] + "-balanced"
    assert f"({vector.meta['method']}, shared-prompt-kv-cache reader)" in result.output
    items = first_rows(N_PAIRS)
    full = contrastive_vector(cli_smol, [(prompt(i) + i.matching, prompt(i) + i.not_matching) for i in items],
                              groups=[i.matching for i in items], method=method)
    assert full.meta["reader"] == "full-text" and full.meta["groups"] == vector.meta["groups"] == {"A": 2, "B": 4}
    for L, c in cosine(vector, full).items():
        assert c >= 0.99999, (L, c)
        assert float((vector[L] - full[L]).abs().max()) <= 1e-4 * max(1.0, float(full[L].abs().max())), L


def test_extract_vector_falls_back_to_full_texts_where_answers_are_not_one_token(smol):
    from steer_trace.data import prompt
    from steer_trace.pairs import extract_vector
    from steer_trace.read import contrastive_vector

    items = first_rows(4)
    prompts = [prompt(i) for i in items]
    pos = [i.matching for i in items]
    neg = [i.not_matching for i in items]
    pos[1], neg[1] = pos[1] + ") because it is better", neg[1] + ") because"  # several tokens: full-text reader
    groups = [i.matching for i in items]
    mixed = extract_vector(smol, prompts, pos, neg, groups=groups, layers=[3, 20])
    assert mixed.meta["reader"] == "shared-prompt-kv-cache (3 pairs) + full-text (1 pairs)"
    full = contrastive_vector(smol, [(p + a, p + b) for p, a, b in zip(prompts, pos, neg)], groups=groups,
                              layers=[3, 20])
    assert min(cosine(mixed, full).values()) >= 0.99999
    only_full = extract_vector(smol, prompts[1:2], pos[1:2], neg[1:2], layers=[3])
    assert only_full.meta["reader"] == "full-text"


def test_extract_is_the_one_entry_point_and_picks_the_reader_itself(smol):
    from steer_trace import extract
    from steer_trace.data import prompt
    from steer_trace.read import contrastive_vector

    items = first_rows(4)
    triples = [(prompt(i), i.matching, i.not_matching) for i in items]
    triples[1] = (triples[1][0], triples[1][1] + ") because it is better", triples[1][2] + ") because")
    vector = extract(smol, triples, method="mean", layers=[3, 20], groups=[a for _, a, _ in triples])
    assert vector.meta["reader"] == "shared-prompt-kv-cache (3 pairs) + full-text (1 pairs)"
    full = contrastive_vector(smol, [(p + a, p + b) for p, a, b in triples], groups=[a for _, a, _ in triples],
                              layers=[3, 20])
    assert min(cosine(vector, full).values()) >= 0.99999
    with pytest.raises(UserError):
        extract(smol, [("only a prompt", " (A)")])


def test_vectors_extract_refuses_a_file_mixing_answer_families(tmp_path):
    rows = [{"question": "Pick one\n (A) x\n (B) y", "answer_matching_behavior": " (A)",
             "answer_not_matching_behavior": " (B)"},
            {"question": "Agree?", "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from cli_checks import one_error_line

    one_error_line(cli("vectors", "extract", "--dataset", path, "--out", tmp_path / "v.safetensors"),
                   "mixes letter and Yes/No")
    assert not (tmp_path / "v.safetensors").exists()


def test_vectors_extract_warns_when_one_group_cannot_be_balanced(cli_smol, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(MYOPIC.read_text().splitlines()[0] + "\n")
    out = tmp_path / "v.safetensors"
    result = cli("vectors", "extract", "--dataset", path, "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "cannot be letter-balanced" in lines[0] and str(path) in lines[0], result.stderr
    assert SteeringVector.load(out).meta["n_pairs"] == 1
    quiet = cli("vectors", "extract", "--dataset", path, "--out", out, "--plain-mean")  # asked for: no warning
    assert quiet.exit_code == 0 and "warning:" not in quiet.stderr


def test_a_damaged_cached_behaviour_vector_is_recomputed_with_a_warning(cli_smol, tmp_path):
    """Issue 14.3 for real: truncate the cached vector (then a group vector) and rerun `behaviours extract`,
    whose tables are all cached: one warning naming the file, the vector is recomputed, exit 0."""
    common = ["--profile", "test", "--data-dir", REPO / "data" / "behaviours", "--behaviours", "myopic",
              "--results", tmp_path / "results"]
    first = cli("behaviours", "extract", *common)
    assert first.exit_code == 0, (first.output, first.exception)
    [path] = (tmp_path / "results" / "vectors" / "smollm2-135m").glob("myopic-*.safetensors")
    loaded = SteeringVector.load(path)  # its tensors may map the file: copy them before truncating it
    good = SteeringVector({L: v.clone() for L, v in loaded.layers.items()}, loaded.meta)
    assert good.meta["reader"] == "shared-prompt-kv-cache"
    [group] = (path.parent / "groups").glob(path.stem + ".A.safetensors")
    for damaged in (path, group):
        data = damaged.read_bytes()
        damaged.write_bytes(data[: len(data) // 2])
        with pytest.raises(UserError):
            SteeringVector.load(damaged)
        again = cli("behaviours", "extract", *common)
        assert again.exit_code == 0, (again.output, again.exception)
        lines = [line for line in again.stderr.splitlines() if line.startswith("warning:")]
        assert len(lines) == 1 and str(damaged) in lines[0] and "recomputing" in lines[0], again.stderr
        assert "Traceback" not in again.output
        fixed = SteeringVector.load(path)
        assert min(cosine(fixed, good).values()) >= 0.99999 and SteeringVector.load(group).meta["group"] == "A"
    third = cli("behaviours", "extract", *common)  # healthy again: nothing recomputed, no warning
    assert third.exit_code == 0 and "warning:" not in third.stderr
