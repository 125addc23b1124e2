"""Vectors in other tools' formats: llama.cpp control-vector GGUF files, plain [layers, d_model] arrays.

**llama.cpp's layer convention**, read from its code (common/common.cpp `common_control_vector_load_one`,
src/llama-adapter.cpp `llama_adapter_cvec::apply` / `apply_to`, and each model graph's
`cur = build_cvec(cur, il)` just before `cb(cur, "l_out", il)`): the tensor `direction.<n>` is copied to
buffer row n-1 ("layer 1 at [0]"), that row becomes the adapter's tensor n, and tensor `il` is added to the
output of decoder block `il` (0-based: GGUF `blk.<il>`, transformers `model.layers[il]`), at every position,
times the `--control-vector-scaled` strength. Our layer L is the output of `model.layers[L]` too, so

    our layer L  ==  llama.cpp `direction.<L>`   (same number, no offset)

repeng writes the same names (`direction.<i>` for `model.layers[i]`). llama.cpp never steers block 0:
a file with `direction.0` (or any tensor not named `direction.<n>`, not F32 or not 1-D) is skipped whole,
so layer 0 is never exported. The loader reads no metadata at all; we write `general.architecture =
controlvector`, `controlvector.model_hint`, `controlvector.layer_count` (the number of direction
tensors, as repeng does) and our provenance as the JSON string `steer_trace.provenance`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .vectors import SteeringVector, checked_layers

ARCH = "controlvector"
PROVENANCE_KEY = "steer_trace.provenance"
GGUF_MAGIC = b"GGUF"
_DIRECTION = re.compile(r"direction\.([0-9]+)")


def is_gguf(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


# -- llama.cpp control vectors ------------------------------------------------------------------------------


def gguf_layers(vector: SteeringVector, layers=None) -> list[int]:
    """The layers a GGUF export writes: the given ones, else every layer but 0 (llama.cpp refuses direction.0)."""
    if layers is None:
        return [L for L in vector.layers if L != 0]
    chosen = sorted({int(L) for L in layers})
    for L in chosen:
        vector[L]  # a missing layer is a UserError naming the ones there are
    if 0 in chosen:
        raise UserError("layer 0 cannot go into a llama.cpp control vector: llama.cpp never steers block 0 and "
                        "skips a whole file holding direction.0")
    return chosen


def write_gguf(vector: SteeringVector, path: str | Path, layers=None, model_hint: str | None = None) -> list[int]:
    """Write `vector` as a llama.cpp control vector (our layer L -> `direction.<L>`); returns the layers written."""
    import gguf

    path = Path(path)
    chosen = gguf_layers(vector, layers)
    if not chosen:
        raise UserError("nothing to export: no layer other than 0 (which llama.cpp cannot steer)")
    hint = model_hint or str(vector.meta.get("model") or "unknown")
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = gguf.GGUFWriter(str(tmp), ARCH)
        writer.add_string(f"{ARCH}.model_hint", hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(chosen))
        writer.add_string(PROVENANCE_KEY, json.dumps(vector.meta, sort_keys=True))
        for L in chosen:
            writer.add_tensor(f"direction.{L}", vector.layers[L].numpy().astype(np.float32, copy=False))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.chmod(0o644)
        tmp.replace(path)
    except OSError as error:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path} ({error.strerror or error})") from None
    return chosen


def _field_text(reader, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None:
        return None
    try:
        value = field.contents()
    except Exception:  # noqa: BLE001 - a damaged field reads as absent-and-wrong below
        return "<unreadable>"
    return value if isinstance(value, str) else repr(value)


def read_gguf(path: str | Path) -> SteeringVector:
    """A llama.cpp control-vector GGUF file (ours or anyone's, e.g. repeng's) as a SteeringVector."""
    import gguf

    path = Path(path)
    _check_file(path)
    if not is_gguf(path):
        raise UserError(f"{path} is not a GGUF file (no 'GGUF' magic); for a .npy / .safetensors "
                        "[layers, d_model] array use --from-array")
    try:
        reader = gguf.GGUFReader(str(path))
        arch = _field_text(reader, "general.architecture")
        tensors = [(t.name, t.tensor_type, [int(n) for n in t.shape], t.data) for t in reader.tensors]
    except Exception as error:  # noqa: BLE001 - any parse failure of an untrusted file is the file's fault
        reason = (str(error).splitlines() or [type(error).__name__])[0][:120]
        raise UserError(f"{path} is not a readable GGUF file ({reason})") from None
    if arch != ARCH:
        raise UserError(f"{path} is a GGUF file of architecture {arch!r}, not a control vector "
                        f"(general.architecture = {ARCH!r})")
    layers: dict[int, torch.Tensor] = {}
    names: dict[int, str] = {}
    for name, kind, shape, data in tensors:
        match = _DIRECTION.fullmatch(name)
        if not match:
            raise UserError(f"{path} has a tensor named {name!r}: control-vector tensors are named direction.<n>")
        L = int(match.group(1))
        if L in names:
            raise UserError(f"{path} has two tensors for layer {L}: {names[L]!r} and {name!r}")
        if kind not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) or len(shape) != 1:
            raise UserError(f"{path} tensor {name!r} is not a 1-D F32 vector (type {kind.name}, shape {shape})")
        names[L] = name
        layers[L] = torch.from_numpy(np.array(data, dtype=np.float32).reshape(-1))
    if not layers:
        raise UserError(f"{path} holds no direction.<n> tensors")
    layers = checked_layers(path, layers)
    text = _field_text(reader, PROVENANCE_KEY)
    if text is None:
        meta = {"name": path.stem, "method": "imported", "source": f"llama.cpp control vector {path.name}",
                "model_hint": _field_text(reader, f"{ARCH}.model_hint")}
    else:
        try:
            meta = json.loads(text)
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            raise UserError(f"{path} has a {PROVENANCE_KEY} entry that is not a JSON object")
    return SteeringVector(layers, meta)


# -- plain arrays ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Convention:
    """How row i of a [rows, d_model] array maps to our layer: i + shift (+ --layer-offset)."""

    shift: int
    skipped_rows: tuple[int, ...]
    meaning: str


CONVENTIONS = {
    "decoder-output": Convention(0, (), "row i is the output of decoder layer i (our layer i, llama.cpp "
                                         "direction.i, repeng's layer i)"),
    "hidden-states": Convention(-1, (0,), "row i is transformers' output_hidden_states[i]: row 0 (the "
                                          "embeddings) is dropped, row i is decoder layer i-1"),
    "llama-cpp-buffer": Convention(1, (), "row i is llama.cpp's control-vector buffer row i ('layer 1 at [0]'), "
                                          "that is direction.<i+1>: our layer i+1"),
}


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a file")
    if not path.is_file():
        raise UserError(f"{path} does not exist")


def _load_array(path: Path, key: str | None) -> torch.Tensor:
    """The one array in a .npy, .npz or .safetensors file (or the one named `key`), as float32; never unpickles."""
    if is_gguf(path):
        raise UserError(f"{path} is a GGUF file: import it without --from-array")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                tensor = f.get_tensor(_pick_key(path, list(f.keys()), key)).clone()  # not a view of the mapped file
            if not tensor.is_floating_point():
                raise UserError(f"{path} holds a {tensor.dtype} array, not floats")
            return tensor.to(torch.float32)
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            if key is not None:
                raise UserError(f"{path} holds one array; --key applies to .npz and .safetensors files")
            array = loaded
        else:
            with loaded:
                name = _pick_key(path, list(loaded.files), key)
                array = loaded[name]
            if not isinstance(array, np.ndarray):  # a zip member that is not a .npy: NpzFile hands back its bytes
                raise UserError(f"{path}: member {name!r} is not a .npy array (an .npz holds .npy files only)")
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - parse failures of an untrusted file are the file's fault
        reason = (str(error).splitlines() or [type(error).__name__])[0][:120]
        raise UserError(f"{path} is not a readable .npy / .npz / .safetensors array ({reason})") from None
    if array.dtype.kind != "f":
        raise UserError(f"{path} holds a {array.dtype} array, not floats")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused with the file's name
        return torch.from_numpy(np.array(array, dtype=np.float32))


def _pick_key(path: Path, keys: list[str], key: str | None) -> str:
    if key is not None:
        if key not in keys:
            raise UserError(f"{path} has no array {key!r} (has {', '.join(map(repr, keys[:5])) or 'none'})")
        return key
    if len(keys) != 1:
        shown = ", ".join(map(repr, keys[:5])) + (", ..." if len(keys) > 5 else "")
        raise UserError(f"{path} holds {len(keys)} arrays ({shown or 'none'}): name one with --key")
    return keys[0]


def read_array(path: str | Path, convention: str = "decoder-output", layer_offset: int = 0,
               key: str | None = None) -> SteeringVector:
    """A plain [rows, d_model] array as a SteeringVector: row i -> layer i + shift(convention) + layer_offset.

    All-zero rows are left out (a zero direction steers nothing; arrays that hold every layer leave the
    unused ones zero); a row landing on a negative layer is an error."""
    path = Path(path)
    if convention not in CONVENTIONS:
        raise UserError(f"unknown layer convention {convention!r} ({', '.join(CONVENTIONS)})")
    rule = CONVENTIONS[convention]
    _check_file(path)
    array = _load_array(path, key)
    if array.dim() != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise UserError(f"{path} holds an array of shape {list(array.shape)}, not [layers, d_model]")
    layers = {}
    for row in range(array.shape[0]):
        if row in rule.skipped_rows or not array[row].any():
            continue
        layer = row + rule.shift + int(layer_offset)
        if layer < 0:
            raise UserError(f"{path} row {row} would land on layer {layer} ({convention}, --layer-offset "
                            f"{layer_offset}): layers start at 0")
        layers[layer] = array[row]
    if not layers:
        raise UserError(f"{path} holds only zero rows: nothing to steer with")
    layers = checked_layers(path, layers)
    meta = {"name": path.stem, "method": "imported", "source": f"array {path.name}", "convention": convention,
            "layer_offset": int(layer_offset), "rows": int(array.shape[0])}
    return SteeringVector(layers, meta)
