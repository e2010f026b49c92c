"""The `unlearn` command line: one module per verb group; each command parses its arguments and delegates.

Nothing here imports torch or transformers at module level, so `unlearn --help` is instant.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from unlearn_cli import __version__
from unlearn_cli.cli import compare, inspect_data, recipe, registry, train, unlearn
from unlearn_cli.cli import eval as eval_command
from unlearn_cli.cli.common import console_err, state
from unlearn_cli.errors import USER_ERROR_EXIT_CODE, UserError

app = typer.Typer(
    name="unlearn",
    help="Fine-tune LLMs, make them unlearn chosen data, and evaluate how well they forgot.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(registry.app, name="registry")
app.add_typer(recipe.app, name="recipe")
app.command("train", context_settings=train.CONTEXT)(train.train)
app.command("unlearn", context_settings=unlearn.CONTEXT)(unlearn.unlearn)
app.command("eval", context_settings=eval_command.CONTEXT)(eval_command.evaluate)
app.command("compare", context_settings=compare.CONTEXT)(compare.compare)
app.command("inspect-data", context_settings=inspect_data.CONTEXT)(inspect_data.inspect_data)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"unlearn-cli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks for errors."),
) -> None:
    """Fine-tune LLMs, make them unlearn chosen data, and evaluate how well they forgot."""
    state.debug = debug or os.environ.get("UNLEARN_DEBUG", "") not in ("", "0")


def main() -> None:
    """Console-script entry point: user errors become one message and exit code 2."""
    try:
        app()
    except UserError as error:
        if state.debug:
            raise
        console_err.print(f"[bold red]error:[/] {escape(error.render())}", highlight=False, soft_wrap=True)
        sys.exit(USER_ERROR_EXIT_CODE)
