"""The paper's skills experiment: steer away from code in general (text - code) or
from Python alone (text - Python) and measure top-1 next-token accuracy on
held-out text, code and Python.

extract: per layer, the mean residual-stream output at each document's last token, for each domain;
  vectors text - code and text - Python, plus two seeded controls per vector (its components permuted:
  norm-matched; the paper's: the two means permuted independently, then differenced), saved as vector
  files; the per-domain means are the cached table (the activation-distribution figure reads it).
sweep: for each curve (target, layer at the paper's relative depths, control) and coefficient (the
  paper's list and its skip/stop rule on the target domain), per-document top-1 next-token results on
  held-out text, code and Python. Every point scores >= `sweep_tokens` per domain; the headline points
  (middle layer, layer 0, both controls, c in 1-2) >= `headline_tokens`. Summaries carry paired
  document-bootstrap intervals of accuracy and of accuracy relative to the unsteered baseline.
  The curves of one layer run in lockstep: each schedule step scores all their next points in one
  `token_accuracy` call per evaluation-set size, so the layers below are shared (`score.measure`).

Both are cached point by point (`cache.Run`): a rerun computes nothing, a killed
run resumes; sweep points do not depend on the grid, so sweeps over other layers or
coefficients reuse them. The model is only loaded when a point is missing.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch

from steer_trace import score as scoring
from steer_trace.cache import Run, key_of, read_checked, read_point, results_root
from steer_trace.errors import UserError
from steer_trace.models import DEFAULT_NUMERICS, resolve
from steer_trace.plan import Plan, Steering
from steer_trace.prefix_cache import PrefixCache
from steer_trace.read import content_hash, mean_activations
from steer_trace.vectors import SteeringVector

from .corpora import DOMAINS, Corpus
from .profiles import HEADLINE_COEFS, STEP_RULES, Profile, middle_layer, sweep_layers

EXTRACT = "skills_extract"
POINTS = "skills_points"  # per-document results of every point, shared by all sweeps over the same documents
SWEEP = "skills_sweep"  # the summary table of one finished sweep
TARGETS = ("code", "python")

SKIP_BELOW = 0.15  # relative score under this: jump SKIP places ahead in the list
STOP_BELOW = 0.05  # relative score under this: stop the curve
SKIP = 5

# the permuted controls: file suffix and label. "components": the vector's own components in a seeded order
# (norm equal to ||v||); "means": the paper's control, the two means each permuted independently, then differenced.
CONTROLS = {"none": ("", "real vector"), "components": ("_permuted", "permuted components (norm-matched)"),
            "means": ("_permuted_means", "permuted means (paper)")}

Log = Callable[[str], None]


class CoefficientSteps:
    """The paper's adaptive rule over one curve, a step at a time: `next_coef()` is the coefficient to run
    next (None once the curve is over), `record(score)` takes its relative accuracy and picks the next one.

    Under `stop_below` the curve ends; under `skip_below` it jumps `skip` places ahead (skip - 1 values
    are not run); otherwise the next value follows. `done`: the coefficients run, in order."""

    def __init__(self, coefs, skip_below: float = SKIP_BELOW, stop_below: float = STOP_BELOW, skip: int = SKIP):
        self.coefs = list(coefs)
        self.skip_below, self.stop_below, self.skip = skip_below, stop_below, skip
        self.done: list[float] = []
        self._index = 0

    def next_coef(self) -> float | None:
        return self.coefs[self._index] if self._index < len(self.coefs) else None

    def record(self, value: float) -> None:
        self.done.append(self.coefs[self._index])
        if value < self.stop_below:
            self._index = len(self.coefs)
        else:
            self._index += self.skip if value < self.skip_below else 1


def coefficient_schedule(coefs, score: Callable[[float], float], skip_below: float = SKIP_BELOW,
                         stop_below: float = STOP_BELOW, skip: int = SKIP) -> list[float]:
    """The coefficients actually run, in order: `score(c)` (a relative accuracy) after each decides
    what comes next (`CoefficientSteps`)."""
    steps = CoefficientSteps(coefs, skip_below, stop_below, skip)
    while (coef := steps.next_coef()) is not None:
        steps.record(score(coef))
    return steps.done


def is_headline(layer: int, coef: float, control: str, n_layers: int) -> bool:
    """The points scored on the large evaluation set: middle layer, layer 0 and both controls at c in 1-2."""
    lo, hi = HEADLINE_COEFS
    return lo - 1e-9 <= coef <= hi + 1e-9 and (layer in (0, middle_layer(n_layers)) or control != "none")


# -- model access -----------------------------------------------------------------

class LazyModel:
    """Opens the model on first use, so a fully cached command never loads it."""

    def __init__(self, opener: Callable, name: str, revision: str, numerics: dict | None = None,
                 tokenizer_opener: Callable | None = None):
        self._opener = opener
        self._tokenizer_opener = tokenizer_opener
        self._model = None
        self._tokenizer = None
        self.name = name
        self.revision = revision
        self.numerics = numerics or dict(DEFAULT_NUMERICS)  # dtype and device the opener loads with

    def __call__(self):
        if self._model is None:
            self._model = self._opener()
        return self._model

    def tokenizer(self):
        """The tokenizer alone (sizing the evaluation sets needs no weights)."""
        if self._model is not None or self._tokenizer_opener is None:
            return self().tokenizer
        if self._tokenizer is None:
            self._tokenizer = self._tokenizer_opener()
        return self._tokenizer

    @property
    def loaded(self) -> bool:
        return self._model is not None


def model_identity(name: str, remote: bool = False) -> tuple[str, str]:
    """(name, revision) without loading weights (converts an embedded model once if needed)."""
    if remote:
        return name, "remote"
    _, revision = resolve(name)
    return name, revision


def safe_name(model_name: str) -> str:
    return Path(str(model_name).rstrip("/")).name.replace(" ", "_") or "model"


def vector_path(root, model_name: str, target: str, control: str = "none") -> Path:
    suffix = CONTROLS[control][0]
    return results_root(root) / "vectors" / safe_name(model_name) / f"skills_text_minus_{target}{suffix}.safetensors"


def _by_length(texts: list[str]) -> list[int]:
    """Order that batches documents of similar length together (less padding)."""
    return sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))


# -- extract ------------------------------------------------------------------------

@dataclass
class Extracted:
    table: pl.DataFrame  # per-domain mean activations, every layer
    vectors: dict  # (target, permuted) -> SteeringVector
    paths: list[Path]
    computed_points: int


def extract_config(ident: tuple[str, str], corpus: Corpus, profile: Profile, seed: int) -> dict:
    docs = {d: content_hash(corpus.texts("vector", d)) for d in DOMAINS}
    return {"experiment": EXTRACT, "model": ident[0], "revision": ident[1], "profile": profile.name,
            "data": corpus.origin, "seed": seed, "n_vector": {d: len(corpus.get("vector", d)) for d in DOMAINS},
            "documents": docs, "vector_tokens": profile.vector_tokens, "position": "last"}


def permuted_means_difference(pos: dict, neg: dict, seed: int) -> tuple[dict, dict]:
    """The paper's control: per layer, P1(pos) - P2(neg) with two independent seeded permutations.
    Returns (vector per layer, (P1, P2) per layer)."""
    gen = torch.Generator().manual_seed(seed)
    out, perms = {}, {}
    for L in sorted(pos):
        p1 = torch.randperm(pos[L].numel(), generator=gen)
        p2 = torch.randperm(neg[L].numel(), generator=gen)
        out[L], perms[L] = pos[L][p1] - neg[L][p2], (p1, p2)
    return out, perms


def _vectors_from_table(table: pl.DataFrame, config: dict, key: str, permute_seed: int) -> dict:

    means = {}
    for domain in DOMAINS:
        part = table.filter(pl.col("domain") == domain).sort(["layer", "component"])
        means[domain] = {int(L): torch.tensor(g["value"].to_numpy(), dtype=torch.float32)
                         for (L,), g in part.group_by(["layer"], maintain_order=True)}
    out = {}
    for target in TARGETS:
        meta = {"name": f"skills_text_minus_{target}", "method": "mean-difference", "site": "decoder-layer-output",
                "position": "last", "positive": "text", "negative": target, "model": config["model"],
                "model_revision": config["revision"], "profile": config["profile"], "data": config["data"],
                "split_seed": config["seed"], "n_docs": config["n_vector"], "documents": config["documents"],
                "vector_tokens": config["vector_tokens"], "extract_run": key, "control": "none"}
        vec = SteeringVector({L: means["text"][L] - means[target][L] for L in means["text"]}, meta)
        out[(target, "none")] = vec
        out[(target, "components")] = vec.permuted(permute_seed)
        out[(target, "components")].meta["control"] = "components"
        perm_means, _ = permuted_means_difference(means["text"], means[target], permute_seed)
        out[(target, "means")] = SteeringVector(perm_means, {
            **meta, "method": "mean-difference+permuted-means", "permute_seed": permute_seed, "control": "means"})
    return out


def extract(model: LazyModel, corpus: Corpus, profile: Profile, root=None, seed: int = 13,
            permute_seed: int = 0, log: Log | None = None, progress: Callable[[int], None] | None = None) -> Extracted:
    """Per-domain mean last-token activations (every layer) -> vectors; cached per domain."""
    log = log or (lambda _m: None)
    config = {**extract_config((model.name, model.revision), corpus, profile, seed), **model.numerics}
    run = Run(EXTRACT, config, root)
    table = run.finished()
    if table is None:
        frames = []
        for domain in DOMAINS:
            texts = corpus.texts("vector", domain)

            def compute(texts=texts, domain=domain):
                started = time.time()
                m = model()
                ordered = [texts[i] for i in _by_length(texts)]
                means = mean_activations(m, ordered, None, "last", profile.batch_size, profile.vector_tokens,
                                         progress=progress)
                log(f"read {len(texts)} {domain} documents in {time.time() - started:.0f}s")
                return _means_frame(means)

            frame = run.point({"domain": domain}, compute)
            frames.append(frame.with_columns(pl.lit(domain).alias("domain"), pl.lit(len(texts)).alias("n_docs")))
        n_layers = int(frames[0]["layer"].max()) + 1
        fig = middle_layer(n_layers)
        table = pl.concat(frames).with_columns(
            pl.lit(model.name).alias("model"), pl.lit(profile.name).alias("profile"),
            pl.lit(corpus.origin).alias("data"), pl.lit(run.key).alias("run"),
            (pl.col("layer") == fig).alias("figure_layer"),
        ).select("model", "profile", "data", "run", "domain", "n_docs", "layer", "figure_layer", "component", "value")
        table = run.finish([table])
    vectors = _vectors_from_table(table, config, run.key, permute_seed)
    paths = []
    for (target, control), vec in vectors.items():
        path = vector_path(root, model.name, target, control)
        if not _same_vector_file(path, vec):
            vec.save(path)
        paths.append(path)
    return Extracted(table, vectors, paths, run.computed_points)


def _means_frame(means: dict) -> pl.DataFrame:
    layers, comps, values = [], [], []
    for L, v in sorted(means.items()):
        n = v.numel()
        layers += [int(L)] * n
        comps += list(range(n))
        values += v.tolist()
    return pl.DataFrame({"layer": layers, "component": comps, "value": values},
                        schema={"layer": pl.Int32, "component": pl.Int32, "value": pl.Float32})


def _same_vector_file(path: Path, vec) -> bool:
    if not path.exists():
        return False
    try:
        old = SteeringVector.load(path)
    except UserError:
        return False
    return old.meta == vec.meta


def load_vectors(root, model_name: str) -> dict | None:
    """The saved vectors of a model, or None when any file is missing."""
    out = {}
    for target in TARGETS:
        for control in CONTROLS:
            path = vector_path(root, model_name, target, control)
            if not path.exists():
                return None
            out[(target, control)] = SteeringVector.load(path)
    return out


# -- sweep ----------------------------------------------------------------------------------

@dataclass
class EvalSet:
    """The documents scored at a point of one size, in scoring order."""
    size: str  # "sweep" | "headline"
    domains: list[str]
    languages: list[str]
    texts: list[str]


def scored_tokens(tokenizer, text: str, max_tokens: int) -> int:
    """Tokens of `text` whose next token is predicted when it is scored alone (first max_tokens kept)."""
    ids = tokenizer(text, truncation=True, max_length=max_tokens)["input_ids"]
    return max(0, len(ids) - 1)


def eval_sets(corpus: Corpus, profile: Profile, tokenizer) -> dict[str, EvalSet]:
    """Per size, each domain's evaluation documents in corpus order until the size's token target is met
    (all of them without a target). The sweep set is a prefix of the headline set."""
    targets = {"sweep": profile.sweep_tokens,
               "headline": profile.headline_tokens if profile.headline_tokens else profile.sweep_tokens}
    sizes = ("sweep", "headline") if profile.headline_tokens and profile.headline_tokens != profile.sweep_tokens \
        else ("sweep",)
    out = {}
    for size in sizes:
        picked = []
        for domain in DOMAINS:
            total = 0
            for doc in corpus.get("eval", domain):
                if targets[size] is not None and total >= targets[size]:
                    break
                picked.append(doc)
                if targets[size] is not None:
                    total += scored_tokens(tokenizer, doc.text, profile.eval_tokens)
        order = _by_length([d.text for d in picked])
        docs = [picked[i] for i in order]
        out[size] = EvalSet(size, [d.domain for d in docs], [d.lang for d in docs], [d.text for d in docs])
    return out


def _vector_digest(vectors: dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(vectors):
        vec = vectors[key]
        for L, v in vec.layers.items():
            digest.update(f"{key}/{L}".encode())
            digest.update(v.numpy().tobytes())
    return digest.hexdigest()[:16]


def check_vectors_match(vectors: dict, model_name: str, corpus: Corpus, seed: int, log: Log) -> None:
    """Vectors must be this model's and come from the same data split as the evaluation documents."""
    meta = vectors[("code", "none")].meta
    if meta.get("model") != model_name:
        raise UserError(f"the saved skills vectors are for model {meta.get('model')!r}, not {model_name!r}")
    if meta.get("data") != corpus.origin or meta.get("split_seed") != seed:
        raise UserError(f"the saved skills vectors come from {meta.get('data')} data split with seed "
                        f"{meta.get('split_seed')}, the evaluation uses {corpus.origin} data with seed {seed}: "
                        "run `steer-trace skills extract` with the same --data-dir/--seed first")


