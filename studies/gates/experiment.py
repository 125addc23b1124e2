"""Gated steering on documents: the side effect a gate removes, and the target effect it keeps.

Setting (the skills experiment's): the text - code vector at one layer makes the model worse at code
("unlearn coding"), but also worse at plain text, its side effect. A projection gate fitted on the
labelled prompts of data/conditions/code_vs_prose.jsonl ("is this code?", `steer-trace gates fit`)
lets the vector act only on documents it reads as code.

Pattern: the held-out skills documents (never used for the vector: `corpora.load_corpus`'s eval role,
WikiText-2 text and HumanEval-X code from the shared data, or the project's own files), the first
`n_docs` of each domain truncated to `max_tokens`; per document top-1 next-token accuracy
(`score.token_accuracy`) unsteered, steered at each coefficient, and gated at each coefficient; the
gate's score and decision per document (the gate file's layer and pool). Every plan is a cached point
(`cache.Run`): a rerun computes nothing, a killed run resumes. `summarise` turns the per-document table
into paired comparisons with document-bootstrap intervals (same resampled documents for both arms).

Gotcha: on a whole document the gate reads every token (one decision per document), so an early
position's steering depends on later tokens; that is the gate's rule for a prompt, applied to documents.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from steer_trace.cache import Run, key_of
from studies.skills.corpora import load_corpus
from steer_trace.gate_fit import bootstrap_f1, cosines, f1_score, pooled_outputs
from steer_trace.gates import Gate
from steer_trace.plan import Plan
from steer_trace.read import content_hash
from steer_trace.score import token_accuracy
from steer_trace.vectors import SteeringVector

EXPERIMENT = "gates_experiment"
DOMAINS = ("text", "code")  # non-target, target
TARGET = "code"


@dataclass(frozen=True)
class Setup:
    model: str
    vector_file: str
    layer: int
    coefs: tuple[float, ...]
    gate_file: str
    n_docs: int = 40
    max_tokens: int = 256
    batch_size: int = 4
    data_dir: str | None = None
    seed: int = 13


def documents(setup: Setup) -> tuple[list[str], list[str], str]:
    """(texts, domain per text, corpus origin): the first n_docs held-out documents of each domain."""
    corpus = load_corpus(setup.data_dir, seed=setup.seed)
    texts, domains = [], []
    for domain in DOMAINS:
        picked = corpus.texts("eval", domain)[: setup.n_docs]
        texts += picked
        domains += [domain] * len(picked)
    return texts, domains, corpus.origin


def plans(vector: SteeringVector, gate: Gate, setup: Setup) -> dict[str, Plan]:
    out = {"unsteered": Plan.none()}
    for coef in setup.coefs:
        steered = Plan.single(vector, setup.layer, coef)
        out[f"steered c={coef:g}"] = steered
        out[f"gated c={coef:g}"] = steered.gated(gate)
    return out


def run(model_opener, setup: Setup, vector: SteeringVector, gate: Gate, root=None, log=print) -> pl.DataFrame:
    """Per document and arm: correct, count, and the gate's score and decision. Cached point by point."""
    texts, domains, origin = documents(setup)
    arms = plans(vector, gate, setup)
    config = {"experiment": EXPERIMENT, "model": setup.model, "origin": origin, "docs": content_hash(texts),
              "vector": content_hash([vector[setup.layer].tolist()]), "layer": setup.layer,
              "gate": content_hash([gate.vector.tolist(), gate.layer, gate.threshold, gate.pool]),
              "coefs": list(setup.coefs), "max_tokens": setup.max_tokens}
    store = Run(EXPERIMENT, config, root)  # the finished table of these coefficients
    done = store.finished()
    if done is not None:
        return done
    # the points (one per arm) do not depend on the other arms: kept under the config without the coefficients,
    # so a run over other coefficients reuses every arm it shares
    points = Run(EXPERIMENT, {k: v for k, v in config.items() if k != "coefs"}, root)
    model = None

    def loaded():
        nonlocal model
        model = model or model_opener()
        return model

    def gate_point() -> pl.DataFrame:
        started = time.time()
        # the documents as the arms see them (max_tokens), so these are the decisions the gated arms made
        pooled = pooled_outputs(loaded(), texts, [gate.layer], gate.pool, setup.batch_size,
                                setup.max_tokens)[gate.layer]
        scores = cosines(pooled, gate.vector)
        log(f"gate scores: {len(texts)} documents in {time.time() - started:.0f}s")
        return pl.DataFrame({"doc": range(len(texts)), "domain": domains, "gate_score": scores,
                             "gate_on": scores > gate.threshold})

    frames = [points.point({"point": "gate"}, gate_point)]
    for arm, plan in arms.items():
        def compute(plan=plan, arm=arm) -> pl.DataFrame:
            started = time.time()
            (correct, count), = token_accuracy(loaded(), texts, [plan], batch_size=setup.batch_size,
                                               max_tokens=setup.max_tokens)
            log(f"{arm}: {len(texts)} documents, {int(count.sum())} tokens in {time.time() - started:.0f}s")
            return pl.DataFrame({"doc": range(len(texts)), "domain": domains, "arm": [arm] * len(texts),
                                 "correct": correct.numpy(), "count": count.numpy(),
                                 "seconds": [time.time() - started] * len(texts)})

        frames.append(points.point({"point": arm, **key_point(plan)}, compute))
    gate_frame, arm_frames = frames[0], frames[1:]
    table = pl.concat(arm_frames).join(gate_frame.select("doc", "gate_score", "gate_on"), on="doc")
    table = table.with_columns(pl.lit(setup.model).alias("model"), pl.lit(setup.layer).alias("layer"),
                               pl.lit(gate.layer).alias("gate_layer"), pl.lit(gate.threshold).alias("threshold"),
                               pl.lit(origin).alias("origin"))
    return store.finish([table])


