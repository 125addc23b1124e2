"""`steer-trace demo` (being built)."""
import click


@click.command("demo")
def demo_cmd():
    """The quick behaviour pipeline on the embedded default model, offline."""
    click.echo("demo: being built")


COMMANDS = [demo_cmd]