def _plan(vec, layer: int, coef: float):
    return Plan.single(vec, layer, coef)


def curve_order(layers: list[int], targets, n_layers: int, controls: bool) -> list[tuple[str, int, str]]:
    """(target, layer, control) per curve, headline curves first: a run stopped early has them."""
    mid = middle_layer(n_layers)
    first = [L for L in (mid, 0) if L in layers]
    curves = [(t, L, "none") for L in first for t in targets]
    if controls:
        curves += [(t, mid, c) for c in ("components", "means") for t in targets]
    curves += [(t, L, "none") for L in layers if L not in first for t in targets]
    return curves


@dataclass
class Swept:
    table: pl.DataFrame  # summary: one row per (point, domain)
    documents: pl.DataFrame  # per-document results of every point visited
    computed_points: int
    cached_points: int
    seconds: float


def points_config(model: LazyModel, corpus: Corpus, profile: Profile, sets: dict[str, EvalSet], vectors: dict,
                  seed: int) -> dict:
    """What a point's value depends on (not the layers, coefficients or rule: sweeps over other grids share it)."""
    return {"experiment": POINTS, "model": model.name, "revision": model.revision, "data": corpus.origin,
            "seed": seed, "eval_tokens": profile.eval_tokens, "vectors": _vector_digest(vectors),
            "documents": {size: content_hash(list(zip(s.domains, s.texts))) for size, s in sets.items()},
            **model.numerics}


