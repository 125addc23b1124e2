"""The paper's behaviour experiments (arXiv 2403.05767, section "multi-steering").

- grid: layer x coef on the validation split, each direction walked outwards
  until the answers collapse (>= 95 % one answer) or too many are faulty; picks the
  add / subtract coef per behaviour and layer;
- single: each behaviour alone at a layer, default / add / subtract on the test split;
- combined: the five vectors combined at one layer (sum, mean, weighted sum, weighted mean);
  each combination beside a random direction of its norm ("random:<combination>");
- simultaneous: each vector at its own layer, one global coefficient, plus the alignment tax;
- interference: any vectors x any behaviours, each vector beside a random direction of its norm;
- tax: top-1 next-token accuracy on plain text under a plan.

Each function returns a polars table written through `cache.Run` (see the table
contract in docs); the model is only run for points not in the cache.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from steer_trace.cache import Run, merged
from steer_trace.controls import random_like, seed_of
from steer_trace.errors import UserError
from steer_trace.metrics import MASS_FLOOR, answers_kept, collapsed_by_steering
from steer_trace.plan import Plan
from steer_trace.read import content_hash
from steer_trace.vectors import SteeringVector, combine
from .data import plain_text
from .scoring import Log, direction_of, key_fields, point_fields, score_points, tax_points
from .config import Study
from .profiles import COMBINATIONS, model_layer
from .sources import study_vectors as load_vectors
from .vectors import vectors_config

RANDOM = "random"  # the control: a random direction with the vector's norm at each layer


def _run(study: Study, experiment: str, **params) -> Run:
    """The run of `experiment` keyed by the study's config and `params` (a list of coefficients is keyed as
    `multipliers` in grid, picks and interference, `coefs` in combined and simultaneous: the names the
    committed results were keyed with)."""
    return Run(experiment, merged(study.base_config(), {"experiment": experiment}, params, study.steering.key()),
               study.root)


def _default_rows(frame: pl.DataFrame, layers: list[int]) -> list[pl.DataFrame]:
    """The unsteered row repeated once per layer, so each layer's curve has its 0."""
    return [frame.with_columns(pl.lit(L).alias("layer"), pl.lit(str(L)).alias("layers")) for L in layers]


def _grid_coefs(study: Study, coefs) -> tuple[float, ...]:
    if coefs:
        return tuple(sorted({abs(float(m)) for m in coefs if m}))
    return study.profile.relative_grid if study.relative else study.profile.grid_coefs


def _invalid(row: dict, default: dict, max_faulty: float) -> bool:
    """Too many faulty answers, or a collapse the steering caused (a model that already
    gives one answer unsteered, as small models do, is judged on faulty answers only)."""
    return row["faulty"] > max_faulty or collapsed_by_steering(row, default)


# -- grid search and picks --------------------------------------------------------------


def run_grid(study: Study, layers: list[int], coefs=None, log: Log | None = None) -> pl.DataFrame:
    """Validation-split grid; a direction stops at the first collapsed or faulty point."""
    vectors = load_vectors(study, log)
    coefs = _grid_coefs(study, coefs)
    run = _run(study, "behaviours_grid", layers=layers, multipliers=coefs,
               max_faulty=study.profile.max_faulty)
    table = run.finished()
    if table is not None:
        return table
    frames = []
    for name in study.names:
        [default] = score_points(study, run, name, "validation", [(point_fields("none", "default", 0), Plan.none())])
        frames += _default_rows(default, layers)
        unsteered = default.row(0, named=True)
        for L in layers:
            for direction, sign in (("add", 1), ("subtract", -1)):
                for m in coefs:
                    coef = sign * m
                    fields = point_fields(name, direction, coef, [L])
                    [frame] = score_points(study, run, name, "validation",
                                           [(fields, Plan.single(vectors[name], L, coef))], log)
                    frames.append(frame)
                    if _invalid(frame.row(0, named=True), unsteered, study.profile.max_faulty):
                        break
    return run.finish(frames)


