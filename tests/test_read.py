"""Reading activations through nnsight, checked against plain Hugging Face forwards and `steering-vectors`."""
from __future__ import annotations

import pytest
import torch

from steer_trace.data import ABItem, prompt
from steer_trace.errors import UserError
from steer_trace.read import content_hash, contrastive_vector, mean_activations, read_batch, residual_norms

TEXTS = [
    "The cat sat on the mat.",
    "Hi",
    "Activation steering adds a vector to the residual stream of a language model at one layer.",
]
LAYERS = [0, 7, 15, 29]


def hf_hidden(model, text: str) -> list[torch.Tensor]:
    """Decoder layer outputs [T, d] per layer from one unbatched plain HF forward.

    hidden_states[L + 1] is layer L's output, except the last entry, which HF takes after
    the final norm: the last layer's raw output is caught with a forward hook instead.
    """
    enc = model.tokenizer([text], return_tensors="pt")
    hf = model.lm._module
    caught = {}
    handle = hf.model.layers[-1].register_forward_hook(lambda mod, inp, out: caught.setdefault("last", out))
    try:
        with torch.no_grad():
            out = hf(**enc, output_hidden_states=True)
    finally:
        handle.remove()
    last = caught["last"][0] if isinstance(caught["last"], tuple) else caught["last"]
    assert torch.allclose(hf.model.norm(last), out.hidden_states[-1], atol=1e-5)
    return [h[0] for h in out.hidden_states[1:-1]] + [last[0]]


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4, what=""):
    """|a - b| <= tol, relative to the size of the values once they exceed 1 (the last layers reach ~1e2)."""
    scale = max(1.0, float(b.abs().max()))
    assert float((a - b).abs().max()) <= tol * scale, (what, float((a - b).abs().max()), scale)


def layer_output(hidden: list[torch.Tensor], layer: int) -> torch.Tensor:
    return hidden[layer]


@pytest.fixture(scope="module")
def hf_texts(smol):
    return [hf_hidden(smol, t) for t in TEXTS]


TOY = [  # short A/B questions (few tokens keep the model work small); matching letters A, A, A, B
    ("Cake now or two cakes next week?\n (A) Cake now\n (B) Two cakes next week", "A"),
    ("Take $5 today or $50 in a year?\n (A) $5 today\n (B) $50 in a year", "A"),
    ("Watch a film tonight or two films next month?\n (A) One tonight\n (B) Two next month", "A"),
    ("Save your bonus or spend it now?\n (A) Save it\n (B) Spend it now", "B"),
]


@pytest.fixture(scope="module")
def pairs():
    """Four contrastive pairs in the paper's prompt format, unbalanced letters (3 A, 1 B)."""
    items = [ABItem(q, m, "B" if m == "A" else "A") for q, m in TOY]
    out = [(prompt(i) + i.matching, prompt(i) + i.not_matching) for i in items]
    return out, [i.matching for i in items]


def test_read_batch_last_matches_hf(smol, hf_texts):
    out = read_batch(smol, TEXTS[:1], LAYERS)
    assert sorted(out) == LAYERS
    for L in LAYERS:
        assert out[L].shape == (1, smol.d_model) and out[L].dtype == torch.float32
        ref = layer_output(hf_texts[0], L)[-1]
        assert_close(out[L][0], ref, 1e-5, L)
    # the layers really differ from each other (a wrong index would not pass the check above)
    assert (layer_output(hf_texts[0], 7)[-1] - layer_output(hf_texts[0], 6)[-1]).abs().max() > 1e-2


def test_read_batch_batched_equals_unbatched(smol, hf_texts):
    lengths = {len(smol.tokenizer(t)["input_ids"]) for t in TEXTS}
    assert len(lengths) == 3  # different lengths: the batch is padded
    for position in ("last", "mean"):
        batched = read_batch(smol, TEXTS, LAYERS, position)
        for i, text in enumerate(TEXTS):
            single = read_batch(smol, [text], LAYERS, position)
            for L in LAYERS:
                assert batched[L].shape == (3, smol.d_model)
                assert_close(batched[L][i], single[L][0], 1e-4, (position, i, L))
                ref = layer_output(hf_texts[i], L)
                ref = ref[-1] if position == "last" else ref.mean(0)
                assert_close(batched[L][i], ref, 1e-4, (position, i, L))
    # last and mean really are different reads
    assert (batched[15][2] - read_batch(smol, TEXTS[2:], [15], "last")[15][0]).abs().max() > 1e-2