@dataclass
class Curve:
    """One (target, layer, control) curve of a sweep and the points it has visited, in order."""
    target: str
    layer: int
    control: str
    steps: CoefficientSteps
    visited: list[tuple[dict, pl.DataFrame]] = field(default_factory=list)


def point_donors(root, config: dict, key: str) -> dict[str, list[str]]:
    """Per evaluation-set size, the other points runs whose points at that size are this run's too: the same
    config but for the documents of the *other* size (e.g. the same sweep with another --headline-tokens)."""
    rest = key_of({k: v for k, v in config.items() if k != "documents"})
    others = {k: c for k, c in points_configs(root).items()
              if k != key and key_of({n: v for n, v in c.items() if n != "documents"}) == rest}
    return {size: [k for k, c in others.items() if c.get("documents", {}).get(size) == docs]
            for size, docs in config["documents"].items()}


def lockstep_groups(curves: list[Curve], lockstep: bool = True) -> list[list[Curve]]:
    """The curves that advance together: all curves of one layer (layers in their first curve's order),
    or each curve alone (`lockstep=False`: one plan per scoring call)."""
    if not lockstep:
        return [[curve] for curve in curves]
    by_layer: dict[int, list[Curve]] = {}
    for curve in curves:
        by_layer.setdefault(curve.layer, []).append(curve)
    return list(by_layer.values())


