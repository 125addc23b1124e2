"""The Study: model + behaviours + options of one behaviours run (its profile: profiles.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from steer_trace import data
from steer_trace.aggregators import DEFAULT_METHOD, method_of
from steer_trace.cache import ensure_writable, results_root
from steer_trace.errors import UserError
from steer_trace.plan import Steering
from steer_trace.read import content_hash
from .data import BEHAVIOURS, load_behaviours
from .profiles import Profile, model_layer

@dataclass
class Study:
    """Everything one behaviours command needs: model, data, splits, options."""

    model: object  # steer_trace.models.Model
    profile: Profile
    items: dict[str, list]  # behaviour -> all its ABItems
    sources: dict[str, str]
    prompt_style: str = "paper"
    orders: str = "both"
    balanced: bool = True
    relative: bool = False
    slices: str = "balanced"  # validation / test slices: "balanced" (as many per matching label) or "plain"
    split_rule: str = "seeded"  # "seeded": Random(13) per behaviour; "paper": the paper's one-seed sequence
    scoring: str = "letter"  # "letter": p(answer letter); "content": log p(option text) (see content.py)
    vector_source: str = "letter"  # vectors from answer letters or from answer texts (content.py)
    root: Path = field(default_factory=results_root)
    vectors: dict = field(default_factory=dict, repr=False)  # behaviour -> SteeringVector, once extracted
    residual_norms: dict[int, float] | None = None  # mean over behaviours, per layer (for --relative)
    computed: int = 0  # points and vectors computed (not read from the cache) by this study
    steering: Steering = field(default_factory=Steering)  # --op / --scope for every plan
    method: str = DEFAULT_METHOD  # extraction method of letter vectors (aggregators.METHODS)
    prepared: dict = field(default_factory=dict, repr=False)  # (behaviour, split) -> prompts ready to score

    @property
    def names(self) -> list[str]:
        return list(self.items)

    def layers(self, paper_layers) -> list[int]:
        return sorted({model_layer(L, self.model.n_layers) for L in paper_layers})

    def part(self, behaviour: str, name: str) -> list:
        """One split part ('vector', 'validation', 'test'), capped by the profile; validation
        and test are label-balanced slices unless slices='plain'."""
        if self.split_rule == "paper":
            rows = data.paper_order(self.items[behaviour], behaviour)
            parts = {"vector": rows[:500], "validation": rows[500:700], "test": rows[700:]}
        else:
            parts = data.split(self.items[behaviour], seed=13, sizes=(500, 200))
        cap = {"vector": self.profile.n_vector, "validation": self.profile.n_validation,
               "test": self.profile.n_test}[name]
        if name != "vector" and self.slices == "balanced":
            rows = data.balanced_slice(parts[name], cap)
        else:
            rows = parts[name][:cap] if cap else parts[name]
        if not rows:
            raise UserError(f"behaviour {behaviour!r} has no rows left for the {name} split "
                            f"({len(self.items[behaviour])} rows in all)")
        return rows

    def questions(self, behaviour: str, name: str) -> list:
        """The split's questions as asked: in every rotation of their options (both orders of
        two) unless orders='given'."""
        rows = self.part(behaviour, name)
        return data.rotations(rows) if self.orders == "both" else rows

    def prompt(self, item) -> str:
        return data.prompt(item, self.prompt_style, self.model.tokenizer)

    def ready(self, plan):
        """The plan as injected: coefficients read relative to the residual norm with --relative."""
        plan = self.steering.apply(plan)  # first: --relative reads a set-projection value as a fraction too
        if self.relative and plan.injections:
            if self.residual_norms is None:
                raise UserError("--relative needs the residual norms measured at extraction")
            plan = plan.relative_to(self.residual_norms)
        return plan

    def data_hashes(self) -> dict[str, str]:
        return {name: content_hash(items) for name, items in self.items.items()}

    def base_config(self) -> dict:
        """What every result of this study depends on (part of each run key)."""
        return {
            "model": self.model.name, "revision": self.model.revision, "profile": self.profile.name,
            "sizes": [self.profile.n_vector, self.profile.n_validation, self.profile.n_test],
            "data": self.data_hashes(), "prompt_style": self.prompt_style, "orders": self.orders,
            "balanced": self.balanced, "relative": self.relative, "version": 1, **self.model.numerics,
            **self.new_options(),
        }

    def scored_config(self, part: str) -> dict:
        """`base_config` of a table scored on one split part ('test'): the part is keyed as 'split' (as it always
        was), the split rule - which base_config names 'split' when not seeded - as 'split_rule', so that
        neither overwrites the other (a --split paper run once read the seeded run's cached table)."""
        config = self.base_config()
        rule = config.pop("split", None)
        return {**config, "split": part, **({"split_rule": rule} if rule is not None else {})}

    def new_options(self) -> dict:
        """Options added after results were committed: in a key only when they differ from the
        old behaviour, so old keys stay valid. Balanced slices (the new default) change the
        test questions, so they do enter the key: such results are recomputed."""
        out = {"slices": self.slices, "split": self.split_rule, "scoring": self.scoring,
               "vector_source": self.vector_source, "method": self.method}
        old = {"slices": "plain", "split": "seeded", "scoring": "letter", "vector_source": "letter",
               "method": DEFAULT_METHOD}
        return {k: v for k, v in out.items() if v != old[k]}

    def columns(self) -> dict:
        """Columns shared by every A/B result row."""
        return {"model": self.model.name, "profile": self.profile.name, "prompt_style": self.prompt_style,
                "orders": self.orders, "relative": self.relative, "plain_mean": not self.balanced,
                "slices": self.slices, "split_rule": self.split_rule, "scoring": self.scoring,
                "vector_source": self.vector_source,
                **({"method": self.method} if self.method != DEFAULT_METHOD else {})}


def open_study(model, profile: Profile, behaviours: tuple[str, ...] | None = None, data_dir=None,
               dataset_files: tuple = (), prompt_style: str = "paper", orders: str = "both",
               balanced: bool = True, relative: bool = False, root=None, slices: str = "balanced",
               split: str = "seeded", scoring: str = "letter", vector_source: str = "letter",
               steering: Steering | None = None, method: str = DEFAULT_METHOD, skip_bad_rows: bool = False) -> Study:
    """Load the behaviours' data for `model` and bundle the options. `model` may be a zero-argument
    function that opens it: it is called only once the options and the data have loaded, so a typo
    in a path is an error before a model (or a remote session) is opened."""
    for option, value, allowed in (("orders", orders, ("both", "given")), ("slices", slices, ("balanced", "plain")),
                                   ("split", split, ("seeded", "paper")), ("scoring", scoring, ("letter", "content")),
                                   ("vector-source", vector_source, ("letter", "content"))):
        if value not in allowed:
            raise UserError(f"unknown --{option} {value!r} ({' or '.join(allowed)})")
    method_of(method)  # an unknown name is a one-line error
    if method != DEFAULT_METHOD and vector_source != "letter":
        raise UserError(f"--method {method} applies to letter vectors; content vectors are mean differences")
    if behaviours is None:
        behaviours = () if dataset_files else tuple(BEHAVIOURS)
    unknown = [b for b in behaviours if b not in BEHAVIOURS]
    if unknown and not data_dir:
        raise UserError(f"unknown behaviour(s) {', '.join(unknown)} (known: {', '.join(BEHAVIOURS)}; "
                        f"or give --data-dir / --dataset)")
    loaded = load_behaviours(list(behaviours), data_dir, dataset_files, use_hub=profile.name == "paper",
                             skip_bad_rows=skip_bad_rows)
    root = ensure_writable(results_root(root))
    model = model() if callable(model) else model  # a Model is not callable
    study = Study(model, profile, {k: v[0] for k, v in loaded.items()}, {k: v[1] for k, v in loaded.items()},
                  prompt_style, orders, balanced, relative, slices, split, scoring, vector_source,
                  root, steering=steering or Steering(), method=method)
    if prompt_style == "chat":
        study.prompt(study.items[study.names[0]][0])  # fails early without a chat template
    return study
