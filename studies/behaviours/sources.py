"""Where a study's steering vectors come from: the answer letters (`behaviour_vectors`, CAA)
or the answer texts (`content`, --vector-source content).

Content vectors are saved like letter vectors, as
``vectors/<model>/<behaviour>-content-<key>.safetensors``, the key hashing model, data,
split, vector-pair count and prompt style; the residual-stream norms travel in the meta.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from steer_trace.cache import key_of
from steer_trace.content import content_pairs, content_prompt, pair_differences
from steer_trace.errors import UserError
from steer_trace.read import content_hash, residual_norms
from steer_trace.vectors import SteeringVector
from .scoring import Log
from .vectors import NORM_PROMPTS, load_vectors, vector_path


def content_vector_config(study, name: str) -> dict:
    return {"model": study.model.name, "revision": study.model.revision, "behaviour": name,
            "data": content_hash(study.items[name]), "n_vector": study.profile.n_vector,
            "prompt_style": study.prompt_style, "split": study.split_rule, "source": "content", "version": 1,
            **study.model.numerics}  # float32 on the CPU adds nothing: the committed vectors keep their keys


def content_vector_path(study, name: str) -> Path:
    key = key_of(content_vector_config(study, name))[:10]
    return Path(vector_path(study, name)).parent / f"{name}-content-{key}.safetensors"


def extract_content(study, name: str, log: Log | None = None) -> SteeringVector:
    """Mean over the vector split's content pairs (see content.pair_differences), every layer."""
    rows = study.part(name, "vector")
    layers = list(range(study.model.n_layers))
    diffs = pair_differences(study.model, rows, layers, study.prompt_style, study.profile.batch_size)
    prompts = [content_prompt(item, study.prompt_style, study.model.tokenizer) for item in rows[:NORM_PROMPTS]]
    norms = residual_norms(study.model, prompts, batch_size=study.profile.batch_size)
    n_pairs = len(content_pairs(rows, study.prompt_style, study.model.tokenizer)[0])
    meta = {"name": name, "method": "content-mean-difference", "site": "decoder-layer-output",
            "position": "answer-text-mean", "n_questions": len(rows), "n_pairs": n_pairs,
            "dataset": study.sources[name], "dataset_hash": content_hash(study.items[name]),
            "prompt_style": study.prompt_style, "key": key_of(content_vector_config(study, name)),
            "model": study.model.name, "model_revision": study.model.revision,
            "residual_norms": {str(L): v for L, v in norms.items()}}
    vector = SteeringVector({L: d.mean(0).to(torch.float32) for L, d in diffs.items()}, meta)
    vector.save(content_vector_path(study, name))
    study.computed += 1
    if log:
        log(f"  extracted content vector {name}: {n_pairs} pairs from {len(rows)} questions")
    return vector


def load_or_extract_content(study, name: str, log: Log | None = None) -> SteeringVector:
    path = content_vector_path(study, name)
    if path.is_file():
        try:
            vector = SteeringVector.load(path)
            if vector.meta.get("key") == key_of(content_vector_config(study, name)):
                return vector
        except UserError as error:  # a damaged or altered cached file: never blocks a command, it is recomputed
            warnings.warn(f"{error}; recomputing it", stacklevel=2)
    return extract_content(study, name, log)


def study_vectors(study, log: Log | None = None) -> dict[str, SteeringVector]:
    """Every behaviour's vector from the study's --vector-source, plus the mean residual norms."""
    if study.vector_source == "letter":
        return load_vectors(study, log)
    for name in study.names:
        if name not in study.vectors:
            study.vectors[name] = load_or_extract_content(study, name, log)
    per_behaviour = [v.meta["residual_norms"] for v in study.vectors.values()]
    study.residual_norms = {int(L): sum(n[L] for n in per_behaviour) / len(per_behaviour) for L in per_behaviour[0]}
    return study.vectors
