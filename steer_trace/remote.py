"""NDIF settings for nnsight's remote backend."""
from __future__ import annotations


def prepare_remote_id(source: str) -> None:
    """A local folder as a remote model key must not be looked up on the hub."""
    import nnsight.modeling.huggingface as hf

    if source.startswith("/"):
        hf._ID_CACHE[source] = source


def configure(host: str | None) -> bool:
    """Point nnsight at `host` (or its configured one); the key stays in the environment."""
    import os

    from nnsight import CONFIG

    CONFIG.APP.REMOTE_LOGGING = False
    if host:
        CONFIG.API.HOST = host
    key = os.environ.get("NDIF_API_KEY")
    if key:
        CONFIG.API.APIKEY = key
    return True
