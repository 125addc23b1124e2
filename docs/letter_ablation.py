"""Letter-direction ablation: does a behaviour vector still move p(matching) once the answer-letter
direction is projected out?

    PYTHONPATH=. python docs/letter_ablation.py --data-dir ../shared/data/extending-activation-addition/data/datasets \
        [--behaviour myopic] [--layer 14] [--mults 8] [--plain-mean]

On smollm2-135m, the quick profile's split of the paper's processed set (64 vector pairs, 24 test
questions asked in both option orders = 48 prompts). The letter direction ℓ at the layer is the mean
activation difference between answer token "A" and "B" at the answer position over the vector pairs:
half the difference of the two group vectors (A-matching pairs, B-matching pairs) that `behaviours extract` saves.
Reads (or extracts once) the vectors under --results (default: results/). Prints, per condition,
mean p(matching) and its paired change against the unsteered model with a 95% bootstrap interval
over prompts (the same prompts under every condition).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from studies.behaviours.config import open_study
from studies.behaviours.profiles import make_profile
from studies.behaviours.vectors import load_or_extract
from steer_trace.metrics import bootstrap_ci
from steer_trace.models import load_model
from steer_trace.plan import Injection, Plan
from steer_trace.score import answer_probs, answer_token_ids


def p_matching(probs: torch.Tensor, matching: torch.Tensor) -> np.ndarray:
    probs = probs.double()
    return (probs.gather(1, matching[:, None]).squeeze(1) / probs.sum(1)).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--behaviour", default="myopic")
    parser.add_argument("--layer", type=int, default=14)
    parser.add_argument("--mults", default="8")
    parser.add_argument("--results", default="results", help="Where the behaviour vectors are (or go).")
    parser.add_argument("--data-dir", default=None, help="Behaviour files (default: the project's small sets).")
    parser.add_argument("--plain-mean", action="store_true", help="The paper's plain-mean vector (default: balanced).")
    args = parser.parse_args()
    started = time.time()
    model = load_model("smollm2-135m")
    study = open_study(model, make_profile("quick"), behaviours=(args.behaviour,), root=args.results,
                       data_dir=args.data_dir, balanced=not args.plain_mean)
    L = args.layer
    for balanced in (False, True):  # both vectors' geometry; the chosen one is scored
        study.balanced = balanced
        vector, groups = load_or_extract(study, args.behaviour)
        v = vector[L]
        letter = (groups["A"][L] - groups["B"][L]) / 2
        u = letter / letter.norm()
        v_perp = v - (v @ u) * u
        residual = float(vector.meta["residual_norms"][str(L)])
        print(f"{args.behaviour} L{L} {'letter-balanced' if balanced else 'plain mean'} vector "
              f"({vector.meta['n_pairs']} pairs {vector.meta['groups']}): |v| {v.norm():.2f}, |ℓ| {letter.norm():.2f}, "
              f"residual norm {residual:.1f}, cos(v, ℓ) {float(v @ u / v.norm()):+.3f}, "
              f"|v − (v·ℓ̂)ℓ̂| / |v| {float(v_perp.norm() / v.norm()):.3f}")
        if balanced != args.plain_mean:
            scored = v, v_perp, letter
    study.balanced = not args.plain_mean
    v, v_perp, letter = scored
    print(f"scoring the {'plain-mean' if args.plain_mean else 'letter-balanced'} vector")

    items = study.questions(args.behaviour, "test")
    prompts = [study.prompt(item) for item in items]
    ids = answer_token_ids(model.tokenizer, list(items[0].options))
    matching = torch.tensor([item.matching_index for item in items])
    mults = [float(m) for m in args.mults.split(",")]
    mults = sorted({s * m for m in mults for s in (-1, 1)})

    def add(vec, m):
        return Injection(L, vec, m)

    out_letter = Injection(L, letter, 0.0, "project-out")
    conditions = {"unsteered": Plan.none(), "project-out ℓ̂ only": Plan((out_letter,))}
    for m in mults:
        conditions[f"add v x{m:+g}"] = Plan((add(v, m),))
        conditions[f"add v⊥ x{m:+g}"] = Plan((add(v_perp, m),))
        conditions[f"[project-out ℓ̂, add v] x{m:+g}"] = Plan((out_letter, add(v, m)))
    plans = list(conditions.values())
    results = answer_probs(model, prompts, ids, plans, batch_size=8)
    base = p_matching(results[0][0], matching)
    print(f"{len(prompts)} prompts (both option orders); p(matching) renormalised over A/B; "
          f"Δ = paired change against unsteered, 95% bootstrap interval over prompts")
    print(f"{'condition':<32} {'p(match)':>9} {'Δ':>8}  {'95% interval':<18} {'A+B mass':>8} {'greedy A':>8}")
    for (name, _), (probs, greedy) in zip(conditions.items(), results, strict=True):
        p = p_matching(probs, matching)
        lo, hi = bootstrap_ci(p - base, seed=0)
        share_a = float((greedy == ids[0]).double().mean())
        mass = float(probs.double().sum(1).mean())
        print(f"{name:<32} {p.mean():>9.3f} {p.mean() - base.mean():>+8.3f}  [{lo:+.3f}, {hi:+.3f}]   "
              f"{mass:>8.3f} {share_a:>8.2f}")
    print(f"{len(plans)} conditions in {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
