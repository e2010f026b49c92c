"""What the CLI modules share: consoles, the debug flag, and the trailing-overrides argument."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from unlearn_cli.console import console, console_err

__all__ = ["OVERRIDES_HELP", "RECIPE_HELP", "console", "console_err", "overrides_argument", "state"]


@dataclass
class _State:
    debug: bool = False


state = _State()

OVERRIDES_HELP = (
    "Trailing `dotted.key=value` overrides (TOML literal, else string); `~dotted.key` deletes a key."
)


def overrides_argument() -> list[str]:
    return typer.Argument(None, help=OVERRIDES_HELP, show_default=False)


RECIPE_HELP = "A recipe file (.toml) or the name of a packaged recipe (see `unlearn recipe list`)."
