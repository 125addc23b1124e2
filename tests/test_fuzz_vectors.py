"""Vector files a user might hand us (issue 14.9) and hypothesis fuzzing of them: whatever a .safetensors or
.gguf file holds (keys, dtypes, shapes, metadata, random or damaged bytes), `SteeringVector.load` and
`read_gguf` return a valid vector or raise `UserError` naming the file, and `vectors info` / `vectors import`
exit 0 or 2, never 1 and never with a traceback."""
from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from cli_checks import one_error_line
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from steer_trace.errors import UserError
from steer_trace.interop import read_gguf, write_gguf
from steer_trace.vectors import SteeringVector
from tasks.cli import main

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLI_FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
D = 4


def run(*argv):
    return CliRunner().invoke(main, [str(a) for a in argv])


def _ok(layers, meta=None) -> SteeringVector:
    return SteeringVector({L: torch.arange(D, dtype=torch.float32) + L for L in layers}, meta or {"name": "v"})


# -- the named cases of issue 14.9 ----------------------------------------------------------------------------


def _save_with_header_length_starting_0x80(tensors: dict, path: Path) -> None:
    """Pad the metadata until the 8-byte header length begins with byte 0x80, the first byte of a pickle:
    the shape of file the old loader called 'a pickle / torch.save file'."""
    for pad in range(400):
        save_file(tensors, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            return
    raise AssertionError("no padding gave a 0x80 header-length byte")


def test_bad_key_is_named_not_called_a_pickle(tmp_path):
    path = tmp_path / "v.safetensors"
    _save_with_header_length_starting_0x80({"layer.abc": torch.ones(D)}, path)
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] % 256 == 0x80
    line = one_error_line(run("vectors", "info", path), str(path), "'layer.abc'", "layer.<L>")
    assert "pickle" not in line


def test_a_real_pickle_is_still_called_one(tmp_path):
    torch.save({"layer.1": torch.ones(D)}, tmp_path / "v.safetensors")
    one_error_line(run("vectors", "info", tmp_path / "v.safetensors"), "pickle / torch.save")


def test_the_same_layer_twice_names_both_keys(tmp_path):
    path = tmp_path / "v.safetensors"
    save_file({"layer.9": torch.ones(D), "layer.09": torch.zeros(D)}, str(path))
    one_error_line(run("vectors", "info", path), str(path), "two tensors for layer 9", "'layer.09'", "'layer.9'")


@pytest.mark.parametrize("tensors, metadata, needle", [
    ({"layer.1": torch.ones(D, dtype=torch.int32)}, None, "layer 1 is not a 1-D float vector (dtype torch.int32"),
    ({"layer.1": torch.ones(D, dtype=torch.bool)}, None, "dtype torch.bool"),
    ({"layer.1": torch.ones(D, dtype=torch.complex64)}, None, "dtype torch.complex64"),
    ({"layer.1": torch.ones(2, D)}, None, "shape [2, 4]"),
    ({"layer.1": torch.ones(1, D)}, None, "shape [1, 4]"),
    ({"layer.1": torch.ones(())}, None, "shape []"),
    ({"layer.1": torch.ones(0)}, None, "shape [0]"),
    ({"layer.1": torch.tensor([1.0, float("nan"), 0, 0])}, None, "layer 1 contains NaN or inf"),
    ({"layer.1": torch.tensor([1e300, 0, 0, 0], dtype=torch.float64)}, None, "layer 1 contains NaN or inf"),
    ({"layer.1": torch.ones(D), "layer.2": torch.ones(D + 1)}, None, "mixes vector widths across layers"),
    ({"layer.1": torch.ones(D)}, {"provenance": "{not json"}, "unreadable provenance metadata (not JSON)"),
    ({"layer.1": torch.ones(D)}, {"provenance": "[1, 2]"}, "provenance metadata that is not a JSON object"),
    ({"layer.-1": torch.ones(D)}, None, "'layer.-1'"),
    ({"layer.": torch.ones(D)}, None, "'layer.'"),
    ({"layer.1.weight": torch.ones(D)}, None, "'layer.1.weight'"),
    ({"layer.\u0663": torch.ones(D)}, None, "layer.<L>"),  # an Arabic-Indic digit that int() would accept
    ({"direction.1": torch.ones(D)}, None, "holds no 'layer.<L>' tensors (it holds 'direction.1')"),
    ({}, None, "holds no 'layer.<L>' tensors (it holds no tensors)"),
])
def test_malformed_vector_files_are_one_line_errors_naming_the_file(tmp_path, tensors, metadata, needle):
    path = tmp_path / "v.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(UserError) as error:
        SteeringVector.load(path)
    assert needle in str(error.value) and str(path) in str(error.value)
    one_error_line(run("vectors", "info", path), needle, str(path))


