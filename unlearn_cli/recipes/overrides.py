"""Command-line overrides: `dotted.key=value` sets (value parsed as a TOML literal, else a string),
`~dotted.key` deletes. New keys are allowed so a run can add what its recipe lacks."""

from __future__ import annotations

from typing import Any

from unlearn_cli.errors import UserError, did_you_mean
from unlearn_cli.recipes.loading import (
    REPLACE_MARKER,
    KeyPath,
    MergedRecipe,
    _record_origins,
    drop_origins,
    tomllib,
)

OVERRIDE_ORIGIN = "command-line override"


def split_key_path(text: str) -> KeyPath:
    """Split `a.b."c.d"` into ('a', 'b', 'c.d'); quoted segments may contain dots."""
    parts: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for char in text:
        if quote:
            if char == quote:
                quote = None
            else:
                current.append(char)
        elif char in "\"'":
            quote = char
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    if quote or any(not p.strip() for p in parts):
        raise UserError(
            f"malformed key path '{text}'",
            key=text,
            hint="write keys as dotted paths, e.g. trainer.args.learning_rate=1e-5",
        )
    return tuple(p.strip() for p in parts)


def parse_value(text: str) -> Any:
    """A TOML literal (number, boolean, array, inline table, quoted string, date), else the raw string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_override(text: str) -> tuple[KeyPath, Any, bool]:
    """Return (key path, value, delete?) for one `key=value` or `~key` argument."""
    if text.startswith("~"):
        return split_key_path(text[1:]), None, True
    key, sep, value = text.partition("=")
    if not sep:
        raise UserError(
            f"override '{text}' has no '='",
            hint="overrides look like `trainer.args.learning_rate=1e-5`; prefix a key with ~ to delete it",
        )
    return split_key_path(key.strip()), parse_value(value.strip()), False


def _check_overridable(path: KeyPath, text: str) -> None:
    """Keys that steer how recipe files merge mean nothing once they are merged: refuse them loudly."""
    if path[0] == "extends":
        raise UserError(
            f"`extends` cannot be overridden on the command line (got '{text}'): bases are merged first",
            key=".".join(path),
            hint='write a recipe that extends this one and the others, e.g. extends = ["tofu_finetune", '
            '"models/gemma-7b-it"], and run that file',
        )
    if REPLACE_MARKER in path:
        raise UserError(
            f"`{REPLACE_MARKER}` cannot be set on the command line (got '{text}'): it only steers `extends`",
            key=".".join(path),
            hint="to drop an inherited table, delete it (`~key`) and set the keys you want",
        )


def apply_overrides(recipe: MergedRecipe, overrides: list[str]) -> None:
    """Apply overrides in order, in place; later ones win."""
    for text in overrides:
        path, value, delete = parse_override(text)
        _check_overridable(path, text)
        dotted = ".".join(path)
        table: Any = recipe.values
        for depth, part in enumerate(path[:-1]):
            child = table.get(part)
            if child is None and not delete:
                child = table[part] = {}
                recipe.origins[path[: depth + 1]] = OVERRIDE_ORIGIN
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                if child is None:
                    raise UserError(
                        f"cannot delete '{dotted}': '{where}' does not exist",
                        key=dotted,
                        hint=did_you_mean(part, table) if isinstance(table, dict) else None,
                    )
                raise UserError(
                    f"cannot {'delete' if delete else 'set'} '{dotted}': '{where}' is a "
                    f"{type(child).__name__}, not a table",
                    key=dotted,
                )
            table = child
        last = path[-1]
        if delete:
            if last not in table:
                raise UserError(
                    f"cannot delete '{dotted}': no such key",
                    key=dotted,
                    hint=did_you_mean(last, table),
                )
            del table[last]
            # later errors about this key (now missing) must blame the deletion, not the file that set it
            drop_origins(recipe.origins, path)
            recipe.origins[path] = OVERRIDE_ORIGIN
        else:
            table[last] = value
            drop_origins(recipe.origins, path)
            _record_origins(value, path, OVERRIDE_ORIGIN, recipe.origins)
