"""Whether an injection applies to a row at all, decided from the activations the model already computes.

A gate is the third seam of an injection, beside its operator (what it does to h) and its token scope
(which positions): it switches the injection on or off per row. Each kind is one entry of `GATES`.

- always:      every row (the default; plans stay on the summed fast path)
- projection:  conditional activation steering (CAST, Lee et al. 2024): the row is steered when the
               cosine between the prompt's pooled output of layer Lc and the condition vector c,
               s = (h̄·ĉ)/|h̄|  (CAST's similarity of h̄ with its projection on c),
               is above the threshold. h̄ is the mean of layer Lc's output over the prompt's real
               tokens (`pool="mean"`, CAST's choice; left padding is skipped) or the last prompt
               token's output (`pool="last"`).

Pattern: the decision is made on the prompt pass (a plain forward pass: the whole real sequence; in
generation: step 0) from layer Lc's output as it reaches Lc (after injections at lower layers, before
any at Lc), and held for every generated token, as CAST does: `apply_plan` keeps it in the `held` dict
the caller passes from step to step (`steered_generate` does). A gate's layer must not be above the
layers of the injections it gates (the decision has to exist before the injection acts).

Gotcha: in a plain forward pass over a whole document the decision reads every token of it, so an
early position's steering depends on later tokens (one bit per row); score prompts, or accept that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import UserError
from .token_scope import Where

POOLS = ("mean", "last")
DEFAULT_GATE = "always"


@dataclass(frozen=True, eq=False)
class Gate:
    kind: str = DEFAULT_GATE
    layer: int = 0  # Lc: the decoder layer whose output is read
    vector: torch.Tensor | None = field(default=None, repr=False)  # the condition direction c [d_model]
    threshold: float = 0.0
    pool: str = "mean"

    def __post_init__(self):
        if self.kind not in GATES:
            raise UserError(f"unknown gate {self.kind!r} (known: {', '.join(GATES)})")
        if self.kind == DEFAULT_GATE:
            return
        if self.pool not in POOLS:
            raise UserError(f"gate pool {self.pool!r}: use one of {', '.join(POOLS)}")
        if self.vector is None or self.vector.dim() != 1 or not torch.isfinite(self.vector).all() \
                or float(self.vector.norm()) == 0:
            raise UserError("a projection gate needs a finite, non-zero condition vector [d_model]")
        if not -1.0 <= float(self.threshold) <= 1.0:
            raise UserError(f"gate threshold {self.threshold} is a cosine: it must lie in [-1, 1]")
        object.__setattr__(self, "vector", self.vector.detach().to(torch.float32).reshape(-1))

    @property
    def always(self) -> bool:
        return self.kind == DEFAULT_GATE

    def describe(self) -> str:
        return "always" if self.always else f"if cos(L{self.layer}.{self.pool},c)>{self.threshold:.3g}"

    def scores(self, h: torch.Tensor, at: Where) -> torch.Tensor:
        """[B] the gate's score per row from layer Lc's output h [B, T, d] on the prompt pass."""
        return GATES[self.kind].score(self, h, at)

    def decide(self, h: torch.Tensor, at: Where) -> torch.Tensor | None:
        """[B] bool: which rows the gated injections steer; None = every row."""
        return None if self.always else self.scores(h, at) > self.threshold


def pooled(h: torch.Tensor, at: Where, pool: str) -> torch.Tensor:
    """[B, d] float32: the mean of h over each row's real prompt tokens, or its last prompt token."""
    index = at.index.to(h.device)
    if pool == "mean":
        weight = (index >= 0).to(torch.float32)
    else:
        weight = (index == at.prompt_len.to(h.device)[:, None] - 1).to(torch.float32)
    return (h.float() * weight[..., None]).sum(1) / weight.sum(1, keepdim=True).clamp_min(1.0)


def cosine_score(gate: Gate, h: torch.Tensor, at: Where) -> torch.Tensor:
    if at.step != 0:
        raise UserError("a projection gate decides on the prompt pass (step 0) only")
    mean = pooled(h, at, gate.pool)
    unit = (gate.vector / gate.vector.norm()).to(mean.device)
    return (mean @ unit) / mean.norm(dim=-1).clamp_min(1e-12)


@dataclass(frozen=True)
class GateKind:
    name: str
    score: Callable[[Gate, torch.Tensor, Where], torch.Tensor] | None  # (gate, h, positions) -> [B]
    summary: str


GATES = {g.name: g for g in (
    GateKind("always", None, "every row"),
    GateKind("projection", cosine_score,
             "rows whose prompt's mean (or last-token) output of layer Lc has cosine > threshold with c"),
)}
ALWAYS = Gate()


def projection(vector: torch.Tensor, layer: int, threshold: float, pool: str = "mean") -> Gate:
    return Gate("projection", int(layer), vector, float(threshold), pool)


# -- files: safetensors, tensor "condition", the gate's settings and provenance as JSON in the header ---------------

FORMAT = "steer_trace.gate/1"


def save_gate(gate: Gate, path: str | Path, meta: dict | None = None) -> Path:
    if gate.always:
        raise UserError("the always gate has nothing to save")
    path = Path(path)
    settings = {"kind": gate.kind, "layer": gate.layer, "threshold": gate.threshold, "pool": gate.pool}
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"condition": gate.vector.contiguous()}, str(tmp),
                  metadata={"format": FORMAT, "gate": json.dumps(settings), "provenance": json.dumps(meta or {})})
        tmp.chmod(0o644)
        tmp.replace(path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write gate file {path} ({error.strerror or error})") from None
    return path


def load_gate(path: str | Path) -> tuple[Gate, dict]:
    """(gate, provenance) from a gate file; never unpickles."""
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            if header.get("format") != FORMAT or "condition" not in f.keys():
                raise UserError(f"{path} is not a steer_trace gate file (format {header.get('format')!r})")
            vector = f.get_tensor("condition")
        settings = json.loads(header["gate"])
        meta = json.loads(header.get("provenance", "{}"))
    except (OSError, SafetensorError, ValueError, KeyError) as error:
        raise UserError(f"cannot read gate file {path} ({getattr(error, 'strerror', None) or error})") from None
    return Gate(settings["kind"], int(settings["layer"]), vector, float(settings["threshold"]),
                settings["pool"]), meta