@pytest.mark.parametrize("content", [b"", b"\x00" * 8, b"{}", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":"])
def test_empty_and_truncated_files(tmp_path, content):
    path = tmp_path / "v.safetensors"
    path.write_bytes(content)
    one_error_line(run("vectors", "info", path), str(path), "is not a readable safetensors vector file")


def test_folder_and_low_precision_files(tmp_path):
    one_error_line(run("vectors", "info", tmp_path), "is a folder")
    low = torch.tensor([0.5, -1.0, 2.0, 0.0]).to(torch.float8_e4m3fn)  # torch has no isfinite for this dtype
    save_file({"layer.3": low}, str(tmp_path / "f8.safetensors"))
    assert SteeringVector.load(tmp_path / "f8.safetensors").layers[3].tolist() == [0.5, -1.0, 2.0, 0.0]


# -- fuzzing: safetensors files -------------------------------------------------------------------------------

KEYS = st.sampled_from(["layer.0", "layer.1", "layer.2", "layer.9", "layer.09", "layer.abc", "layer.-1", "layer.",
                        "layer.1.x", "direction.1", "x", "layer.\u0663", "layer.99999999999999999999"]) \
    | st.text(max_size=12).filter(bool)
DTYPES = st.sampled_from([torch.float32] * 4 + [torch.float16, torch.bfloat16, torch.float64, torch.float8_e4m3fn,
                                                 torch.float8_e5m2, torch.int64, torch.int8, torch.uint8, torch.bool,
                                                 torch.complex64])
SHAPES = st.sampled_from([(D,)] * 6 + [(), (0,), (1,), (D + 1,), (2, 2), (1, D), (D, 1), (2, 1, 2)])
VALUES = st.floats(width=32) | st.sampled_from([0.0, -0.0, 1.0, 3.4e38, 1e-45])
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                   max_size=3), max_leaves=6)


@st.composite
def tensors(draw) -> torch.Tensor:
    shape = draw(SHAPES)
    n = int(np.prod(shape)) if shape else 1
    values = draw(st.lists(VALUES, min_size=n, max_size=n))
    return torch.tensor(values, dtype=torch.float64).reshape(shape).to(draw(DTYPES))


@st.composite
def metadata(draw) -> dict | None:
    if draw(st.booleans()):
        return None
    out = draw(st.dictionaries(st.text(max_size=6), st.text(max_size=10), max_size=2))
    choice = draw(st.sampled_from(["json", "json", "text", "none"]))
    if choice == "json":
        out["provenance"] = json.dumps(draw(JSONISH))
    elif choice == "text":
        out["provenance"] = draw(st.text(max_size=12))
    return out


