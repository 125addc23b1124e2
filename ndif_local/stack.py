"""Install, start and stop a real NDIF server (PyPI ndif 0.1.2) on 127.0.0.1, CPU only.

What runs (each a process group of its own, all on loopback, ports picked free):

- redis-server (Debian package): ndif's queue and status channels;
- moto_server: an S3 stand-in for the object store that holds large results;
- a Ray head (``ray start --head --block``) declaring one GPU's worth of
  resources, so ndif's placement logic has somewhere to put a model; the model
  actually loads on the CPU (``server/st_ndif_server.py``);
- ndif's controller (a detached Ray actor, launched by a short script);
- the API: gunicorn + uvicorn workers, plus ndif's queue dispatcher.

The server side lives in its own virtual environment (``.venv-ndif`` beside the
project's ``.venv``), so its pins (ray, moto, ...) never touch the project.
Every process started here carries ``ST_NDIF_STACK=<id>`` in its environment;
`Stack.stop` signals each process group and then sweeps /proc for anything left
with that marker, so only processes this stack started are ever touched.

Command line (stdlib only, any Python):

    python -m ndif_local install
    python -m ndif_local start [--model smollm2-135m] [--port 8001]   # prints the host URL
    python -m ndif_local status
    python -m ndif_local stop
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = Path(os.environ.get("NDIF_LOCAL_VENV", REPO / ".venv-ndif"))
REQUIREMENTS = HERE / "requirements.txt"
SERVER_PATH = HERE / "server"
TORCH = "torch==2.13.0"
NDIF = "ndif==0.1.2"
MARKER_NAME = ".st-ndif-installed"
STACK_MARK = "ST_NDIF_STACK"


class StackUnavailable(RuntimeError):
    """The stack cannot be installed or started here (a missing tool, no network)."""


# --------------------------------------------------------------------------- install


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for part in (TORCH, NDIF, REQUIREMENTS.read_text()):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def is_installed(venv: Path = VENV) -> bool:
    marker = venv / MARKER_NAME
    return marker.exists() and marker.read_text().strip() == _fingerprint()


def _base_python() -> str:
    chosen = os.environ.get("NDIF_LOCAL_PYTHON") or shutil.which("python3.11")
    if chosen:
        return chosen
    # a venv's interpreter creates venvs from its base installation
    return getattr(sys, "_base_executable", sys.executable)


def install(venv: Path = VENV, log=print) -> float:
    """Create the server venv once (a marker file records what was installed); seconds taken."""
    if is_installed(venv):
        return 0.0
    started = time.time()
    python = venv / "bin" / "python"
    log(f"ndif_local: installing the server stack into {venv} (about 1-2 min)")
    if not python.exists():
        _call([_base_python(), "-m", "venv", str(venv)], "create the server venv")
    pip = [str(python), "-m", "pip", "install", "-q"]
    try:
        _call(pip + [TORCH], "install CPU torch")
    except StackUnavailable:  # not on local disk: the CPU wheel index, never a CUDA build
        _call(pip + [TORCH, "--index-url", "https://download.pytorch.org/whl/cpu"], "install CPU torch")
    # ndif's metadata asks for Python >= 3.12; its code runs on 3.11. Its deps are pinned below.
    _call(pip + ["--no-deps", "--ignore-requires-python", NDIF], "install ndif")
    _call(pip + ["-r", str(REQUIREMENTS)], "install the server requirements")
    (venv / MARKER_NAME).write_text(_fingerprint() + "\n")
    took = time.time() - started
    log(f"ndif_local: server stack installed in {took:.0f}s")
    return took


def _call(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-15:])
        raise StackUnavailable(f"could not {what}: {' '.join(cmd[:6])} ... exited {done.returncode}\n{tail}")


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET on loopback; status 0 when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (OSError, urllib.error.URLError):
        return 0, ""


def _stack_processes(stack_id: str) -> list[int]:
    """Pids of live processes whose environment carries this stack's marker."""
    needle = f"{STACK_MARK}={stack_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and not _zombie(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        if not _zombie(pid):
            out.append(pid)
    return out


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


