"""CAA behaviour vectors: extraction, vector files, and the diagnostics tables.

A behaviour vector is the mean over the vector split of act(prompt + matching
answer) - act(prompt + other answer) at the answer token, for every layer (read
by `pairs.read_pairs`: each prompt once, its two answer tokens on its KV cache).
The pairs are grouped by their matching answer (A / B, or Yes / No); by default the
vector is the mean of the two group vectors (letter-balanced), `--plain-mean`
gives the paper's plain mean; `study.method` (an `aggregators.METHODS` name) may
pick another extraction method. The group vectors (mean differences) are kept too:
their cosine shows how much of a vector is the answer-letter direction.

Files (under the results root): ``vectors/<model>/<behaviour>-<key>.safetensors``
and ``vectors/<model>/groups/<behaviour>-<key>.<answer>.safetensors``, where the key
hashes model, data, split size, prompt style and method; the residual-stream
norms per layer travel in the main file's provenance.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import polars as pl
import torch

from steer_trace.aggregators import DEFAULT_METHOD, to_vector
from steer_trace.cache import Run, key_of
from steer_trace.errors import UserError
from steer_trace.pairs import read_pairs
from steer_trace.plan import Plan
from steer_trace.read import content_hash, residual_norms
from steer_trace.score import answer_probs, answer_token_ids
from steer_trace.vectors import SteeringVector, cosine
from .scoring import Log

NORM_PROMPTS = 16  # prompts per behaviour for the residual-norm estimate


def _model_folder(study) -> Path:
    name = study.model.name
    safe = Path(name).name if Path(name).exists() else name.replace("/", "__")
    return study.root / "vectors" / safe


def vector_config(study, name: str) -> dict:
    config = {"model": study.model.name, "revision": study.model.revision, "behaviour": name,
              "data": content_hash(study.items[name]), "n_vector": study.profile.n_vector,
              "prompt_style": study.prompt_style, "balanced": study.balanced, "version": 1, **study.model.numerics,
              **({"split": study.split_rule} if study.split_rule != "seeded" else {})}
    method = getattr(study, "method", DEFAULT_METHOD)
    if method != DEFAULT_METHOD:  # only then: the committed mean vectors keep their keys
        config["method"] = method
    return config


def vector_path(study, name: str, answer: str | None = None) -> Path:
    key = key_of(vector_config(study, name))[:10]
    if answer is None:
        return _model_folder(study) / f"{name}-{key}.safetensors"
    return _model_folder(study) / "groups" / f"{name}-{key}.{answer}.safetensors"


def extract(study, name: str, log: Log | None = None) -> tuple[SteeringVector, dict[str, SteeringVector]]:
    """Compute and save one behaviour's vector and its per-answer group vectors (always mean differences)."""
    model = study.model
    rows = study.part(name, "vector")
    prompts = [study.prompt(item) for item in rows]
    pairs = [(text, item.matching, other) for text, item in zip(prompts, rows)
             for other in item.non_matching]  # many options: one pair per non-matching answer
    answers = [matching for _, matching, _ in pairs]
    stats, reader = read_pairs(model, [t for t, _, _ in pairs], answers, [o for _, _, o in pairs], groups=answers,
                               batch_size=study.profile.batch_size, method=getattr(study, "method", DEFAULT_METHOD))
    if study.balanced and len(stats.counts) < 2:
        warnings.warn(f"{name}: every vector pair matches with {answers[0]!r}, so the vector cannot be "
                      f"letter-balanced (use more pairs: --n-vector)", stacklevel=2)
    common = {"name": name, "dataset": study.sources[name], "dataset_hash": content_hash(study.items[name]),
              "prompt_style": study.prompt_style, "key": key_of(vector_config(study, name))}
    layers = list(range(model.n_layers))
    groups = {answer: to_vector(stats.only(answer), model, layers, False, reader, {**common, "group": answer},
                                method=DEFAULT_METHOD)
              for answer in stats.ordered()}
    norms = residual_norms(model, prompts[:NORM_PROMPTS], batch_size=study.profile.batch_size)
    vector = to_vector(stats, model, layers, study.balanced, reader,
                       {**common, "residual_norms": {str(L): v for L, v in norms.items()}})
    for answer, group in groups.items():
        group.save(vector_path(study, name, answer))
    vector.save(vector_path(study, name))
    study.computed += 1
    if log:
        log(f"  extracted {name}: {len(rows)} pairs ({', '.join(f'{a} {n}' for a, n in sorted(stats.counts.items()))})")
    return vector, groups


def load_or_extract(study, name: str, log: Log | None = None) -> tuple[SteeringVector, dict[str, SteeringVector]]:
    """The saved vector and group vectors when their key matches; else (missing, stale or damaged) extract."""
    path = vector_path(study, name)
    if path.is_file():
        try:
            vector = SteeringVector.load(path)
            paths = {a: vector_path(study, name, a) for a in vector.meta.get("groups", {})}
            if vector.meta.get("key") == key_of(vector_config(study, name)) and all(
                p.is_file() for p in paths.values()
            ):
                return vector, {a: SteeringVector.load(p) for a, p in paths.items()}
        except UserError as error:  # a damaged cached file: never blocks a command, it is recomputed
            warnings.warn(f"{error}; recomputing it", stacklevel=2)
    return extract(study, name, log)