def key_point(plan: Plan) -> dict:
    return {"plan": plan.describe()}


# -- summary: paired document-bootstrap comparisons ------------------------------------------------------------------


def paired_accuracy(correct_a, correct_b, counts, n_boot: int = 2000,
                    seed: int = 0) -> tuple[float, float, float, float]:
    """(a - b in token-weighted accuracy points %, 95% interval, two-sided bootstrap p): documents resampled, the
    same documents for both arms."""
    a, b, n = (np.asarray(x, np.float64) for x in (correct_a, correct_b, counts))
    observed = (a.sum() - b.sum()) / n.sum()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n.size, size=(n_boot, n.size))
    boot = (a[idx].sum(1) - b[idx].sum(1)) / n[idx].sum(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    p = (1 + np.count_nonzero(np.abs(boot - observed) >= abs(observed) - 1e-12)) / (1 + n_boot)
    return 100 * observed, 100 * lo, 100 * hi, min(1.0, float(p))


def relative(correct_a, correct_b, counts, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(accuracy a / accuracy b in %, 95% interval), documents resampled together."""
    a, b = np.asarray(correct_a, np.float64), np.asarray(correct_b, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    boot = a[idx].sum(1) / np.clip(b[idx].sum(1), 1e-12, None)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return 100 * a.sum() / b.sum(), 100 * lo, 100 * hi


def gate_quality(table: pl.DataFrame) -> dict:
    """The gate's decisions on these documents against their domain (target = code): F1 with a 95% bootstrap
    interval (documents resampled within each domain), precision, recall."""
    docs = table.filter(pl.col("arm") == "unsteered").sort("doc")
    opened, target = docs["gate_on"].to_numpy(), (docs["domain"] == TARGET).to_numpy()
    f1, precision, recall = f1_score(opened, target)
    lo, hi = bootstrap_f1(opened, target)
    return {"gate_f1": f1, "gate_f1_lo": lo, "gate_f1_hi": hi, "gate_precision": precision, "gate_recall": recall}


def summarise(table: pl.DataFrame) -> pl.DataFrame:
    """One row per (coefficient, domain): accuracies, the side effect (steered - unsteered), what the gate gives back
    (gated - steered), what stays (gated - unsteered), relative accuracies; and the gate's decisions."""
    quality = gate_quality(table)
    rows = []
    for domain in DOMAINS:
        part = table.filter(pl.col("domain") == domain)
        by_arm = {arm: g.sort("doc") for (arm,), g in part.group_by("arm")}
        base = by_arm["unsteered"]
        counts = base["count"].to_numpy()
        opened = base["gate_on"].to_numpy()
        for arm in sorted(a for a in by_arm if a.startswith("steered")):
            coef = float(arm.split("=")[1])
            steered, gated = by_arm[arm]["correct"].to_numpy(), by_arm[f"gated c={coef:g}"]["correct"].to_numpy()
            plain = base["correct"].to_numpy()
            seconds = {a: float(by_arm[a]["seconds"][0]) for a in ("unsteered", arm, f"gated c={coef:g}")}
            row = {"model": table["model"][0], "layer": int(table["layer"][0]), "coef": coef, "domain": domain,
                   "target": domain == TARGET, "docs": len(counts), "tokens": int(counts.sum()),
                   "gate_layer": int(table["gate_layer"][0]), "threshold": float(table["threshold"][0]),
                   "gate_opened": int(opened.sum()),
                   "acc_unsteered": 100 * plain.sum() / counts.sum(), "acc_steered": 100 * steered.sum() / counts.sum(),
                   "acc_gated": 100 * gated.sum() / counts.sum(), **quality,
                   "seconds_unsteered": seconds["unsteered"], "seconds_steered": seconds[arm],
                   "seconds_gated": seconds[f"gated c={coef:g}"]}
            for name, (x, y) in {"side_effect": (steered, plain), "gate_gain": (gated, steered),
                                 "gated_shift": (gated, plain)}.items():
                shift, lo, hi, p = paired_accuracy(x, y, counts)
                row.update({name: shift, f"{name}_lo": lo, f"{name}_hi": hi, f"{name}_p": p})
            for name, x in {"rel_steered": steered, "rel_gated": gated}.items():
                value, lo, hi = relative(x, plain, counts)
                row.update({name: value, f"{name}_lo": lo, f"{name}_hi": hi})
            rows.append(row)
    return pl.DataFrame(rows)


def summary_key(setup: Setup) -> str:
    return key_of({"model": setup.model, "layer": setup.layer, "coefs": list(setup.coefs)})


def write_summary(summary: pl.DataFrame, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / f"{name}.csv"
    summary.write_csv(csv, float_precision=4)
    return [csv]


def unsteered_equal(table: pl.DataFrame) -> bool:
    """Documents the gate kept closed score exactly as unsteered in every gated arm (a check of the seam)."""
    closed = table.filter(~pl.col("gate_on"))
    base = closed.filter(pl.col("arm") == "unsteered").sort("doc")["correct"]
    return all(g.sort("doc")["correct"].equals(base) for (arm,), g in closed.group_by("arm") if arm.startswith("gated"))