# --------------------------------------------------------------------------- the stack


class Stack:
    """One running server stack. `start()` then `stop()`; also a context manager."""

    def __init__(self, venv: Path = VENV, api_port: int | None = None, state: Path | None = None):
        self.venv = Path(venv)
        self.id = uuid.uuid4().hex[:12]
        # short path under /tmp: Ray's unix sockets live below it (108-byte limit)
        self.state = Path(state) if state else Path(tempfile.mkdtemp(prefix="st-ndif-", dir="/tmp"))
        self.logs = self.state / "logs"
        self.ports: dict[str, int] = {"api": api_port} if api_port else {}
        self.groups: dict[str, int] = {}  # service -> pid, which is also its process-group id
        self._popen: dict[str, subprocess.Popen] = {}
        self.timings: dict[str, float] = {}

    # ---- public

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def start(self, model_keys: list[str] = (), timeout: float = 300.0) -> "Stack":
        """Start every service and wait until the API reports the compute backend connected.

        `model_keys` (nnsight model keys) are deployed at start, so the first
        request does not wait for a model load.
        """
        if not is_installed(self.venv):
            raise StackUnavailable(f"server venv {self.venv} is not installed: python -m ndif_local install")
        if not shutil.which("redis-server"):
            raise StackUnavailable("redis-server not found (Debian: apt-get install -y redis-server)")
        deadline = time.time() + timeout
        started = time.time()
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in ("redis", "moto", "gcs", "ray_client", "dashboard", "agent", "api"):
            self.ports.setdefault(name, free_port())
        try:
            self._start_services(list(model_keys), deadline)
            if model_keys:
                self._wait_deployed(list(model_keys), deadline)
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = round(time.time() - started, 1)
        self._write_state()
        return self

    def stop(self) -> list[int]:
        """Stop everything this stack started; returns the pids that had to be swept up."""
        for name in reversed(list(self.groups)):
            _signal_group(self.groups[name], signal.SIGTERM)
        self._wait_groups_gone(6.0)
        for pgid in self.groups.values():
            _signal_group(pgid, signal.SIGKILL)
        self._wait_groups_gone(5.0)
        swept = _stack_processes(self.id)
        for pid in swept:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        end = time.time() + 5
        while _alive(swept) and time.time() < end:
            time.sleep(0.1)
        for proc in self._popen.values():  # reap our direct children
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.groups.clear()
        self._popen.clear()
        shutil.rmtree(self.state, ignore_errors=True)
        return swept

    def running(self) -> bool:
        return http_get(self.host + "/ping", 3.0)[0] == 200

    def log_tail(self, lines: int = 25) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").strip().splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- services

    def env(self, extra: dict | None = None) -> dict:
        p = self.ports
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("NDIF_", "RAY_", "VIRTUAL_ENV", "PYTHON", "CONDA"))
        }
        env.update(
            PATH=f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            PYTHONPATH=str(SERVER_PATH),
            PYTHONUNBUFFERED="1",
            HOME=env.get("HOME", "/root"),
            NDIF_HOME=str(self.state / "home"),
            NDIF_REDIS_URL=f"redis://127.0.0.1:{p['redis']}",
            NDIF_OBJECT_STORE_URL=f"http://127.0.0.1:{p['moto']}",
            NDIF_RAY_ADDRESS=f"ray://127.0.0.1:{p['ray_client']}",
            NDIF_API_URL=self.host,
            NDIF_API_PORT=str(p["api"]),
            NDIF_MODEL_IMPORT_PATH="st_ndif_server.CPUModelActor",
            NDIF_CONTROLLER_IMPORT_PATH="st_ndif_server.Controller",
            NDIF_DEFAULT_DTYPE="float32",
            NDIF_MINIMUM_DEPLOYMENT_TIME_SECONDS="0",
            NDIF_DEFAULT_EXECUTION_TIMEOUT_SECONDS="600",
            NDIF_INFLUX_ENABLED="false",
            RAY_USAGE_STATS_ENABLED="0",
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
            GRPC_ENABLE_FORK_SUPPORT="0",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            **{STACK_MARK: self.id},
        )
        env.update(extra or {})
        return env

    def _spawn(self, name: str, cmd: list[str], env: dict) -> None:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=self.state,
        )
        log.close()
        self._popen[name] = proc
        self.groups[name] = proc.pid

    def _wait(self, what: str, check, deadline: float, service: str | None = None) -> None:
        while time.time() < deadline:
            if check():
                return
            if service and self._popen[service].poll() is not None:
                raise StackUnavailable(f"{service} exited while waiting for {what}\n{self.log_tail()}")
            time.sleep(0.25)
        raise StackUnavailable(f"timed out waiting for {what}\n{self.log_tail()}")

    def _start_services(self, model_keys: list[str], deadline: float) -> None:
        p, bin_ = self.ports, self.venv / "bin"
        t = time.time()
        env = self.env({"NDIF_DEPLOYMENTS": "|".join(model_keys)} if model_keys else None)
        self._spawn("redis", ["redis-server", "--port", str(p["redis"]), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(self.state)], env)
        self._spawn("moto", [str(bin_ / "moto_server"), "-H", "127.0.0.1", "-p", str(p["moto"])], env)
        resources = {"head": 10, "cuda_memory_bytes": 8_000_000_000, "cpu_memory_bytes": 8_000_000_000}
        self._spawn("ray", [
            str(bin_ / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
            f"--port={p['gcs']}", f"--ray-client-server-port={p['ray_client']}",
            # ndif's controller lists nodes through Ray's state API, which the dashboard serves
            "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={p['dashboard']}",
            f"--dashboard-agent-listen-port={p['agent']}",
            "--num-cpus=4", "--num-gpus=1", f"--resources={json.dumps(resources)}",
            f"--temp-dir={self.state / 'ray'}", "--disable-usage-stats",
        ], env)
        self._wait("redis", lambda: listening(p["redis"]), deadline, "redis")
        self._wait("the Ray head", lambda: listening(p["gcs"]) and listening(p["ray_client"]), deadline, "ray")
        self.timings["ray_s"] = round(time.time() - t, 1)
        controller = subprocess.run(
            [str(bin_ / "python"), "-m", "ndif.services.ray.deployments.controller.controller"],
            env={**env, "RAY_ADDRESS": f"127.0.0.1:{p['gcs']}"}, cwd=self.state,
            stdout=open(self.logs / "controller.log", "wb"), stderr=subprocess.STDOUT,
            timeout=max(10.0, deadline - time.time()),
        )
        if controller.returncode != 0:
            raise StackUnavailable(f"the ndif controller did not launch\n{self.log_tail()}")
        self._wait("moto", lambda: listening(p["moto"]), deadline, "moto")
        self.start_api(deadline - time.time(), env)
        self.timings["connected_s"] = round(time.time() - t, 1)

    def start_api(self, timeout: float = 120.0, env: dict | None = None) -> None:
        """(Re)start the API (gunicorn + ndif's dispatcher) and wait for /connected."""
        deadline = time.time() + timeout
        self._spawn("api", [str(self.venv / "bin" / "gunicorn"), "--config", "python:ndif.services.api.gunicorn_conf",
                            "--bind", f"127.0.0.1:{self.ports['api']}", "--no-control-socket",
                            "ndif.services.api.app:app"], env or self.env())
        self._wait("/ping", lambda: http_get(self.host + "/ping")[0] == 200, deadline, "api")
        self._wait("/connected", lambda: http_get(self.host + "/connected")[0] == 200, deadline, "api")

    def start_gate(self, name: str, settings: dict, timeout: float = 90.0) -> str:
        """An extra API front end (uvicorn, no dispatcher of its own) sharing this stack's
        queue, started with extra ndif `settings` (e.g. NDIF_MIN_NNSIGHT_VERSION); its URL.

        Used to exercise ndif's own request checks (API keys, client versions)."""
        port = self.ports[name] = free_port()
        self._spawn(name, [str(self.venv / "bin" / "python"), "-m", "uvicorn", "ndif.services.api.app:app",
                           "--host", "127.0.0.1", "--port", str(port)], self.env(settings))
        url = f"http://127.0.0.1:{port}"
        self._wait(f"{name} /ping", lambda: http_get(url + "/ping")[0] == 200, time.time() + timeout, name)
        return url

    def stop_service(self, name: str, timeout: float = 10.0) -> None:
        """Stop one service's process group (e.g. "api", to test a server going away)."""
        pgid = self.groups.pop(name, None)
        if pgid is None:
            return
        _signal_group(pgid, signal.SIGTERM)
        end = time.time() + timeout
        while _group_members(pgid) and time.time() < end:
            self._popen[name].poll()
            time.sleep(0.1)
        _signal_group(pgid, signal.SIGKILL)
        try:
            self._popen.pop(name).wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def _wait_deployed(self, model_keys: list[str], deadline: float) -> None:
        t = time.time()

        def ready() -> bool:
            code, body = http_get(self.host + "/status", 30.0)
            if code != 200:
                return False
            try:
                running = {d.get("model_key") for d in json.loads(body).get("deployments", {}).values()
                           if d.get("application_state") == "RUNNING"}
            except (ValueError, AttributeError):
                return False
            return set(model_keys) <= running

        self._wait("the model deployment", ready, deadline, "api")
        self.timings["deploy_s"] = round(time.time() - t, 1)

    def _wait_groups_gone(self, seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            for proc in self._popen.values():
                proc.poll()
            if not any(_group_members(pgid) for pgid in self.groups.values()):
                return
            time.sleep(0.1)

    # ---- state file for the command line

    def _write_state(self) -> None:
        info = {"id": self.id, "state": str(self.state), "venv": str(self.venv), "host": self.host,
                "ports": self.ports, "groups": self.groups, "timings": self.timings}
        (self.state / "stack.json").write_text(json.dumps(info, indent=1))
        pointer = _pointer()
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.write_text(str(self.state))

    @classmethod
    def from_state(cls, state: Path) -> "Stack":
        info = json.loads((Path(state) / "stack.json").read_text())
        stack = cls(Path(info["venv"]), state=Path(info["state"]))
        stack.id, stack.ports, stack.groups = info["id"], info["ports"], info["groups"]
        stack.timings = info.get("timings", {})
        return stack


def _pointer() -> Path:
    root = os.environ.get("STEER_TRACE_CACHE") or Path.home() / ".cache" / "steer_trace"
    return Path(root) / "ndif-local-current"


def model_key(name: str) -> str:
    """The nnsight model key the client sends for a --model value (embedded name, folder)."""
    from steer_trace.models import load_model

    return load_model(name, remote=True).lm.to_model_key()


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ndif_local", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="create the server venv (idempotent)")
    start = sub.add_parser("start", help="start the stack in the background and print its host URL")
    start.add_argument("--model", action="append", default=[], help="model to deploy at start (repeatable)")
    start.add_argument("--port", type=int, default=None, help="API port (default: a free one)")
    start.add_argument("--timeout", type=float, default=300.0)
    sub.add_parser("status", help="is the last started stack answering?")
    sub.add_parser("stop", help="stop the last started stack")
    args = parser.parse_args(argv)

    if args.command == "install":
        took = install()
        print("already installed" if took == 0 else f"installed in {took:.0f}s")
        return 0
    if args.command == "start":
        try:
            install()
            keys = [model_key(name) for name in args.model]
            stack = Stack(api_port=args.port).start(keys, timeout=args.timeout)
        except StackUnavailable as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(stack.host)
        print(f"started in {stack.timings['start_s']}s; stop with: python -m ndif_local stop", file=sys.stderr)
        return 0
    pointer = _pointer()
    if not pointer.exists() or not (Path(pointer.read_text()) / "stack.json").exists():
        print("no stack started from the command line is recorded", file=sys.stderr)
        return 1
    stack = Stack.from_state(Path(pointer.read_text()))
    if args.command == "status":
        up = stack.running()
        print(f"{stack.host} {'up' if up else 'not answering'}")
        return 0 if up else 1
    swept = stack.stop()
    pointer.unlink(missing_ok=True)
    print(f"stopped ({len(swept)} stray processes swept)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
