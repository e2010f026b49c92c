"""`unlearn train RECIPE [overrides]`: fine-tune a model as a recipe describes."""

from __future__ import annotations

import typer

from unlearn_cli.cli.common import (
    RECIPE_HELP,
    dry_run_option,
    merge_option,
    overrides_argument,
    overwrite_option,
    resume_option,
)

CONTEXT = {"help_option_names": ["-h", "--help"]}


def train(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = overrides_argument(),
    overwrite: bool = overwrite_option(),
    resume: str | None = resume_option(),
    merge: bool = merge_option(),
    dry_run: bool = dry_run_option("train nothing"),
) -> None:
    """Fine-tune: build tokenizer, datasets, collator, model and trainer from RECIPE, train, and save.

    Saves the model and tokenizer (safetensors), the resolved recipe (recipe.toml), a run manifest
    (manifest.json) and loss_log.jsonl into the run's output folder. Ctrl-C (or SIGTERM) stops after the
    current step with a checkpoint; `--resume` continues from it. Multi-GPU: `accelerate launch -m
    unlearn_cli.cli train ...` (see scripts/finetune.sh and docs/distributed.md).
    """
    from unlearn_cli.pipelines.run import run_training

    run_training(recipe, overrides, overwrite=overwrite, dry_run=dry_run, resume=resume, merge=merge)