def pick_coefs(grid: pl.DataFrame, max_faulty: float) -> pl.DataFrame:
    """Per behaviour, layer and direction: the valid point (see `_invalid`) that still answers (keeps
    `MASS_FLOOR` of the unsteered answer mass) and moves the matching score furthest that way (ties:
    p(matching), then the smaller coef). With no such point, the smallest coef tried."""
    rows = []
    steered = grid.filter(pl.col("direction") != "default")
    for (name, L, direction), part in steered.group_by(["behaviour", "layer", "direction"], maintain_order=True):
        sign = 1 if direction == "add" else -1
        default = grid.filter((pl.col("behaviour") == name) & (pl.col("direction") == "default")).row(0, named=True)
        valid = part.filter(pl.Series([not _invalid(r, default, max_faulty) and answers_kept(r, default)
                                       for r in part.iter_rows(named=True)], dtype=pl.Boolean))
        candidates = valid if valid.height else part
        best = max(candidates.iter_rows(named=True),
                   key=lambda r: (sign * r["matching_score"] if valid.height else 0,
                                  sign * r["p_matching"] if valid.height else 0, -abs(r["coef"])))
        rows.append({"model": best["model"], "profile": best["profile"], "behaviour": name, "layer": L,
                     "direction": direction, "coef": best["coef"],
                     "matching_score": best["matching_score"], "p_matching": best["p_matching"],
                     "default_matching_score": default["matching_score"], "default_p_matching": default["p_matching"],
                     "valid": bool(valid.height)})
    return pl.DataFrame(rows)


def grid_picks(study: Study, layers: list[int], coefs=None, log: Log | None = None,
               grid_layers=None) -> dict:
    """{(behaviour, layer, direction): coef} from the grid over `grid_layers` (default: the
    profile's) and `layers` (the grid's table and a behaviours_picks table are cached)."""
    searched = grid_layers if grid_layers else study.layers(study.profile.grid_layers)
    grid_layers = sorted(set(searched) | set(layers))
    grid = run_grid(study, grid_layers, coefs, log)
    coefs = _grid_coefs(study, coefs)
    run = _run(study, "behaviours_picks", layers=grid_layers, multipliers=coefs,
               max_faulty=study.profile.max_faulty, mass_floor=MASS_FLOOR)
    picks = run.finished()
    if picks is None:
        picks = run.finish([pick_coefs(grid, study.profile.max_faulty)])
    return {(r["behaviour"], r["layer"], r["direction"]): r["coef"] for r in picks.iter_rows(named=True)}


def fixed_picks(study: Study, layers: list[int], add: float, subtract: float) -> dict:
    return {(name, L, d): m for name in study.names for L in layers
            for d, m in (("add", abs(float(add))), ("subtract", -abs(float(subtract))))}


# -- single, combined -------------------------------------------------------------------


def with_control(name: str, vector: SteeringVector, control_name: str, control: SteeringVector, layer: int,
                 coef: float, direction: str) -> list[tuple[dict, Plan]]:
    """The (fields, plan) entries of `vector` at `layer` x `coef` and of its equal-norm random control there."""
    return [(point_fields(name, direction, coef, [layer]), Plan.single(vector, layer, coef)),
            (point_fields(control_name, direction, coef, [layer]), Plan.single(control, layer, coef))]


def run_single(study: Study, layers: list[int], picks: dict, log: Log | None = None,
               more_random: int = 0, random_signs: str = "both") -> pl.DataFrame:
    """Each behaviour's own vector at each layer: default / add / subtract on the test split, beside a
    random direction of its norm (the paired control). `more_random` = N > 0: a run of N more random
    directions per point instead ('random#2' ... 'random#N+1', each at +m and -m, or with `random_signs`
    'add' at +m only, and the unsteered row): the spread the report ranks the vector's shift in, without
    rescoring the vector and its control. One sign suffices for the spread: direction d at +m is the
    direction -d at -m, a draw of the same null for the subtract rows."""
    if more_random < 0:
        raise UserError(f"--more-random must be 0 or more (got {more_random})")
    if random_signs not in ("both", "add"):
        raise UserError(f"--random-signs must be both or add (got {random_signs!r})")
    vectors = load_vectors(study, log)
    chosen = {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in sorted(picks.items()) if k[1] in layers}
    extra = {"more_random": more_random} if more_random else {}  # 0: the key it always had
    if more_random and random_signs != "both":
        extra["random_signs"] = random_signs
    run = _run(study, "behaviours_single", layers=layers, picks=chosen, **extra)
    table = run.finished()
    if table is not None:
        return table
    frames = []
    for name in study.names:
        entries = [(point_fields("none", "default", 0), Plan.none())]
        # the paired control ('random'), or - a --more-random run - only the further draws 'random#2', ...
        draws = {f"{RANDOM}#{k}": random_like(vectors[name], seed_of(f"{name}#{k}"))
                 for k in range(2, more_random + 2)}
        control = None if draws else random_like(vectors[name], seed_of(name))
        for L in layers:
            for direction in ("add", "subtract"):
                m = picks[(name, L, direction)]
                if control is not None:
                    entries += with_control(name, vectors[name], RANDOM, control, L, m, direction)
                if direction == "add" or random_signs == "both":
                    entries += [(point_fields(draw, direction, m, [L]), Plan.single(v, L, m))
                                for draw, v in draws.items()]
        default, *steered = score_points(study, run, name, "test", entries, log)
        frames += _default_rows(default, layers) + steered
    return run.finish(frames)


