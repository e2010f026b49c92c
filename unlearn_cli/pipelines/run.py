"""`unlearn train` and `unlearn unlearn`: ask the container for the trainer, run it, save what it produced.

Both commands share everything but what they measure: fine-tuning scores the training answers before and
after; unlearning scores the forget answers and the retain answers, so the summary shows at a glance
whether the model forgot the one while keeping the other.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from rich.table import Table
from transformers import TrainerCallback

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

Command = Literal["train", "unlearn"]
LOSS_LOG = "loss_log.jsonl"
LOGGED_KEYS = ("loss", "learning_rate", "grad_norm")


class LossLog(TrainerCallback):
    """Append every logged training step (total loss, each loss term, learning rate, grad norm) as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        record: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch}
        record.update({k: v for k, v in logs.items() if k in LOGGED_KEYS or k.endswith("_loss")})
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")


def _check_command(recipe: Any, command: Command) -> None:
    contract = recipe.trainer.contract
    if contract.command == command:
        return
    name = recipe.trainer.component.name
    what = "an unlearning method" if contract.command == "unlearn" else "a fine-tuning trainer"
    raise UserError(
        f"trainer '{name}' is {what}; `unlearn {command}` runs "
        + ("unlearning methods" if command == "unlearn" else "fine-tuning"),
        file=recipe.recipe.origin(("trainer", "handler")),
        key="trainer.handler",
        hint=f"run it with `unlearn {contract.command} ...`",
    )


def run_training(
    reference: str, overrides: list[str] | None, *, overwrite: bool, dry_run: bool = False
) -> dict[str, Any]:
    """`unlearn train`: validate, build, fine-tune, save; returns the run manifest (empty for a dry run)."""
    return run("train", reference, overrides, overwrite=overwrite, dry_run=dry_run)


def run_unlearning(
    reference: str, overrides: list[str] | None, *, overwrite: bool, dry_run: bool = False
) -> dict[str, Any]:
    """`unlearn unlearn`: validate, build, unlearn, save; returns the run manifest (empty for a dry run)."""
    return run("unlearn", reference, overrides, overwrite=overwrite, dry_run=dry_run)


def run(
    command: Command,
    reference: str,
    overrides: list[str] | None,
    *,
    overwrite: bool,
    dry_run: bool = False,
    pipeline: Any = None,
) -> dict[str, Any]:
    """Validate the recipe, assemble the run in the container, train, save; `pipeline` replaces the
    container built from the recipe (tests pass one with providers overridden)."""
    from transformers import set_seed

    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe

    recipe = pipeline.recipe() if pipeline is not None else load_recipe(reference, overrides)
    recipe.require("model", "collator", "trainer", command=command)
    _check_command(recipe, command)
    pipeline = pipeline if pipeline is not None else pipeline_for(recipe)
    output_dir = pipeline.output_dir()
    training_args = pipeline.training_args()  # before the folder: transformers may refuse them
    if dry_run:
        check_output_dir(output_dir, overwrite=overwrite)
        console.print(f"[green]✓[/] recipe valid; would {command} into {output_dir}")
        return {}
    previous = prepare_output_dir(output_dir, overwrite=overwrite)
    with replacing_previous_run(output_dir, previous):
        if is_main_process():
            write_resolved_recipe(output_dir, recipe.values)
        set_seed(training_args.seed)
        return _run(command, recipe, pipeline, training_args, output_dir)


def _measured_splits(command: Command, pipeline: Any) -> dict[str, Any]:
    splits = pipeline.split_datasets()
    if command == "train":
        return {"answer": pipeline.train_dataset()}
    return {name: splits[name] for name in ("forget", "retain") if name in splits}


