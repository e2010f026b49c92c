"""`unlearn train|unlearn RECIPE [overrides]`: the two commands that run a trainer (`pipelines.run`); they
share their arguments and differ in what their help says."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from unlearn_cli.cli.common import (
    RECIPE_HELP,
    dry_run_option,
    merge_option,
    overrides_argument,
    overwrite_option,
    resume_option,
)

if TYPE_CHECKING:
    from unlearn_cli.pipelines.run import Command


def _run_command(command: Command, doc: str, dry_run_effect: str) -> Callable[..., None]:
    def run_command(
        recipe: str = typer.Argument(..., help=RECIPE_HELP),
        overrides: list[str] = overrides_argument(),
        overwrite: bool = overwrite_option(),
        resume: str | None = resume_option(),
        merge: bool = merge_option(),
        dry_run: bool = dry_run_option(dry_run_effect),
    ) -> None:
        from unlearn_cli.pipelines.run import run

        run(command, recipe, overrides, overwrite=overwrite, dry_run=dry_run, resume=resume, merge=merge)

    run_command.__doc__ = doc
    return run_command


train = _run_command(
    "train",
    """Fine-tune: build tokenizer, datasets, collator, model and trainer from RECIPE, train, and save.

    Saves the model and tokenizer (safetensors), the resolved recipe (recipe.toml), a run manifest
    (manifest.json) and loss_log.jsonl into the run's output folder. Ctrl-C (or SIGTERM) stops after the
    current step with a checkpoint; `--resume` continues from it. Multi-GPU: `accelerate launch -m
    unlearn_cli.cli train ...` (see scripts/finetune.sh and docs/distributed.md).
    """,
    "train nothing",
)

unlearn = _run_command(
    "unlearn",
    """Unlearn: run the recipe's method (NPO, GradDiff, ...) on [data.forget] while keeping [data.retain].

    Saves the unlearned model and tokenizer, the resolved recipe (recipe.toml), a run manifest
    (manifest.json) and loss_log.jsonl (forget and retain loss terms per logged step), and prints the mean
    answer NLL on the forget and retain data before and after. Ctrl-C (or SIGTERM) stops after the current
    step with a checkpoint; `--resume` continues from it. `unlearn registry list --kind trainer` lists the
    methods; docs/methods.md defines them.
    """,
    "change no weights",
)
