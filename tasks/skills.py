"""`steer-trace skills` (being built)."""
import click


@click.group("skills")
def group():
    """(in progress)"""


COMMANDS = [group]
