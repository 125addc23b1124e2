"""A steering plan: a list of (layer, vector, coefficient), and its application.

A single vector, a combined vector, and several vectors at several layers (the
paper's "simultaneous" injection) are all plans. Inside an nnsight trace,
`apply_plan` adds coefficient x vector to each named decoder layer's output at
every position. For generation, call it once per generated step (see
`steered_generate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import UserError
from .models import Model
from .vectors import SteeringVector


@dataclass(frozen=True)
class Injection:
    layer: int
    vector: torch.Tensor  # [d_model]
    coef: float

    def describe(self) -> str:
        return f"L{self.layer}x{self.coef:g}"


@dataclass(frozen=True)
class Plan:
    injections: tuple[Injection, ...] = ()
    label: str = ""

    @classmethod
    def none(cls) -> "Plan":
        return cls((), "unsteered")

    @classmethod
    def single(cls, vector: SteeringVector, layer: int, coef: float, label: str = "") -> "Plan":
        return cls((Injection(int(layer), vector[int(layer)], float(coef)),), label)

    @classmethod
    def simultaneous(cls, placed: list[tuple[SteeringVector, int]], coef: float, label: str = "") -> "Plan":
        """Each vector at its own layer, one global coefficient."""
        return cls(tuple(Injection(int(L), v[int(L)], float(coef)) for v, L in placed), label)

    def scaled(self, factor: float) -> "Plan":
        return Plan(tuple(Injection(i.layer, i.vector, i.coef * factor) for i in self.injections), self.label)

    def relative_to(self, residual_norms: dict[int, float]) -> "Plan":
        """Read each coefficient as a fraction of the layer's mean residual norm:
        the added vector gets norm coef x ||h_L||."""
        out = []
        for i in self.injections:
            if i.layer not in residual_norms:
                raise UserError(f"no residual norm measured for layer {i.layer}")
            unit = i.vector / i.vector.norm().clamp_min(1e-12)
            out.append(Injection(i.layer, unit * residual_norms[i.layer], i.coef))
        return Plan(tuple(out), self.label)

    @property
    def pure_add(self) -> bool:
        """True when every injection adds at every position: such plans sum into `deltas()`
        and rows with different pure-add plans can share one forward pass."""
        return True

    @property
    def is_empty(self) -> bool:
        return all(i.coef == 0 for i in self.injections)

    def describe(self) -> str:
        return self.label or ("+".join(i.describe() for i in self.injections) or "unsteered")

    def check(self, model: Model) -> "Plan":
        for i in self.injections:
            model.check_layer(i.layer)
            if i.vector.numel() != model.d_model:
                raise UserError(
                    f"vector for layer {i.layer} has width {i.vector.numel()}, model {model.name} has {model.d_model}"
                )
            if not torch.isfinite(i.vector).all():
                raise UserError(f"vector for layer {i.layer} contains NaN or inf")
            if not math.isfinite(i.coef):
                raise UserError(f"coefficient {i.coef} for layer {i.layer} is not a finite number")
        return self

    def deltas(self) -> list[tuple[int, torch.Tensor]]:
        """(layer, coef x vector) in forward order; injections at one layer are summed."""
        by_layer: dict[int, torch.Tensor] = {}
        for i in self.injections:
            if i.coef == 0:
                continue
            delta = i.coef * i.vector
            by_layer[i.layer] = by_layer[i.layer] + delta if i.layer in by_layer else delta
        return sorted(by_layer.items())


def apply_plan(model: Model, plan: Plan, attention_mask: torch.Tensor | None = None) -> None:
    """Inside a trace (or one generation step): add each delta at every position.

    `attention_mask` ([B, T], left padded) is the batch's mask, for plans whose
    injections act on some positions only."""
    layers = model.layers()
    for layer, delta in plan.deltas():
        model.residual(layers[layer])[:] += model.cast(delta)


def steered_generate(model: Model, prompts: list[str], plan: Plan, max_new_tokens: int = 40) -> list[str]:
    """Greedy continuations with the plan applied to the prompt and every new token."""
    from .batching import encode

    plan.check(model)
    enc = model.on_device(encode(model.tokenizer, prompts))
    n = int(max_new_tokens)
    with torch.no_grad():
        with model.lm.generate(
            enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, **model.trace_kwargs()
        ) as tracer:
            if plan.deltas():
                for _ in tracer.iter[:n]:
                    apply_plan(model, plan)
            ids = tracer.result.save()
    prompt_len = enc["input_ids"].shape[1]
    return [model.tokenizer.decode(row[prompt_len:], skip_special_tokens=True) for row in ids]