def _documents_frame(eset: EvalSet, correct, counts) -> pl.DataFrame:
    return pl.DataFrame({"doc": list(range(len(eset.texts))), "domain": eset.domains, "language": eset.languages,
                         "correct": correct.tolist(), "count": counts.tolist()},
                        schema={"doc": pl.Int32, "domain": pl.Utf8, "language": pl.Utf8, "correct": pl.Int64,
                                "count": pl.Int64})


class PointStore:
    """A sweep's points: cached ones are read back, the missing ones of a step are scored together
    (one `token_accuracy` call per evaluation-set size) and written one by one. The unsteered layers below
    a step's layer are kept (`prefix_cache`), so each layer's prefix runs once per sweep, not once per step."""

    def __init__(self, store: Run, sets: dict[str, EvalSet], model: LazyModel, profile: Profile, log: Log,
                 progress: Callable[[int], None] | None = None, prefix_cache: bool = True,
                 donors: dict[str, list[str]] | None = None):
        self.store, self.sets, self.model, self.profile = store, sets, model, profile
        self.log, self.progress = log, progress
        self.donors = donors or {}
        self.cached = self.adopted = 0
        self.prefixes = PrefixCache() if prefix_cache else None

    def _cached(self, params: dict) -> pl.DataFrame | None:
        """This run's point, else a donor run's (copied into this run)."""
        frame = self.store.cached_point(params)
        if frame is not None:
            return frame
        for key in self.donors.get(params["size"], ()):
            frame = read_point(POINTS, key, params, self.store.dir.parent)
            if frame is not None:
                self.store.adopt_point(params, frame)
                self.adopted += 1
                return frame
        return None

    def get(self, wanted: list[tuple[dict, Callable]]) -> list[pl.DataFrame]:
        """The frame of each (params, plan maker); a plan is made only for a point that is not cached."""
        frames: list[pl.DataFrame | None] = []
        missing: dict[str, list[int]] = {}  # size -> positions in `wanted`
        for i, (params, _) in enumerate(wanted):
            frames.append(self._cached(params))
            if frames[-1] is None:
                missing.setdefault(params["size"], []).append(i)
            else:
                self.cached += 1
        for size, positions in missing.items():
            for i, frame in zip(positions, self._score(size, [wanted[i] for i in positions])):
                frames[i] = frame
        return frames

    def _score(self, size: str, wanted: list[tuple[dict, Callable]]) -> list[pl.DataFrame]:
        started = time.time()
        eset = self.sets[size]
        results = scoring.token_accuracy(self.model(), eset.texts, [make() for _, make in wanted],
                                         self.profile.batch_size, self.profile.eval_tokens, progress=self.progress,
                                         prefix_cache=self.prefixes)
        seconds = time.time() - started
        shared = f" for {len(wanted)} points" if len(wanted) > 1 else ""
        frames = []
        for (params, _), (correct, counts) in zip(wanted, results):
            frame = self.store.point(params, lambda c=correct, n=counts: _documents_frame(eset, c, n))
            accs = ", ".join(f"{d} {a:.3f}" for d, a in _domain_accuracy(frame).items())
            self.log(f"{_describe(params)}: {accs} ({int(frame['count'].sum())} tokens, {seconds:.0f}s{shared})")
            frames.append(frame)
        return frames


