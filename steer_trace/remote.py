"""Running traces on NDIF through nnsight's remote backend, with bounded waits and plain errors.

- `configure(host)` points nnsight at an NDIF server (``--ndif-host`` / ``NDIF_HOST``),
  takes the API key from the ``NDIF_API_KEY`` environment variable only (never
  written anywhere) and checks, within 15 s, that the host answers.
- `RemoteTransformersModel` is nnsight's ``TransformersModel`` whose remote runs go
  through `DeadlineBackend`: the blocking websocket wait of nnsight 0.8.1 has no
  deadline of its own, so this one gives up after `request_timeout()` seconds
  (``STEER_TRACE_NDIF_TIMEOUT``, default 600) and turns every server failure
  into a one-line `UserError`. Its model key is the plain ``TransformersModel``
  key, so the server cannot tell the difference.
- `prepare_remote_id(source)` makes a local folder its own remote id (no hub
  lookup) and ships this package's code by value with each request (the server
  does not have steer_trace installed).
"""

from __future__ import annotations

import json
import os
import time

from .errors import UserError

REACH_TIMEOUT_S = 15.0
DEFAULT_REQUEST_TIMEOUT_S = 600.0
_PING_PATHS = ("/ping",)


def request_timeout() -> float:
    """Seconds one remote request may take, end to end (queue + run + download)."""
    raw = os.environ.get("STEER_TRACE_NDIF_TIMEOUT")
    if not raw:
        return DEFAULT_REQUEST_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"STEER_TRACE_NDIF_TIMEOUT must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise UserError("STEER_TRACE_NDIF_TIMEOUT must be positive")
    return value


def prepare_remote_id(source: str) -> None:
    """A local folder as a remote model key must not be looked up on the hub;
    steer_trace's own code travels by value (the server does not have it)."""
    import nnsight
    import nnsight.modeling.huggingface as hf

    if source.startswith("/"):
        hf._ID_CACHE[source] = source
    nnsight.register("steer_trace")


def current_host() -> str:
    from nnsight import CONFIG

    return str(CONFIG.API.HOST).rstrip("/")


def configure(host: str | None, check: bool = True, reach_timeout: float = REACH_TIMEOUT_S) -> bool:
    """Point nnsight at `host` (or its configured one) and check that it answers.

    The API key is read from ``NDIF_API_KEY`` only; a key configured for nnsight
    in a file is left alone when the variable is unset.
    """
    from nnsight import CONFIG

    CONFIG.APP.REMOTE_LOGGING = False
    if host:
        host = host.strip().rstrip("/")
        if not host.startswith(("http://", "https://")):
            raise UserError(f"NDIF host {host!r} must start with http:// or https://")
        CONFIG.API.HOST = host
    key = os.environ.get("NDIF_API_KEY")
    if key:
        CONFIG.API.APIKEY = key.strip()
    if check:
        check_reachable(current_host(), reach_timeout)
    return True


