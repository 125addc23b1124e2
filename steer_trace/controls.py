"""Controls for steering effects: a random direction with the norm of a real vector.

Large generic perturbations move log-probability preferences too, so every behaviour
sweep scores a random direction of equal norm beside the behaviour's own vector.
"""

from __future__ import annotations

import hashlib

import torch

from .vectors import SteeringVector


def seed_of(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def random_like(vector: SteeringVector, seed: int = 0) -> SteeringVector:
    """Per layer, a Gaussian random direction scaled to that layer's norm (seeded)."""
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for L, v in vector.layers.items():
        direction = torch.randn(v.numel(), generator=gen)
        out[L] = direction / direction.norm() * v.norm()
    return SteeringVector(out, {**vector.meta, "method": "random-direction-equal-norm", "random_seed": int(seed)})
