"""An independent reference for operators and token scopes: plain PyTorch forward hooks.

Nothing here uses steer_trace's operators or scopes: the formulas and the position rules are
written out again, element by element, from the issue's definitions (issue 10):
positions count each row's real tokens (left padding skipped); the first forward call of a
generation is the prompt, each later call one new token.

Gates (issue 27), written out again from CAST's rule: on the first call, the mean (or the last) of a
row's real prompt tokens' output of layer Lc, its cosine with the condition vector, above the
threshold: the row is steered by the gated injection on that call and on every later one.
"""
from __future__ import annotations

import contextlib

import torch


def reference_op(op: str, h: torch.Tensor, v: torch.Tensor, c: float) -> torch.Tensor:
    u = v / v.norm()
    along = (h * u).sum(-1, keepdim=True)
    if op == "add":
        return h + c * v
    if op == "project-out":
        return h - along * u
    if op == "project-out-then-add":
        return h - along * u + c * v
    if op == "set-projection":
        return h - along * u + c * u
    raise AssertionError(op)


def real_positions(prompt_mask: torch.Tensor, call: int, width: int) -> list[list[int]]:
    """Per row and column: the index among the row's real tokens (-1 for padding)."""
    rows = []
    for mask_row in prompt_mask.tolist():
        n_real = sum(mask_row)
        if call == 0:
            count, row = 0, []
            for m in mask_row:
                row.append(count if m else -1)
                count += m
        else:
            row = [n_real + call - 1]  # one new token per call, after the prompt
        assert len(row) == width
        rows.append(row)
    return rows


def selected(spec, index: int, call: int, n_real: int, row: int) -> bool:
    if spec == "all":
        return True
    if index < 0:
        return False
    if spec == "prompt":
        return call == 0
    if spec == "generated":
        return call > 0
    if spec == "last":
        return call == 0 and index == n_real - 1
    if isinstance(spec, str) and spec.startswith("from:"):
        return index >= int(spec[5:])
    mask_rows = spec  # a list of lists of bools
    return index < len(mask_rows[row]) and bool(mask_rows[row][index])


def gate_decisions(h: torch.Tensor, prompt_mask: torch.Tensor, gate: dict) -> list[bool]:
    """Per row: cos(pooled prompt output, condition vector) > threshold, row by row."""
    out = []
    for b, mask_row in enumerate(prompt_mask.tolist()):
        real = [t for t, m in enumerate(mask_row) if m]
        picked = real if gate.get("pool", "mean") == "mean" else real[-1:]
        mean = torch.stack([h[b, t].double() for t in picked]).mean(0)
        c = gate["vector"].double()
        out.append(float(mean @ c / (mean.norm() * c.norm())) > gate["threshold"])
    return out


@contextlib.contextmanager
def hooked(model, injections, prompt_mask: torch.Tensor):
    """injections: (layer, vector, coef, op, scope spec[, gate]) tuples, applied in order with forward hooks.
    A gate is a dict: layer, vector, threshold, pool ('mean' | 'last')."""
    hf_layers = model.lm._module.model.layers
    handles = []
    n_real = prompt_mask.sum(-1).tolist()
    decisions = {}  # id(gate) -> per-row bools, set on the first call at the gate's layer
    for injection in injections:  # gate hooks first: at a shared layer they read the output before any injection
        gate = injection[5] if len(injection) > 5 else None
        if gate is None or id(gate) in decisions:
            continue
        decisions[id(gate)] = None

        def gate_hook(module, inputs, output, gate=gate, calls={"n": 0}):
            if calls["n"] == 0:
                h = output[0] if isinstance(output, tuple) else output
                decisions[id(gate)] = gate_decisions(h, prompt_mask, gate)
            calls["n"] += 1

        handles.append(hf_layers[gate["layer"]].register_forward_hook(gate_hook))
    for injection in injections:
        layer, v, c, op, spec = injection[:5]
        gate = injection[5] if len(injection) > 5 else None
        calls = {"n": 0}

        def hook(module, inputs, output, v=v, c=c, op=op, spec=spec, calls=calls, gate=gate):
            call = calls["n"]
            calls["n"] += 1
            h = output[0] if isinstance(output, tuple) else output
            changed = reference_op(op, h, v, c)
            index = real_positions(prompt_mask, call, h.shape[1])
            rows_on = [True] * h.shape[0] if gate is None else decisions[id(gate)]
            keep = torch.tensor([[rows_on[b] and selected(spec, index[b][t], call, n_real[b], b)
                                  for t in range(h.shape[1])] for b in range(h.shape[0])])
            new = torch.where(keep[..., None], changed, h)
            return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new

        handles.append(hf_layers[layer].register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def hook_logits(model, enc, injections) -> torch.Tensor:
    with torch.no_grad(), hooked(model, injections, enc["attention_mask"]):
        return model.lm._module(**enc).logits


def hook_generate(model, enc, injections, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(new token ids [B, n], raw logits per step [n, B, V]) of greedy generation with the hooks."""
    with torch.no_grad(), hooked(model, injections, enc["attention_mask"]):
        out = model.lm._module.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                        output_logits=True, return_dict_in_generate=True)
    return out.sequences[:, enc["input_ids"].shape[1]:], torch.stack(out.logits)


# -- the library side, run the same way -------------------------------------------------------------


def traced(model, enc, plan, before=(), after=None):
    """Logits of one nnsight trace with the plan applied; the outputs of layers `before` (read
    before the plan acts) and of layer `after` (read after it)."""
    from steer_trace.plan import apply_plan

    layers = model.layers()
    saved = {}
    with torch.no_grad(), model.lm.trace(enc, **model.trace_kwargs()):
        for L in before:
            saved[L] = layers[L].output.clone().save()
        apply_plan(model, plan, attention_mask=enc["attention_mask"])
        if after is not None:
            saved[after] = layers[after].output.clone().save()
        logits = model.lm.output.logits.save()
    return logits, saved


def generated(model, enc, plan, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(new token ids [B, n], raw logits per step [n, B, V]) of nnsight greedy generation with the plan."""
    import nnsight

    from steer_trace.plan import apply_plan

    with torch.no_grad(), model.lm.generate(enc, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                            **model.trace_kwargs()) as tracer:
        logits = nnsight.save([])
        held: dict = {}
        for step in tracer.iter[:n]:
            apply_plan(model, plan, enc["attention_mask"], step, held)
            logits.append(model.lm.output.logits[:, -1].clone())
        ids = tracer.result.save()
    return ids[:, enc["input_ids"].shape[1]:], torch.stack(logits)
