"""Compute time per stage of one evaluation, kept beside its cached points so that a rerun can say what the
report took in all, not only what this invocation took.

Pattern:

    ledger = Ledger(root, config)              # <root>/evaluate_time/<key of config>/ledger.json
    with ledger.stage("search", lambda: study.computed):
        ...                                    # ledger.tick() now and then (a wrapped log does it)
    ledger.totals()                            # {stage: seconds summed over every run that computed points}

A stage's time is charged to this run only when the stage computed something (the counter rose): a rerun that
reads every point from the cache adds nothing, so `totals` is what computing the report took. The file holds one
entry per run that computed (started, {stage: seconds}), rewritten atomically at every tick, so a killed run keeps
the time its finished points took (up to the last tick).

Gotchas: keyed by the evaluation's config (model, data, sizes, vector, search options), not by the text
options: changing those adds the new text stage's time to the same ledger. Points computed before the ledger
existed are not in it (`totals` lacks the stage; the report says so). Points shared with another evaluation are
counted where they were computed.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from steer_trace.cache import ensure_writable, key_of, results_root

TICK_S = 5.0  # at most one write per this many seconds while a stage runs


class Ledger:
    def __init__(self, root, config: dict):
        # one folder per ledger: a results index reads every <experiment>/*.json as a table's sidecar
        folder = ensure_writable(results_root(root) / "evaluate_time" / key_of(config))
        self.path = folder / "ledger.json"
        self.runs: list[dict] = self._read()
        self.mine: dict | None = None  # this run's entry, once it computed something
        self._open: tuple[str, float, int, Callable[[], int]] | None = None
        self._written = 0.0

    def _read(self) -> list[dict]:
        try:
            runs = json.loads(self.path.read_text()).get("runs", [])
            return [r for r in runs if isinstance(r, dict) and isinstance(r.get("stages"), dict)]
        except (OSError, ValueError, AttributeError):
            return []  # none yet, or unreadable: the time is not known (never fatal)

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps({"runs": self.runs}, indent=1))
            os.replace(tmp, self.path)
        self._written = time.time()

    def charge(self, stage: str, seconds: float) -> None:
        """Set this run's time for `stage` (a stage that computed)."""
        if self.mine is None:
            self.mine = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "stages": {}}
            self.runs.append(self.mine)
        self.mine["stages"][stage] = round(float(seconds), 1)
        self._write()

    def tick(self, force: bool = False) -> None:
        """Charge the open stage's time so far when it has computed something (throttled to TICK_S)."""
        if self._open is None or (not force and time.time() - self._written < TICK_S):
            return
        name, start, before, counter = self._open
        if counter() > before:
            self.charge(name, time.time() - start)

    @contextlib.contextmanager
    def stage(self, name: str, counter: Callable[[], int]):
        self._open = (name, time.time(), counter(), counter)
        try:
            yield
        finally:
            self.tick(force=True)
            self._open = None

    def logging(self, log: Callable[[str], None] | None) -> Callable[[str], None]:
        """`log` that also ticks the ledger (the stages log as their points finish)."""
        def logged(message: str) -> None:
            self.tick()
            if log:
                log(message)
        return logged

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for run in self.runs:
            for stage, seconds in run["stages"].items():
                out[stage] = round(out.get(stage, 0.0) + float(seconds), 1)
        return out

    def where(self) -> Path:
        return self.path
