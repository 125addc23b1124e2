"""`steer-trace`: activation steering experiments, local or on NDIF."""
from __future__ import annotations

import os
import warnings

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import click

from .common import CleanErrors


@click.group(cls=CleanErrors, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Activation steering through nnsight: read vectors, steer, score, plot.

    Every command that runs a model takes --model and --remote.
    """
    warnings.filterwarnings("ignore", module="nnsight")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _register():
    from . import behaviours, bench, core_commands, demo, figures, skills, text_commands

    for module in (core_commands, behaviours, skills, text_commands, figures, bench, demo):
        for command in module.COMMANDS:
            main.add_command(command)
    from .vector_io import register

    register(core_commands.vectors_group)


_register()

if __name__ == "__main__":
    main()