@st.composite
def vector_files(draw) -> bytes:
    """A safetensors file written by safetensors itself (random keys, dtypes, shapes, metadata), now and then
    truncated or with bytes overwritten; or plain random bytes."""
    kind = draw(st.sampled_from(["file"] * 6 + ["damaged", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.safetensors"
        save_file(draw(st.dictionaries(KEYS, tensors(), max_size=4)), str(path), metadata=draw(metadata()))
        raw = bytearray(path.read_bytes())
    if kind == "damaged":
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


def _check_loaded(path: Path) -> SteeringVector | None:
    """Either a valid vector or a one-line UserError naming the file; anything else fails the test."""
    try:
        vector = SteeringVector.load(path)
    except UserError as error:
        assert "\n" not in str(error) and str(path) in str(error), str(error)
        return None
    assert vector.layers and isinstance(vector.meta, dict)
    widths = {v.numel() for v in vector.layers.values()}
    assert len(widths) == 1 and widths.pop() > 0
    for v in vector.layers.values():
        assert v.dtype == torch.float32 and v.dim() == 1 and torch.isfinite(v).all()
    assert all(isinstance(L, int) and L >= 0 for L in vector.layers)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:  # nothing silently dropped (layer.9 next to layer.09)
        keys = f.keys()
        assert len(vector.layers) == sum(key.startswith("layer.") for key in keys)
    return vector


@FUZZ
@given(vector_files())
def test_fuzzed_vector_files_load_or_raise_user_error(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.safetensors"
        path.write_bytes(raw)
        vector = _check_loaded(path)
        if vector is not None:  # what loads also saves and loads back unchanged
            again = SteeringVector.load(vector.save(Path(folder) / "again.safetensors"))
            assert all(torch.equal(again.layers[L], v) for L, v in vector.layers.items()) and again.meta == vector.meta


@CLI_FUZZ
@given(vector_files())
def test_fuzzed_vector_files_through_vectors_info_exit_0_or_2(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.safetensors"
        path.write_bytes(raw)
        result = run("vectors", "info", path)
        assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
        if result.exit_code == 2:
            one_error_line(result)


def test_the_vector_fuzzer_also_makes_loadable_files():
    """A fuzzer that only ever produced broken files would test the error paths alone."""
    from hypothesis import find

    def loads(raw: bytes) -> bool:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "v.safetensors"
            path.write_bytes(raw)
            return _check_loaded(path) is not None

    find(vector_files(), loads, settings=settings(max_examples=500, deadline=None))


# -- fuzzing: GGUF control vectors ----------------------------------------------------------------------------

NAMES = st.sampled_from(["direction.1", "direction.2", "direction.3"]) | st.sampled_from(
    ["direction.9", "direction.09", "direction.0", "direction.x", "direction.-1", "blk.0.attn_q.weight",
     "direction.1.2"]) | st.text(max_size=10).filter(bool)
GGUF_DTYPES = st.sampled_from([np.float32] * 4 + [np.float16, np.int32, np.int8, np.float64])


@st.composite
def gguf_files(draw) -> bytes:
    """A GGUF file written by the gguf package (random names, dtypes, shapes, architecture, provenance), a valid
    export of ours with bytes overwritten or cut, or random bytes behind the 'GGUF' magic."""
    kind = draw(st.sampled_from(["written"] * 4 + ["damaged", "bytes"]))
    if kind == "bytes":
        return b"GGUF" + draw(st.binary(max_size=200))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.gguf"
        if kind == "damaged":
            write_gguf(_ok([1, 2, 3]), path)
        else:
            writer = gguf.GGUFWriter(str(path), draw(st.sampled_from(["controlvector"] * 4 + ["llama", ""])))
            if draw(st.booleans()):
                writer.add_string("steer_trace.provenance", draw(st.sampled_from(["{}", '{"a": 1}', "[]", "{", ""])))
            names = draw(st.lists(NAMES, max_size=3, unique=True))
            for name in names:
                shape = draw(st.sampled_from([(D,)] * 4 + [(D + 1,), (2, 2), (1,)]))
                values = draw(st.lists(VALUES, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
                with np.errstate(all="ignore"):
                    array = np.array(values, dtype=np.float64).reshape(shape).astype(draw(GGUF_DTYPES))
                writer.add_tensor(name, array)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
        raw = bytearray(path.read_bytes())
    if kind == "damaged":
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(4, len(raw) - 1))] = draw(st.integers(0, 255))
        raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


@FUZZ
@given(gguf_files())
def test_fuzzed_gguf_files_import_or_raise_user_error(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.gguf"
        path.write_bytes(raw)
        try:
            vector = read_gguf(path)
        except UserError as error:
            assert "\n" not in str(error) and str(path) in str(error), str(error)
            return
        assert vector.layers and isinstance(vector.meta, dict) and len({v.numel() for v in vector.layers.values()}) == 1
        for v in vector.layers.values():
            assert v.dtype == torch.float32 and v.dim() == 1 and torch.isfinite(v).all()


@CLI_FUZZ
@given(gguf_files())
def test_fuzzed_gguf_files_through_vectors_import_exit_0_or_2(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.gguf"
        path.write_bytes(raw)
        result = run("vectors", "import", path, "--out", Path(folder) / "v.safetensors")
        assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
        if result.exit_code == 2:
            one_error_line(result)
        else:
            _check_loaded(Path(folder) / "v.safetensors")


def test_the_gguf_fuzzer_also_makes_importable_files():
    from hypothesis import find

    def imports(raw: bytes) -> bool:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "v.gguf"
            path.write_bytes(raw)
            try:
                return len(read_gguf(path).layers) >= 1
            except UserError:
                return False

    find(gguf_files(), imports, settings=settings(max_examples=500, deadline=None))


def test_gguf_and_numpy_files_given_as_vectors_say_how_to_convert(tmp_path):
    write_gguf(_ok([1, 2]), tmp_path / "v.gguf")
    one_error_line(run("vectors", "info", tmp_path / "v.gguf"), "it is a GGUF file", "vectors import")
    np.save(tmp_path / "a.npy", np.ones((2, D), dtype=np.float32))
    one_error_line(run("vectors", "info", tmp_path / "a.npy"), "it is a NumPy array", "--from-array")
