"""Content-addressed result cache: parquet tables, atomic writes, checksums, resume.

Layout under the results root (default ``results/`` in the working folder):

    <experiment>/<run key>.parquet        finished run (one table)
    <experiment>/<run key>.json           its config + sha256 of the parquet
    <experiment>/<run key>.points/<point key>.parquet (+ .json)   finished points of an unfinished run

A run key hashes the config (model, revision, dataset content hash, options);
a point key hashes the point's own parameters. Running the same command twice
recomputes nothing; a killed run resumes from its finished points. A file whose
checksum does not match is reported and recomputed. Readers that only look (figures: `load_tables`)
never write or delete: a damaged entry is reported and skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Callable

import polars as pl

from .errors import UserError, file_in_the_way


def results_root(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("STEER_TRACE_RESULTS") or "results")


# Recorded in a config, keyed only where it changes the numbers: every result made before the
# --dtype/--device options was float32 on the CPU and keeps its key.
UNKEYED_AT = {"dtype": "float32"}  # left out of the key at this value; any other dtype gets its own key
RECORDED_ONLY = ("device",)  # the same numbers up to float rounding on any device: recorded, never keyed


def _keyed(name: str, value) -> bool:
    return name not in RECORDED_ONLY and not (name in UNKEYED_AT and UNKEYED_AT[name] == value)


def merged(*parts: dict) -> dict:
    """The dicts of a config joined; a name given twice with different values is a bug (ValueError), never a
    silent overwrite: a key that loses a field returns one question's cached result for another's."""
    out: dict = {}
    for part in parts:
        for name, value in part.items():
            if name in out and out[name] != value:
                raise ValueError(f"config field {name!r} given twice ({out[name]!r}, {value!r})")
            out[name] = value
    return out


def key_of(config: dict) -> str:
    keyed = {k: v for k, v in config.items() if _keyed(k, v)}
    text = json.dumps(keyed, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, frame: pl.DataFrame, config: dict, extra: dict | None = None) -> None:
    """Write to temporary names, then rename: a reader sees the old entry, the new one, or
    (killed between the renames) a checksum mismatch that is recomputed, never a partial file.

    The parquet is built in memory and written by Python, so a full or failing disk is an OSError
    (one `error:` line) rather than a polars exception."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    side_tmp = path.with_name(f".{path.stem}.{os.getpid()}.json.tmp")
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    data = buffer.getvalue()
    try:
        tmp.write_bytes(data)
        side = {**(extra or {}), "config": config, "sha256": _sha256(data), "rows": frame.height}
        side_tmp.write_text(json.dumps(side, indent=1, sort_keys=True, default=str))
        os.replace(tmp, path)  # parquet first: a sidecar never describes a missing file
        os.replace(side_tmp, path.with_suffix(".json"))
    except OSError as error:
        raise UserError(f"cannot write results to {path.parent} ({error.strerror or error})") from None
    finally:
        for leftover in (tmp, side_tmp):
            with contextlib.suppress(OSError):
                leftover.unlink()


# Columns renamed since results were committed: {old name: name now}. Tables on disk keep their bytes (and
# checksums); every read gives the name now. The behaviour tables called the steering strength `multiplier`.
RENAMED_COLUMNS = {"multiplier": "coef"}


