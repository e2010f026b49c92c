"""`unlearn train`: fine-tune a model on a recipe's `data.train` and save everything needed to reuse it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.table import Table

from unlearn_cli.console import console
from unlearn_cli.errors import UserError
from unlearn_cli.outputs import (
    check_output_dir,
    environment_record,
    is_main_process,
    now,
    prepare_output_dir,
    replacing_previous_run,
    write_manifest,
    write_resolved_recipe,
)


def combine(datasets: dict[str, Any]) -> Any:
    """One dataset from a split's named datasets (concatenated in recipe order)."""
    from torch.utils.data import ConcatDataset

    parts = list(datasets.values())
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def _last_logged_loss(log_history: list[dict[str, Any]]) -> float | None:
    for entry in reversed(log_history):
        if "loss" in entry:
            return float(entry["loss"])
    return None


def check_trainable(recipe: Any, datasets: dict[str, Any]) -> None:
    """Each train dataset must give items the finetune trainer can use: input_ids with labels to match."""
    for name, dataset in datasets.items():
        key = f"data.train.{name}"
        file = recipe.recipe.origin(("data", "train", name))
        handler = recipe.data["train"][name].component.name
        if len(dataset) == 0:
            raise UserError(f"dataset '{name}' has no items", file=file, key=key, hint="check hf_args")
        item = dataset[0]
        if "input_ids" not in item or "labels" not in item:
            raise UserError(
                f"{handler} gives items made of {', '.join(sorted(item))}; fine-tuning needs items with "
                "input_ids and labels",
                file=file,
                key=f"{key}.handler",
                hint="paired datasets (original/alternate, forget/retain) are for unlearning methods; "
                "use QADataset here",
            )
        if len(item["input_ids"]) != len(item["labels"]):
            raise UserError(
                f"{handler} items are prompts with separate targets (predict_with_generate), not training "
                "sequences",
                file=file,
                key=f"{key}.args.predict_with_generate",
                hint="set predict_with_generate = false for training data",
            )


def run_training(
    reference: str, overrides: list[str] | None, *, overwrite: bool, dry_run: bool = False
) -> dict[str, Any]:
    """Validate, build, train and save; returns the run manifest (empty for a dry run)."""
    from transformers import set_seed

    from unlearn_cli.container import pipeline_for, training_arguments
    from unlearn_cli.recipes import load_recipe

    recipe = load_recipe(reference, overrides)
    recipe.require("model", "data.train", "collator", "trainer", command="train")
    output_dir = recipe.output_dir
    training_args = training_arguments(recipe, output_dir)  # before the folder: transformers may refuse them
    if dry_run:
        check_output_dir(output_dir, overwrite=overwrite)
        console.print(f"[green]✓[/] recipe valid; would train into {output_dir}")
        return {}
    previous = prepare_output_dir(output_dir, overwrite=overwrite)
    with replacing_previous_run(output_dir, previous):
        if is_main_process():
            write_resolved_recipe(output_dir, recipe.values)
        set_seed(training_args.seed)
        return _train(recipe, pipeline_for(recipe), training_args, output_dir)


def _train(recipe: Any, pipeline: Any, training_args: Any, output_dir: Path) -> dict[str, Any]:
    from unlearn_cli.evals.nll import mean_answer_nll

    started, clock = now(), time.perf_counter()
    train_sets = pipeline.datasets(split="train")
    check_trainable(recipe, train_sets)
    train_dataset = combine(train_sets)
    eval_dataset = pipeline.datasets(split="eval") if "eval" in recipe.data else None
    if eval_dataset is not None and len(eval_dataset) == 1:
        eval_dataset = next(iter(eval_dataset.values()))
    collator = pipeline.collator()
    model = pipeline.model()
    trainer_file = recipe.recipe.origin(("trainer",))
    try:
        trainer = pipeline.trainer(
            train_dataset=train_dataset, eval_dataset=eval_dataset, training_args=training_args
        )
    except (ImportError, RuntimeError) as exc:
        raise UserError(
            f"cannot set up the trainer: {exc}",
            file=trainer_file,
            key="trainer.args",
            hint="install the package it names, or change the setting that needs it (e.g. report_to)",
        ) from None

    nll: dict[str, float] = {}
    if recipe.run.measure_answer_nll:
        nll["answer_nll_before"] = mean_answer_nll(model, train_dataset, collator)
    try:
        result = trainer.train()
    except ImportError as exc:
        raise UserError(
            f"training could not start: {exc}",
            file=trainer_file,
            key="trainer.args.optim",
            hint='install the package it names, or choose another optimizer (e.g. optim = "adamw_torch")',
        ) from None
    if recipe.run.measure_answer_nll:
        nll["answer_nll_after"] = mean_answer_nll(trainer.model, train_dataset, collator)

    trainer.save_model(str(output_dir))
    manifest = {
        "command": "train",
        "run_name": recipe.run.name,
        "recipe": str(recipe.recipe.source),
        "seed": training_args.seed,
        "data_seed": training_args.data_seed,
        "started_at": started,
        "finished_at": now(),
        "wall_seconds": round(time.perf_counter() - clock, 2),
        "train_items": len(train_dataset),
        "global_steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "final_loss": _last_logged_loss(trainer.state.log_history),
        "mean_train_loss": float(result.training_loss),
        **nll,
        **environment_record(),
    }
    if is_main_process():
        write_manifest(output_dir, manifest)
        _print_summary(manifest, output_dir)
    return manifest


def _print_summary(manifest: dict[str, Any], output_dir: Any) -> None:
    table = Table(title=f"Training finished: {manifest['run_name']}", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in (
        "train_items",
        "global_steps",
        "final_loss",
        "mean_train_loss",
        "answer_nll_before",
        "answer_nll_after",
        "wall_seconds",
    ):
        if manifest.get(key) is not None:
            value = manifest[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"saved model, tokenizer, recipe.toml and manifest.json to [bold]{output_dir}[/]")