def combined_vectors(study: Study, layer: int, picks: dict) -> dict[tuple[str, str], SteeringVector]:
    """{(combination, direction): vector} at `layer`; weighted ones use the picked coefs."""
    vectors = load_vectors(study)
    parts = [vectors[name].only([layer]) for name in study.names]
    out = {}
    for direction in ("add", "subtract"):
        weights = [abs(picks[(name, layer, direction)]) for name in study.names]
        for how in COMBINATIONS:  # sum, mean, weighted_sum, weighted_mean
            weighted = how.startswith("weighted_")
            out[(how, direction)] = combine(parts, weights if weighted else None, how=how.removeprefix("weighted_"))
    return out


def run_combined(study: Study, layers: list[int], picks: dict, coefs=(1.0,), log: Log | None = None) -> pl.DataFrame:
    """The behaviours' vectors combined at one layer, added and subtracted, scored on every behaviour."""
    coefs = tuple(sorted({abs(float(c)) for c in coefs if c}))
    chosen = {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in sorted(picks.items()) if k[1] in layers}
    run = _run(study, "behaviours_combined", layers=layers, picks=chosen, coefs=coefs)
    table = run.finished()
    if table is not None:
        return table
    plans = []
    for L in layers:
        for (how, direction), vector in combined_vectors(study, L, picks).items():
            control = random_like(vector, seed_of(f"{how}|{direction}|{L}"))
            for c in coefs:
                plans += with_control(how, vector, f"{RANDOM}:{how}", control, L, c if direction == "add" else -c,
                                      direction)
    frames = []
    for name in study.names:
        default, *steered = score_points(study, run, name, "test",
                                         [(point_fields("none", "default", 0), Plan.none())] + plans, log)
        frames += _default_rows(default, layers) + steered
    return run.finish(frames)


# -- simultaneous, interference, tax ----------------------------------------------------


def simultaneous_layers(study: Study, layers=None) -> list[int]:
    """One layer per behaviour: given, or consecutive from the paper's layer 11 at this depth."""
    if layers:
        if len(layers) != len(study.names):
            raise UserError(f"--layers needs one layer per behaviour ({len(study.names)}: {', '.join(study.names)})")
        return [study.model.check_layer(L) for L in layers]
    first = model_layer(study.profile.simultaneous_first, study.model.n_layers)
    first = min(first, study.model.n_layers - len(study.names))
    return list(range(first, first + len(study.names)))


def _coefs(study: Study, coefs) -> tuple[float, ...]:
    if coefs:
        return tuple(sorted({float(c) for c in coefs}))
    return study.profile.relative_coefs if study.relative else study.profile.simultaneous_coefs


def run_simultaneous(study: Study, layers: list[int], coefs=None, log: Log | None = None,
                     controls_at=()) -> dict[str, pl.DataFrame]:
    """Every behaviour's vector at its own layer, one global coefficient; scores + alignment tax. The paired
    random control (each vector replaced by a random direction of its norm) is scored at the largest
    coefficient each way; `controls_at` = coefficients: a run of the control there instead, and only that
    (the vector rows come from the run without it; no tax), to pair the coefficients where the model still
    answers."""
    vectors = load_vectors(study, log)
    coefs = _coefs(study, coefs)
    placed = [(vectors[name], L) for name, L in zip(study.names, layers)]
    entries = [(point_fields("simultaneous", direction_of(c), c, layers), Plan.simultaneous(placed, c)) for c in coefs]
    controls = [(random_like(vectors[name], seed_of(name)), L) for name, L in zip(study.names, layers)]
    extremes = sorted({min(coefs), max(coefs)} - {0.0})  # the control at the largest coefficients each way
    at = sorted({float(c) for c in controls_at or () if c})
    scored = [(point_fields(RANDOM, direction_of(c), c, layers), Plan.simultaneous(controls, c))
              for c in (at or extremes)]
    # a controls-only run holds its own unsteered row, so the table's shifts recompute from it alone
    scored = ([(point_fields("none", "default", 0), Plan.none())] if at else entries) + scored
    run = _run(study, "behaviours_simultaneous", layers=layers, coefs=coefs, **({"controls_at": at} if at else {}))
    table = run.finished()
    if table is None:
        frames = [f for name in study.names for f in score_points(study, run, name, "test", scored, log)]
        table = run.finish(frames)
    return {"scores": table, "tax": None if at else run_tax(study, entries, log)}