def _relative(frame: pl.DataFrame, baseline: dict[str, float]) -> dict[str, float]:
    acc = _domain_accuracy(frame)
    return {d: acc[d] / baseline[d] if baseline[d] else 0.0 for d in acc}


def sweep(model: LazyModel, corpus: Corpus, profile: Profile, vectors: dict, root=None, layers=None,
          targets=TARGETS, permuted_control: bool = True, seed: int = 13, log: Log | None = None,
          progress: Callable[[int], None] | None = None, steering=None, lockstep: bool = True,
          keep_prefixes: bool = True) -> Swept:
    """Accuracy on held-out text/code/Python for every (target, layer, control, coefficient) the schedule visits.
    `steering` (plan.Steering): the operator and token scope of every plan (default: add everywhere).
    The curves of one layer advance in lockstep: each step scores their next points in one call, which shares
    the layers below (`score.measure`); `lockstep=False` runs one curve, and one plan per call, at a time.
    `keep_prefixes`: those layers' outputs are kept across steps (prefix_cache.py), so they run once per layer.
    Either way the same points are visited and cached, and the tables come out in the same order."""
    log = log or (lambda _m: None)
    steering = steering or Steering()
    started = time.time()
    n_layers = len(vectors[("code", "none")].layers)
    layers = sorted(set(layers)) if layers else sweep_layers(n_layers)
    for L in layers:
        if not 0 <= L < n_layers:
            raise UserError(f"layer {L} is out of range for {model.name} (0..{n_layers - 1})")
    sets = eval_sets(corpus, profile, model.tokenizer())
    config = {**points_config(model, corpus, profile, sets, vectors, seed), **steering.key()}
    store = Run(POINTS, config, root)
    _write_config(store, config)
    summary_config = {**config, "experiment": SWEEP, "profile": profile.name, "layers": layers,
                      "coefs": list(profile.coefs), "targets": list(targets), "controls": permuted_control,
                      "rule": [profile.rule, SKIP_BELOW, STOP_BELOW, SKIP], "n_boot": profile.n_boot,
                      "sizes": {s: [profile.sweep_tokens, profile.headline_tokens] for s in sets}}
    summary_run = Run(SWEEP, summary_config, root)
    finished = summary_run.finished()
    damaged: list[Path] = []  # a damaged point of a finished sweep is deleted and the sweep resumes to recompute it
    docs = load_points(root, store.key, repair=True, damaged=damaged) if finished is not None else None
    if finished is not None and not damaged:
        return Swept(finished, docs, 0, finished.select(*POINT_KEYS).unique().height, time.time() - started)

    points = PointStore(store, sets, model, profile, log, progress, prefix_cache=keep_prefixes,
                        donors=point_donors(root, config, store.key))
    baseline_params = [{"kind": "baseline", "size": size} for size in sets]
    baselines = dict(zip(sets, points.get([(params, Plan.none) for params in baseline_params])))
    base_acc = {size: _domain_accuracy(frame) for size, frame in baselines.items()}
    rule = STEP_RULES[profile.rule]

    def size_of(curve: Curve, coef: float) -> str:
        headline = "headline" in sets and is_headline(curve.layer, coef, curve.control, n_layers)
        return "headline" if headline else "sweep"

    def params_of(curve: Curve, coef: float) -> dict:
        return {"kind": "steered", "target": curve.target, "layer": curve.layer, "coef": float(coef),
                "control": curve.control, "size": size_of(curve, coef)}

    def plan_maker(curve: Curve, coef: float) -> Callable:
        vec = vectors[(curve.target, curve.control)]
        return lambda: steering.apply(_plan(vec, curve.layer, coef))

    def step(group: list[Curve]) -> None:
        """Each curve's next point (cached, scored together with the others', or the baseline at c = 0),
        then each curve's rule picks its next coefficient."""
        asked = [(curve, curve.steps.next_coef()) for curve in group]
        reuses_baseline = [coef == 0 and steering.is_default for _, coef in asked]  # project-out at 0 still acts
        scored = iter(points.get([(params_of(curve, coef), plan_maker(curve, coef))
                                  for (curve, coef), reuse in zip(asked, reuses_baseline) if not reuse]))
        for (curve, coef), reuse in zip(asked, reuses_baseline):
            params = params_of(curve, coef)
            frame = baselines[params["size"]] if reuse else next(scored)
            curve.visited.append((params, frame))
            curve.steps.record(rule(_relative(frame, base_acc[params["size"]]), curve.target))

    curves = [Curve(target, layer, control, CoefficientSteps(profile.coefs))
              for target, layer, control in curve_order(layers, targets, n_layers, permuted_control)]
    for group in lockstep_groups(curves, lockstep):
        while active := [curve for curve in group if curve.steps.next_coef() is not None]:
            step(active)
    if points.adopted:
        log(f"{points.adopted} of the cached points came from other points runs of the same model, vectors and "
            "documents at their size (copied into this run)")
    visited = [*zip(baseline_params, baselines.values()), *(point for curve in curves for point in curve.visited)]
    documents = points_frame(visited)
    table = summarise(documents, profile.n_boot, seed).with_columns(
        pl.lit(model.name).alias("model"), pl.lit(profile.name).alias("profile"),
        pl.lit(corpus.origin).alias("data"), pl.lit(summary_run.key).alias("run"))
    computed = store.computed_points
    summary_run.finish([table])
    return Swept(table, documents, computed, points.cached, time.time() - started)


