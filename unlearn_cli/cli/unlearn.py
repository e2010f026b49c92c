"""`unlearn unlearn RECIPE [overrides]`: make a fine-tuned model forget its recipe's forget data."""

from __future__ import annotations

import typer

from unlearn_cli.cli.common import RECIPE_HELP, overrides_argument

CONTEXT = {"help_option_names": ["-h", "--help"]}


def unlearn(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = overrides_argument(),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace an earlier run in the output folder (kept as <folder>.previous until this succeeds).",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Only validate the recipe, training arguments and output folder; change no weights.",
    ),
    merge: bool = typer.Option(
        False,
        "--merge",
        help="With a [model.peft] adapter: also save the base model with the adapter merged in "
        "(<output folder>/merged, loads with plain transformers).",
    ),
) -> None:
    """Unlearn: run the recipe's method (NPO, GradDiff, ...) on [data.forget] while keeping [data.retain].

    Saves the unlearned model and tokenizer, the resolved recipe (recipe.toml), a run manifest
    (manifest.json) and loss_log.jsonl (forget and retain loss terms per logged step), and prints the mean
    answer NLL on the forget and retain data before and after. `unlearn registry list --kind trainer`
    lists the methods; docs/methods.md defines them.
    """
    from unlearn_cli.pipelines.run import run_unlearning

    run_unlearning(recipe, overrides, overwrite=overwrite, dry_run=dry_run, merge=merge)
