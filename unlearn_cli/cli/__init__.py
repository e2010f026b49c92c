"""The `unlearn` command line: one module per verb group; each command parses its arguments and delegates.

Nothing here imports torch or transformers at module level, so `unlearn --help` is instant.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperOption

from unlearn_cli import __version__
from unlearn_cli.cli import compare, inspect_data, quickstart, recipe, registry, run
from unlearn_cli.cli import eval as eval_command
from unlearn_cli.cli.common import console_err, state, with_resume_value
from unlearn_cli.errors import UnlearnWarning, UserError


def _type_unless_flag(self: TyperOption, ctx: Any) -> str | None:
    """A flag takes no value, so `--help` shows no `<bool>` type for it."""
    return None if self.is_flag and not self.count else _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _type_unless_flag  # type: ignore[method-assign]

app = typer.Typer(
    name="unlearn",
    help="Fine-tune LLMs, make them unlearn chosen data, and evaluate how well they forgot.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(registry.app, name="registry")
app.add_typer(recipe.app, name="recipe")
app.command("train")(run.train)
app.command("unlearn")(run.unlearn)
app.command("eval")(eval_command.evaluate)
app.command("compare")(compare.compare)
app.command("inspect-data")(inspect_data.inspect_data)
app.command("quickstart")(quickstart.quickstart)


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


class _WarningLine(logging.Handler):
    """The toolkit's log warnings as `warning: ...` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        console_err.print(
            f"[yellow]warning:[/] {escape(record.getMessage())}", highlight=False, soft_wrap=True
        )


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    if issubclass(category, UnlearnWarning) or "unlearn_cli" in filename:
        console_err.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def _configure_output() -> None:
    """Warnings as one line each; silence a third-party import-time notice that is no concern of a run."""
    warnings.showwarning = _show_warning
    logger = logging.getLogger("unlearn_cli")
    if not any(isinstance(handler, _WarningLine) for handler in logger.handlers):
        logger.addHandler(_WarningLine(logging.WARNING))
        logger.propagate = False
    # bitsandbytes logs an optional CPU kernel it could not fetch, on every import (transformers imports it)
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def main() -> None:
    """Console-script entry point: user errors become one message and exit code 2 (1 for a run that
    failed, 130/143 for one stopped by SIGINT/SIGTERM)."""
    from unlearn_cli.run_folder import RunInterrupted

    _configure_output()
    try:
        app(args=with_resume_value(sys.argv[1:]))
    except RunInterrupted as stopped:
        if state.debug:
            raise
        sys.exit(stopped.exit_code)
    except UserError as error:
        if state.debug:
            raise
        console_err.print(f"[bold red]error:[/] {escape(error.render())}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
