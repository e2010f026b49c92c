"""`unlearn train`: fine-tune a model on a recipe's `data.train` and save everything needed to reuse it."""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from unlearn_cli.console import console
from unlearn_cli.outputs import (
    environment_record,
    is_main_process,
    now,
    prepare_output_dir,
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


def run_training(reference: str, overrides: list[str] | None, *, overwrite: bool) -> dict[str, Any]:
    """Validate, build, train and save; returns the run manifest."""
    from transformers import set_seed

    from unlearn_cli.container import pipeline_for, training_arguments
    from unlearn_cli.evals.nll import mean_answer_nll
    from unlearn_cli.recipes import load_recipe

    recipe = load_recipe(reference, overrides)
    recipe.require("model", "data.train", "collator", "trainer", command="train")
    output_dir = recipe.output_dir
    training_args = training_arguments(recipe, output_dir)  # before the folder: transformers may refuse them
    prepare_output_dir(output_dir, overwrite=overwrite)

    started, clock = now(), time.perf_counter()
    set_seed(recipe.run.seed)
    pipeline = pipeline_for(recipe)
    train_dataset = combine(pipeline.datasets(split="train"))
    eval_dataset = pipeline.datasets(split="eval") if "eval" in recipe.data else None
    if eval_dataset is not None and len(eval_dataset) == 1:
        eval_dataset = next(iter(eval_dataset.values()))
    collator = pipeline.collator()
    model = pipeline.model()
    trainer = pipeline.trainer(
        train_dataset=train_dataset, eval_dataset=eval_dataset, training_args=training_args
    )

    nll: dict[str, float] = {}
    if recipe.run.measure_answer_nll:
        nll["answer_nll_before"] = mean_answer_nll(model, train_dataset, collator)
    result = trainer.train()
    if recipe.run.measure_answer_nll:
        nll["answer_nll_after"] = mean_answer_nll(trainer.model, train_dataset, collator)

    trainer.save_model(str(output_dir))
    manifest = {
        "command": "train",
        "run_name": recipe.run.name,
        "recipe": str(recipe.recipe.source),
        "seed": recipe.run.seed,
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
        write_resolved_recipe(output_dir, recipe.values)
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
