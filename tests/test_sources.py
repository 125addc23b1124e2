"""A module that opens traces keeps working when its file changes on disk mid-run (`_sources.pin`):
nnsight compiles a trace's block from the file's text the first time it runs it."""
from __future__ import annotations

import importlib.util
import linecache
import sys

import pytest
import torch

from steer_trace import _sources

MODULE = '''import torch


def last_hidden(model, text):
    enc = model.tokenizer(text, return_tensors="pt")
    with torch.no_grad(), model.lm.trace(enc):
        h = model.layers()[1].output[:, -1].save()
    return h
'''


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("pinned", [True, False])
def test_a_trace_first_run_after_its_file_was_edited(smol, tmp_path, pinned):
    path = tmp_path / f"traced_{int(pinned)}.py"
    path.write_text(MODULE)
    module = _load(path)
    if pinned:
        _sources.pin(module)
    path.write_text("# an edit above the trace moves its lines\n" * 3 + MODULE)
    linecache.checkcache()  # what traceback and warnings call
    if pinned:
        assert torch.isfinite(module.last_hidden(smol, "Hello there")).all()
    else:  # the failure the pin prevents: nnsight reads the edited text
        with pytest.raises(Exception, match="no `with` statement"):
            module.last_hidden(smol, "Hello there")


def test_the_library_pins_its_tracing_modules():
    import steer_trace.score as score

    entry = linecache.cache[score.__file__]
    assert entry[1] is None and "".join(entry[2]) == open(score.__file__).read()
