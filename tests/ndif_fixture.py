"""pytest fixtures: a real NDIF server (PyPI ndif 0.1.2) on 127.0.0.1 hosting smollm2-135m.

Use from a test module:  ``from ndif_fixture import ndif_stack, ndif_host  # noqa: F401``

`ndif_stack` installs the server venv once (``.venv-ndif``, a marker file makes
it idempotent), starts redis, an S3 stand-in, a Ray head, ndif's controller and
API with the embedded model deployed from its local cache folder, and always
stops everything it started (process groups, then a sweep for stragglers) at the
end of the session, also on Ctrl-C or SIGTERM. When the stack cannot start here
(no redis-server, no network for the first install) the remote tests are
skipped with the reason, unless ``STEER_TRACE_REQUIRE_NDIF=1`` (CI), where they
fail instead.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MODEL = "smollm2-135m"


def _unavailable(reason: str):
    if os.environ.get("STEER_TRACE_REQUIRE_NDIF") == "1":
        pytest.fail(f"local NDIF stack required (STEER_TRACE_REQUIRE_NDIF=1) but cannot start: {reason}")
    pytest.skip(f"local NDIF stack cannot start here: {reason}")


@pytest.fixture(scope="session")
def ndif_stack():
    """A running `ndif_local.stack.Stack` with smollm2-135m deployed; `.host` is its URL."""
    from ndif_local.stack import Stack, StackUnavailable, install, model_key

    timings = {}
    try:
        t = time.time()
        install(log=lambda line: print(line, file=sys.stderr))
        timings["install_s"] = round(time.time() - t, 1)
        key = model_key(MODEL)
    except StackUnavailable as error:
        _unavailable(str(error).splitlines()[0])

    # pytest does not run fixture teardown on SIGTERM; turn it into an exit so it does
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stack = Stack()
    try:
        try:
            stack.start([key], timeout=float(os.environ.get("STEER_TRACE_NDIF_START_TIMEOUT", "300")))
        except StackUnavailable as error:
            _unavailable(str(error).splitlines()[0])
        stack.timings.update(timings)
        print(f"\nlocal NDIF at {stack.host}: {stack.timings}", file=sys.stderr)
        yield stack
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def ndif_host(ndif_stack) -> str:
    """The stack's URL, with nnsight configured to use it (key from NDIF_API_KEY only)."""
    from nnsight import CONFIG

    from steer_trace.remote import configure

    before = (CONFIG.API.HOST, CONFIG.API.APIKEY)
    configure(ndif_stack.host)
    yield ndif_stack.host
    CONFIG.API.HOST, CONFIG.API.APIKEY = before
