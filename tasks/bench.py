"""`steer-trace bench`: a thin entry to the benchmark harness in the repository's benchmarks/ folder.

The harness is not library code (it imports steering-vectors, reads /proc, starts
subprocesses), so it is not installed. In a clone (an editable install) this command
runs it; an installed copy without the repository says where to get it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from steer_trace.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _harness_command():
    if (REPO / "benchmarks" / "cli.py").is_file():
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        from benchmarks.cli import bench_cmd  # found only in a clone (the path above), not installed

        return bench_cmd

    @click.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def bench_cmd():
        """Benchmarks (needs a clone of the repository: its benchmarks/ folder)."""
        raise UserError("the benchmarks live in the repository's benchmarks/ folder, which is not installed: "
                        "run `python -m benchmarks` from a clone (pip install -e .)")

    return bench_cmd


COMMANDS = [_harness_command()]
