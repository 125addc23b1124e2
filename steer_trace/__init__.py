"""steer_trace: activation steering through nnsight, local or on NDIF.

read -> vector -> plan -> apply -> score:

    from steer_trace import load_model, contrastive_vector, Plan, answer_probs
"""

from ._version import __version__  # noqa: F401
from .errors import UserError
from .models import load_model
from .pairs import extract_vector
from .generation import GenerationOptions, generate, steered_generate
from .plan import Injection, Plan, apply_plan
from .read import contrastive_vector, mean_activations, read_batch, residual_norms
from .score import answer_probs, answer_token_ids, token_accuracy
from .vectors import SteeringVector, combine, cosine

from . import _sources, batching, content, detectors, generation, pairs, plan, read, score  # modules that open traces

_sources.pin(batching, content, detectors, generation, pairs, plan, read, score)

__all__ = [
    "GenerationOptions", "Injection", "Plan", "SteeringVector", "UserError", "answer_probs", "answer_token_ids",
    "apply_plan", "combine", "contrastive_vector", "cosine", "extract_vector", "generate", "load_model",
    "mean_activations", "read_batch", "residual_norms", "steered_generate", "token_accuracy",
]
