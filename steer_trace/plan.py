"""A steering plan: a list of (layer, vector, coefficient, operator, token scope), and its application.

A single vector, a combined vector, and several vectors at several layers (the
paper's "simultaneous" injection) are all plans. Inside an nnsight trace,
`apply_plan` changes each named decoder layer's output: by default it adds
coefficient x vector at every position (the summed fast path, `Plan.deltas`);
an injection can instead project its direction out, clamp the projection, ...
(`steering_operators`) on some positions only (`token_scope`), on the rows its gate
lets through (`gates`: decided on the prompt, held for generated tokens). For generation,
call it once per generated step with one `held` dict (see `generation.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from .errors import UserError
from .gates import ALWAYS, Gate
from .models import Model
from .steering_operators import DEFAULT_OP, Operator, operator
from .token_scope import DEFAULT_SCOPE, Scope, scope, where
from .vectors import SteeringVector


@dataclass(frozen=True)
class Injection:
    layer: int
    vector: torch.Tensor  # [d_model]
    coef: float
    op: str = DEFAULT_OP  # a name in steering_operators.OPERATORS
    scope: Scope | str = DEFAULT_SCOPE  # a token_scope spec ('all', 'prompt', 'from:4', ...) or a Scope
    gate: Gate = ALWAYS  # which rows it applies to (gates.py)

    def __post_init__(self):
        operator(self.op)  # a bad name fails here, before any work
        object.__setattr__(self, "scope", scope(self.scope))

    @property
    def operator(self) -> Operator:
        return operator(self.op)

    @property
    def pure_add(self) -> bool:
        return self.op == DEFAULT_OP and self.scope.everywhere and self.gate.always

    @property
    def is_noop(self) -> bool:
        return self.op == DEFAULT_OP and self.coef == 0

    def describe(self) -> str:
        text = f"L{self.layer}x{self.coef:g}"
        if self.op != DEFAULT_OP:
            text += f":{self.op}"
        text = text if self.scope.everywhere else f"{text}@{self.scope.describe()}"
        return text if self.gate.always else f"{text} {self.gate.describe()}"


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

    def with_steering(self, op: str = DEFAULT_OP, scope: Scope | str = DEFAULT_SCOPE, gate: Gate = ALWAYS) -> "Plan":
        """The same injections with one operator, token scope and gate."""
        return Plan(tuple(replace(i, op=op, scope=scope, gate=gate) for i in self.injections), self.label)

    def gated(self, gate: Gate) -> "Plan":
        """The same injections, each applied only to the rows `gate` lets through."""
        return Plan(tuple(replace(i, gate=gate) for i in self.injections), self.label)

    def gates(self) -> list[Gate]:
        """The distinct gates (other than always) of the injections that act, in plan order."""
        out: list[Gate] = []
        for i in self.injections:
            if not i.gate.always and not i.is_noop and all(i.gate is not g for g in out):
                out.append(i.gate)
        return out

    def scaled(self, factor: float) -> "Plan":
        return Plan(tuple(replace(i, coef=i.coef * factor) for i in self.injections), self.label)

    def relative_to(self, residual_norms: dict[int, float]) -> "Plan":
        """Read each coefficient as a fraction of the layer's mean residual norm:
        the added vector gets norm coef x ||h_L|| (set-projection: the value becomes coef x ||h_L||)."""
        out = []
        for i in self.injections:
            if i.layer not in residual_norms:
                raise UserError(f"no residual norm measured for layer {i.layer}")
            norm = residual_norms[i.layer]
            unit = i.vector / i.vector.norm().clamp_min(1e-12)
            coef = i.coef * norm if i.operator.coef == "value" else i.coef
            out.append(replace(i, vector=unit * norm, coef=coef))
        return Plan(tuple(out), self.label)

    @property
    def pure_add(self) -> bool:
        """True when every injection adds at every position: such plans sum into `deltas()`
        and rows with different pure-add plans can share one forward pass."""
        return all(i.pure_add for i in self.injections)

    @property
    def is_empty(self) -> bool:
        return all(i.is_noop for i in self.injections)

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
            if not i.gate.always:
                model.check_layer(i.gate.layer)
                if i.gate.vector.numel() != model.d_model:
                    raise UserError(f"gate vector has width {i.gate.vector.numel()}, model {model.name} has "
                                    f"{model.d_model}")
                if i.gate.layer > i.layer:
                    raise UserError(f"a gate reading layer {i.gate.layer} cannot decide an injection at layer "
                                    f"{i.layer}: the decision must exist before the injection acts")
        return self

    def deltas(self) -> list[tuple[int, torch.Tensor]]:
        """(layer, coef x vector) in forward order; injections at one layer are summed.
        Only for pure-add plans (the fast path); other plans go through `by_layer`."""
        if not self.pure_add:
            raise ValueError(f"plan {self.describe()} is not pure add: it has no summed deltas")
        by_layer: dict[int, torch.Tensor] = {}
        for i in self.injections:
            if i.coef == 0:
                continue
            delta = i.coef * i.vector
            by_layer[i.layer] = by_layer[i.layer] + delta if i.layer in by_layer else delta
        return sorted(by_layer.items())

    def by_layer(self) -> list[tuple[int, list[Injection]]]:
        """(layer, its injections in plan order) in forward order, no-ops left out."""
        groups: dict[int, list[Injection]] = {}
        for i in self.injections:
            if not i.is_noop:
                groups.setdefault(i.layer, []).append(i)
        return sorted(groups.items())


def apply_plan(model: Model, plan: Plan, attention_mask: torch.Tensor | None = None, step: int = 0,
               held: dict | None = None) -> None:
    """Inside a trace (or one generation step): apply the plan to the layers' outputs.

    A pure-add plan adds each summed delta at every position. Otherwise each layer's
    injections act in plan order, each through its operator on its scope's positions of the
    rows its gate lets through. `attention_mask` ([B, T], left padded) is the batch's (in
    generation: the prompt's) mask; `step` is the generation step (0: the prompt pass, then one
    per new token); `held` (generation with gates: one dict for all steps) keeps the gates'
    prompt decisions for the later steps."""
    layers = model.layers()
    if plan.pure_add:
        for layer, delta in plan.deltas():
            model.residual(layers[layer])[:] += model.cast(delta)
        return
    gates = plan.gates()
    decided = held if held is not None else {}
    if step and any(k not in decided for k in range(len(gates))):
        raise UserError("a gated plan in generation needs the prompt's decisions: pass one `held` dict to every step")
    injections_at = dict(plan.by_layer())
    for layer in sorted(set(injections_at) | {g.layer for g in gates}):
        h = model.residual(layers[layer])
        at = where(attention_mask, h.shape[1], step, h.shape[0])
        if step == 0:
            for k, gate in enumerate(gates):
                if gate.layer == layer:
                    decided[k] = gate.decide(h, at)
        new = h
        for i in injections_at.get(layer, ()):
            changed = i.operator.apply(new, model.cast(i.vector), i.coef)
            chosen = i.scope.select(at)
            if not i.gate.always:
                rows = decided[next(k for k, g in enumerate(gates) if g is i.gate)].to(h.device)
                rows = rows[:, None].expand(h.shape[0], h.shape[1])
                chosen = rows if chosen is None else chosen.to(h.device) & rows
            new = changed if chosen is None else torch.where(chosen.to(h.device)[..., None], changed, new)
        if layer in injections_at:
            model.residual(layers[layer])[:] = new


@dataclass(frozen=True)
class Steering:
    """One operator and token scope for every injection of the plans of a run (the CLI's --op / --scope).

    The default (add at every position) changes nothing, and leaves a run's cache key as it was."""

    op: str = DEFAULT_OP
    scope: str = DEFAULT_SCOPE

    def __post_init__(self):
        operator(self.op)
        object.__setattr__(self, "scope", scope(self.scope).describe())

    @property
    def is_default(self) -> bool:
        return self.op == DEFAULT_OP and self.scope == DEFAULT_SCOPE

    def key(self) -> dict:
        """What a run's cache key gains: nothing for the default."""
        return {} if self.is_default else {"steering": {"op": self.op, "scope": self.scope}}

    def apply(self, plan: Plan) -> Plan:
        return plan if self.is_default else plan.with_steering(self.op, self.scope)