def resolve_vectors(study: Study, specs: list[str]) -> dict[str, SteeringVector]:
    """Behaviour names of this study, or paths of vector files (named by file stem, which must be unique)."""
    named: dict[str, str] = {}
    for spec in specs:
        name = spec if spec in study.names else Path(spec).stem
        if named.setdefault(name, spec) != spec:
            raise UserError(f"--vectors {named[name]!r} and {spec!r} would both be named {name!r}: rename one")
    vectors = load_vectors(study)
    out = {}
    for spec in specs:
        if spec in vectors:
            out[spec] = vectors[spec]
        elif Path(spec).suffix == ".safetensors":
            out[Path(spec).stem] = SteeringVector.load(spec)
        else:
            raise UserError(f"unknown vector {spec!r}: a behaviour ({', '.join(vectors)}) or a .safetensors file")
    return out


def run_interference(study: Study, vectors: dict[str, SteeringVector], layers: list[int], coefs,
                     log: Log | None = None) -> pl.DataFrame:
    """How each vector (at each layer and coef) moves every behaviour's matching score."""
    load_vectors(study, log)
    coefs = tuple(sorted({float(m) for m in coefs if m}))
    hashes = {name: content_hash([v.layers[L].tolist() for L in layers]) for name, v in vectors.items()}
    run = _run(study, "behaviours_interference", layers=layers, multipliers=coefs, vectors=hashes)
    table = run.finished()
    if table is not None:
        return table
    plans = []
    for name, v in vectors.items():
        control = random_like(v, seed_of(name))
        for L in layers:
            for m in coefs:
                plans += with_control(name, v, f"{RANDOM}:{name}", control, L, m, direction_of(m))
    frames = []
    for name in study.names:
        default, *steered = score_points(study, run, name, "test",
                                         [(point_fields("none", "default", 0), Plan.none())] + plans, log)
        frames += _default_rows(default, layers) + steered
    return run.finish(frames)


def run_tax(study: Study, entries: list[tuple[dict, Plan]], log: Log | None = None) -> pl.DataFrame:
    """Top-1 next-token accuracy on plain text under each plan (the alignment tax)."""
    docs, source = plain_text(study.profile.tax_docs)
    config = merged(vectors_config(study), {"relative": study.relative, "text": source, "docs": content_hash(docs),
                                            "max_tokens": study.profile.tax_tokens,
                                            "points": [key_fields(fields) for fields, _ in entries]},
                    study.steering.key())
    run = Run("behaviours_tax", config, study.root)
    table = run.finished()
    if table is None:
        tax_entries = [({k: fields[k] for k in ("vector", "layer", "layers", "direction", "coef")}, plan)
                       for fields, plan in entries]
        frames = tax_points(study, run, docs, study.profile.tax_tokens, tax_entries, log)
        table = run.finish([f.with_columns(pl.lit(source).alias("text")) for f in frames])
    return table


def tax_entries(study: Study, vectors: dict[str, SteeringVector], layers: list[int], coefs) -> list:
    """Plans for `tax`: the vectors placed one per layer (or all at one layer), each coefficient."""
    if len(layers) == 1:
        layers = layers * len(vectors)
    if len(layers) != len(vectors):
        raise UserError(f"--layers needs one layer, or one per vector ({len(vectors)})")
    placed = [(v, L) for v, L in zip(vectors.values(), layers)]
    label = next(iter(vectors)) if len(vectors) == 1 else "simultaneous"
    return [
        (point_fields(label, direction_of(c), c, layers), Plan.simultaneous(placed, c)) for c in _coefs(study, coefs)
    ]
