"""The rich consoles every command prints through: results to stdout, errors and warnings to stderr."""

from rich.console import Console

console = Console()
console_err = Console(stderr=True)
