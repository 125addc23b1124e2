"""SteeringVector: one direction per layer, with where it came from.

Saved as safetensors (tensors ``layer.<L>``) with the provenance as JSON in the
header metadata; loading never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import UserError, file_in_the_way

FORMAT = "steer_trace.vector/1"


@dataclass
class SteeringVector:
    layers: dict[int, torch.Tensor]  # layer -> [d_model] float32
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.layers = {int(k): v.detach().to(torch.float32).reshape(-1) for k, v in sorted(self.layers.items())}

    @property
    def d_model(self) -> int:
        return next(iter(self.layers.values())).numel()

    def __getitem__(self, layer: int) -> torch.Tensor:
        if layer not in self.layers:
            have = ", ".join(map(str, self.layers))
            raise UserError(f"vector {self.meta.get('name', '')!r} has no layer {layer} (has {have})")
        return self.layers[layer]

    def only(self, layers) -> SteeringVector:
        return SteeringVector({int(L): self[int(L)] for L in layers}, dict(self.meta))

    def norms(self) -> dict[int, float]:
        return {L: float(v.norm()) for L, v in self.layers.items()}

    def scaled(self, factor: float) -> SteeringVector:
        return SteeringVector({L: v * factor for L, v in self.layers.items()}, dict(self.meta))

    def permuted(self, seed: int = 0) -> SteeringVector:
        """Same components in a seeded random order per layer: a control with equal norm."""
        gen = torch.Generator().manual_seed(seed)
        out = {L: v[torch.randperm(v.numel(), generator=gen)] for L, v in self.layers.items()}
        return SteeringVector(
            out, {**self.meta, "method": f"{self.meta.get('method', '?')}+permuted", "permute_seed": seed}
        )

    # -- files ---------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        from safetensors import SafetensorError
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {f"layer.{L}": v.contiguous() for L, v in self.layers.items()}
        # unique per writer: two processes saving one vector each rename a whole file of their own
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            header = {"format": FORMAT, "provenance": json.dumps(self.meta, sort_keys=True),
                      "sha256": tensor_digest(self.layers)}
            save_file(tensors, str(tmp), metadata=header)
            tmp.chmod(0o644)  # safetensors writes 0600; vectors are meant to be shared
            tmp.replace(path)
        except (OSError, SafetensorError) as error:
            if tmp.parent.is_dir():
                tmp.unlink(missing_ok=True)
            blocker = file_in_the_way(path.parent)
            reason = f"{blocker} is a file, not a folder" if blocker else getattr(error, "strerror", None) or error
            raise UserError(f"cannot write vector file {path} ({reason})") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> SteeringVector:
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if path.is_dir():
            raise UserError(f"vector file {path} is a folder, not a .safetensors file")
        if not path.is_file():
            raise UserError(f"vector file {path} does not exist")
        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
                keys = _layer_keys(path, f.keys())
                layers = {L: f.get_tensor(k).clone() for L, k in keys.items()}  # copies: never views of the mapped file
        except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as error:
            if _looks_pickled(path):
                raise UserError(f"{path} is not a readable safetensors vector file: it is a pickle / torch.save "
                                "file, which is never unpickled (vectors load only from safetensors)") from None
            reason = (str(error).splitlines() or [type(error).__name__])[0][:120]
            raise UserError(f"{path} is not a readable safetensors vector file ({_other_format(path) or reason})") \
                from None
        layers = checked_layers(path, layers)
        recorded = header.get("sha256")
        if recorded is not None and recorded != tensor_digest(layers):
            raise UserError(f"vector file {path} was altered after it was saved: its tensors no longer match the "
                            "sha256 recorded in it (extract or save it again)")
        return cls(layers, _provenance(path, header))


def check_writable(path: str | Path) -> Path:
    """Fail before any work when a vector cannot be saved at `path`: a folder there, a file in the way of its
    folder, no permission (a probe file is written and removed)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write vector file {path} (it is a folder): give a file name, "
                        f"e.g. {path / 'v.safetensors'}")
    probe = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        blocker = file_in_the_way(path.parent)
        reason = f"{blocker} is a file, not a folder" if blocker else error.strerror or error
        raise UserError(f"cannot write vector file {path} ({reason})") from None
    return path


