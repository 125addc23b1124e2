"""`steer-trace bench` (being built)."""
import click


@click.group("bench")
def group():
    """(in progress)"""


COMMANDS = [group]
