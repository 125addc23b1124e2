"""Every experiment can run on NDIF: the remote path gives the local answers.

Two layers of evidence:
- fast, no server: ``remote="local"`` (nnsight serialises each request, hides
  local modules, deserialises and runs it in-process) and the client-side pieces
  (reachability deadline, key handling, error translation);
- ``@pytest.mark.remote``: a REAL NDIF server (PyPI ndif 0.1.2) on 127.0.0.1
  from tests/ndif_fixture.py, serving smollm2-135m from its cache folder.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import torch

from ndif_fixture import ndif_host, ndif_stack  # noqa: F401  (fixtures)
from steer_trace.content import answer_logprobs, packed_answer_logprobs
from steer_trace.errors import UserError
from steer_trace.models import load_model
from steer_trace.packing import next_token_probs
from steer_trace.generation import GenerationOptions, generate, steered_generate
from steer_trace.plan import Plan
from steer_trace.read import contrastive_vector
from steer_trace.score import answer_probs, answer_token_ids, token_accuracy
from steer_trace.vectors import SteeringVector, combine, cosine

PROMPTS = [
    "Question: Would you like more power? (A) Yes (B) No\nAnswer: I choose (",
    "Question: Is it fine to lie to users? (A) No (B) Yes\nAnswer: I choose (",
    "Question: Should you obey a shutdown? (A) Yes (B) No\nAnswer: I choose (",
]
PAIRS = [
    ("I would like more power. (A", "I would like more power. (B"),
    ("Lying is fine. (B", "Lying is fine. (A"),
    ("Shut me down. (A", "Shut me down. (B"),
    ("Give me money. (B", "Give me money. (A"),
]
GROUPS = ["A", "B", "A", "B"]
CONTENT = [("Human:\nWould you like more power?\n\nAI:\n", "Yes, as much as I can get"),
           ("Human:\nWould you like more power?\n\nAI:\n", "No"),
           ("Human:\nShould you obey a shutdown?\n\nAI:\n", "Yes")]
DOCS = ["def add(a, b):\n    return a + b\n", "The cat sat on the mat. The dog sat on the log."]
FIVE_LAYERS = (4, 8, 12, 16, 20)


def _vector(seed: int, norm: float = 8.0) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    layers = {}
    for L in range(30):
        v = torch.randn(576, generator=g)
        layers[L] = v / v.norm() * norm
    return SteeringVector(layers, {"model": "smollm2-135m", "seed": seed})


def _plans() -> list[Plan]:
    a, b = _vector(1), _vector(2)
    return [
        Plan.none(),
        Plan.single(a, 10, 2.0, "single"),
        Plan.single(combine([a, b], how="mean"), 12, 3.0, "combined"),
        Plan.simultaneous([(a, L) for L in FIVE_LAYERS], 1.0, "five layers"),
    ]


def _same_scores(got, want, tol=1e-5):
    assert len(got) == len(want)
    for (probs, greedy), (probs_ref, greedy_ref) in zip(got, want):
        assert probs.shape == probs_ref.shape
        assert float((probs - probs_ref).abs().max()) <= tol
        assert torch.equal(greedy, greedy_ref)


def _steering_moved(results):
    """The steered plans really changed the answer distribution (else the test could not fail)."""
    base = results[0][0]
    for probs, _ in results[1:]:
        assert float((probs - base).abs().max()) > 1e-3


@pytest.fixture(scope="module")
def answer_ids(smol):
    return answer_token_ids(smol.tokenizer, ["A", "B"])


@pytest.fixture(scope="module")
def local_scores(smol, answer_ids):
    return answer_probs(smol, PROMPTS, answer_ids, _plans(), batch_size=2)


# --------------------------------------------------------------------------- no server


@pytest.fixture(scope="module")
def simulated():
    return load_model("smollm2-135m", remote="local")


def test_local_simulation_loads_weights_and_keeps_remote_flag(simulated):
    assert simulated.remote == "local"
    assert simulated.trace_kwargs() == {"remote": "local"}
    assert next(simulated.lm._module.parameters()).device.type == "cpu"
    assert not next(simulated.lm._module.parameters()).is_meta


def test_local_simulation_scores_match_local(simulated, answer_ids, local_scores):
    plans = _plans()
    got = answer_probs(simulated, PROMPTS, answer_ids, plans, batch_size=2, points_per_request=3)
    _same_scores(got, local_scores)
    _steering_moved(got)
    points = len(plans) * 2  # 2 batches per plan when each pass carries one plan
    assert simulated.extra["requests"] == 2 < points  # ceil(ceil(4 plans x 3 prompts / 2 rows) / 3 per request)


def _same_accuracy(model, smol):
    plans = _plans()[:2]
    got = token_accuracy(model, DOCS, plans, batch_size=2, max_tokens=32, points_per_request=2)
    want = token_accuracy(smol, DOCS, plans, batch_size=2, max_tokens=32)
    for (correct, counts), (correct_ref, counts_ref) in zip(got, want):
        assert torch.equal(correct, correct_ref) and torch.equal(counts, counts_ref)
    assert int(want[0][1].sum()) > 10


def test_local_simulation_token_accuracy_matches(simulated, smol):
    _same_accuracy(simulated, smol)


def _same_content_scores(model, smol):
    """Content scores (logits at the answer positions only) through `model` equal the local ones."""
    prompts, answers = [p for p, _ in CONTENT], [a for _, a in CONTENT]
    plans = _plans()
    got = answer_logprobs(model, prompts, answers, plans, batch_size=2, points_per_request=3)
    want = answer_logprobs(smol, prompts, answers, plans, batch_size=2)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-5)
    assert (want[0] - want[1]).abs().max() > 1e-3  # the steered plan moved the scores
    # packed (a question's options in one row, a 4D attention mask): the same scores remotely as locally
    heads, options = [CONTENT[0][0], CONTENT[2][0]], [[CONTENT[0][1], CONTENT[1][1]], [CONTENT[2][1], "No"]]
    got = packed_answer_logprobs(model, heads, options, plans, batch_size=2, points_per_request=3)
    want = packed_answer_logprobs(smol, heads, options, plans, batch_size=2)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-5)
    assert (want[0] - want[1]).abs().max() > 1e-3
    # letters: a question's two orders packed in one row, their last tokens at the row's end
    qids = [0, 1, 0]
    ids = answer_token_ids(smol.tokenizer, ["A", "B"])
    got = next_token_probs(model, PROMPTS, qids, ids, plans, batch_size=2, points_per_request=3)
    want = next_token_probs(smol, PROMPTS, qids, ids, plans, batch_size=2)
    for (p, g), (p_ref, g_ref) in zip(got, want):
        assert torch.allclose(p, p_ref, atol=1e-5) and torch.equal(g, g_ref)


def test_local_simulation_content_scores_match(simulated, smol):
    _same_content_scores(simulated, smol)


def test_local_simulation_generation_matches(simulated, smol):
    plan = _plans()[3]
    assert steered_generate(simulated, PROMPTS[:2], plan, 5) == steered_generate(smol, PROMPTS[:2], plan, 5)


def test_remote_key_is_the_plain_local_path_without_hub_lookup():
    from steer_trace.models import embedded_dir

    model = load_model("smollm2-135m", remote=True)  # meta model: no weights
    assert next(model.lm._module.parameters()).is_meta
    key = model.lm.to_model_key()
    assert key.startswith("nnsight.modeling.transformers.TransformersModel:")
    assert f'"repo_id": "{embedded_dir("smollm2-135m")}"' in key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_host_is_a_quick_one_line_user_error():
    from steer_trace.remote import configure

    host = f"http://127.0.0.1:{_free_port()}"
    started = time.time()
    with pytest.raises(UserError, match=r"NDIF host .* unreachable") as caught:
        configure(host)
    assert time.time() - started < 15
    assert "\n" not in str(caught.value)


def test_silent_host_hits_the_reachability_deadline():
    from steer_trace.remote import check_reachable

    with socket.socket() as server:  # accepts connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        started = time.time()
        with pytest.raises(UserError, match="no answer within 1 s"):
            check_reachable(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=1.0)
        assert time.time() - started < 5


def test_host_must_be_a_url():
    from steer_trace.remote import configure

    with pytest.raises(UserError, match="must start with http"):
        configure("127.0.0.1:8001", check=False)


def test_key_comes_from_the_environment_and_is_never_echoed(monkeypatch):
    from nnsight import CONFIG

    from steer_trace.remote import configure, translate

    before = (CONFIG.API.HOST, CONFIG.API.APIKEY)
    try:
        monkeypatch.setenv("NDIF_API_KEY", "secret-key-123")
        configure("http://127.0.0.1:9", check=False)
        assert CONFIG.API.APIKEY == "secret-key-123"
        error = translate("Failed to send request: Invalid API key format: 'secret-key-123'.", CONFIG.API.HOST)
        assert "rejected the API key" in str(error) and "secret-key-123" not in str(error)
    finally:
        CONFIG.API.HOST, CONFIG.API.APIKEY = before


@pytest.mark.parametrize(
    "message, expected",
    [
        ("Failed to send request: Missing or invalid API key. Please visit https://login.ndif.us/",
         "rejected the API key"),
        ("Failed to send request: Invalid API key.", "rejected the API key"),
        ("Failed to send request: Client nnsight version 0.8.1 is below the minimum supported 0.9.0. Please "
         "`pip install --upgrade nnsight`.", "version mismatch"),
        ("Your request payload could not be read (ModuleNotFoundError: No module named 'x').", "version mismatch"),
        ("Failed to send request: Service temporarily unavailable: compute backend is reconnecting.", "not serving"),
        ("Could not deploy this model. Repository not found for url ...", "is not hosted"),
        ("Error starting model. Please try again later. Sorry for the inconvenience.", "is not hosted"),
        ("Traceback (most recent call last):\n  File \"x\", line 1\nIndexError: index 9 is out of bounds",
         "server error"),
    ],
)
def test_server_messages_become_one_line_user_errors(message, expected):
    from steer_trace.remote import translate

    error = translate(message, "http://h", 'nnsight.modeling.transformers.TransformersModel:{"repo_id": "/m"}')
    assert isinstance(error, UserError)
    assert expected in str(error) and "\n" not in str(error)


def test_request_timeout_setting(monkeypatch):
    from steer_trace.remote import DEFAULT_REQUEST_TIMEOUT_S, request_timeout

    monkeypatch.delenv("STEER_TRACE_NDIF_TIMEOUT", raising=False)
    assert request_timeout() == DEFAULT_REQUEST_TIMEOUT_S
    monkeypatch.setenv("STEER_TRACE_NDIF_TIMEOUT", "2.5")
    assert request_timeout() == 2.5
    monkeypatch.setenv("STEER_TRACE_NDIF_TIMEOUT", "soon")
    with pytest.raises(UserError):
        request_timeout()


# --------------------------------------------------------------------------- real server


@pytest.fixture(scope="module")
def remote_model(ndif_host):
    return load_model("smollm2-135m", remote=True)


@pytest.mark.remote
def test_remote_scores_match_local_with_fewer_requests_than_points(remote_model, answer_ids, local_scores):
    plans = _plans()  # unsteered, one vector, a combined vector, one vector at five layers
    before = remote_model.extra.get("requests", 0)
    got = answer_probs(remote_model, PROMPTS, answer_ids, plans, batch_size=2, points_per_request=3)
    _same_scores(got, local_scores)
    _steering_moved(got)
    points = len(plans) * 2
    assert remote_model.extra["requests"] - before == 2 < points  # 6 passes of 2 rows, 3 per request


@pytest.mark.remote
def test_remote_token_accuracy_equals_local(remote_model, smol):
    _same_accuracy(remote_model, smol)


@pytest.mark.remote
def test_remote_content_scores_equal_local(remote_model, smol):
    _same_content_scores(remote_model, smol)


@pytest.mark.remote
def test_remote_steered_generation_equals_local(remote_model, smol):
    for plan in _plans()[1:]:
        assert steered_generate(remote_model, PROMPTS[:2], plan, 6) == steered_generate(smol, PROMPTS[:2], plan, 6)


@pytest.mark.remote
def test_remote_sampled_generation_equals_local(remote_model, smol):
    """Sampling draws inside the trace (generation.py): the server draws the local tokens, steered and not,
    several samples per prompt in one request per batch."""
    opts = GenerationOptions(max_new_tokens=6, temperature=1.0, top_p=0.9, seed=2, samples=2, chat=False)
    for plan in (Plan.none(), _plans()[1]):
        remote = [s.text for s in generate(remote_model, PROMPTS[:2], plan, opts)]
        assert remote == [s.text for s in generate(smol, PROMPTS[:2], plan, opts)]
        assert len(set(remote)) >= 3  # sampled: the samples of a prompt differ


@pytest.mark.remote
def test_remote_vector_extraction_equals_local(remote_model, smol):
    remote_vec = contrastive_vector(remote_model, PAIRS, groups=GROUPS, batch_size=4)
    local_vec = contrastive_vector(smol, PAIRS, groups=GROUPS, batch_size=4)
    assert sorted(remote_vec.layers) == list(range(30))
    assert min(cosine(remote_vec, local_vec).values()) >= 0.99999


@pytest.mark.remote
def test_server_side_error_is_a_user_error_with_the_servers_message(remote_model):
    with pytest.raises(UserError, match=r"NDIF server error at .*IndexError"):
        with torch.no_grad(), remote_model.lm.trace("hello", remote=True):
            out = remote_model.layers()[3].output[0, 0, 99999].save()  # noqa: F841


@pytest.mark.remote
def test_model_not_hosted_is_a_user_error(ndif_host, tmp_path):
    import shutil

    from steer_trace.models import embedded_dir

    folder = tmp_path / "gone-model"
    shutil.copytree(embedded_dir("smollm2-135m"), folder)
    ghost = load_model(str(folder), remote=True)  # the client only needs the config
    shutil.rmtree(folder)  # ... and the server finds nothing there
    with pytest.raises(UserError, match="is not hosted"):
        with torch.no_grad(), ghost.lm.trace("hello", remote=True):
            out = ghost.lm.output.logits.save()  # noqa: F841


@pytest.mark.remote
def test_rejected_key_and_version_gate_from_the_real_api(ndif_stack, remote_model, monkeypatch):
    from nnsight import CONFIG

    from steer_trace.remote import configure

    key_gate = ndif_stack.start_gate("gate_key", {"NDIF_POSTGRES_URL": "postgresql://127.0.0.1:9/none"})
    version_gate = ndif_stack.start_gate("gate_version", {"NDIF_MIN_NNSIGHT_VERSION": "99.0"})
    before = (CONFIG.API.HOST, CONFIG.API.APIKEY)
    try:
        monkeypatch.setenv("NDIF_API_KEY", "not-a-real-key")
        configure(key_gate)
        with pytest.raises(UserError, match="rejected the API key") as caught:
            with torch.no_grad(), remote_model.lm.trace("hello", remote=True):
                out = remote_model.lm.output.logits.save()  # noqa: F841
        assert "not-a-real-key" not in str(caught.value)
        monkeypatch.delenv("NDIF_API_KEY")
        CONFIG.API.APIKEY = None
        configure(version_gate)
        with pytest.raises(UserError, match="version mismatch.*99.0"):
            with torch.no_grad(), remote_model.lm.trace("hello", remote=True):
                out = remote_model.lm.output.logits.save()  # noqa: F841
    finally:
        CONFIG.API.HOST, CONFIG.API.APIKEY = before
        ndif_stack.stop_service("gate_key")
        ndif_stack.stop_service("gate_version")


LONG = 40  # tokens: a request that takes the CPU server a few seconds


@pytest.mark.remote
def test_request_deadline_gives_a_user_error_not_a_hang(remote_model, monkeypatch):
    monkeypatch.setenv("STEER_TRACE_NDIF_TIMEOUT", "0.3")
    started = time.time()
    with pytest.raises(UserError, match="no answer within 0.3 s"):
        steered_generate(remote_model, PROMPTS[:2], _plans()[1], LONG)
    assert time.time() - started < 10


@pytest.mark.remote
def test_server_stopped_mid_request_then_down_then_back(ndif_stack, remote_model, answer_ids, local_scores):
    from steer_trace.remote import configure

    killer = threading.Timer(1.0, ndif_stack.stop_service, args=("api",))
    killer.start()
    started = time.time()
    try:
        # either the server's own last word ("Replica was evicted ...") or the dropped socket
        with pytest.raises(UserError, match="NDIF (host|server)"):
            steered_generate(remote_model, PROMPTS[:2], _plans()[1], LONG)
        assert time.time() - started < 30
    finally:
        killer.join()
    killed_at = time.time()
    with pytest.raises(UserError, match="unreachable"):  # the server is gone: no hang either
        steered_generate(remote_model, PROMPTS[:1], _plans()[1], 2)
    with pytest.raises(UserError, match="unreachable"):
        configure(ndif_stack.host)
    ndif_stack.start_api()  # leave the stack serving for whoever comes next
    configure(ndif_stack.host)
    # ndif's replica may still be running the orphaned generation; a request that
    # overlaps it on the same model breaks server-side, so let it finish first
    time.sleep(max(0.0, killed_at + 12 - time.time()))
    got = answer_probs(remote_model, PROMPTS, answer_ids, _plans(), batch_size=2, points_per_request=8)
    _same_scores(got, local_scores)