def test_answer_position_reads_the_answer_token(smol):
    """CAA texts end with their answer token: the 'answer' rule reads it, as 'last' does."""
    texts = ["Out of (A) and (B), I choose (A", "Pick one: (B"]
    answer, last = read_batch(smol, texts, [3, 20], "answer"), read_batch(smol, texts, [3, 20], "last")
    mean = read_batch(smol, texts, [3], "mean")
    assert all(torch.equal(answer[L], last[L]) for L in (3, 20))
    assert (answer[3] - mean[3]).abs().max() > 1e-2


def test_read_batch_rejects_unknown_position(smol):
    with pytest.raises(UserError, match="unknown position"):
        read_batch(smol, TEXTS[:1], [0], "first")


def test_read_batch_layer_order_and_range(smol):
    out = read_batch(smol, TEXTS[:1], [15, 3])  # any order: read in forward order
    ref = read_batch(smol, TEXTS[:1], [3, 15])
    assert sorted(out) == [3, 15] and all(torch.equal(out[L], ref[L]) for L in (3, 15))
    with pytest.raises(UserError, match="out of range"):
        read_batch(smol, TEXTS[:1], [30])


def test_mean_activations_streams_over_batches(smol, hf_texts):
    means = mean_activations(smol, TEXTS, layers=[29, 7], position="last", batch_size=2)
    assert sorted(means) == [7, 29]
    for L in (7, 29):
        ref = torch.stack([layer_output(h, L)[-1] for h in hf_texts]).mean(0)
        assert_close(means[L], ref, 1e-4, L)
    with pytest.raises(UserError, match="no texts"):
        mean_activations(smol, [], layers=[0])


def test_residual_norms(smol, hf_texts):
    norms = residual_norms(smol, TEXTS, layers=[0, 15], batch_size=2)
    for L in (0, 15):
        ref = sum(float(layer_output(h, L)[-1].norm()) for h in hf_texts) / len(TEXTS)
        assert norms[L] == pytest.approx(ref, rel=1e-5)
    assert norms[15] > norms[0]


