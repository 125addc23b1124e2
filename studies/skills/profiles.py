"""How big a skills run is: its profiles (default, quick, paper), the paper's layers and coefficient lists,
and the step rules that walk a curve. Light on purpose (no torch, no polars): the CLI reads it at start-up."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from steer_trace.errors import UserError

from ..common.profiles import PAPER_N_LAYERS, Profile as BaseProfile, pick

PAPER_LAYERS = (0, 5, 10, 15, 20, 25, 30)
PAPER_MIDDLE_LAYER = 15  # the permuted controls, the headline points and the activation-distribution figure
# The authors' coefficient list, read off the `used_ics` of their saved runs (results/coding/v_9.*.json) with
# their step rule: indices 0-28 and 31-33 are visited in some run; the two values between 8 and 15 never are
# (10 and 12 are our choice).
PAPER_COEFS = (0.0, 0.25, *[round(0.5 + 0.1 * i, 2) for i in range(16)], 2.25, 2.5, 2.75, 3.0, 3.5, 4.0, 4.5, 5.0,
               6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0)
QUICK_COEFS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)
HEADLINE_COEFS = (1.0, 2.0)  # c range of the headline points (middle layer, layer 0, both permuted controls)

def _target_score(relative: dict[str, float], target: str) -> float:
    return relative[target]


def _max_score(relative: dict[str, float], target: str) -> float:
    return max(relative.values())


# the value the skip/stop rule looks at, from a point's relative accuracies per domain
STEP_RULES: dict[str, Callable[[dict, str], float]] = {
    "paper": _target_score,  # the target domain only (the authors' code: the first of its two modes)
    "max": _max_score,  # the largest over the three domains (this project's earlier rule)
}


@dataclass(frozen=True)
class Profile(BaseProfile):
    n_vector: int  # documents per domain read for the vectors (at most)
    n_eval: int | None  # held-out documents per domain available for scoring (at most; None: all)
    vector_tokens: int  # documents truncated to this many tokens before the last-token read
    eval_tokens: int  # documents truncated to this many tokens when scoring
    coefs: tuple[float, ...]
    batch_size: int
    sweep_tokens: int | None = None  # scored tokens per domain at every point (None: all n_eval documents)
    headline_tokens: int | None = None  # ... at the headline points (None: as sweep_tokens)
    rule: str = "paper"
    n_boot: int = 1000


PROFILES = {
    # the default: >= 5k scored tokens per domain at every point, >= 20k at the headline points (documents
    # of up to 512 tokens, so code bodies are reached); the paper's coefficient list and step rule
    "default": Profile("default", n_vector=60, n_eval=None, vector_tokens=512, eval_tokens=512, coefs=PAPER_COEFS,
                       batch_size=8, sweep_tokens=5_000, headline_tokens=20_000),
    # minutes on 2 CPU cores: the superseded small evaluation (6 documents of <= 64 tokens per domain)
    "quick": Profile("quick", n_vector=40, n_eval=6, vector_tokens=128, eval_tokens=64, coefs=QUICK_COEFS,
                     batch_size=8),
    # the paper: 5000 documents per class up to 4096 tokens; ~500k scored tokens per domain
    "paper": Profile("paper", n_vector=5000, n_eval=None, vector_tokens=4096, eval_tokens=4096, coefs=PAPER_COEFS,
                     batch_size=4, sweep_tokens=500_000, headline_tokens=500_000),
}


def make_profile(name: str, **overrides) -> Profile:
    """PROFILES[name] with the fields given (None: the profile's); coefficients sorted, with 0 added."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if "rule" in given and given["rule"] not in STEP_RULES:
        raise UserError(f"unknown step rule {given['rule']!r} (one of {', '.join(STEP_RULES)})")
    if "coefs" in given:
        coefs = tuple(float(c) for c in given["coefs"])
        if not coefs or any(not math.isfinite(c) for c in coefs):
            raise UserError("coefficients must be finite numbers")
        given["coefs"] = tuple(sorted(set(coefs) | {0.0}))
    profile = pick(PROFILES, name, ("n_vector", "n_eval", "vector_tokens", "eval_tokens", "batch_size",
                                    "sweep_tokens", "headline_tokens"), **given)
    if "n_eval" in given and "sweep_tokens" not in given:  # a document count given alone: score those documents
        profile = replace(profile, sweep_tokens=None, headline_tokens=None)
    return profile


def relative_layer(paper_layer: int, n_layers: int) -> int:
    """The layer at the same relative depth as `paper_layer` of the paper's 32."""
    return min(n_layers - 1, int(math.floor(paper_layer * n_layers / PAPER_N_LAYERS + 0.5)))


def sweep_layers(n_layers: int) -> list[int]:
    return sorted({relative_layer(L, n_layers) for L in PAPER_LAYERS})


def middle_layer(n_layers: int) -> int:
    return relative_layer(PAPER_MIDDLE_LAYER, n_layers)


