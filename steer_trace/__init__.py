"""steer_trace: activation steering through nnsight, local or on NDIF.

read -> vector -> plan -> apply -> score:

    from steer_trace import load_model, contrastive_vector, Plan, answer_probs
"""

__version__ = "0.1.0"

from .errors import UserError  # noqa: E402
from .models import load_model  # noqa: E402
from .plan import Injection, Plan, apply_plan, steered_generate  # noqa: E402
from .read import contrastive_vector, mean_activations, read_batch, residual_norms  # noqa: E402
from .score import answer_probs, answer_token_ids, token_accuracy  # noqa: E402
from .vectors import SteeringVector, combine, cosine  # noqa: E402

__all__ = [
    "Injection", "Plan", "SteeringVector", "UserError", "answer_probs", "answer_token_ids", "apply_plan",
    "combine", "contrastive_vector", "cosine", "load_model", "mean_activations", "read_batch",
    "residual_norms", "steered_generate", "token_accuracy",
]
