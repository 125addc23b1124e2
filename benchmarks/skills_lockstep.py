"""python -m benchmarks.skills_lockstep: a skills sweep one plan per call, in lockstep, and in lockstep with the
layers below kept across steps (a timing, not a test).

K curves at one layer (the middle layer: both targets, the vector and its two controls, K = 6; any other
`--layer`: the two vectors, K = 2), a few coefficients that keep every curve going (S steered steps), tiny
documents of one evaluation size, so every schedule step of the lockstep sweep is one `token_accuracy` call of
K plans. All sides start from a results folder holding only the baseline point (the same copy each time), run
interleaved, and the median paired time ratios are printed next to their ideals: lockstep / one-by-one
(L + K(n - L)) / (K n) (and the layout's own forward-equivalents ratio); kept / lockstep
(L + S K (n - L)) / (S (L + K (n - L))). Those count decoder layers only; every steered pass also runs the
output head over every position (logits for top-1), which no sharing removes, so each ratio is also given
with per-token cost taken as parameters: a layer's share (1 - h) / n, the head's h.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from steer_trace.cache import Run
from studies.skills.corpora import load_corpus
from studies.skills import profiles
from studies.skills import run as skills
from steer_trace.models import load_model
from steer_trace.plan import Plan
from steer_trace.row_plans import forward_equivalents, layout

from .harness import interleaved, load_line, median_ratio, medians_line, random_vector


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


def head_share(model) -> float:
    """The output head's share of a full pass's per-token cost, costs taken as parameter counts."""
    module = model.lm._module
    layers = sum(p.numel() for p in module.get_submodule(model.layers_path).parameters())
    head = module.get_output_embeddings().weight.numel()
    return head / (head + layers)


def ideals_with_head(h: float, n: int, layer: int, k: int, s: int) -> tuple[float, float]:
    """(lockstep / one-by-one, kept / lockstep) with the head's share h in every steered pass."""
    prefix = layer / n * (1 - h)  # layers < L, no logits
    rows = k * ((n - layer) / n * (1 - h) + h)  # K plans from L up, head included
    return (prefix + rows) / k, (prefix / s + rows) / (prefix + rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.skills_lockstep")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--coefs", default="0,0.5,1,1.5,2")
    parser.add_argument("--tokens", type=int, default=100, help="Scored tokens per domain (one evaluation size).")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--layer", type=int, default=None, help="The model layer (default: the middle layer).")
    args = parser.parse_args(argv)

    loaded = load_model(args.model)
    model = skills.LazyModel(lambda: loaded, args.model, "bench")
    corpus = load_corpus(n_vector=2)  # the project's own data/skills
    profile = profiles.make_profile("quick", eval_tokens=args.max_tokens, sweep_tokens=args.tokens,
                                  headline_tokens=args.tokens, batch_size=args.batch_size, n_boot=50,
                                  coefs=[float(c) for c in args.coefs.split(",")])
    vectors = small_vectors(loaded, norm=1.0)
    layer = profiles.middle_layer(loaded.n_layers) if args.layer is None else args.layer
    controls = layer == profiles.middle_layer(loaded.n_layers)
    if not controls:
        vectors = {key: v for key, v in vectors.items() if key[1] == "none"}
    n_docs = len(skills.eval_sets(corpus, profile, model.tokenizer())["sweep"].texts)
    work = Path(tempfile.mkdtemp(prefix="skills-lockstep-"))
    template = with_baseline(model, corpus, profile, vectors, work / "template")

    def run(name: str, lockstep: bool, keep: bool):
        root = work / f"run-{name}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(template, root)
        return skills.sweep(model, corpus, profile, vectors, root, layers=[layer], permuted_control=controls,
                            lockstep=lockstep, keep_prefixes=keep)

    sides = {"one-by-one": (False, False), "lockstep": (True, False), "kept": (True, True)}
    times, values, passes = interleaved({name: lambda n=name, o=opts: run(n, *o) for name, opts in sides.items()},
                                        args.repeats, warmup=False, counter=loaded)
    shutil.rmtree(work, ignore_errors=True)
    one, lock, kept = values["one-by-one"], values["lockstep"], values["kept"]
    same = all(v.documents.equals(one.documents) and v.table.equals(one.table) for v in (lock, kept))
    formula, from_layout = ideal(loaded, vectors, layer, n_docs, args.batch_size)
    n, k, s = loaded.n_layers, len(vectors), len(profile.coefs) - 1
    kept_formula = (layer + s * k * (n - layer)) / (s * (layer + k * (n - layer)))
    h = head_share(loaded)
    lock_head, kept_head = ideals_with_head(h, n, layer, k, s)
    steered = lock.computed_points
    print(f"skills sweep, {args.model}: K={k} curves at layer {layer} of {n}, coefs {args.coefs} "
          f"(S={s} steps, {steered} steered points), {n_docs} documents of <= {args.max_tokens} tokens, "
          f"batch {args.batch_size}, {args.repeats} rounds, torch threads {torch.get_num_threads()}")
    print("  forward passes (prefix passes included): " + ", ".join(f"{name} {passes[name]}" for name in sides))
    print(medians_line({name: times[name] for name in sides}))
    print(f"  time lockstep/one-by-one {median_ratio(times['lockstep'], times['one-by-one']):.2f}  "
          f"ideal (L + K(n-L))/(K n) = {formula:.2f} (layout forward-equivalents {from_layout:.2f}), "
          f"with the head {lock_head:.2f}")
    print(f"  time kept/lockstep {median_ratio(times['kept'], times['lockstep']):.2f}  "
          f"ideal (L + S K(n-L))/(S (L + K(n-L))) = {kept_formula:.2f}, with the head {kept_head:.2f}; "
          f"same points and counts on all three: {'yes' if same else 'NO'}")
    print(f"  head share h = {h:.2f} of a pass's per-token cost (parameters: head / (head + decoder layers))")
    print(load_line())
    if not same:
        raise SystemExit("error: the three sides scored different points or counts")


if __name__ == "__main__":
    main()
