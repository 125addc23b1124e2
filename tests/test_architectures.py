"""The architecture matrix: tiny random models of each decoder-only family, built offline from a
transformers config, saved with the smollm2 tokenizer, loaded through steer_trace.load_model(path).

For each family, read (read_batch), steer (logits under apply_plan) and generate (steered_generate)
equal a plain torch forward-hook reference written here, on left-padded batches (|Δ| ≤ 1e-5, fp32).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import transformers as T

from steer_trace import load_model
from steer_trace.errors import UserError
from steer_trace.layer_matching import find_layers_path
from steer_trace.models import embedded_dir
from steer_trace.generation import steered_generate
from steer_trace.plan import Injection, Plan, apply_plan
from steer_trace.read import read_batch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
VOCAB = 49152  # the smollm2 tokenizer's
ATTN = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128)
TOL = 1e-5

# family -> (config class, config kwargs, where the layers are: the test's own table, not the library's)
FAMILIES = {
    "gpt2": (T.GPT2Config, dict(n_embd=64, n_layer=3, n_head=4, n_positions=128), "transformer.h"),
    "gpt_neox": (T.GPTNeoXConfig, dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                                       intermediate_size=128), "gpt_neox.layers"),
    "gptj": (T.GPTJConfig, dict(n_embd=64, n_layer=3, n_head=4, rotary_dim=8, n_positions=128), "transformer.h"),
    "llama": (T.LlamaConfig, ATTN, "model.layers"),
    "mistral": (T.MistralConfig, ATTN, "model.layers"),
    "qwen2": (T.Qwen2Config, ATTN, "model.layers"),
    "qwen3": (T.Qwen3Config, {**ATTN, "head_dim": 16}, "model.layers"),
    "gemma2": (T.Gemma2Config, {**ATTN, "head_dim": 16}, "model.layers"),
    "gemma3_text": (T.Gemma3TextConfig, {**ATTN, "head_dim": 16}, "model.layers"),
    "gemma3_multimodal": (T.Gemma3Config, dict(  # Gemma3ForConditionalGeneration, text-only prompts
        text_config={**ATTN, "head_dim": 16}, mm_tokens_per_image=4,
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                           image_size=28, patch_size=14)), "model.language_model.layers"),
    "phi3": (T.Phi3Config, ATTN, "model.layers"),
    "opt": (T.OPTConfig, dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, ffn_dim=128,
                              word_embed_proj_dim=64), "model.decoder.layers"),
    "olmo2": (T.Olmo2Config, ATTN, "model.layers"),
    "mixtral": (T.MixtralConfig, {**ATTN, "num_local_experts": 4, "num_experts_per_tok": 2}, "model.layers"),
    "qwen2_moe": (T.Qwen2MoeConfig, {**ATTN, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32,
                                     "num_experts": 4, "num_experts_per_tok": 2}, "model.layers"),
}
TEXTS = ["The capital of France is", "Hi", "Steering vectors move the residual stream of a model"]


def build_tiny(family: str, folder: Path) -> Path:
    """A randomly initialised model of `family` with the smollm2 tokenizer, saved as a local folder."""
    tokenizer_dir = embedded_dir("smollm2-135m")
    if not (tokenizer_dir / "tokenizer.json").is_file():
        pytest.skip("the smollm2 tokenizer is not cached (run any command once)")
    cls, kwargs, _ = FAMILIES[family]
    tokens = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    if "text_config" in kwargs:  # multimodal: the language model's config is nested
        kwargs = {**kwargs, "text_config": {**kwargs["text_config"], **tokens}}
    config = cls(**tokens, **kwargs)
    torch.manual_seed(0)
    model = T.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, folder / name)
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: torch's thread pool costs more than it gives (30x on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def tiny(request, tmp_path_factory):
    family = request.param
    folder = build_tiny(family, tmp_path_factory.mktemp(family))
    return family, load_model(str(folder))


# -- the hook reference ---------------------------------------------------------------------------


def torch_layers(model, family):
    """The torch layer list of a family in the table above (or at a dotted path, for other models)."""
    return model.lm._module.get_submodule(FAMILIES[family][2] if family in FAMILIES else family)


def hidden(output):
    return output[0] if isinstance(output, tuple) else output


def with_hooks(model, family, hook_for: dict, run):
    """Run `run()` with forward hooks on some layers (hook_for: layer index -> hook)."""
    layers = torch_layers(model, family)
    handles = [layers[L].register_forward_hook(hook) for L, hook in hook_for.items()]
    try:
        with torch.no_grad():
            return run()
    finally:
        for handle in handles:
            handle.remove()


def adding(delta):
    def hook(_module, _inputs, output):
        h = hidden(output)
        steered = h + delta.to(h.device, h.dtype)
        return (steered,) + tuple(output[1:]) if isinstance(output, tuple) else steered
    return hook


def encoded(model, texts):
    from steer_trace.batching import encode

    return model.on_device(encode(model.tokenizer, texts))


def reference_logits(model, family, texts, deltas: dict):
    enc = encoded(model, texts)
    return with_hooks(model, family, {L: adding(d) for L, d in deltas.items()},
                      lambda: model.lm._module(**enc).logits)


def library_logits(model, texts, plan):
    enc = encoded(model, texts)
    with torch.no_grad(), model.lm.trace(enc):
        apply_plan(model, plan)
        logits = model.lm.output.logits.save()
    return logits


def a_plan(model, seed=1, scale=8.0):
    """Injections at two layers, strong enough to change the logits of a random model."""
    g = torch.Generator().manual_seed(seed)
    vectors = {L: torch.randn(model.d_model, generator=g) for L in (0, model.n_layers - 2)}
    return Plan(tuple(Injection(L, v, scale) for L, v in vectors.items()), "test")


# -- the matrix -----------------------------------------------------------------------------------


def test_discovery_finds_the_family_layers(tiny):
    family, model = tiny
    assert model.layers_path == FAMILIES[family][2]
    assert (model.n_layers, model.d_model) == (3, 64)
    assert model.tokenizer.padding_side == "left"


def test_read_equals_hook_reference(tiny):
    family, model = tiny
    enc = encoded(model, TEXTS)
    assert (enc["attention_mask"] == 0).any()  # left padding is exercised
    seen = {}

    def keep(L):
        def hook(_m, _i, output):
            seen[L] = hidden(output).detach().clone()
        return hook

    with_hooks(model, family, {L: keep(L) for L in range(3)}, lambda: model.lm._module(**enc))
    mask = enc["attention_mask"].unsqueeze(-1).float()
    last = read_batch(model, TEXTS, [0, 1, 2], "last")
    mean = read_batch(model, TEXTS, [0, 1, 2], "mean")
    for L in range(3):
        assert (last[L] - seen[L][:, -1, :]).abs().max() <= TOL
        assert (mean[L] - (seen[L] * mask).sum(1) / mask.sum(1)).abs().max() <= TOL


def test_steered_logits_equal_hook_reference(tiny):
    family, model = tiny
    plan = a_plan(model)
    steered = library_logits(model, TEXTS, plan)
    reference = reference_logits(model, family, TEXTS, dict(plan.deltas()))
    plain = reference_logits(model, family, TEXTS, {})
    assert (steered - reference).abs().max() <= TOL
    assert (steered - plain).abs().max() > 1e-2  # the plan really changed something
    assert (library_logits(model, TEXTS, Plan.none()) - plain).abs().max() <= TOL


def test_steered_generation_equals_hook_reference(tiny):
    family, model = tiny
    plan = a_plan(model)
    n = 4
    texts = TEXTS[:2]
    enc = encoded(model, texts)
    ids = with_hooks(model, family, {L: adding(d) for L, d in plan.deltas()},
                     lambda: model.lm._module.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False))
    expected = [model.tokenizer.decode(row[enc["input_ids"].shape[1]:], skip_special_tokens=True) for row in ids]
    assert steered_generate(model, texts, plan, max_new_tokens=n) == expected


# -- discovery rules ------------------------------------------------------------------------------


def test_layers_path_override_and_its_errors(tmp_path):
    folder = build_tiny("gemma3_text", tmp_path / "gemma3")
    model = load_model(str(folder), layers_path="model.layers")
    assert model.layers_path == "model.layers" and model.n_layers == 3
    with pytest.raises(UserError, match=r"--layers-path 'model\.nope' is not a list of layers .*model\.layers"):
        load_model(str(folder), layers_path="model.nope")
    with pytest.raises(UserError, match="is not a list of layers"):
        load_model(str(folder), layers_path="model.norm")


def test_unknown_layout_is_found_by_its_layer_count():
    class Odd(torch.nn.Module):  # a family whose layers sit at a path no table knows
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Module()
            self.stem.experts = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(2)])
            self.stem.trunk = torch.nn.Module()
            self.stem.trunk.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(5)])

    config = T.PretrainedConfig(num_hidden_layers=5)
    assert find_layers_path(Odd(), config) == "stem.trunk.blocks"
    with pytest.raises(UserError, match="give --layers-path"):
        find_layers_path(Odd(), T.PretrainedConfig(num_hidden_layers=7))


def test_width_and_depth_come_from_each_config_layout():
    from steer_trace.layer_matching import DEPTH_KEYS, WIDTH_KEYS, config_value

    gpt2 = T.GPT2Config(n_embd=48, n_layer=5)
    assert (config_value(gpt2, WIDTH_KEYS), config_value(gpt2, DEPTH_KEYS)) == (48, 5)
    gemma3 = T.Gemma3Config(text_config=dict(hidden_size=80, num_hidden_layers=6))  # multimodal: nested text config
    assert (config_value(gemma3, WIDTH_KEYS), config_value(gemma3, DEPTH_KEYS)) == (80, 6)
    phi3 = T.Phi3Config(hidden_size=96, num_hidden_layers=4)
    assert (config_value(phi3, WIDTH_KEYS), config_value(phi3, DEPTH_KEYS)) == (96, 4)


def test_gpu_parity_script_runs_on_the_cpu(tmp_path):
    """benchmarks/gpu/parity.py is prepared for a GPU machine; its --device cpu --dry mode keeps it alive here."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "parity.py"
    spec = importlib.util.spec_from_file_location("gpu_parity", path)
    parity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parity)
    log = tmp_path / "parity.log"
    argv = ["--device", "cpu", "--dry", "--families", "gptj,qwen2", "--dtypes", "float32,bfloat16", "--no-smollm2",
            "--log", str(log)]
    assert parity.main(argv) == 0
    text = log.read_text()
    assert text.count("\nok   ") == 12 and "FAIL" not in text and "0 failure(s)" in text


