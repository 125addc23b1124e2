"""python -m benchmarks.evaluate_sharing: one `evaluate` run as it runs (up to 16 plans per call: rows of a call
share forward passes, and the layers below the first steered layer run once) against the same points scored one
plan per call (each point alone, as running them one command at a time would, without the start-up of each
command); a timing, not a test. Each side starts from an empty cache; the model is loaded once. The two sides
run in ABBA order (shared, alone, alone, shared, ... for --repeats rounds) so that a load that drifts during the
run weighs on both alike; the ratio is of the summed times, and every run's time is printed.

Usage: python -m benchmarks.evaluate_sharing [--model smollm2-135m] [--dataset FILE] [--size default|small|tiny]
                                            [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import studies.behaviours.scoring as behaviour_eval
from steer_trace.models import load_model
from studies.evaluate.run import Options, evaluate

SMALL = dict(n_vector=20, n_validation=10, n_test=16, tax_docs=4, tax_tokens=64, gen_tokens=12)
TINY = dict(n_vector=12, n_validation=6, n_test=8, layers=(14,), coefs=(0.4, 3.2), tax_docs=2, tax_tokens=32,
            gen_tokens=12)


def timed(model, dataset: str, opts: Options, per_call: int) -> tuple[float, dict, int]:
    behaviour_eval.POINTS_PER_CALL = per_call
    with tempfile.TemporaryDirectory() as root:
        started = time.time()
        ev = evaluate(model, dataset, opts, root=root)
        return time.time() - started, ev.timings, ev.study.computed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser("python -m benchmarks.evaluate_sharing")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dataset", default="data/behaviours/myopic.jsonl")
    parser.add_argument("--size", choices=["default", "small", "tiny"], default="default",
                        help="small / tiny: minutes on a loaded 2-core machine")
    parser.add_argument("--repeats", type=int, default=1, help="ABBA rounds (each: 2 shared + 2 alone runs)")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    # the text stage (generation) shares nothing of what is timed here: left out, as before it existed
    opts = Options(**{"default": {}, "small": SMALL, "tiny": TINY}[args.size], text_questions=0)
    default = behaviour_eval.POINTS_PER_CALL
    times, n = {default: [], 1: []}, 0
    stages = ("search", "test")
    print(f"{args.model} on {args.dataset}, size {args.size}; load before "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    try:
        for per_call in [default, 1, 1, default] * args.repeats:
            took, stage_times, computed = timed(model, args.dataset, opts, per_call)
            n = max(n, computed)
            times[per_call].append(took)
            print(f"  {per_call:2d} plans per call: {took:7.1f} s ("
                  + ", ".join(f"{s} {stage_times[s]:.1f} s" for s in stages)
                  + f"); load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        behaviour_eval.POINTS_PER_CALL = default
    shared, alone = sum(times[default]), sum(times[1])
    print(f"{n} points and vectors per run; one plan per call / {default} per call = {alone / shared:.2f}x "
          f"(sums of {len(times[1])} runs each); load after {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