POINT_KEYS = ("target", "control", "layer", "coef", "size")


def _domain_accuracy(frame: pl.DataFrame) -> dict[str, float]:
    sums = frame.group_by("domain").agg(pl.col("correct").sum(), pl.col("count").sum())
    return {r["domain"]: r["correct"] / r["count"] if r["count"] else float("nan") for r in sums.iter_rows(named=True)}


def _write_config(store: Run, config: dict) -> None:
    path = store.dir / f"{store.key}.config.json"
    if not path.exists():
        path.write_text(json.dumps(config, indent=1, sort_keys=True, default=str))


def points_frame(visited: list[tuple[dict, pl.DataFrame]]) -> pl.DataFrame:
    """Per-document rows of points, tagged with their parameters (c = 0 rows are the baseline's documents)."""
    frames = []
    for params, frame in visited:
        if params["kind"] == "baseline":
            params = {"target": "", "control": "none", "layer": -1, "coef": 0.0, "size": params["size"]}
        frames.append(frame.with_columns(
            pl.lit(params["target"]).alias("target"), pl.lit(params["control"]).alias("control"),
            pl.lit(params["layer"], pl.Int32).alias("layer"), pl.lit(float(params["coef"])).alias("coef"),
            pl.lit(params["size"]).alias("size")))
    joined = pl.concat(frames)
    run = ["points_run"] if "points_run" in joined.columns else []  # two models' points share the other keys
    return joined.unique(subset=[*run, *POINT_KEYS, "doc"], maintain_order=True)