def with_current_names(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its columns under the names of today (RENAMED_COLUMNS), where no column has the new name."""
    renames = {old: new for old, new in RENAMED_COLUMNS.items() if old in frame.columns and new not in frame.columns}
    return frame.rename(renames) if renames else frame


def _read_checked(path: Path, repair: bool = True) -> pl.DataFrame | None:
    """The table at `path` if it and its sidecar agree; None when absent or damaged.

    A damaged entry is reported; with `repair` (the commands that compute) it is deleted so that it is
    recomputed, without (readers such as figures) it is only skipped."""
    side = path.with_suffix(".json")
    if not path.is_file() or not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text())
        if not isinstance(meta, dict) or meta.get("sha256") != _sha256(path.read_bytes()):
            raise ValueError("checksum mismatch")
        return with_current_names(pl.read_parquet(path))
    except Exception as error:  # noqa: BLE001 - corrupt sidecar or parquet, unreadable file: never trusted
        if not repair:
            warnings.warn(f"cache entry {path} is damaged or unreadable ({error}); skipped "
                          "(re-run the command that made it to recompute)", stacklevel=2)
            return None
        warnings.warn(f"cache entry {path} is corrupt ({error}); recomputing", stacklevel=2)
        path.unlink(missing_ok=True)
        side.unlink(missing_ok=True)
        return None


def existing_root(path: str | Path | None = None) -> Path:
    """The results root for a command that only reads it (reports, figures): a missing one is a UserError."""
    root = results_root(path)
    if not root.is_dir():
        raise UserError(f"results folder {root} does not exist: give --results DIR (or $STEER_TRACE_RESULTS), "
                        "the folder a study's commands wrote")
    return root


def ensure_writable(folder: Path) -> Path:
    """Create `folder` and check that a file can be written in it (before any work is done)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        blocker = file_in_the_way(folder)
        reason = f"{blocker} is a file, not a folder" if blocker else error.strerror
        raise UserError(f"results folder {folder} is not writable ({reason})") from None
    return folder


class Run:
    """One experiment run: finished as a whole, or resumable point by point."""

    def __init__(self, experiment: str, config: dict, root: str | Path | None = None):
        self.experiment = experiment
        self.config = config
        self.key = key_of(config)
        self.dir = ensure_writable(results_root(root) / experiment)
        self.path = self.dir / f"{self.key}.parquet"
        self.points_dir = self.dir / f"{self.key}.points"
        self.computed_points = 0

    def finished(self) -> pl.DataFrame | None:
        return _read_checked(self.path)

    def point(self, params: dict, compute: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        """The table for one point, computed at most once."""
        self.points_dir.mkdir(exist_ok=True)
        path = self.points_dir / f"{key_of(params)}.parquet"
        frame = _read_checked(path)
        if frame is None:
            frame = compute()
            _write_atomic(path, frame, params)
            self.computed_points += 1
        return frame

    def cached_point(self, params: dict) -> pl.DataFrame | None:
        return _read_checked(self.points_dir / f"{key_of(params)}.parquet")

    def adopt_point(self, params: dict, frame: pl.DataFrame) -> None:
        """Store `frame`, another run's point computed from the same inputs, as this run's point `params`."""
        self.points_dir.mkdir(exist_ok=True)
        _write_atomic(self.points_dir / f"{key_of(params)}.parquet", frame, params)

    def finish(self, frames: list[pl.DataFrame]) -> pl.DataFrame:
        table = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
        _write_atomic(self.path, table, self.config)
        shutil.rmtree(self.points_dir, ignore_errors=True)
        return table


def finished_tables(experiment: str, root: str | Path | None = None) -> list[Path]:
    """The finished tables of an experiment whose sidecar checks out (paths, sorted)."""
    folder = results_root(root) / experiment
    return [p for p in sorted(folder.glob("*.parquet")) if _read_checked(p, repair=False) is not None]


def rewrite_finished(path: Path, frame: pl.DataFrame) -> None:
    """Replace a finished table with `frame` (its stored statistics recomputed), keeping its sidecar: the run
    key, the config and any other entry (e.g. the run's provenance) stay, the checksum is the new table's."""
    side = json.loads(path.with_suffix(".json").read_text())
    extra = {k: v for k, v in side.items() if k not in ("config", "sha256", "rows")}
    _write_atomic(path, frame, side["config"], extra)


def read_checked(path: Path, repair: bool = False) -> pl.DataFrame | None:
    """The one read of a cached table for every reader: the table if it and its sidecar's checksum agree, else
    None with a warning naming the file (`repair`: the damaged entry is deleted, so that it is recomputed)."""
    return _read_checked(Path(path), repair=repair)


def read_point(experiment: str, run_key: str, params: dict, root: str | Path | None = None) -> pl.DataFrame | None:
    """Point `params` of another run (by key), read only: a damaged entry is skipped, never deleted."""
    path = results_root(root) / experiment / f"{run_key}.points" / f"{key_of(params)}.parquet"
    return _read_checked(path, repair=False)


def _with_config(frame: pl.DataFrame, path: Path, keys: tuple[str, ...]) -> pl.DataFrame:
    """`frame` with each of `keys` that its run's config holds filled in as a column where the rows lack it."""
    try:
        config = json.loads(path.with_suffix(".json").read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return frame
    for key in keys:
        if key in config:
            value = pl.lit(config[key])
            frame = frame.with_columns(pl.col(key).fill_null(value) if key in frame.columns else value.alias(key))
    return frame


def load_tables(experiment: str, root: str | Path | None = None,
                config_columns: tuple[str, ...] = ()) -> pl.DataFrame | None:
    """Every finished run of an experiment, concatenated (for figures). Only reads: a damaged entry, or
    one whose columns do not fit the others, is reported and skipped, never deleted. `config_columns`: keys
    of each run's config to fill in where its rows lack them (rows cached before a column existed)."""
    folder = results_root(root) / experiment
    table = None
    for path in sorted(folder.glob("*.parquet")):
        frame = _read_checked(path, repair=False)
        if frame is None or not frame.height:
            continue
        if config_columns:
            frame = _with_config(frame, path, config_columns)
        try:
            table = frame if table is None else pl.concat([table, frame], how="diagonal_relaxed")
        except Exception as error:  # noqa: BLE001 - columns of another kind than the other runs'
            warnings.warn(f"cache entry {path} does not fit the other {experiment} tables ({error}); skipped",
                          stacklevel=2)
    return table