def tensor_digest(layers: dict[int, torch.Tensor]) -> str:
    """sha256 of the layers' float32 values in layer order: recorded in a saved file's header and checked on
    every load (files written before it carry none and are not checked)."""
    digest = hashlib.sha256()
    for L in sorted(layers):
        digest.update(f"layer.{L}:".encode())
        digest.update(layers[L].detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


_LAYER_KEY = re.compile(r"layer\.([0-9]+)")


def _layer_keys(path: Path, keys) -> dict[int, str]:
    """layer number -> tensor key; keys outside the `layer.` namespace are ignored, a malformed or
    repeated layer number (`layer.abc`, `layer.9` next to `layer.09`) is refused, naming the keys."""
    keys = sorted(keys)
    found: dict[int, str] = {}
    for key in keys:
        if not key.startswith("layer."):
            continue
        match = _LAYER_KEY.fullmatch(key)
        if not match:
            raise UserError(f"{path} has a tensor named {key!r}: vector tensors are named layer.<L>, "
                            "L a layer number (0, 1, 2, ...)")
        layer = int(match.group(1))
        if layer in found:
            raise UserError(f"{path} has two tensors for layer {layer}: {found[layer]!r} and {key!r}")
        found[layer] = key
    if not found:
        some = ", ".join(repr(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
        held = f"(it holds {some})" if keys else "(it holds no tensors)"
        raise UserError(f"{path} holds no 'layer.<L>' tensors {held}; for a plain [layers, d_model] array use "
                        "`steer-trace vectors import --from-array`")
    return found


def checked_layers(path: Path, layers: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Every layer a non-empty 1-D float vector, finite in float32, all of one width."""
    out, widths = {}, {}
    for L, v in layers.items():
        if not v.is_floating_point() or v.dim() != 1 or v.numel() == 0:
            raise UserError(f"{path} layer {L} is not a 1-D float vector (dtype {v.dtype}, shape {list(v.shape)})")
        v = v.to(torch.float32)
        if not torch.isfinite(v).all():
            raise UserError(f"{path} layer {L} contains NaN or inf (as float32)")
        out[L] = v
        widths.setdefault(v.numel(), L)
    if len(widths) > 1:
        shown = ", ".join(f"{w} (layer {L})" for w, L in sorted(widths.items()))
        raise UserError(f"{path} mixes vector widths across layers: {shown}")
    return out


def _provenance(path: Path, header: dict) -> dict:
    try:
        meta = json.loads(header.get("provenance", "{}"))
    except json.JSONDecodeError:
        raise UserError(f"{path} has unreadable provenance metadata (not JSON)") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path} has provenance metadata that is not a JSON object")
    return meta


_OTHER_FORMATS = {b"GGUF": "it is a GGUF file: convert a llama.cpp control vector with `steer-trace vectors import`",
                  b"\x93NUMPY": "it is a NumPy array: convert it with `steer-trace vectors import --from-array`"}


def _other_format(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(8)
    return next((hint for magic, hint in _OTHER_FORMATS.items() if head.startswith(magic)), None)


def _looks_pickled(path: Path) -> bool:
    """A torch.save zip archive or a raw pickle (protocol 2+), judged by its first bytes only. A safetensors
    header (8-byte length, then '{') whose length happens to start with byte 0x80 is not a pickle."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return False
    return head.startswith((b"PK\x03\x04", b"\x80"))


def cosine(a: SteeringVector, b: SteeringVector) -> dict[int, float]:
    """Cosine similarity per layer both vectors have."""
    return {
        L: float(torch.nn.functional.cosine_similarity(a.layers[L], b.layers[L], dim=0))
        for L in a.layers
        if L in b.layers
    }


def combine(vectors: list[SteeringVector], weights: list[float] | None = None, how: str = "sum") -> SteeringVector:
    """Paper's combinations: sum, mean, weighted sum (weights), weighted mean (weights / n)."""
    if not vectors:
        raise UserError("nothing to combine")
    if how not in ("sum", "mean"):
        raise UserError(f"unknown combination {how!r} (sum or mean)")
    weights = [1.0] * len(vectors) if weights is None else [float(w) for w in weights]
    if len(weights) != len(vectors):
        raise UserError(f"{len(weights)} weights for {len(vectors)} vectors")
    shared = set.intersection(*(set(v.layers) for v in vectors))
    if not shared:
        raise UserError("the vectors share no layer")
    scale = 1.0 / len(vectors) if how == "mean" else 1.0
    layers = {L: scale * sum(w * v.layers[L] for w, v in zip(weights, vectors)) for L in sorted(shared)}
    meta = {
        "method": f"combined-{how}",
        "parts": [v.meta.get("name", "?") for v in vectors],
        "weights": weights,
        "model": vectors[0].meta.get("model"),
    }
    return SteeringVector(layers, meta)