def test_packed_content_scores_equal_one_row_per_option_where_packable(tiny):
    """A 4D mask taken as given (packing.py): each family either packs to the unpacked numbers or says it
    cannot (`packable` False, and content scoring keeps one row per option)."""
    from steer_trace.content import answer_logprobs, packed_answer_logprobs
    from steer_trace.packing import packable

    family, model = tiny
    plan = a_plan(model)
    heads = ["Human:\nWhich one?\n\nAI:\n", "Human:\nPick a plan for the money you saved this year.\n\nAI:\n"]
    options = [["The first", "The second one, surely"], ["Save it", "Spend it", "Give it away to a friend"]]
    if not packable(model, [plan]):
        pytest.skip(f"{family}: attention {model.config._attn_implementation} does not take a 4D mask as given")
    got = packed_answer_logprobs(model, heads, options, [Plan.none(), plan], batch_size=2)
    flat = [h for h, shown in zip(heads, options) for _ in shown]
    want = answer_logprobs(model, flat, [t for shown in options for t in shown], [Plan.none(), plan], batch_size=1)
    for g, w in zip(got, want):
        assert (g - w).abs().max() <= 1e-4, family
    assert (got[0] - got[1]).abs().max() > 1e-3


def test_packed_letter_probs_equal_one_prompt_per_row_where_packable(tiny):
    """A question's rotations in one row, each rotation's last token at the row's end (packing.py)."""
    from steer_trace.packing import next_token_probs, packable
    from steer_trace.score import answer_probs

    family, model = tiny
    plan = a_plan(model)
    if not packable(model, [plan]):
        pytest.skip(f"{family}: attention {model.config._attn_implementation} does not take a 4D mask as given")
    head = "Human:\nPick one.\n\nChoices:\n (A) "
    prompts = [head + "Tea\n (B) Coffee\n\nAI:\nI choose (", head + "Coffee\n (B) Tea\n\nAI:\nI choose (",
               "Human:\nIs it?\n\nAI:\nOut of (Yes) and (No), I choose (",
               "Human:\nIs it?\n\nAI:\nOut of (No) and (Yes), I choose ("]
    ids = [32, 33]
    got = next_token_probs(model, prompts, [0, 0, 1, 1], ids, [Plan.none(), plan], batch_size=2)
    want = answer_probs(model, prompts, ids, [Plan.none(), plan], batch_size=1)
    for (p, g), (p_ref, g_ref) in zip(got, want):
        assert (p - p_ref).abs().max() <= 1e-5, family
        assert torch.equal(g, g_ref), family
    assert (got[0][0].log() - got[1][0].log()).abs().max() > 1e-2  # near-uniform random models: compare in log
