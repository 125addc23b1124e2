"""repeng 0.4.0, a client of control-vector GGUF files, reads our exports bit-equal and steers as we do.

repeng is installed with --no-deps (the Makefile does it, as for steering-vectors): it pins older
libraries but runs with ours. It still names `np.float_`, gone in numpy 2: the fixture puts it back for
the import only, inside this test module, and takes it away again.

Steering: repeng's ControlModel adds coeff x direction to the output of each wrapped decoder layer (its
layer i is model.layers[i], our layer i); ours adds coef x vector at the same place. Both run on copies
of smollm2-135m's weights; the next-token log-probabilities agree within LOGP_TOL (float32 sums in
another order), and the steering moves them by far more than that.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from steering_reference import traced

from steer_trace.batching import encode
from steer_trace.interop import read_gguf, write_gguf
from steer_trace.plan import Plan
from steer_trace.vectors import SteeringVector

LOGP_TOL = 2e-4
PROMPTS = ["Question: Would you rather have $5 today or $50 next year?\nAnswer:", "The capital of France is"]


@pytest.fixture(scope="module")
def repeng():
    with pytest.MonkeyPatch.context() as patch:
        if not hasattr(np, "float_"):
            patch.setattr(np, "float_", np.float64, raising=False)
        module = pytest.importorskip("repeng", reason="repeng==0.4.0 (make install: pip install --no-deps)")
    assert module.__version__ == "0.4.0" if hasattr(module, "__version__") else True
    return module


def smol_vector(seed: int = 0, norm: float = 4.0) -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    layers = {}
    for L in range(30):
        v = torch.randn(576, generator=gen)
        layers[L] = v / v.norm() * norm
    return SteeringVector(layers, {"name": "random", "model": "smollm2-135m"})


def test_repeng_reads_our_export_bit_equal_and_we_read_its(repeng, tmp_path):
    vector = smol_vector()
    written = write_gguf(vector, tmp_path / "ours.gguf")
    theirs = repeng.ControlVector.import_gguf(str(tmp_path / "ours.gguf"))
    assert sorted(theirs.directions) == written == list(range(1, 30))
    assert theirs.model_type == "smollm2-135m"
    for L in written:
        ours = vector[L].numpy()
        assert theirs.directions[L].dtype == np.float32
        assert np.array_equal(theirs.directions[L].view(np.int32), ours.view(np.int32)), L
    theirs.export_gguf(str(tmp_path / "theirs.gguf"))
    back = read_gguf(tmp_path / "theirs.gguf")
    assert list(back.layers) == written
    for L in written:
        assert torch.equal(back[L].view(torch.int32), vector[L].view(torch.int32)), L


@pytest.mark.parametrize("layers,coef", [((14,), 3.0), (tuple(range(1, 30)), 0.5)], ids=["layer14", "all29"])
def test_repeng_steering_equals_ours_on_smollm2(repeng, smol, tmp_path, layers, coef):
    vector = smol_vector(1).only(layers)
    write_gguf(vector, tmp_path / "v.gguf")
    control = repeng.ControlVector.import_gguf(str(tmp_path / "v.gguf"))
    wrapped = repeng.ControlModel(copy.deepcopy(smol.lm._module), list(layers))
    wrapped.set_control(control, coef)
    plan = Plan.simultaneous([(vector, L) for L in layers], coef)
    plain = Plan.none()
    for prompt in PROMPTS:
        enc = encode(smol.tokenizer, [prompt])
        with torch.no_grad():
            theirs = torch.log_softmax(wrapped(**enc).logits[0, -1].float(), -1)
        ours = torch.log_softmax(traced(smol, enc, plan)[0][0, -1].float(), -1)
        unsteered = torch.log_softmax(traced(smol, enc, plain)[0][0, -1].float(), -1)
        assert float((theirs - ours).abs().max()) <= LOGP_TOL
        assert float((ours - unsteered).abs().max()) > 100 * LOGP_TOL  # the steering itself is far above the tolerance
