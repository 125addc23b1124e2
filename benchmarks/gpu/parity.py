"""GPU parity and throughput, as one short script that writes a log (see README.md here).

    python benchmarks/gpu/parity.py --device cuda --log gpu-parity.log          # the real run (~2-4 min)
    python benchmarks/gpu/parity.py --device cpu --dry --log /tmp/dry.log        # the CPU check that it runs

1. The architecture matrix (tests/test_architectures.py's tiny models and hook reference) on the
   device, per dtype: max |Δ| of read and steered logits against the hook, and generated text equal.
2. smollm2-135m: steered logits and last-token activations against the hook reference, per dtype.
3. smollm2-135m in bfloat16: plain and steered forward passes per second at batch 1 / 8 / 64
   (side by side in one run; the ratio is the steering overhead).

Exit code 0 when every check is within its tolerance, 1 otherwise; the log says which.
"""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import test_architectures as matrix  # noqa: E402  (the tiny models and the hook reference)
import torch  # noqa: E402

from steer_trace import load_model, read_batch  # noqa: E402
from steer_trace.generation import steered_generate  # noqa: E402
from steer_trace.plan import Injection, Plan  # noqa: E402

TOL = {"float32": 1e-5, "bfloat16": 5e-2, "float16": 5e-3}  # same kernels on both sides: rounding only
PROMPT = "Human: Would you rather have $5 now or $10 next week?\n\n(A) $5 now\n(B) $10 next week\n\nAI: I choose ("


class Log:
    def __init__(self, path: Path):
        self.file = open(path, "a", buffering=1)
        self.failures = 0

    def __call__(self, line: str):
        print(line, flush=True)
        self.file.write(line + "\n")

    def check(self, label: str, value: float, tol: float):
        ok = value <= tol
        self.failures += not ok
        self(f"{'ok  ' if ok else 'FAIL'} {label:<48} max|Δ| {value:.2e} (tol {tol:.0e})")


def max_diff(a, b) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def family_parity(log: Log, family: str, model, dtype: str):
    """Read, steer and generate against the hook reference (the matrix test's checks, measured)."""
    texts, n = matrix.TEXTS, model.n_layers
    seen = {}

    def keep(L):
        def hook(_m, _i, output):
            seen[L] = matrix.hidden(output).detach().clone()
        return hook

    enc = matrix.encoded(model, texts)
    matrix.with_hooks(model, family, {L: keep(L) for L in range(n)}, lambda: model.lm._module(**enc))
    got = read_batch(model, texts, list(range(n)), "last")
    log.check(f"{family} {dtype} read", max(max_diff(got[L], seen[L][:, -1, :]) for L in range(n)), TOL[dtype])
    plan = matrix.a_plan(model)
    steered = matrix.library_logits(model, texts, plan)
    reference = matrix.reference_logits(model, family, texts, dict(plan.deltas()))
    log.check(f"{family} {dtype} steer", max_diff(steered, reference), TOL[dtype])
    enc = matrix.encoded(model, texts[:2])
    hooks = {L: matrix.adding(d) for L, d in plan.deltas()}
    ids = matrix.with_hooks(model, family, hooks, lambda: model.lm._module.generate(
        **enc, max_new_tokens=4, min_new_tokens=4, do_sample=False))
    expected = [model.tokenizer.decode(r[enc["input_ids"].shape[1]:], skip_special_tokens=True) for r in ids]
    same = steered_generate(model, texts[:2], plan, max_new_tokens=4) == expected
    log.failures += not same
    log(f"{'ok  ' if same else 'FAIL'} {family + ' ' + dtype + ' generate':<48} text equal: {same}")


def smollm2_parity(log: Log, device: str, dtype: str):
    model = load_model("smollm2-135m", device=device, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    plan = Plan((Injection(14, torch.randn(576, generator=g), 4.0),), "L14")
    texts = [PROMPT, "The capital of France is"]
    steered = matrix.library_logits(model, texts, plan)
    reference = matrix.reference_logits(model, "model.layers", texts, dict(plan.deltas()))
    log.check(f"smollm2-135m {dtype} steer", max_diff(steered, reference), TOL[dtype] * 10)  # 30 layers, not 3
    seen = {}

    def keep(_m, _i, output):
        seen[14] = matrix.hidden(output).clone()

    matrix.with_hooks(model, "model.layers", {14: keep}, lambda: model.lm._module(**matrix.encoded(model, texts)))
    log.check(f"smollm2-135m {dtype} read L14", max_diff(read_batch(model, texts, [14])[14], seen[14][:, -1, :]),
              TOL[dtype] * 10)
    return model


def throughput(log: Log, model, batches: list[int], repeats: int):
    from steer_trace import answer_probs, answer_token_ids

    ids = answer_token_ids(model.tokenizer, ["A", "B"])
    plan = Plan((Injection(14, torch.ones(576), 1.0),), "L14")
    for b in batches:
        prompts = [PROMPT] * b
        row = []
        for p in (Plan.none(), plan):
            answer_probs(model, prompts, ids, [p], batch_size=b)  # warm-up
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(repeats):
                answer_probs(model, prompts, ids, [p], batch_size=b)
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            row.append(repeats * b / (time.perf_counter() - start))
        log(f"throughput {model.numerics['dtype']} batch {b:>3}: plain {row[0]:8.1f} prompts/s, "
            f"steered {row[1]:8.1f} prompts/s, steered/plain {row[1] / row[0]:.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--families", default="all", help="comma-separated, or all")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dry", action="store_true", help="small sizes: a CPU check that the script runs")
    parser.add_argument("--no-smollm2", action="store_true")
    parser.add_argument("--timeout", type=int, default=480, help="seconds; the script stops itself after")
    parser.add_argument("--log", default="gpu-parity.log")
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGALRM, lambda *_: sys.exit("parity: timed out (see the log for what finished)"))
    signal.alarm(args.timeout)
    try:
        return run(args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(args) -> int:
    if args.dry:
        args.batches, args.repeats = "1,2", 1
    log = Log(Path(args.log))
    families = sorted(matrix.FAMILIES) if args.families == "all" else args.families.split(",")
    dtypes = args.dtypes.split(",")
    env = torch.cuda.get_device_name(0) if args.device.startswith("cuda") and torch.cuda.is_available() else "no gpu"
    log(f"# parity {time.strftime('%Y-%m-%d %H:%M:%S')} device={args.device} ({env}) dtypes={dtypes} "
        f"torch {torch.__version__}")
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            folder = matrix.build_tiny(family, Path(tmp) / family)
            for dtype in dtypes:
                family_parity(log, family, load_model(str(folder), device=args.device, dtype=dtype), dtype)
    log(f"matrix: {len(families)} families x {len(dtypes)} dtypes in {time.time() - started:.1f}s")
    if not args.no_smollm2:
        model = None
        for dtype in dtypes:
            model = smollm2_parity(log, args.device, dtype)
        if model is not None and model.numerics["dtype"] != "bfloat16":
            model = load_model("smollm2-135m", device=args.device, dtype="bfloat16")
        throughput(log, model, [int(b) for b in args.batches.split(",")], args.repeats)
    log(f"# done in {time.time() - started:.1f}s: {log.failures} failure(s)")
    return 1 if log.failures else 0


if __name__ == "__main__":
    sys.exit(main())
