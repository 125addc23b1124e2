"""`steer-trace figures` (being built)."""
import click


@click.group("figures")
def group():
    """(in progress)"""


COMMANDS = [group]
