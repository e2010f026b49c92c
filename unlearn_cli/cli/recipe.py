"""`unlearn recipe list|show|validate|cp`: find, read, check and copy recipes without running them."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from unlearn_cli.cli.common import RECIPE_HELP, console, overrides_argument
from unlearn_cli.errors import UserError

app = typer.Typer(help="List, show, validate and copy recipes.", no_args_is_help=True)


def _description(path: Path) -> str:
    """A recipe's description: its first comment line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
        if stripped:
            break
    return ""


@app.command("list")
def list_recipes() -> None:
    """The packaged recipes (use their names wherever a recipe is expected)."""
    from unlearn_cli.recipes.loading import packaged_recipe_names, packaged_recipe_path, packaged_recipes_root

    table = Table(title=f"Packaged recipes ({packaged_recipes_root()})")
    table.add_column("name", no_wrap=True)
    table.add_column("description", overflow="fold")
    for name in packaged_recipe_names():
        path = packaged_recipe_path(name)
        table.add_row(name, escape(_description(path)) if path else "")
    console.print(table)


@app.command("show")
def show(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = overrides_argument(),
) -> None:
    """Print the fully resolved recipe (extends merged, overrides applied, ${...} interpolated) as TOML."""
    from unlearn_cli.recipes import dump_recipe, resolve_recipe

    text = dump_recipe(resolve_recipe(recipe, overrides).values)
    if console.is_terminal:
        console.print(Syntax(text, "toml", theme="ansi_dark", background_color="default", word_wrap=True))
    else:  # piped or redirected: plain, unwrapped TOML that can be saved and loaded again
        console.out(text, highlight=False, end="")


@app.command("validate")
def validate(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = overrides_argument(),
) -> None:
    """Check a recipe against the registered components without loading any model or data."""
    from unlearn_cli.recipes import load_recipe

    validated = load_recipe(recipe, overrides)
    console.print(f"{escape(str(validated.recipe.source))}: valid", soft_wrap=True, highlight=False)
    table = Table()
    for column in ("section", "handler", "import path"):
        table.add_column(column, overflow="fold")
    if validated.model is not None:
        table.add_row("model", validated.model.component.name, validated.model.component.import_path)
    for split, specs in validated.data.items():
        for name, spec in specs.items():
            table.add_row(f"data.{split}.{name}", spec.component.name, spec.component.import_path)
    for name, spec in validated.collators.items():
        table.add_row(f"collator.{name}", spec.component.name, spec.component.import_path)
    if validated.trainer is not None:
        table.add_row("trainer", validated.trainer.component.name, validated.trainer.component.import_path)
    for name, spec in validated.evaluators.items():
        table.add_row(f"eval.{name}", spec.component.name, spec.component.import_path)
    console.print(table)
    console.print(
        f"[green]✓[/] run '{escape(validated.run.name)}' would write to {escape(str(validated.output_dir))}"
    )


@app.command("cp")
def copy(
    name: str = typer.Argument(..., help="A packaged recipe name (see `unlearn recipe list`)."),
    destination: Path = typer.Argument(..., help="A file path or an existing folder."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing file."),
) -> None:
    """Copy a packaged recipe to edit it. Its `extends` still name packaged recipes, so it works anywhere."""
    from unlearn_cli.recipes.loading import locate_recipe, packaged_recipe_path

    source = packaged_recipe_path(name) or locate_recipe(name)
    target = destination / source.name if destination.is_dir() else destination
    if target.is_dir():
        raise UserError(
            f"{target} is a folder", hint="give a file path, or a folder that has no entry of that name"
        )
    if target.exists() and not force:
        raise UserError(
            f"{target} already exists", hint="choose another destination, or pass --force to overwrite it"
        )
    if not target.parent.is_dir():
        missing = next((p for p in reversed(target.parents) if not p.is_dir()), target.parent)
        if missing.exists():
            raise UserError(
                f"cannot write {target}: {missing} is a file, not a folder", hint="choose another destination"
            )
        raise UserError(
            f"folder {target.parent} does not exist", hint="create it first, or copy into an existing folder"
        )
    try:
        shutil.copyfile(source, target)
    except OSError as exc:  # permissions, a full disk, a read-only file system: the user must act on these
        raise UserError(
            f"cannot write {target}: {exc.strerror or exc}", hint="choose a destination you can write to"
        ) from exc
    console.print(f"copied {escape(name)} → {escape(str(target))}")
