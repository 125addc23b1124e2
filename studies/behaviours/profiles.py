"""How big a behaviours run is: its profiles (quick, paper, test), the paper's coefficient lists, the
combinations of the five vectors, and the paper's layer numbering.

The profiles' default layers are in the paper's numbering (Llama-2-7B, 32 layers), mapped to the same relative
depth of the model at hand: paper layer 10 is layer 9 of smollm2-135m (30 layers) and layer 8 of
qwen2.5-coder-0.5b (24 layers). Layers given on the command line (--layers, --grid-layers) are the model's own
layer numbers, used as given. Light on purpose (no torch, no polars): the CLI reads the profile names from here.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..common.profiles import PAPER_N_LAYERS, Profile as BaseProfile, pick

PAPER_GRID = (0.5, 1, 2, 3, 5, 10, 20, 30, 40, 60, 80, 120, 200, 300)
PAPER_SIMULTANEOUS = tuple(round(-2 + 0.05 * i, 2) for i in range(81))

# the ways to combine the five behaviour vectors into one (vectors.combine), and their figure labels
COMBINATIONS = ("sum", "mean", "weighted_sum", "weighted_mean")
COMBINATION_LABELS = {"sum": "Unweighted Sum", "mean": "Unweighted Mean", "weighted_sum": "Weighted Sum",
                      "weighted_mean": "Weighted Mean"}


@dataclass(frozen=True)
class Profile(BaseProfile):
    n_vector: int | None  # caps on each split part (None: the whole part)
    n_validation: int | None
    n_test: int | None
    grid_layers: tuple[int, ...]  # paper numbering
    report_layers: tuple[int, ...]  # single / combined / diagnose, paper numbering
    simultaneous_first: int  # paper numbering: myopic@11 ... anti-immigration@15
    grid_coefs: tuple[float, ...]  # positive; each is also tried negated
    simultaneous_coefs: tuple[float, ...]
    interference_coefs: tuple[float, ...]
    relative_grid: tuple[float, ...]  # the same lists as fractions of the residual norm (--relative)
    relative_coefs: tuple[float, ...]
    tax_docs: int = 16
    tax_tokens: int = 128
    max_faulty: float = 0.05  # paper: stop a direction at > 10 faulty of 200
    batch_size: int = 8


PROFILES = {
    p.name: p
    for p in (
        Profile("quick", 64, 24, 24, grid_layers=(10, 15), report_layers=(10, 15), simultaneous_first=11,
                grid_coefs=(2, 8, 32, 128), simultaneous_coefs=(-32, -8, -2, 0, 2, 8, 32),
                interference_coefs=(-32, 32),
                relative_grid=(0.05, 0.2, 0.8, 3.2), relative_coefs=(-0.8, -0.2, -0.05, 0, 0.05, 0.2, 0.8),
                tax_docs=8, tax_tokens=128),
        Profile("paper", None, None, None, grid_layers=(0, 5, 10, 15, 20, 25, 29, 31), report_layers=(10, 15),
                simultaneous_first=11, grid_coefs=PAPER_GRID, simultaneous_coefs=PAPER_SIMULTANEOUS,
                interference_coefs=(-10, 10),
                relative_grid=(0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2),
                relative_coefs=tuple(round(c / 10, 3) for c in PAPER_SIMULTANEOUS),
                tax_docs=200, tax_tokens=256),
        # tiny: the test suite
        Profile("test", 6, 6, 6, grid_layers=(10,), report_layers=(10,), simultaneous_first=11,
                grid_coefs=(8, 256), simultaneous_coefs=(-8, 0, 8), interference_coefs=(8,),
                relative_grid=(0.2, 3.2), relative_coefs=(-0.2, 0, 0.2), tax_docs=2, tax_tokens=32),
    )
}


def make_profile(name: str, n_vector=None, n_validation=None, n_test=None, **overrides) -> Profile:
    """PROFILES[name] with the sizes and other fields given (None: the profile's)."""
    return pick(PROFILES, name, ("n_vector", "n_validation", "n_test", "batch_size", "tax_docs"), n_vector=n_vector,
                n_validation=n_validation, n_test=n_test, **overrides)


def model_layer(paper_layer: int, n_layers: int) -> int:
    """Paper layer (of 32) at the same relative depth in a model with `n_layers` (Python's round: half to even;
    the skills study rounds half up, skills/profiles.relative_layer, and its committed layers depend on it)."""
    return min(n_layers - 1, max(0, round(paper_layer * n_layers / PAPER_N_LAYERS)))
