"""steer_trace: activation steering through nnsight, local or on NDIF.

read -> vector -> plan -> apply -> score:

    from steer_trace import load_model, contrastive_vector, Plan, answer_probs

The names below are imported on first use (PEP 562 `__getattr__`), so `import steer_trace.errors` (the
command line's start-up) does not import torch, transformers and nnsight: measured, `steer-trace --help`
took 7-9 s with them. `from steer_trace import X` and `steer_trace.X` work as before.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from . import _sources
from ._version import __version__  # noqa: F401
from .errors import UserError

_EXPORTS = {
    "Injection": "plan", "Plan": "plan", "apply_plan": "plan",
    "GenerationOptions": "generation", "generate": "generation", "steered_generate": "generation",
    "SteeringVector": "vectors", "combine": "vectors", "cosine": "vectors",
    "answer_probs": "score", "answer_token_ids": "score", "token_accuracy": "score",
    "contrastive_vector": "read", "mean_activations": "read", "read_batch": "read", "residual_norms": "read",
    "extract": "pairs", "extract_vector": "pairs", "load_model": "models",
}

# the modules that open traces: their text as it is now, for nnsight's compile of `with` blocks (_sources.py)
_sources.pin_files(Path(__file__).parent / f"{name}.py" for name in ("batching", "content", "detectors", "generation",
                                                                      "pairs", "plan", "read", "score"))

__all__ = [
    "GenerationOptions", "Injection", "Plan", "SteeringVector", "UserError", "answer_probs", "answer_token_ids",
    "apply_plan", "combine", "contrastive_vector", "cosine", "extract", "extract_vector", "generate", "load_model",
    "mean_activations", "read_batch", "residual_norms", "steered_generate", "token_accuracy",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'steer_trace' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
