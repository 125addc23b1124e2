"""python -m benchmarks.generate_logits: greedy generation in bfloat16 with transformers' default last-position
logits (`logits_to_keep=1`, a strided slice of the hidden states) against the same positions asked for as an index
tensor, beside steer_trace's `steered_generate` (a timing, not a test).

Written for the question: why does the 1.5B write ~1 new token/s at batch 8 on a CPU (benchmarks.throughput) when
one full forward over the same prompts takes well under a second? `Model.last_logits` already passes an index for
A/B scoring (docs/bench.md, "Last-position logits in bfloat16"); generation goes through `generate`, which sets the
int. Prints wall and CPU seconds per call, interleaved, and whether the greedy tokens are equal.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from steer_trace.batching import encode
from steer_trace.generation import steered_generate
from steer_trace.models import load_model
from steer_trace.plan import Plan

PROMPT = "Write a Python function that returns the n-th Fibonacci number."


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generate_logits")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    model = load_model(args.model, device="cpu", dtype=args.dtype)
    hf = model.lm._module
    prompts = [PROMPT] * args.rows
    enc = encode(model.tokenizer, prompts)

    def raw(**kw):
        with torch.no_grad():
            return hf.generate(**enc, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                               do_sample=False, **kw)[:, enc["input_ids"].shape[1]:]

    fns = {"steered_generate (unsteered)": lambda: steered_generate(model, prompts, Plan.none(), args.new_tokens),
           "transformers generate, int 1": raw,
           "transformers generate, index": lambda: raw(logits_to_keep=torch.arange(-1, 0))}
    out = {name: fn() for name, fn in fns.items()}  # warm-up, and the tokens compared below
    wall: dict = {name: [] for name in fns}
    cpu: dict = {name: [] for name in fns}
    for r in range(args.repeats):
        names = list(fns)[r % len(fns):] + list(fns)[: r % len(fns)]
        for name in names:
            started, c = time.perf_counter(), time.process_time()
            fns[name]()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - c)
    print(f"{args.model} {args.dtype}: {args.rows} prompts x {args.new_tokens} greedy tokens, "
          f"{torch.get_num_threads()} torch threads, median of {args.repeats} interleaved rounds after a warm-up")
    for name in fns:
        print(f"  {name:<30} {statistics.median(wall[name]):7.2f} s wall {statistics.median(cpu[name]):7.2f} s CPU")
    same = torch.equal(out["transformers generate, int 1"], out["transformers generate, index"])
    print(f"  greedy tokens equal, int vs index: {same}")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