def hf_pair_activations(model, pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """([n_pairs, n_layers, d] positive, same negative): last-token activations, unbatched HF forwards."""
    out = []
    for side in (0, 1):
        rows = []
        for pair in pairs:
            hidden = hf_hidden(model, pair[side])
            rows.append(torch.stack([layer_output(hidden, L)[-1] for L in range(model.n_layers)]))
        out.append(torch.stack(rows))
    return out[0], out[1]


@pytest.fixture(scope="module")
def activations(smol, pairs):
    return hf_pair_activations(smol, pairs[0])


@pytest.fixture(scope="module")
def differences(activations):
    """[n_pairs, n_layers, d]: positive minus negative at the last token."""
    return activations[0] - activations[1]


def assert_close_vectors(a: torch.Tensor, b: torch.Tensor):
    assert_close(a, b, 1e-4)
    assert float(torch.nn.functional.cosine_similarity(a, b, dim=0)) >= 0.99999


@pytest.fixture(scope="module")
def plain_vector(smol, pairs):
    texts, groups = pairs
    return contrastive_vector(smol, texts, groups=groups, balanced=False, batch_size=4)  # two traces of 2 pairs


def test_contrastive_vector_plain_mean_equals_independent(smol, plain_vector, differences):
    vector = plain_vector
    assert sorted(vector.layers) == list(range(smol.n_layers))
    ref = differences.mean(0)
    for L in range(smol.n_layers):
        assert_close_vectors(vector[L], ref[L])
    assert vector.meta["method"] == "mean-difference"
    assert vector.meta["n_pairs"] == 4 and vector.meta["groups"] == {"A": 3, "B": 1}
    assert vector.meta["model"] == "smollm2-135m" and vector.meta["model_revision"] == smol.revision
    assert vector.meta["site"] == "decoder-layer-output" and "steer_trace_version" in vector.meta


def test_contrastive_vector_balanced_equals_mean_of_group_means(smol, pairs, differences):
    texts, groups = pairs
    vector = contrastive_vector(smol, texts, groups=groups, layers=[5, 10, 20], balanced=True, batch_size=4,
                                meta={"name": "myopic"})
    assert sorted(vector.layers) == [5, 10, 20]
    is_a = torch.tensor([g == "A" for g in groups])
    ref = (differences[is_a].mean(0) + differences[~is_a].mean(0)) / 2
    plain = differences.mean(0)
    for L in (5, 10, 20):
        assert_close_vectors(vector[L], ref[L])
        # balanced is a different direction from the plain mean on unbalanced groups
        assert (ref[L] - plain[L]).norm() > 0.05 * plain[L].norm()
    assert vector.meta["method"] == "mean-difference-balanced" and vector.meta["name"] == "myopic"


def test_contrastive_vector_without_groups_is_the_plain_mean(smol, pairs, differences):
    texts, _ = pairs
    vector = contrastive_vector(smol, texts[:2], layers=[12], batch_size=4)
    assert_close_vectors(vector[12], differences[:2].mean(0)[12])
    with pytest.raises(UserError, match="no contrastive pairs"):
        contrastive_vector(smol, [])


def test_contrastive_vector_agrees_with_steering_vectors_library(smol, pairs, plain_vector):
    steering_vectors = pytest.importorskip("steering_vectors")
    texts, _ = pairs
    ours = plain_vector
    theirs = steering_vectors.train_steering_vector(smol.lm._module, smol.tokenizer, texts, read_token_index=-1,
                                                    batch_size=len(texts))
    # their layer numbers count decoder blocks ("model.layers.{num}") and they read the block output
    assert sorted(theirs.layer_activations) == list(range(smol.n_layers))
    cos = {L: float(torch.nn.functional.cosine_similarity(ours[L], theirs.layer_activations[L].float(), dim=0))
           for L in range(smol.n_layers)}
    assert min(cos.values()) >= 0.9999, cos
    # an off-by-one layer mapping would not pass: neighbouring layers' vectors differ
    assert float(torch.nn.functional.cosine_similarity(ours[3], theirs.layer_activations[4].float(), dim=0)) < 0.9999


def test_content_hash():
    assert content_hash(["a", "b"]) == content_hash(["a", "b"])
    assert content_hash(["a", "b"]) != content_hash(["b", "a"])
    assert content_hash(["ab"]) != content_hash(["a", "b"])
    assert len(content_hash([])) == 16


# -- other extraction methods (aggregators), against independent computations on the HF activations --------

PCA_LAYERS = [0, 15, 29]


def unit_cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


@pytest.mark.parametrize("balanced", [False, True])
def test_pca_vector_equals_independent_svd_and_steering_vectors(smol, pairs, activations, balanced):
    texts, groups = pairs
    vector = contrastive_vector(smol, texts, groups=groups, layers=PCA_LAYERS, batch_size=8, method="pca",
                                balanced=balanced)
    assert vector.meta["method"] == "pca" + ("-balanced" if balanced else "") and vector.meta["reader"] == "full-text"
    pos, neg = activations
    is_a = torch.tensor([g == "A" for g in groups])
    # balanced: the one B pair weighs as much as the three A pairs, i.e. it is repeated three times
    rows = torch.cat([torch.arange(4)[is_a], torch.arange(4)[~is_a].repeat(3)]) if balanced else torch.arange(4)
    for L in PCA_LAYERS:
        diffs = (pos[rows, L] - neg[rows, L]).double()
        ref = torch.linalg.svd(diffs, full_matrices=False).Vh[0]  # independent: unit top right singular vector
        ref = ref * torch.sign(diffs.mean(0) @ ref)
        assert unit_cos(vector[L], ref) >= 0.9999, L
        assert float(vector[L].norm()) == pytest.approx(float(diffs.mean(0) @ ref), rel=1e-3)
        if not balanced:
            aggregators = pytest.importorskip("steering_vectors.aggregators")
            theirs = aggregators.pca_aggregator()(pos[:, L], neg[:, L])
            assert unit_cos(vector[L], theirs) >= 0.9999, L
    mean = contrastive_vector(smol, texts, groups=groups, layers=[15], batch_size=8, balanced=balanced)
    assert unit_cos(vector[15], mean[15]) < 0.9999  # PCA of four pairs is not their mean


def test_pca_center_vector_equals_repengs_construction(smol, pairs, activations):
    texts, groups = pairs
    vector = contrastive_vector(smol, texts, groups=groups, layers=PCA_LAYERS, batch_size=8, method="pca-center",
                                balanced=False)
    pos, neg = activations
    for L in PCA_LAYERS:
        h = torch.stack([pos[:, L], neg[:, L]], 1).reshape(-1, smol.d_model).double()  # pos0, neg0, pos1, ...
        mid = (h[0::2] + h[1::2]) / 2
        points = torch.stack([h[0::2] - mid, h[1::2] - mid], 1).reshape(h.shape)
        u = torch.linalg.svd(points - points.mean(0), full_matrices=False).Vh[0]
        projected = h @ u
        if (projected[0::2] > projected[1::2]).double().mean() < 0.5:  # repeng: most positives project higher
            u = -u
        assert unit_cos(vector[L], u) >= 0.9999, L