def _read_json(path: Path) -> dict | None:
    """A sidecar or config file as a dict; a damaged one is reported and None (never a crash)."""
    try:
        value = json.loads(path.read_text())
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value
    except (OSError, ValueError) as error:
        warnings.warn(f"{path} is damaged or unreadable ({error}); skipped", stacklevel=2)
        return None


def load_points(root, key: str | None = None, repair: bool = False,
                damaged: list[Path] | None = None) -> pl.DataFrame | None:
    """Per-document rows of every cached point (of one points run, or of all), from the parameter sidecars.
    Each file goes through the cache's checked read: a damaged point is reported and skipped (`repair`: deleted,
    so the command that computes recomputes it) and its path appended to `damaged` if given."""
    folder = results_root(root) / POINTS
    visited = []
    damaged = [] if damaged is None else damaged
    for points_dir in sorted(folder.glob(f"{key or '*'}.points")):
        config_path = folder / f"{points_dir.name[:-len('.points')]}.config.json"
        config = (_read_json(config_path) if config_path.exists() else {}) or {}
        for path in sorted(points_dir.glob("*.parquet")):
            if not path.with_suffix(".json").exists():  # killed between the two renames: recomputed on resume
                continue
            frame = read_checked(path, repair=repair)
            if frame is None:
                damaged.append(path)
                continue
            params = json.loads(path.with_suffix(".json").read_text())["config"]  # checked by read_checked
            frame = frame.with_columns(pl.lit(config.get("model", "?")).alias("model"),
                                       pl.lit(points_dir.name[:16]).alias("points_run"),
                                       pl.lit(config.get("dtype", "float32")).alias("dtype"))
            visited.append((params, frame))
    return points_frame(visited) if visited else None


