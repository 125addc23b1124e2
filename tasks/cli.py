"""`steer-trace`: activation steering experiments, local or on NDIF.

The core commands (models, vectors, generate, text, figures, report, bench, demo) plus one group per registered
study (studies/registry.py). Start-up is kept light: listing the studies reads only their STUDY (name,
summary), and a study's click group is imported only when its command runs. Heavy libraries (torch,
transformers, nnsight, polars, matplotlib) are imported inside command bodies, not here: that is the
measured reason this layer defers imports (`steer-trace --help` ~7-9 s -> well under 1 s; benchmarks/cli.py
`bench startup`).
"""
from __future__ import annotations

import os
import warnings

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import click

from studies.protocol import resolve
from studies.registry import all_studies

from . import bench, core_commands, demo, docs_commands, figures, text_commands
from .common import CleanErrors


class StudiesGroup(CleanErrors):
    """The core commands, then one lazily imported group per study in the registry."""

    def list_commands(self, ctx):
        return sorted(self.commands) + [s.name for s in all_studies() if s.name not in self.commands]

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        for study in all_studies():
            if study.name == name:
                return resolve(study.cli)
        return None

    def format_commands(self, ctx, formatter):
        """As click's, but a study's line is its STUDY.summary (its code is not imported to list it)."""
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = [(name, cmd.get_short_help_str(limit)) for name, cmd in sorted(self.commands.items())
                if not cmd.hidden]
        studies = [(s.name, s.summary) for s in all_studies() if s.name not in self.commands]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        if studies:
            with formatter.section("Studies"):
                formatter.write_dl(studies)


@click.group(cls=StudiesGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Activation steering through nnsight: read vectors, steer, score, plot.

    Every command that runs a model takes --model and --remote.
    """
    warnings.filterwarnings("ignore", module="nnsight")


for _module in (core_commands, text_commands, figures, docs_commands, bench, demo):
    for _command in _module.COMMANDS:
        main.add_command(_command)

if __name__ == "__main__":
    main()
