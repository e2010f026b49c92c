"""What the CLI modules share: consoles, the debug flag, and the trailing-overrides argument."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from unlearn_cli.console import console, console_err

__all__ = [
    "OVERRIDES_HELP",
    "RECIPE_HELP",
    "console",
    "console_err",
    "dry_run_option",
    "json_option",
    "overrides_argument",
    "overwrite_option",
    "print_rows",
    "resume_option",
    "state",
    "with_resume_value",
]


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


def overwrite_option() -> bool:
    return typer.Option(
        False,
        "--overwrite",
        help="Replace an earlier run in the output folder (kept as `<folder>.previous` until this run "
        "finishes). Never touches a folder unlearn-cli did not create.",
    )


def dry_run_option(what: str) -> bool:
    return typer.Option(
        False,
        "--dry-run",
        help=f"Only check the recipe, this machine (paths, hardware) and the output folder; {what}.",
    )


def resume_option() -> str | None:
    return typer.Option(
        None,
        "--resume",
        metavar="[latest|CHECKPOINT]",
        help="Continue the stopped run in the output folder from its latest checkpoint, or from "
        "CHECKPOINT (checkpoint-N, or a path): model, optimizer, scheduler, RNG and data order.",
        show_default=False,
    )


def merge_option() -> bool:
    return typer.Option(
        False,
        "--merge",
        help="With a [model.peft] adapter: also save the base model with the adapter merged in "
        "(`<output folder>/merged`, loads with plain transformers).",
    )


def json_option() -> bool:
    return typer.Option(False, "--json", help="Print JSON (one object per entry) instead of a table.")


def _is_checkpoint(value: str) -> bool:
    import re
    from pathlib import Path

    if value == "latest" or re.fullmatch(r"checkpoint-\d+", value):
        return True
    return (Path(value).expanduser() / "trainer_state.json").is_file()


def with_resume_value(argv: list[str]) -> list[str]:
    """`--resume` with no value means `--resume latest` (the option's value is optional on the command
    line: `unlearn train R --resume`, or `--resume checkpoint-40`)."""
    result: list[str] = []
    for index, token in enumerate(argv):
        result.append(token)
        if token == "--resume":
            following = argv[index + 1] if index + 1 < len(argv) else None
            if following is None or not _is_checkpoint(following):
                result.append("latest")
    return result


def print_rows(
    columns: list[str],
    rows: list[list[str]],
    *,
    as_json: bool,
    title: str | None = None,
    keep_whole: tuple[str, ...] = (),
    numbers: tuple[str, ...] = (),
    empty: str | None = None,
    header: bool = False,
) -> None:
    """Rows as JSON objects (`--json`), tab-separated lines (piped: nothing wrapped or decorated; the column
    names first with `header`), or a table whose `keep_whole` columns never wrap and whose `numbers` columns
    are right-aligned (a terminal)."""
    import json

    from rich.markup import escape
    from rich.table import Table

    if as_json:
        keys = [column.replace(" ", "_") for column in columns]
        console.out(
            json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2), highlight=False
        )
        return
    if not rows and empty:
        console_err.print(escape(empty), highlight=False, soft_wrap=True)
        return
    if not console.is_terminal:  # rich would expand the tabs: write the lines as they are
        for row in [columns, *rows] if header else rows:
            console.file.write("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row) + "\n")
        console.file.flush()
        return
    widths = {
        i: max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns) if c in keep_whole
    }
    if widths and sum(widths.values()) + 3 * len(columns) + 24 > console.width:  # too narrow: one entry each
        for row in rows:
            whole = "  ".join(escape(row[i]) for i in widths)
            rest = "  ".join(escape(cell) for i, cell in enumerate(row) if i not in widths and cell)
            console.print(
                f"[bold]{whole}[/]" + (f"\n    [dim]{rest}[/]" if rest else ""),
                soft_wrap=True,
                highlight=False,
            )
        return
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        if column in keep_whole:  # as wide as its longest cell: the other columns fold instead
            width = max([len(column), *(len(row[index]) for row in rows)])
            table.add_column(column, no_wrap=True, min_width=width)
        else:
            table.add_column(column, overflow="fold", justify="right" if column in numbers else "left")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
