"""SteeringVector files and arithmetic: exact round trip, refusal of unsafe or broken files, combine, cosine."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from steer_trace.errors import UserError
from steer_trace.vectors import FORMAT, SteeringVector, combine, cosine

D = 16


def random_vector(seed: int, layers=(0, 3, 7), name: str = "v") -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    return SteeringVector({L: torch.randn(D, generator=gen) for L in layers}, {"name": name, "model": "m"})


# -- files -------------------------------------------------------------------


def test_save_load_round_trip_is_exact(tmp_path):
    meta = {
        "name": "myopic",
        "n_pairs": 8,
        "groups": {"A": 3, "B": 5},
        "weights": [0.5, -1.25],
        "note": "ünïcödé \"quoted\" text",
        "nested": {"list": [1, None, True]},
    }
    gen = torch.Generator().manual_seed(0)
    layers = {L: torch.randn(576, generator=gen) * 10.0 ** (L / 3 - 5) for L in (29, 0, 12, 5)}
    vector = SteeringVector(layers, meta)
    path = vector.save(tmp_path / "sub" / "v.safetensors")
    assert path.is_file()
    assert not path.with_name(path.name + ".tmp").exists()
    loaded = SteeringVector.load(path)
    assert list(loaded.layers) == [0, 5, 12, 29]
    for L, v in layers.items():
        assert loaded.layers[L].dtype == torch.float32
        assert torch.equal(loaded.layers[L], v)  # bit-exact
    assert loaded.meta == meta


def test_file_header_names_the_format(tmp_path):
    from safetensors import safe_open

    path = random_vector(1).save(tmp_path / "v.safetensors")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
        keys = sorted(f.keys())
    assert header["format"] == FORMAT
    assert json.loads(header["provenance"])["name"] == "v"
    assert keys == ["layer.0", "layer.3", "layer.7"]


def test_pickle_file_is_refused(tmp_path):
    path = tmp_path / "v.pt"
    torch.save({"layer.0": torch.zeros(D)}, path)
    with pytest.raises(UserError, match="not a readable safetensors"):
        SteeringVector.load(path)
    # even named like a safetensors file
    disguised = tmp_path / "v.safetensors"
    disguised.write_bytes(path.read_bytes())
    with pytest.raises(UserError, match="not a readable safetensors"):
        SteeringVector.load(disguised)


def test_pickle_is_never_unpickled(tmp_path, monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("load() unpickled something")

    path = tmp_path / "v.safetensors"
    torch.save({"layer.0": torch.zeros(D)}, path)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(UserError):
        SteeringVector.load(path)


def test_truncated_and_garbage_files_are_refused(tmp_path):
    good = random_vector(2).save(tmp_path / "good.safetensors")
    data = good.read_bytes()
    for name, content in [
        ("truncated.safetensors", data[: len(data) // 2]),
        ("short.safetensors", data[:5]),
        ("empty.safetensors", b""),
        ("text.safetensors", b"layer.0 = [1, 2, 3]\n"),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(UserError):
            SteeringVector.load(path)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        SteeringVector.load(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_refused(tmp_path, bad):
    t = torch.ones(D)
    t[3] = bad
    path = tmp_path / "bad.safetensors"
    save_file({"layer.0": torch.ones(D), "layer.4": t}, str(path), metadata={"provenance": "{}"})
    with pytest.raises(UserError, match="layer 4 contains NaN or inf"):
        SteeringVector.load(path)


def test_file_without_layers_or_with_bad_metadata_is_refused(tmp_path):
    empty = tmp_path / "nolayers.safetensors"
    save_file({"weight": torch.ones(D)}, str(empty))
    with pytest.raises(UserError, match="no 'layer.<L>' tensors"):
        SteeringVector.load(empty)
    bad_key = tmp_path / "badkey.safetensors"
    save_file({"layer.x": torch.ones(D)}, str(bad_key))
    with pytest.raises(UserError):
        SteeringVector.load(bad_key)
    bad_meta = tmp_path / "badmeta.safetensors"
    save_file({"layer.0": torch.ones(D)}, str(bad_meta), metadata={"provenance": "{not json"})
    with pytest.raises(UserError, match="provenance"):
        SteeringVector.load(bad_meta)


def test_file_without_provenance_loads_with_empty_meta(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"layer.2": torch.arange(D, dtype=torch.float32)}, str(path))
    v = SteeringVector.load(path)
    assert v.meta == {} and torch.equal(v[2], torch.arange(D, dtype=torch.float32))


# -- arithmetic --------------------------------------------------------------


def test_construction_normalises_keys_dtype_and_shape():
    v = SteeringVector({3: torch.ones(1, D, dtype=torch.float64), 1: torch.zeros(D)})
    assert list(v.layers) == [1, 3]
    assert v[3].shape == (D,) and v[3].dtype == torch.float32
    assert v.d_model == D


def test_missing_layer_is_a_user_error():
    v = random_vector(3, name="myopic")
    with pytest.raises(UserError, match="no layer 5"):
        v[5]
    with pytest.raises(UserError):
        v.only([0, 5])


def test_norms_scaled_only():
    v = random_vector(4)
    assert v.norms() == pytest.approx({L: float(t.norm()) for L, t in v.layers.items()})
    s = v.scaled(-2.5)
    for L in v.layers:
        assert torch.allclose(s[L], -2.5 * v[L])
    assert s.meta == v.meta
    assert list(v.only([7, 0]).layers) == [0, 7]
    assert torch.equal(v.only([3])[3], v[3])


def test_permuted_keeps_components_and_norm_changes_direction():
    v = random_vector(5, layers=(0, 1))
    p = v.permuted(seed=7)
    for L in v.layers:
        assert torch.equal(torch.sort(p[L]).values, torch.sort(v[L]).values)
        assert p.norms()[L] == pytest.approx(v.norms()[L])
        assert not torch.equal(p[L], v[L])
    assert torch.equal(v.permuted(seed=7)[0], p[0])  # seeded
    assert not torch.equal(v.permuted(seed=8)[0], p[0])
    assert p.meta["permute_seed"] == 7 and p.meta["method"].endswith("+permuted")
    assert max(abs(c) for c in cosine(v, p).values()) < 0.9


def test_combine_sum_mean_weighted():
    a, b, c = random_vector(10, name="a"), random_vector(11, name="b"), random_vector(12, (0, 7), name="c")
    total = combine([a, b])
    for L in (0, 3, 7):
        assert torch.allclose(total[L], a[L] + b[L])
    mean = combine([a, b], how="mean")
    assert torch.allclose(mean[3], (a[3] + b[3]) / 2)
    weighted = combine([a, b, c], weights=[2.0, -1.0, 0.5])
    assert list(weighted.layers) == [0, 7]  # only shared layers
    assert torch.allclose(weighted[7], 2 * a[7] - b[7] + 0.5 * c[7])
    wmean = combine([a, b, c], weights=[2.0, -1.0, 0.5], how="mean")
    assert torch.allclose(wmean[0], (2 * a[0] - b[0] + 0.5 * c[0]) / 3)
    assert weighted.meta["parts"] == ["a", "b", "c"] and weighted.meta["weights"] == [2.0, -1.0, 0.5]
    assert weighted.meta["method"] == "combined-sum" and wmean.meta["method"] == "combined-mean"


def test_combine_errors():
    a = random_vector(1)
    with pytest.raises(UserError):
        combine([])
    with pytest.raises(UserError, match="unknown combination"):
        combine([a, a], how="max")
    with pytest.raises(UserError, match="weights"):
        combine([a, a], weights=[1.0])
    with pytest.raises(UserError, match="share no layer"):
        combine([a, random_vector(2, layers=(1, 2))])


def test_cosine_known_values():
    e0, e1 = torch.zeros(D), torch.zeros(D)
    e0[0], e1[1] = 1.0, 1.0
    a = SteeringVector({0: e0, 1: e0, 2: e0})
    b = SteeringVector({0: 3 * e0, 1: e1, 2: -e0, 9: e1})
    assert cosine(a, b) == pytest.approx({0: 1.0, 1: 0.0, 2: -1.0})
