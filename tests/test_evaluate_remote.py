"""`steer-trace evaluate --remote` on the local NDIF server (tests/ndif_fixture.py) equals the local run, the text
it writes at the picks included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ndif_fixture import ndif_host, ndif_stack  # noqa: F401  (fixtures)
from studies.evaluate.run import Options, evaluate

REPO = Path(__file__).resolve().parents[1]
TINY = Options(n_vector=6, n_validation=6, n_test=6, n_random=10, layers=(9,), coefs=(0.4,), scoring="content",
               tax_docs=2, tax_tokens=32, gen_tokens=6, text_questions=6, text_samples=1, text_tokens=4, text_random=1)


@pytest.mark.remote
@pytest.mark.slow
def test_remote_evaluation_equals_local(smol, ndif_host, tmp_path):  # noqa: F811
    from nnsight import CONFIG

    from steer_trace.models import load_model
    from steer_trace.remote import configure

    data = str(REPO / "data" / "behaviours" / "myopic.jsonl")
    local = evaluate(smol, data, TINY, root=tmp_path / "local")
    from steer_trace import remote as remote_module

    before = (CONFIG.API.HOST, CONFIG.API.APIKEY)
    real, sent = remote_module.deadline_backend, []
    patch = pytest.MonkeyPatch()
    patch.setattr(remote_module, "deadline_backend", lambda *a, **k: sent.append(1) or real(*a, **k))
    try:
        remote_model = load_model("smollm2-135m", remote=configure(ndif_host))
        remote = evaluate(remote_model, data, TINY, root=tmp_path / "remote")
    finally:
        CONFIG.API.HOST, CONFIG.API.APIKEY = before
        patch.undo()
    assert remote.scoring == local.scoring and remote.layers == local.layers
    for name, keys in (("grid", ["layer", "coef"]), ("comparisons", ["comparison"]),
                       ("random", ["direction", "random"]), ("steerability", ["q_id"])):
        a, b = local.tables[name].sort(keys), remote.tables[name].sort(keys)
        assert a.select(keys).equals(b.select(keys)), name
        for column in ("shift", "slope", "accuracy", "distinct"):
            if column in a.columns:
                close = np.allclose(a[column].to_numpy(), b[column].to_numpy(), atol=1e-4, equal_nan=True)
                assert close, (name, column)
    keys = ["direction", "condition", "question", "sample"]
    text_local, text_remote = local.tables["text_samples"].sort(keys), remote.tables["text_samples"].sort(keys)
    assert text_local["text"].to_list() == text_remote["text"].to_list()  # the same samples, token for token
    for column in ("concept", "perplexity", "relevance_pmi"):
        assert np.allclose(text_local[column].to_numpy(), text_remote[column].to_numpy(), rtol=1e-3, atol=1e-4,
                           equal_nan=True), column
    side_local = local.tables["side_effects"].filter(pl.col("direction") == "default")["texts"][0]
    side_remote = remote.tables["side_effects"].filter(pl.col("direction") == "default")["texts"][0]
    assert side_local.to_list() == side_remote.to_list()  # the same greedy text, token for token
    points = local.study.computed
    print(f"remote evaluation: {len(sent)} requests for {points} points and vectors")
    assert 0 < len(sent) < points, (len(sent), points)