def points_configs(root) -> dict[str, dict]:
    """points run key -> its config (what its points depend on), for every points run under `root` (a damaged
    config is reported and left out)."""
    folder = results_root(root) / POINTS
    configs = {path.name[:-len(".config.json")]: _read_json(path) for path in sorted(folder.glob("*.config.json"))}
    return {key: config for key, config in configs.items() if config is not None}


def _paired_ratio_ci(steered: np.ndarray, base: np.ndarray, counts: np.ndarray, n_boot: int, seed: int):
    """Bootstrap over documents (same resample for both) of accuracy and of accuracy / baseline accuracy."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(counts), size=(n_boot, len(counts)))
    n = counts[idx].sum(1).astype(np.float64)
    s, b = steered[idx].sum(1), base[idx].sum(1)
    ok = (n > 0) & (b > 0)
    if not ok.any():
        return (float("nan"), float("nan")), (float("nan"), float("nan"))
    acc = np.quantile(s[ok] / n[ok], [0.025, 0.975])
    rel = np.quantile(s[ok] / b[ok], [0.025, 0.975])
    return acc, rel


def summarise(documents: pl.DataFrame, n_boot: int = 1000, seed: int = 13, by: str = "domain") -> pl.DataFrame:
    """One row per (point, domain or language): accuracy, relative accuracy (to the baseline of the same
    documents) and their document-bootstrap 95% intervals, documents and tokens scored."""
    keys = [k for k in ("model", "points_run", "dtype") if k in documents.columns]
    base = documents.filter(pl.col("layer") == -1).select(*keys, "size", "doc", pl.col("correct").alias("base"))
    joined = documents.join(base, on=[*keys, "size", "doc"], how="left")
    rows = []
    for group, part in joined.group_by([*keys, *POINT_KEYS, by], maintain_order=True):
        info = dict(zip([*keys, *POINT_KEYS, by], group))
        part = part.sort("doc")
        c, b, n = (part[col].to_numpy() for col in ("correct", "base", "count"))
        (lo, hi), (rlo, rhi) = _paired_ratio_ci(c, b, n, n_boot, seed)
        total = int(n.sum())
        rows.append({**info, "accuracy": c.sum() / total if total else float("nan"), "accuracy_lo": lo,
                     "accuracy_hi": hi, "relative": c.sum() / b.sum() if b.sum() else float("nan"),
                     "relative_lo": rlo, "relative_hi": rhi, "baseline": b.sum() / total if total else float("nan"),
                     "n_docs": part.height, "n_tokens": total})
    out = pl.DataFrame(rows)
    return out.sort([*keys, "target", "control", "layer", "coef", "size", by])


def _describe(params: dict) -> str:
    if params.get("kind") == "baseline":
        return f"baseline ({params['size']})"
    control = "" if params["control"] == "none" else f" {CONTROLS[params['control']][1]}"
    return f"text-{params['target']}{control} L{params['layer']} c={params['coef']:g} ({params['size']})"


def selectivity(table: pl.DataFrame) -> pl.DataFrame:
    """One row per point: relative text and target accuracy side by side (with intervals)."""
    steered = table.filter(pl.col("layer") >= 0)
    index = [c for c in ("model", "profile", "target", "control", "layer", "coef", "size") if c in table.columns]
    wide = steered.pivot(on="domain", index=index, values=["relative", "relative_lo", "relative_hi", "n_tokens"])
    return wide.sort(index)


def profile_dict(profile: Profile) -> dict:
    return asdict(profile)
