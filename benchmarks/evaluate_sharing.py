"""python -m benchmarks.evaluate_sharing: one `evaluate` run as it runs (up to 16 plans per call: rows of a call
share forward passes, and the layers below the first steered layer run once) against the same points scored one
plan per call (each point alone, as running them one command at a time would, without the start-up of each
command); a timing, not a test. Each side starts from an empty cache; the model is loaded once.

Usage: python -m benchmarks.evaluate_sharing [--model smollm2-135m] [--dataset FILE] [--small]
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
    parser.add_argument("--small", action="store_true", help="small sizes (minutes on a loaded 2-core machine)")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    opts = Options(**SMALL) if args.small else Options()
    default = behaviour_eval.POINTS_PER_CALL
    try:
        shared, t_shared, n = timed(model, args.dataset, opts, default)
        alone, t_alone, _ = timed(model, args.dataset, opts, 1)
    finally:
        behaviour_eval.POINTS_PER_CALL = default
    stages = ("search", "test")
    print(f"{args.model} on {args.dataset}: {n} points and vectors")
    print(f"  {default} plans per call: {shared:.1f} s (" + ", ".join(f"{s} {t_shared[s]:.1f} s" for s in stages) + ")")
    print("  1 plan per call:   " + f"{alone:.1f} s (" + ", ".join(f"{s} {t_alone[s]:.1f} s" for s in stages) + ")")
    print(f"  ratio {alone / shared:.2f}x; load {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
