"""python -m benchmarks.skills_lockstep: a skills sweep in lockstep vs one plan per call (a timing, not a test).

K curves at the middle layer (both targets, the vector and its two controls: K = 6), a few coefficients that
keep every curve going, tiny documents of one evaluation size, so every schedule step of the lockstep sweep is
one `token_accuracy` call of K plans. Both sides start from a results folder holding only the baseline point
(the same copy each time), run interleaved, and the median paired time ratio is printed next to the ideal
(L + K(n - L)) / (K n) and the layout's own forward-equivalents ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import torch

from steer_trace.cache import Run
from steer_trace.corpora import load_corpus
from steer_trace.experiments import skills
from steer_trace.models import load_model
from steer_trace.plan import Plan
from steer_trace.row_plans import forward_equivalents, layout

from .harness import interleaved, median_ratio, random_vector


def small_vectors(model, norm: float) -> dict:
    """One random direction per (target, control), short enough that no curve stops early."""
    return {key: random_vector(model, range(model.n_layers), seed=k, norm=norm)
            for k, key in enumerate((t, c) for t in skills.TARGETS for c in skills.CONTROLS)}


def with_baseline(model, corpus, profile, vectors, folder: Path) -> Path:
    """A results folder holding the sweep's baseline point only (so both sides time steered points alone)."""
    sets = skills.eval_sets(corpus, profile, model.tokenizer())
    store = Run(skills.POINTS, skills.points_config(model, corpus, profile, sets, vectors, 13), folder)
    skills.PointStore(store, sets, model, profile, lambda _m: None).get([({"kind": "baseline", "size": "sweep"},
                                                                          Plan.none)])
    return folder


def ideal(model, vectors, layer: int, n_docs: int, batch_size: int) -> tuple[float, float]:
    """(formula (L + K(n - L)) / (K n), the layouts' forward-equivalents ratio) for one step of K plans."""
    n = model.n_layers
    plans = [Plan.single(vec, layer, 1.0) for vec in vectors.values()]
    chunks, batches = layout(plans, n_docs, batch_size, n)
    one_chunks, one_batches = layout(plans[:1], n_docs, batch_size, n)
    k = len(plans)
    return ((layer + k * (n - layer)) / (k * n),
            forward_equivalents(batches, chunks, n) / (k * forward_equivalents(one_batches, one_chunks, n)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.skills_lockstep")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--coefs", default="0,0.5,1,1.5,2")
    parser.add_argument("--tokens", type=int, default=100, help="Scored tokens per domain (one evaluation size).")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    loaded = load_model(args.model)
    model = skills.LazyModel(lambda: loaded, args.model, "bench")
    corpus = load_corpus(n_vector=2)  # the project's own data/skills
    profile = skills.make_profile("quick", eval_tokens=args.max_tokens, sweep_tokens=args.tokens,
                                  headline_tokens=args.tokens, batch_size=args.batch_size, n_boot=50,
                                  coefs=[float(c) for c in args.coefs.split(",")])
    vectors = small_vectors(loaded, norm=1.0)
    layer = skills.middle_layer(loaded.n_layers)
    n_docs = len(skills.eval_sets(corpus, profile, model.tokenizer())["sweep"].texts)
    work = Path(tempfile.mkdtemp(prefix="skills-lockstep-"))
    template = with_baseline(model, corpus, profile, vectors, work / "template")

    def run(lockstep: bool):
        root = work / f"run-{lockstep}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(template, root)
        return skills.sweep(model, corpus, profile, vectors, root, layers=[layer], lockstep=lockstep)

    times, values, passes = interleaved({"lockstep": lambda: run(True), "one-by-one": lambda: run(False)},
                                        args.repeats, warmup=False, counter=loaded)
    shutil.rmtree(work, ignore_errors=True)
    lock, one = values["lockstep"], values["one-by-one"]
    assert lock.documents.equals(one.documents) and lock.table.equals(one.table)
    formula, from_layout = ideal(loaded, vectors, layer, n_docs, args.batch_size)
    steered = lock.computed_points
    print(f"skills sweep, {args.model}: K={len(vectors)} curves at layer {layer} of {loaded.n_layers}, "
          f"coefs {args.coefs} ({steered} steered points), {n_docs} documents of <= {args.max_tokens} tokens, "
          f"batch {args.batch_size}, {args.repeats} rounds, torch threads {torch.get_num_threads()}")
    print(f"  forward passes (prefix passes included): lockstep {passes['lockstep']}, "
          f"one-by-one {passes['one-by-one']}")
    print(f"  median s: lockstep {statistics.median(times['lockstep']):.1f}, "
          f"one-by-one {statistics.median(times['one-by-one']):.1f}")
    print(f"  time lockstep/one-by-one {median_ratio(times['lockstep'], times['one-by-one']):.2f}  "
          f"ideal (L + K(n-L))/(K n) = {formula:.2f} (layout forward-equivalents {from_layout:.2f}); "
          f"same points and counts: yes")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
