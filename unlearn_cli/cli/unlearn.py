"""`unlearn unlearn RECIPE [overrides]`: make a fine-tuned model forget its recipe's forget data."""

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


def unlearn(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = overrides_argument(),
    overwrite: bool = overwrite_option(),
    resume: str | None = resume_option(),
    merge: bool = merge_option(),
    dry_run: bool = dry_run_option("change no weights"),
) -> None:
    """Unlearn: run the recipe's method (NPO, GradDiff, ...) on [data.forget] while keeping [data.retain].

    Saves the unlearned model and tokenizer, the resolved recipe (recipe.toml), a run manifest
    (manifest.json) and loss_log.jsonl (forget and retain loss terms per logged step), and prints the mean
    answer NLL on the forget and retain data before and after. Ctrl-C (or SIGTERM) stops after the current
    step with a checkpoint; `--resume` continues from it. `unlearn registry list --kind trainer` lists the
    methods; docs/methods.md defines them.
    """
    from unlearn_cli.pipelines.run import run_unlearning

    run_unlearning(recipe, overrides, overwrite=overwrite, dry_run=dry_run, resume=resume, merge=merge)
