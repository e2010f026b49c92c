"""`unlearn inspect-data RECIPE`: see how data is templated, tokenized and masked, without loading weights."""

from __future__ import annotations

import typer

from unlearn_cli.cli.common import RECIPE_HELP, overrides_argument


def inspect_data(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = overrides_argument(),
    split: list[str] = typer.Option(
        [], "--split", "-s", help="Only these data splits (repeatable); default: all splits of the recipe."
    ),
    num_items: int = typer.Option(3, "-n", "--num-items", min=0, help="Decoded items to print per dataset."),
) -> None:
    """Print decoded items (prompt dim, trained tokens highlighted) and per-split token statistics."""
    from unlearn_cli.pipelines.inspect import run_inspection

    run_inspection(recipe, overrides, splits=split, num_items=num_items)
