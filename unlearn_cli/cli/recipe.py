"""`unlearn recipe list|show|validate|cp`: find, read, check and copy recipes without running them."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.markup import escape
from rich.syntax import Syntax

from unlearn_cli.cli.common import RECIPE_HELP, console, json_option, overrides_argument, print_rows
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
def list_recipes(as_json: bool = json_option()) -> None:
    """The packaged recipes (use their names wherever a recipe is expected); tab-separated when piped."""
    from unlearn_cli.recipes.loading import (
        packaged_accelerate_config_names,
        packaged_accelerate_config_path,
        packaged_recipe_names,
        packaged_recipe_path,
        packaged_recipes_root,
    )

    rows = []
    for name in packaged_recipe_names():
        path = packaged_recipe_path(name)
        rows.append([name, "recipe", _description(path) if path else "", str(path or "")])
    for name in packaged_accelerate_config_names():
        path = packaged_accelerate_config_path(name)
        rows.append([name, "accelerate config", _description(path) if path else "", str(path or "")])
    if as_json:
        print_rows(["name", "kind", "description", "path"], rows, as_json=True)
        return
    recipes = [[name, description] for name, kind, description, _ in rows if kind == "recipe"]
    configs = [[name, description] for name, kind, description, _ in rows if kind != "recipe"]
    print_rows(
        ["name", "description"],
        recipes,
        as_json=False,
        title=f"Packaged recipes ({packaged_recipes_root()})",
        keep_whole=("name",),
        empty=f"no packaged recipes found in {packaged_recipes_root()}",
    )
    if configs:
        print_rows(
            ["name", "description"],
            configs,
            as_json=False,
            title="Accelerate configs (ACCELERATE_CONFIG=NAME scripts/finetune.sh ...)",
            keep_whole=("name",),
        )


@app.command("show")
def show(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = overrides_argument(),
) -> None:
    """Print the fully resolved recipe (extends merged, overrides applied, ${...} interpolated) as TOML.

    Values read from the environment (`${env:NAME}`, e.g. a token) are shown as that reference, never as
    their value.
    """
    from unlearn_cli.recipes import recipe_text, resolve_recipe

    text = recipe_text(resolve_recipe(recipe, overrides))
    if console.is_terminal:
        console.print(Syntax(text, "toml", theme="ansi_dark", background_color="default", word_wrap=True))
    else:  # piped or redirected: plain, unwrapped TOML that can be saved and loaded again
        console.out(text, highlight=False, end="")


@app.command("validate")
def validate(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = overrides_argument(),
    recipe_only: bool = typer.Option(
        False,
        "--recipe-only",
        help="Check only the recipe, not this machine (local model and data paths, hub access, output "
        "folder, bf16/flash-attention support): for a recipe meant to run elsewhere.",
    ),
) -> None:
    """Check a recipe without loading any model or data: every section against the registered
    components and value ranges, then (unless --recipe-only) against this machine."""
    from unlearn_cli.recipes import load_recipe
    from unlearn_cli.recipes.machine import check_machine
    from unlearn_cli.run_folder import inspect_folder

    validated = load_recipe(recipe, overrides)
    if not recipe_only:
        check_machine(validated)
    console.print(f"{escape(str(validated.recipe.source))}: valid", soft_wrap=True, highlight=False)
    rows = []
    if validated.model is not None:
        rows.append(["model", validated.model.component.name, validated.model.component.import_path])
    for split, specs in validated.data.items():
        for name, spec in specs.items():
            rows.append([f"data.{split}.{name}", spec.component.name, spec.component.import_path])
    for name, spec in validated.collators.items():
        rows.append([f"collator.{name}", spec.component.name, spec.component.import_path])
    if validated.trainer is not None:
        rows.append(["trainer", validated.trainer.component.name, validated.trainer.component.import_path])
    for name, spec in validated.evaluators.items():
        rows.append([f"eval.{name}", spec.component.name, spec.component.import_path])
    print_rows(
        ["section", "handler", "import path"], rows, as_json=False, keep_whole=("handler", "import path")
    )
    output_dir = validated.output_dir.expanduser().absolute()
    state = inspect_folder(output_dir)
    holds = f" (it holds {state.describe()})" if state.kind == "run" else ""
    console.print(
        f"[green]✓[/] run '{escape(validated.run.name)}' would write to {escape(str(validated.output_dir))}"
        f"{escape(holds)}" + ("" if not recipe_only else " [dim](this machine not checked)[/]"),
        soft_wrap=True,
    )


@app.command("cp")
def copy(
    name: str = typer.Argument(..., help="A packaged recipe or accelerate config (`unlearn recipe list`)."),
    destination: Path = typer.Argument(..., help="A file path or an existing folder."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing file."),
) -> None:
    """Copy a packaged recipe (or accelerate config) to edit it. Its `extends` still name packaged recipes,
    so it works anywhere."""
    from unlearn_cli.recipes.loading import (
        locate_recipe,
        packaged_accelerate_config_path,
        packaged_recipe_path,
    )

    source = packaged_recipe_path(name) or packaged_accelerate_config_path(name) or locate_recipe(name)
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
