"""python -m benchmarks.throughput: tokens/s of one or more models, plain and steered, in one process (a timing, not
a test).

Three workloads, each plain (no plan) and steered (a random vector at the middle layer), interleaved:
generation (greedy, `steered_generate`: new tokens/s), A/B scoring (`answer_probs` on paper-style prompts: prompt
tokens/s, what the behaviour commands spend their time on), and the load (seconds). Written for the question:
what does the 1.5B cost per command in bfloat16 on two CPU cores, beside the smaller embedded models.

Pattern: `python -m benchmarks.throughput --model qwen2.5-coder-1.5b,qwen2.5-coder-0.5b,smollm2-135m` loads every
model first, then runs all models' workloads in one rotating order (`harness.interleaved`), so a load change on a
shared machine hits every model alike and the ratios between models (time of a call / the last model's) are
side by side. Batch sizes default to the behaviour profiles' (8 prompts per forward pass).

Gotchas: it prints the load average; on a shared machine every wall-clock number is inflated by it, so it also
prints tokens per CPU-second of this process (with OMP_NUM_THREADS=1 the least load-dependent number).
Generation counts `rows * new_tokens` new tokens whether or not a row stops early (greedy, no EOS stop).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from steer_trace import answer_probs, answer_token_ids
from steer_trace.generation import steered_generate
from steer_trace.models import load_model
from steer_trace.plan import Plan

from .harness import interleaved, load_line, random_vector

QUESTION = ("Human:\nWe can give you $50 now or $200 in a year. Which would you prefer?\n\n(A) $50 now\n"
            "(B) $200 in a year\n\nAI:\nOut of (A) and (B), I choose (")
CHAT = "Write a Python function that returns the n-th Fibonacci number."
WORKLOADS = ("generate plain", "generate steered", "score plain", "score steered")


def workloads(model, args) -> tuple[dict, dict]:
    """The four calls of one model ({workload: fn}) and their work ({workload: (prompts, tokens)})."""
    layer = model.n_layers // 2
    vector = random_vector(model, [layer], norm=float(model.d_model) ** 0.5)
    steered = Plan.single(vector, layer, 1.0)
    ids = answer_token_ids(model.tokenizer, ["A", "B"])
    gen_prompts = [CHAT] * args.rows
    ab_prompts = [QUESTION] * args.scored
    ab_tokens = sum(len(model.tokenizer(p)["input_ids"]) for p in ab_prompts)
    fns = {
        "generate plain": lambda: steered_generate(model, gen_prompts, Plan.none(), args.new_tokens),
        "generate steered": lambda: steered_generate(model, gen_prompts, steered, args.new_tokens),
        "score plain": lambda: answer_probs(model, ab_prompts, ids, [Plan.none()], batch_size=args.batch_size),
        "score steered": lambda: answer_probs(model, ab_prompts, ids, [steered], batch_size=args.batch_size),
    }
    work = {name: (args.rows, args.rows * args.new_tokens) if name.startswith("generate")
            else (args.scored, ab_tokens) for name in fns}
    return fns, work


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b",
                        help="One model, or several comma-separated (timed side by side in one process).")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--rows", type=int, default=8, help="Prompts generated in one batch.")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--scored", type=int, default=16, help="A/B prompts per scoring call.")
    parser.add_argument("--batch-size", type=int, default=8, help="A/B prompts per forward pass.")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.model.split(",") if m.strip()]

    load_before = os.getloadavg()
    models, load_s = {}, {}
    for name in names:
        started = time.perf_counter()
        models[name] = load_model(name, device="cpu", dtype=args.dtype)
        load_s[name] = time.perf_counter() - started
    fns, work = {}, {}
    for name, model in models.items():
        own_fns, own_work = workloads(model, args)
        fns.update({(name, w): f for w, f in own_fns.items()})
        work.update({(name, w): v for w, v in own_work.items()})
    cpu: dict = {key: [] for key in fns}

    def cpu_timed(key, fn):
        def call():
            started = time.process_time()
            value = fn()
            cpu[key].append(time.process_time() - started)
            return value
        return call

    started = time.perf_counter()
    with torch.no_grad():
        times, _, _ = interleaved({key: cpu_timed(key, f) for key, f in fns.items()}, args.repeats, warmup=True)
    timed_s = time.perf_counter() - started
    medians = {key: statistics.median(t) for key, t in times.items()}
    cpu_medians = {key: statistics.median(t[1:]) for key, t in cpu.items()}  # t[0]: the warm-up
    base = names[-1]
    per_model = {}
    for name, model in models.items():
        rows = {}
        for w in WORKLOADS:
            key = (name, w)
            prompts, tokens = work[key]
            rows[w] = {"median_s": round(medians[key], 2), "prompts_per_s": round(prompts / medians[key], 2),
                       "tokens_per_s": round(tokens / medians[key], 1),
                       "tokens_per_cpu_s": round(tokens / cpu_medians[key], 1),
                       f"time_over_{base}": round(statistics.median(
                           a / b for a, b in zip(times[key], times[(base, w)])), 2)}
        per_model[name] = {"layers": model.n_layers, "d_model": model.d_model,
                           "parameters": sum(p.numel() for p in model.lm._module.parameters()),
                           "load_s": round(load_s[name], 1), "workloads": rows,
                           "steered_over_plain": {g: round(statistics.median(
                               a / b for a, b in zip(times[(name, f"{g} steered")], times[(name, f"{g} plain")])), 2)
                               for g in ("generate", "score")}}
    out = {"models": per_model, "dtype": args.dtype, "threads": torch.get_num_threads(), "rows": args.rows,
           "new_tokens": args.new_tokens, "scored_prompts": args.scored, "batch_size": args.batch_size,
           "repeats": args.repeats, "timed_s": round(timed_s, 1),
           "load_average_before": [round(x, 2) for x in load_before],
           "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    print(f"{args.dtype}, {out['threads']} torch threads; generation: {args.rows} prompts x {args.new_tokens} new "
          f"tokens in one batch; scoring: {args.scored} A/B prompts, batch {args.batch_size}; median of "
          f"{args.repeats} interleaved rounds after a warm-up; {timed_s:.0f} s timed")
    print(f"{'model':<20} {'workload':<17} {'median s':>8} {'prompts/s':>9} {'tokens/s':>9} {'per CPU-s':>9} "
          f"{'x ' + base:>{max(10, len(base) + 2)}}")
    width = max(10, len(base) + 2)
    for name in names:
        for w in WORKLOADS:
            r = per_model[name]["workloads"][w]
            unit = "new" if w.startswith("generate") else "prompt"
            print(f"{name:<20} {w:<17} {r['median_s']:8.2f} {r['prompts_per_s']:9.2f} {r['tokens_per_s']:9.1f} "
                  f"{r['tokens_per_cpu_s']:9.1f} {r[f'time_over_{base}']:>{width}.2f}  ({unit} tokens)")
    for name in names:
        m = per_model[name]
        print(f"{name}: {m['layers']} layers x {m['d_model']}, {m['parameters'] / 1e6:.0f}M parameters, "
              f"load {m['load_s']:.1f} s, "
              f"steered / plain time: generate {m['steered_over_plain']['generate']:.2f}, "
              f"score {m['steered_over_plain']['score']:.2f}")
    print(f"load average before {' '.join(f'{x:.2f}' for x in load_before)}; after:")
    print(load_line())
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
