"""`unlearn train RECIPE [overrides]`: fine-tune a model as a recipe describes."""

from __future__ import annotations

import typer

from unlearn_cli.cli.common import RECIPE_HELP, overrides_argument

CONTEXT = {"help_option_names": ["-h", "--help"]}


def train(
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
        help="Only validate the recipe, training arguments and output folder; train nothing.",
    ),
    merge: bool = typer.Option(
        False,
        "--merge",
        help="With a [model.peft] adapter: also save the base model with the adapter merged in "
        "(<output folder>/merged, loads with plain transformers).",
    ),
) -> None:
    """Fine-tune: build tokenizer, datasets, collator, model and trainer from RECIPE, train, and save.

    Saves the model and tokenizer (safetensors), the resolved recipe (recipe.toml) and a run manifest
    (manifest.json) into the run's output folder. Multi-GPU: `accelerate launch -m unlearn_cli.cli train ...`
    (see scripts/finetune.sh and docs/distributed.md).
    """
    from unlearn_cli.pipelines.run import run_training

    run_training(recipe, overrides, overwrite=overwrite, dry_run=dry_run, merge=merge)
