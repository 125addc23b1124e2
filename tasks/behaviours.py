"""`steer-trace behaviours` (being built)."""
import click


@click.group("behaviours")
def group():
    """(in progress)"""


COMMANDS = [group]