def _run(
    command: Command, recipe: Any, pipeline: Any, training_args: Any, output_dir: Path
) -> dict[str, Any]:
    from unlearn_cli.evals.callback import final_summaries
    from unlearn_cli.evals.nll import mean_answer_nll

    started, clock = now(), time.perf_counter()
    trainer_file = recipe.recipe.origin(("trainer",))
    try:
        trainer = pipeline.trainer()
    except (ImportError, RuntimeError) as exc:
        raise UserError(
            f"cannot set up the trainer: {exc}",
            file=trainer_file,
            key="trainer.args",
            hint="install the package it names, or change the setting that needs it (e.g. report_to)",
        ) from None
    trainer.add_callback(LossLog(output_dir / LOSS_LOG))
    collator = pipeline.collator()
    measure = recipe.run.measure_answer_nll
    if measure is None:
        measure = command == "unlearn"
    measured = _measured_splits(command, pipeline) if measure else {}
    nll: dict[str, float] = {}
    for name, dataset in measured.items():
        nll[f"{name}_nll_before"] = mean_answer_nll(trainer.model, dataset, collator)
    try:
        result = trainer.train()
    except ImportError as exc:
        raise UserError(
            f"training could not start: {exc}",
            file=trainer_file,
            key="trainer.args.optim",
            hint='install the package it names, or choose another optimizer (e.g. optim = "adamw_torch")',
        ) from None
    for name, dataset in measured.items():
        nll[f"{name}_nll_after"] = mean_answer_nll(trainer.model, dataset, collator)

    trainer.save_model(str(output_dir))
    splits = pipeline.split_datasets()
    manifest = {
        "command": command,
        "run_name": recipe.run.name,
        "recipe": str(recipe.recipe.source),
        "trainer": recipe.trainer.component.name,
        "method_args": _plain(recipe.trainer.method_args),
        "seed": training_args.seed,
        "data_seed": training_args.data_seed,
        "started_at": started,
        "finished_at": now(),
        "wall_seconds": round(time.perf_counter() - clock, 2),
        "train_items": len(pipeline.train_dataset()),
        **{f"{split}_items": len(dataset) for split, dataset in splits.items() if split != "train"},
        "global_steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "final_loss": _last_logged(trainer.state.log_history, "loss"),
        "mean_train_loss": float(result.training_loss),
        **{f"final_{key}": _last_logged(trainer.state.log_history, key) for key in _term_keys(trainer)},
        **nll,
        **final_summaries(trainer),  # the recipe's [eval.NAME] benchmarks at the end of training, if any
        **environment_record(),
    }
    if is_main_process():
        write_manifest(output_dir, manifest)
        _print_summary(manifest, output_dir)
    return manifest


def _plain(method_args: Any) -> Any:
    return method_args.model_dump() if hasattr(method_args, "model_dump") else dict(method_args)


def _term_keys(trainer: Any) -> list[str]:
    keys = {key for entry in trainer.state.log_history for key in entry if key.endswith("_loss")}
    return sorted(key for key in keys if key not in ("train_loss", "eval_loss"))


def _last_logged(log_history: list[dict[str, Any]], key: str) -> float | None:
    for entry in reversed(log_history):
        if key in entry:
            return float(entry[key])
    return None


SUMMARY_KEYS = (
    "train_items",
    "forget_items",
    "retain_items",
    "global_steps",
    "final_loss",
    "final_forget_loss",
    "final_retain_loss",
    "mean_train_loss",
    "answer_nll_before",
    "answer_nll_after",
    "forget_nll_before",
    "forget_nll_after",
    "retain_nll_before",
    "retain_nll_after",
    "wall_seconds",
)


def _print_summary(manifest: dict[str, Any], output_dir: Any) -> None:
    verb = "Training" if manifest["command"] == "train" else f"Unlearning ({manifest['trainer']})"
    table = Table(title=f"{verb} finished: {manifest['run_name']}", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in SUMMARY_KEYS:
        if manifest.get(key) is not None:
            value = manifest[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"saved model, tokenizer, recipe.toml and manifest.json to [bold]{output_dir}[/]")
