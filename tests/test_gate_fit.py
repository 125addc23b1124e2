"""Fitting a projection gate: threshold by F1 on a fit split, held-out F1 with an interval, the gate file.

The real-model check: the gate `gates fit` writes, applied inside a trace, decides each prompt exactly as
the fit's own scores say (the fit reads pooled outputs with `read_batch`, the trace pools them itself).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_checks import one_error_line
from click.testing import CliRunner

from steer_trace.batching import encode
from steer_trace.errors import UserError
from steer_trace.gate_fit import (
    best_threshold,
    bootstrap_f1,
    cosines,
    f1_score,
    load_condition_data,
    pooled_outputs,
    separation,
    split,
)
from steer_trace.gates import Gate, load_gate, projection, save_gate
from steer_trace.plan import Injection, Plan, apply_plan
from steer_trace.token_scope import where
from tasks.cli import main
from studies.gates.cli import DEFAULT_DATA


def run(*argv):
    return CliRunner().invoke(main, [str(a) for a in argv])


def test_f1_and_threshold_on_known_scores():
    labels = [True, True, True, False, False, False]
    assert f1_score([True, True, False, True, False, False], labels) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert f1_score([False] * 6, labels) == (0.0, 0.0, 0.0)
    threshold, f1 = best_threshold([0.9, 0.8, 0.7, 0.3, 0.2, 0.1], labels)
    assert f1 == 1.0 and 0.3 < threshold < 0.7
    # one positive below a negative: the best cut keeps F1 at 6/7 (all positives, one false alarm) or drops one
    threshold, f1 = best_threshold([0.9, 0.8, 0.25, 0.3, 0.2, 0.1], labels)
    assert f1 == pytest.approx(max(2 * (3 / 4) / (3 / 4 + 1), 0.8))
    assert separation([1.0, 1.2, 0.8, 0.0, 0.2, -0.2], labels) == pytest.approx(5.0)


def test_split_is_stratified_seeded_and_disjoint():
    labels = [True] * 10 + [False] * 6
    fit, held = split(labels, 0.5, seed=3)
    assert not set(fit) & set(held) and sorted(fit + held) == list(range(16))
    assert sum(labels[i] for i in fit) == 5 and sum(not labels[i] for i in fit) == 3
    assert split(labels, 0.5, seed=3) == (fit, held) != split(labels, 0.5, seed=4)
    with pytest.raises(UserError, match="fit-fraction"):
        split(labels, 1.0)


def test_bootstrap_interval_brackets_f1_and_narrows_with_n():
    rng = np.random.default_rng(0)
    labels = np.repeat([True, False], 40)
    predicted = labels ^ (rng.random(80) < 0.2)
    lo, hi = bootstrap_f1(predicted, labels)
    assert lo < f1_score(predicted, labels)[0] < hi
    lo4, hi4 = bootstrap_f1(np.tile(predicted, 4), np.tile(labels, 4))
    assert hi4 - lo4 < (hi - lo) * 0.7
    assert bootstrap_f1(labels, labels) == (1.0, 1.0)


def test_condition_data_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "condition": "yes"}\n')
    with pytest.raises(UserError, match="bad.jsonl:1"):
        load_condition_data(bad)
    bad.write_text("\n".join(json.dumps({"text": f"t{i}", "condition": i < 6}) for i in range(8)))
    with pytest.raises(UserError, match="2 prompts with condition=false"):
        load_condition_data(bad)
    with pytest.raises(UserError, match="cannot read"):
        load_condition_data(tmp_path / "missing.jsonl")


def test_shipped_condition_data():
    texts, labels = load_condition_data(DEFAULT_DATA)
    assert len(texts) == 100 and sum(labels) == 50 and len(set(texts)) == 100


def test_gate_file_round_trip(tmp_path):
    v = torch.randn(16)
    gate = projection(v, 3, 0.25, "last")
    save_gate(gate, tmp_path / "g.safetensors", {"fit_f1": 0.9})
    back, meta = load_gate(tmp_path / "g.safetensors")
    assert (back.kind, back.layer, back.threshold, back.pool) == ("projection", 3, 0.25, "last")
    assert torch.equal(back.vector, v) and meta == {"fit_f1": 0.9}
    with pytest.raises(UserError, match="always"):
        save_gate(Gate(), tmp_path / "a.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(UserError, match="gate file"):
        load_gate(tmp_path / "junk.safetensors")


def test_fit_command_and_its_gate_in_a_trace(smol, tmp_path):
    """A small fit (16 prompts, two layers) on the shipped data; the written gate, applied in a trace, opens exactly
    for the prompts whose fit score is above its threshold."""
    texts, labels = load_condition_data(DEFAULT_DATA)
    rows = [json.dumps({"text": t, "condition": c}) for t, c in list(zip(texts, labels))[:8] + list(zip(texts, labels))[
        50:58]]
    data = tmp_path / "small.jsonl"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "g.safetensors"
    result = run("gates", "fit", "--condition-data", data, "--layer", "3,6", "--out", out)
    assert result.exit_code == 0, result.output
    assert "held-out F1" in result.output and "8 prompts" in result.output
    gate, meta = load_gate(out)
    assert gate.layer in (3, 6) and meta["n_fit"] == 8 and meta["n_heldout"] == 8 and meta["model"] == "smollm2-135m"
    assert meta["heldout_f1_ci"][0] <= meta["heldout_f1"] <= meta["heldout_f1_ci"][1]

    small = [json.loads(r)["text"] for r in rows]
    scores = cosines(pooled_outputs(smol, small, [gate.layer], "mean")[gate.layer], gate.vector)
    enc = encode(smol.tokenizer, small)
    with torch.no_grad(), smol.lm.trace(enc, **smol.trace_kwargs()):
        h = smol.residual(smol.layers()[gate.layer])
        traced_scores = gate.scores(h, where(enc["attention_mask"], h.shape[1], 0, h.shape[0])).save()
    assert np.allclose(traced_scores.numpy(), scores, atol=1e-5)
    # the plan's decision follows the scores
    v = torch.randn(576)
    plan = Plan((Injection(gate.layer, v / v.norm() * 6, 1.0, gate=gate),))
    with torch.no_grad(), smol.lm.trace(enc, **smol.trace_kwargs()):
        before = smol.layers()[gate.layer].output.clone().save()
        apply_plan(smol, plan, enc["attention_mask"])
        after = smol.layers()[gate.layer].output.save()
    moved = (after - before).abs().amax(dim=(1, 2)) > 0
    assert moved.tolist() == (scores > gate.threshold).tolist()


def test_fit_command_errors(tmp_path):
    one_error_line(run("gates", "fit", "--condition-data", tmp_path / "none.jsonl", "--out", tmp_path / "g"),
                   "cannot read condition data")
    one_error_line(run("gates", "fit", "--fit-fraction", "1.5", "--out", tmp_path / "g"), "fit-fraction")
    one_error_line(run("gates", "fit", "--layer", "2,x", "--out", tmp_path / "g"), "--layer")