def check_reachable(host: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """UserError unless `host` answers /ping within `timeout` seconds."""
    import httpx

    try:
        response = httpx.get(f"{host}/ping", timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
    except httpx.TimeoutException:
        raise UserError(f"NDIF host {host} unreachable: no answer within {timeout:g} s") from None
    except httpx.HTTPError as error:
        raise UserError(f"NDIF host {host} unreachable: {_first_line(error) or type(error).__name__}") from None
    if response.status_code >= 500:
        raise UserError(f"NDIF host {host} is not serving (HTTP {response.status_code} on /ping)")
    if response.status_code == 404:
        raise UserError(f"{host} answers but is not an NDIF server (no /ping)")


# --------------------------------------------------------------------------- errors


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _scrub(text: str) -> str:
    """Never echo the API key back (ndif quotes a malformed key in its message)."""
    from nnsight import CONFIG

    key = CONFIG.API.APIKEY
    if key:
        text = text.replace(str(key), "<NDIF_API_KEY>")
    return text


def _last_error_line(text: str) -> str:
    """The informative line of a server-side traceback: its last non-blank line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "no message"
    for line in reversed(lines):
        if not line.startswith(("File ", "^", "~", "Traceback")):
            return line[:400]
    return lines[-1][:400]


def translate(message: str, host: str, model_key: str = "") -> UserError:
    """One-line UserError for a failure reported by (or on the way to) NDIF."""
    text = _scrub(str(message))
    low = text.lower()
    repo = _repo_of(model_key)
    if "api key" in low:
        return UserError(f"NDIF host {host} rejected the API key (set NDIF_API_KEY to a valid key from login.ndif.us)")
    if "nnsight version" in low and ("minimum" in low or "below" in low or "not provided" in low):
        return UserError(f"client/server version mismatch at {host}: {_last_error_line(text)}")
    if "python version" in low and ("minimum" in low or "below" in low):
        return UserError(f"client/server version mismatch at {host}: {_last_error_line(text)}")
    if "could not be read" in low and "modulenotfound" in low.replace(" ", ""):
        return UserError(
            f"NDIF host {host} could not read the request (client/server version mismatch?): {_last_error_line(text)}"
        )
    if "compute backend" in low or "temporarily unavailable" in low or "backend unavailable" in low:
        return UserError(f"NDIF host {host} is up but not serving models right now: {_last_error_line(text)}")
    if _looks_not_hosted(low):
        return UserError(
            f"model {repo or model_key} is not hosted (or could not be started) on NDIF host {host}: "
            f"{_last_error_line(text)}"
        )
    if any(word in low for word in ("connection refused", "connecterror", "name or service", "timed out")):
        return UserError(f"NDIF host {host} unreachable: {_last_error_line(text)}")
    return UserError(f"NDIF server error at {host}: {_last_error_line(text)}")


def _looks_not_hosted(low: str) -> bool:
    # ndif 0.1.x answers a model it cannot serve with one of these (queue/processor.py)
    return any(
        phrase in low
        for phrase in (
            "could not deploy this model", "error provisioning model", "error starting model",
            "not hosted", "not deployed", "is not supported",
        )
    )


def _repo_of(model_key: str) -> str:
    try:
        return json.loads(model_key.split(":", 1)[1])["repo_id"]
    except (IndexError, ValueError, KeyError, TypeError):
        return ""


# --------------------------------------------------------------------------- backend


def _deadline_backend_class():
    from nnsight.intervention.backends.remote import RemoteBackend, RemoteError
    from nnsight.schema.response import Status

    class DeadlineBackend(RemoteBackend):
        """nnsight's blocking remote backend with an end-to-end deadline and UserErrors."""

        timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S

        def request(self, request, tracer):
            import websocket

            deadline = time.monotonic() + self.timeout_s

            def left() -> float:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise UserError(
                        f"NDIF host {self.host} gave no answer within {self.timeout_s:g} s "
                        "(STEER_TRACE_NDIF_TIMEOUT); the request may still be queued there"
                    )
                return remaining

            blob = self._serialize(tracer)
            header = {"ndif-api-key": self.api_key} if self.api_key else None
            try:
                connection = websocket.create_connection(
                    f"{self.ws_host}/subscribe", header=header, timeout=min(left(), REACH_TIMEOUT_S)
                )
            except websocket.WebSocketBadStatusException as error:
                raise translate(f"{error.status_code} {error}", self.host, self.model_key) from None
            except (OSError, websocket.WebSocketException) as error:
                raise UserError(
                    f"NDIF host {self.host} unreachable: {_first_line(error) or type(error).__name__}"
                ) from None
            try:
                connection.settimeout(min(left(), REACH_TIMEOUT_S))
                request.session_id = json.loads(connection.recv())["session_id"]
                self.send(request, blob)
                while True:
                    connection.settimeout(min(left(), 1.0))
                    try:
                        message = connection.recv()
                    except websocket.WebSocketTimeoutException:
                        continue
                    if not message:  # the server closed the socket
                        raise websocket.WebSocketConnectionClosedException("connection closed by the server")
                    try:
                        response = self.parse(message)
                    except ValueError as error:  # pydantic's ValidationError is a ValueError
                        raise UserError(f"unreadable answer from NDIF host {self.host}: {_first_line(error)}") from None
                    result = self.handle(response)
                    if response.status == Status.COMPLETED:
                        return result
            except UserError:
                raise
            except RemoteError as error:
                raise translate(str(error), self.host, self.model_key) from None
            except websocket.WebSocketTimeoutException:
                left()
                raise UserError(f"NDIF host {self.host} stopped answering") from None
            except (OSError, websocket.WebSocketException) as error:
                raise UserError(
                    f"lost the connection to NDIF host {self.host} during a request "
                    f"({_first_line(error) or type(error).__name__}); was the server stopped?"
                ) from None
            finally:
                connection.close()

        def download_result(self, url):
            try:
                return super().download_result(url)
            except Exception as error:  # httpx errors, a vanished object store
                raise UserError(
                    f"could not download the result from NDIF host {self.host}: {_first_line(error)}"
                ) from None

    return DeadlineBackend


_BACKEND = None


def deadline_backend(model_key: str, host: str | None, env: dict, timeout_s: float | None = None):
    global _BACKEND
    if _BACKEND is None:
        _BACKEND = _deadline_backend_class()
    backend = _BACKEND(model_key, host=host, env=env)
    backend.timeout_s = float(timeout_s or request_timeout())
    return backend


def remote_model_class():
    """nnsight's TransformersModel whose remote runs have a deadline and plain errors."""
    global _MODEL_CLASS
    if _MODEL_CLASS is None:
        from nnsight.modeling.transformers import TransformersModel

        class RemoteTransformersModel(TransformersModel):
            def _remoteable_class(self) -> type:
                return TransformersModel  # the key the server knows

            def _remote_backend(self, remote, blocking, job_id, verbose):
                if remote == "local" or not blocking:
                    return super()._remote_backend(remote, blocking, job_id, verbose)
                host = remote if isinstance(remote, str) else None
                return deadline_backend(self.to_model_key(), host, self._remoteable_get_env())

        _MODEL_CLASS = RemoteTransformersModel
    return _MODEL_CLASS


_MODEL_CLASS = None