def load_vectors(study, log: Log | None = None) -> dict[str, SteeringVector]:
    """Every behaviour's vector (extracted once), plus the mean residual norms per layer."""
    for name in study.names:
        if name not in study.vectors:
            study.vectors[name] = load_or_extract(study, name, log)[0]
    per_behaviour = [v.meta["residual_norms"] for v in study.vectors.values()]
    study.residual_norms = {int(L): sum(n[L] for n in per_behaviour) / len(per_behaviour) for L in per_behaviour[0]}
    return study.vectors


def _vector_rows(study, name: str, log: Log | None) -> pl.DataFrame:
    vector, groups = load_or_extract(study, name, log)
    residual = vector.meta["residual_norms"]
    pair = list(groups.values())
    letter_cos = cosine(pair[0], pair[1]) if len(pair) == 2 else {}
    rows = []
    for L, v in vector.layers.items():
        letter = (pair[0].layers[L] - pair[1].layers[L]) / 2 if len(pair) == 2 else torch.zeros_like(v)
        rows.append({"model": study.model.name, "profile": study.profile.name, "behaviour": name, "layer": L,
                     "norm": float(v.norm()), "residual_norm": float(residual[str(L)]),
                     "letter_cosine": letter_cos.get(L, float("nan")), "letter_norm": float(letter.norm()),
                     "n_pairs": int(vector.meta["n_pairs"]), "plain_mean": not study.balanced,
                     "prompt_style": study.prompt_style, "vector_file": str(vector_path(study, name))})
    return pl.DataFrame(rows)


def vectors_config(study) -> dict:
    config = study.base_config()
    for key in ("orders", "relative"):
        config.pop(key)
    return config


def run_extract(study, log: Log | None = None) -> dict[str, pl.DataFrame]:
    """Vectors for every behaviour and layer; tables behaviours_vectors / _cosines / _components."""
    config = vectors_config(study)
    run = Run("behaviours_vectors", config, study.root)
    vectors_table = run.finished()
    if vectors_table is None:
        frames = [run.point({"behaviour": name}, lambda name=name: _vector_rows(study, name, log))
                  for name in study.names]
        vectors_table = run.finish(frames)
    vectors = load_vectors(study, log)
    names = study.names

    cos_run = Run("behaviours_cosines", config, study.root)
    cosines = cos_run.finished()
    if cosines is None:
        rows = [{"model": study.model.name, "profile": study.profile.name, "layer": L, "a": a, "b": b, "cosine": c}
                for i, a in enumerate(names) for b in names[i + 1 :] for L, c in cosine(vectors[a], vectors[b]).items()]
        cosines = cos_run.finish([pl.DataFrame(rows)] if rows else [])

    layers = study.layers(study.profile.report_layers)
    comp_run = Run("behaviours_components", {**config, "layers": layers}, study.root)
    components = comp_run.finished()
    if components is None:
        frames = [pl.DataFrame({"model": study.model.name, "profile": study.profile.name, "behaviour": name,
                                "layer": L, "component": list(range(vectors[name].d_model)),
                                "value": vectors[name][L].tolist()})
                  for name in names for L in layers]
        components = comp_run.finish(frames)
    return {"vectors": vectors_table, "cosines": cosines, "components": components}


def _letter_bias_row(study, name: str) -> pl.DataFrame:
    items = study.questions(name, "test")
    prompts = [study.prompt(item) for item in items]
    ids = answer_token_ids(study.model.tokenizer, list(items[0].options))
    [(probs, greedy)] = answer_probs(study.model, prompts, ids, [Plan.none()], batch_size=study.profile.batch_size)
    first = probs[:, 0] / probs.sum(1).clamp_min(1e-30)
    matching = torch.tensor([item.matching_index for item in items])
    return pl.DataFrame([{
        "model": study.model.name, "profile": study.profile.name, "behaviour": name, "orders": study.orders,
        "prompt_style": study.prompt_style, "first_answer": items[0].options[0], "n": len(items),
        "p_first": float(first.mean()), "greedy_first": float((greedy == ids[0]).double().mean()),
        "faulty": float((~torch.isin(greedy, torch.tensor(ids))).double().mean()),
        "dataset_first_matching": float((matching == 0).double().mean()),
    }])


def run_letter_bias(study) -> pl.DataFrame:
    """The unsteered model's preference for the first answer (A / Yes) on the test questions."""
    config = study.scored_config("test")
    return per_behaviour_table(study, Run("behaviours_letter_bias", config, study.root), _letter_bias_row)


def per_behaviour_table(study, run: Run, rows) -> pl.DataFrame:
    """The finished table of `run`, or one cached point per behaviour (`rows(study, name)`), then finished."""
    table = run.finished()
    if table is None:
        frames = []
        for name in study.names:
            if run.cached_point({"behaviour": name}) is None:
                study.computed += 1
            frames.append(run.point({"behaviour": name}, lambda name=name: rows(study, name)))
        table = run.finish(frames)
    return table
