"""Trace with the source this process imported.

nnsight compiles a trace's `with` block from its file's text (read through `linecache`) the first time the
block runs. A file edited on disk during a long run then gives text that no longer matches the running code,
and the trace fails (`WithBlockNotFoundError`) - a sweep killed hours in. `pin` stores each module's text as
it is at import in `linecache` without an mtime, which `linecache.checkcache` never drops.
"""

from __future__ import annotations

import linecache


def pin(*modules) -> None:
    for module in modules:
        path, loader = getattr(module, "__file__", None), getattr(module, "__loader__", None)
        try:
            text = loader.get_source(module.__name__) if path and loader else None
        except (ImportError, OSError):
            text = None
        if text is not None:
            lines = text.splitlines(keepends=True)
            linecache.cache[path] = (len(text), None, lines, path)


def pin_files(paths) -> None:
    """As `pin`, for modules not imported yet: their files' text now (the package's import pins the
    trace-opening modules this way, so that `import steer_trace` stays light)."""
    for path in paths:
        path = str(path)
        try:
            text = open(path, encoding="utf-8").read()
        except OSError:
            continue
        linecache.cache[path] = (len(text), None, text.splitlines(keepends=True), path)
