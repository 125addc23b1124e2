"""Find the decoder layers of any decoder-only transformers model, and their width.

A decoder layer's output is the residual stream the library reads and steers.
Discovery tries, in order:

1. the user's override (``--layers-path`` / ``load_model(layers_path=...)``), a dotted
   path from the loaded model, e.g. ``model.language_model.layers``;
2. the known paths below (first one that exists and is a list of modules);
3. any ``ModuleList`` in the model whose length equals the config's layer count
   (the shallowest one wins), so a new family with a new name still works.

Known paths (transformers 5.x class layouts):

| path                          | families                                                              |
|-------------------------------|-----------------------------------------------------------------------|
| `model.layers`                | Llama, Mistral, Mixtral, Qwen2/2-MoE/3/3-MoE, Gemma/2/3 (text), Phi, Phi-3,   |
|                               | OLMo/OLMo2, Cohere, Granite, Starcoder2, XGLM                         |
| `transformer.h`               | GPT-2, GPT-J, GPT-Neo, GPT-BigCode, CodeGen, Falcon, Bloom             |
| `gpt_neox.layers`             | GPT-NeoX, Pythia                                                      |
| `model.decoder.layers`        | OPT                                                                   |
| `transformer.blocks`          | MPT                                                                   |
| `model.language_model.layers` | multimodal wrappers (Gemma3ForConditionalGeneration, Llava, Qwen2-VL)  |
| `language_model.model.layers` | older multimodal layouts                                              |

Some families (GPT-J, GPT-Neo, CodeGen, Falcon, Bloom, MPT) still return a tuple
``(hidden, ...)`` from each layer; `residual` picks the hidden state out of it.
"""

from __future__ import annotations

from .errors import UserError

KNOWN_PATHS = (
    "model.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.decoder.layers",
    "transformer.blocks",
    "model.language_model.layers",
    "language_model.model.layers",
)

WIDTH_KEYS = ("hidden_size", "n_embd", "d_model", "dim")
DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "n_ctx")


def text_config(config):
    """The language model's config (multimodal configs nest it as text_config)."""
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def config_value(config, keys: tuple[str, ...]) -> int | None:
    for cfg in (text_config(config), config):
        for key in keys:
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
    return None


def _submodule(module, path: str):
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None


def _is_layer_list(node) -> bool:
    import torch  # deferred: models.py imports this module and must stay light (the CLI's start-up)

    return isinstance(node, (torch.nn.ModuleList, torch.nn.Sequential)) and len(node) > 0


def find_layers_path(module, config, override: str | None = None, name: str = "model") -> str:
    """The dotted path of the decoder layers in the torch `module` (see the module docstring)."""
    if override:
        node = _submodule(module, override)
        if node is None or not _is_layer_list(node):
            found = ", ".join(p for p in KNOWN_PATHS if _is_layer_list(_submodule(module, p))) or "none"
            raise UserError(f"--layers-path {override!r} is not a list of layers in {name} "
                            f"(known paths found: {found})")
        return override
    for path in KNOWN_PATHS:
        if _is_layer_list(_submodule(module, path)):
            return path
    depth = config_value(config, DEPTH_KEYS)
    import torch  # deferred: models.py imports this module and must stay light (the CLI's start-up)

    lists = [(path.count("."), path) for path, node in module.named_modules()
             if isinstance(node, torch.nn.ModuleList) and len(node) == depth]
    if lists:
        return min(lists)[1]
    raise UserError(f"cannot find the decoder layers of {name}: give --layers-path (e.g. model.language_model.layers)")


def envoy_at(root, path: str):
    """The nnsight envoy at a dotted path (envoys mirror the torch module tree)."""
    node = root
    for part in path.split("."):
        node = getattr(node, part)
    return node


# model_type of the families whose decoder layers return a tuple (see `residual`)
TUPLE_OUTPUT_TYPES = frozenset({"gptj", "gpt_neo", "codegen", "falcon", "bloom", "mpt"})


def residual(output):
    """The residual-stream tensor of a decoder layer's output (tensor, or tuple whose first item it is)."""
    return output[0] if isinstance(output, tuple) else output
