"""`unlearn train` and `unlearn unlearn`: ask the container for the trainer, run it, save what it produced.

Both commands share everything but what they measure: fine-tuning scores the training answers before and
after; unlearning scores the forget answers and the retain answers, so the summary shows at a glance
whether the model forgot the one while keeping the other.

A run goes: validate the recipe and check it against this machine; decide how the run folder may be used
(new, taken over, replaced, resumed; see `unlearn_cli.run_folder`); build tokenizer, data, model and trainer
(nothing is written yet, so a mistake found here leaves no trace); claim the folder; train, stopping cleanly
on SIGINT/SIGTERM, on a non-finite loss, or when the retain loss passes `run.stop_when_retain_loss_above`;
write the final model into a staging folder and move it into place; mark the run finished.
"""

from __future__ import annotations

import functools
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.markup import escape
from rich.table import Table

from unlearn_cli.console import console, console_err
from unlearn_cli.errors import RunFailed, UserError
from unlearn_cli.interrupt import StopRequest, signal_name, stop_requests
from unlearn_cli.run_folder import (
    EVAL_LOG,
    LOSS_LOG,
    RECIPE_FILE,
    FolderPlan,
    RunFolder,
    RunInterrupted,
    checkpoint_step,
    is_main_process,
    now,
    plan_run_folder,
    run_folder,
)

Command = Literal["train", "unlearn"]


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


@dataclass
class RunRequest:
    """What the user asked for, as typed: the messages that say how to resume repeat it."""

    command: Command
    reference: str
    overrides: list[str] | None
    merge: bool = False

    def resume_command(self) -> str:
        """The command that continues this run from its latest checkpoint."""
        recipe = self.reference
        if Path(recipe).expanduser().is_file():
            recipe = str(Path(recipe).expanduser().absolute())
        return shlex.join(["unlearn", self.command, recipe, *(self.overrides or []), "--resume"])


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        console_err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


def _check_same_recipe(plan: FolderPlan, text: str, digests: dict[str, str]) -> list[str]:
    """Refuse to resume with a recipe that trains differently (`digests`: of its values from the
    environment, which the saved text only names); return the harmless keys that changed."""
    from unlearn_cli.recipes.saving import (
        RESUMABLE_CHANGES,
        describe_value,
        environment_differences,
        recipe_differences,
    )

    saved = plan.path / RECIPE_FILE
    if not saved.is_file():
        raise UserError(
            f"{saved} is missing: the run's recipe cannot be compared with this one",
            key="--resume",
            hint="start over with --overwrite",
        )
    differences = {
        key: f"{describe_value(old)} → {describe_value(new)}"
        for key, old, new in recipe_differences(saved.read_text(encoding="utf-8"), text)
    }
    saved_digests = (plan.state.marker or {}).get("environment_digests") or {}
    for key in environment_differences(saved_digests, digests):
        differences.setdefault(key, "its value from the environment changed")
    blocking = [
        f"{key}: {change}" for key, change in sorted(differences.items()) if key not in RESUMABLE_CHANGES
    ]
    if blocking:
        more = f" and {len(blocking) - 8} more" if len(blocking) > 8 else ""
        raise UserError(
            f"the recipe differs from the one the interrupted run started with ({saved}): "
            f"{'; '.join(blocking[:8])}{more}",
            key="--resume",
            hint="resume with the same recipe and overrides (or the saved one: unlearn "
            f"{(plan.state.marker or {}).get('command')} "
            f"{saved} --resume), or start over with --overwrite",
        )
    return sorted(differences)


def run(
    command: Command,
    reference: str,
    overrides: list[str] | None,
    *,
    overwrite: bool = False,
    dry_run: bool = False,
    resume: str | None = None,
    pipeline: Any = None,
    merge: bool = False,
) -> dict[str, Any]:
    """Validate the recipe, assemble the run in the container, train, save; returns the run manifest (empty
    for a dry run). `pipeline` replaces the container built from the recipe (tests pass one with providers
    overridden). `merge`: a PEFT run also saves its base model with the adapter merged in
    (`<output_dir>/merged`)."""
    from unlearn_cli.container import pipeline_for
    from unlearn_cli.models.adapters import check_merge
    from unlearn_cli.outputs import run_record
    from unlearn_cli.pipelines.failures import explained
    from unlearn_cli.recipes import load_recipe
    from unlearn_cli.recipes.machine import check_machine
    from unlearn_cli.recipes.saving import environment_digests, saved_recipe_text

    if overwrite and resume is not None:
        raise UserError(
            "--overwrite and --resume contradict each other",
            hint="--resume continues the run in the folder; --overwrite replaces it with a new one",
        )
    request = RunRequest(command, reference, overrides, merge=merge)
    folder: RunFolder | None = None
    with stop_requests() as stop:
        try:
            recipe = pipeline.recipe() if pipeline is not None else load_recipe(reference, overrides)
            recipe.require("model", "collator", "trainer", command=command)
            _check_command(recipe, command)
            check_merge(recipe, merge)
            pipeline = pipeline if pipeline is not None else pipeline_for(recipe)
            check_machine(recipe, training_args=pipeline.training_args)
            training_args = pipeline.training_args()
            output_dir = Path(pipeline.output_dir()).expanduser().absolute()
            plan = plan_run_folder(output_dir, overwrite=overwrite, resume=resume, command=command)
            recipe_text = saved_recipe_text(recipe, output_dir=output_dir)
            digests = environment_digests(recipe)
            changed = _check_same_recipe(plan, recipe_text, digests) if plan.action == "resume" else []
            _print_notes(plan.notes)
            if dry_run:
                console.print(
                    f"[green]✓[/] recipe valid; would {command} into {escape(plan.describe())}",
                    soft_wrap=True,
                )
                return {}

            from transformers import set_seed

            set_seed(training_args.seed)
            with explained(recipe, "loading the data", training_args):
                pipeline.split_datasets()
            with explained(recipe, "setting up the model and trainer", training_args):
                trainer = pipeline.trainer()
            extra = {"output_dir": str(output_dir), "environment_digests": digests}
            record = (  # the other ranks of a launch write no record
                run_record(command, recipe, training_args=training_args, extra=extra)
                if is_main_process()
                else {}
            )
            with run_folder(
                output_dir, command=command, overwrite=overwrite, resume=resume, record=record, plan=plan
            ) as folder:
                if plan.action != "resume":
                    folder.write_text(RECIPE_FILE, recipe_text)
                elif changed:
                    folder.update(resumed_with_changes=changed)
                manifest = _train(request, recipe, pipeline, trainer, folder, stop)
        except RunInterrupted as interrupted:
            if is_main_process():
                if not interrupted.graceful:
                    _report_abrupt_stop(interrupted, folder, request)
                _print_notes(interrupted.notes)
            raise
        if is_main_process():
            _print_summary(manifest, folder)
        if stop.deferred is not None:
            console_err.print(
                f"[yellow]{signal_name(stop.deferred)} arrived while the outputs were written; the run had "
                "finished and is complete[/]",
                highlight=False,
            )
    return manifest


run_training = functools.partial(run, "train")
"""`unlearn train`: validate, build, fine-tune, save."""
run_unlearning = functools.partial(run, "unlearn")
"""`unlearn unlearn`: validate, build, unlearn, save."""


def _measured_splits(command: Command, pipeline: Any) -> dict[str, Any]:
    splits = pipeline.split_datasets()
    if command == "train":
        return {"answer": pipeline.train_dataset()}
    return {name: splits[name] for name in ("forget", "retain") if name in splits}


def _train(
    request: RunRequest, recipe: Any, pipeline: Any, trainer: Any, folder: RunFolder, stop: StopRequest
) -> dict[str, Any]:
    from unlearn_cli.evals.callback import final_summaries
    from unlearn_cli.evals.nll import mean_answer_nll
    from unlearn_cli.launch import launch_record
    from unlearn_cli.models.adapters import save_merged
    from unlearn_cli.pipelines.callbacks import (
        DivergenceGuard,
        LossLog,
        RecordCheckpoints,
        RetainLossLimit,
        StopOnSignal,
        keep_steps_up_to,
    )
    from unlearn_cli.pipelines.failures import explained

    command, training_args = request.command, pipeline.training_args()
    started, clock = now(), time.perf_counter()
    resume_from = folder.resume_from
    resume_step = checkpoint_step(resume_from) if resume_from is not None else None
    if resume_step is not None and folder.main:
        for log in (LOSS_LOG, EVAL_LOG):
            keep_steps_up_to(folder.path / log, resume_step)
    trainer.add_callback(LossLog(folder.path / LOSS_LOG))
    trainer.add_callback(RecordCheckpoints(folder))
    on_signal = StopOnSignal(stop)
    trainer.add_callback(on_signal)
    limit = None
    if recipe.run.stop_when_retain_loss_above is not None:
        limit = RetainLossLimit(recipe.run.stop_when_retain_loss_above)
        trainer.add_callback(limit)
    guard = DivergenceGuard(trainer)
    trainer.add_callback(guard)  # last: a diverged step must not be saved, whatever the others asked

    collator = pipeline.collator()
    measure = recipe.run.measure_answer_nll
    if measure is None:
        measure = command == "unlearn"
    measured = _measured_splits(command, pipeline) if measure else {}
    nll: dict[str, float] = {}
    with explained(recipe, "measuring the answers before training", training_args):
        for name, dataset in measured.items():
            nll[f"{name}_nll_before"] = mean_answer_nll(trainer.model, dataset, collator)

    stop.phase = "training"
    with explained(recipe, "training", training_args):
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    stop.phase = "finishing"

    if guard.divergence is not None:
        raise _diverged(guard.divergence, folder)
    if on_signal.signum is not None:
        if trainer.state.global_step < trainer.state.max_steps:
            raise _interrupted(on_signal, folder, request, trainer)
        # the signal came with the last step: the run is complete, and its checkpoint is not needed
        stop.deferred = on_signal.signum
        made = list(folder.marker.get("interruption_checkpoints") or [])
        folder.update(interruption_checkpoints=[*made, f"checkpoint-{on_signal.stopped_at}"])
    if trainer.state.global_step == 0:
        raise RunFailed(
            "the run took no optimizer step: the training data gives no full batch",
            key="trainer.args",
            hint="check the number of items (see `unlearn inspect-data`) against per_device_train_batch_size "
            "and dataloader_drop_last",
        )

    staging = folder.prepare_staging()
    with explained(recipe, "saving the model", training_args):
        trainer.save_model(str(staging))
        merged = (
            save_merged(recipe, pipeline.tokenizer(), staging)
            if request.merge and is_main_process()
            else None
        )
    with explained(recipe, "measuring the answers after training", training_args):
        for name, dataset in measured.items():
            nll[f"{name}_nll_after"] = mean_answer_nll(trainer.model, dataset, collator)

    splits = pipeline.split_datasets()
    results: dict[str, Any] = {
        "run_started_at": started,
        "wall_seconds": round(time.perf_counter() - clock, 2),
        "train_items": len(pipeline.train_dataset()),
        **{f"{split}_items": len(dataset) for split, dataset in splits.items() if split != "train"},
        "global_steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "epochs": trainer.state.epoch,
        "final_loss": _last_logged(trainer.state.log_history, "loss"),
        "mean_train_loss": float(result.training_loss),
        **{f"final_{key}": _last_logged(trainer.state.log_history, key) for key in _term_keys(trainer)},
        **nll,
        "seed": training_args.seed,
        **launch_record(trainer, merged=folder.path / merged.name if merged is not None else None),
        **final_summaries(trainer),  # the recipe's [eval.NAME] benchmarks at the end of training, if any
    }
    if resume_from is not None:
        results["resumed_from"] = resume_from.name
    if limit is not None and limit.stopped is not None:
        results["stopped_early"] = {
            "step": limit.stopped.step,
            "retain_loss": limit.stopped.retain_loss,
            "limit": limit.stopped.limit,
        }
    interruption_checkpoints = list(folder.marker.get("interruption_checkpoints") or [])
    if interruption_checkpoints and getattr(training_args.save_strategy, "value", None) == "no":
        # made only to survive the interruption: gone once the run is finished
        folder.commit(remove=interruption_checkpoints, **results, interruption_checkpoints=[])
    else:
        folder.commit(**results)
    return dict(folder.marker)


def _diverged(divergence: Any, folder: RunFolder) -> RunFailed:
    bad = divergence.bad_terms
    shown = ", ".join(
        f"{name}_loss = {value:.4g}"
        for name, value in sorted(divergence.terms.items(), key=lambda item: item[0] not in bad)
    )
    if bad:
        what = f"the {' and '.join(bad)} loss term{'s' if len(bad) > 1 else ''} became non-finite"
    elif divergence.terms:
        what = "the gradient became non-finite while the loss terms were still finite"
    else:
        what = "the loss or its gradient became non-finite"
    checkpoints = folder.checkpoints()
    kept = (
        f"the last good checkpoint is {checkpoints[-1].name} in {folder.path}"
        if checkpoints
        else "no checkpoint had been saved (trainer.args.save_strategy), so nothing was kept"
    )
    folder.update(diverged={"step": divergence.step, "terms": divergence.terms, "bad_terms": bad})
    return RunFailed(
        f"training diverged at step {divergence.step}: {what}"
        + (f" ({shown})" if shown else "")
        + f"; {kept}",
        hint="lower the learning rate, keep gradient clipping on (max_grad_norm), or stop earlier "
        "(max_steps, or run.stop_when_retain_loss_above for unlearning); then start over with --overwrite",
    )


def _report_abrupt_stop(interrupted: RunInterrupted, folder: RunFolder | None, request: RunRequest) -> None:
    """What is left after a signal that stopped the run at once (during setup, or a second signal)."""
    checkpoints = folder.checkpoints() if folder is not None else []
    if folder is None:
        kept = "nothing was written"
    elif checkpoints:
        kept = f"kept {checkpoints[-1]} (the last checkpoint saved before)"
    else:
        kept = (
            f"no checkpoint had been saved; {folder.path} is marked interrupted and the next run replaces it"
        )
    console_err.print(
        f"[yellow]interrupted ({escape(interrupted.message or str(interrupted))})[/], stopped at once: "
        f"{escape(kept)}",
        highlight=False,
        soft_wrap=True,
    )
    if checkpoints:
        console_err.print(
            f"resume with, from {escape(os.getcwd())}:\n  {escape(request.resume_command())}",
            highlight=False,
            soft_wrap=True,
        )


def _interrupted(on_signal: Any, folder: RunFolder, request: RunRequest, trainer: Any) -> RunInterrupted:
    name = signal_name(on_signal.signum)
    step = on_signal.stopped_at
    checkpoint = folder.path / f"checkpoint-{step}"
    made = list(folder.marker.get("interruption_checkpoints") or [])
    if checkpoint.name not in made:
        made.append(checkpoint.name)
    folder.update(interruption_checkpoints=made, last_checkpoint=checkpoint.name, global_step=step)
    total = trainer.state.max_steps
    if is_main_process():
        console_err.print(
            f"[yellow]interrupted by {name} at step {step} of {total}[/]: kept {escape(str(checkpoint))} "
            "(model, "
            "optimizer, scheduler, RNG states and data position)",
            highlight=False,
            soft_wrap=True,
        )
        script = "finetune.sh" if request.command == "train" else "unlearn.sh"
        launcher = f" (with the same launcher, e.g. scripts/{script})" if trainer.args.world_size > 1 else ""
        console_err.print(
            f"resume with{launcher}, from {escape(os.getcwd())}:\n  {escape(request.resume_command())}",
            highlight=False,
            soft_wrap=True,
        )
    return RunInterrupted(on_signal.signum, f"stopped by {name} at step {step}", graceful=True)


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


def _print_summary(manifest: dict[str, Any], folder: RunFolder) -> None:
    verb = "Training" if manifest["command"] == "train" else f"Unlearning ({manifest['trainer']})"
    table = Table(title=f"{verb} finished: {manifest['run_name']}", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in SUMMARY_KEYS:
        if manifest.get(key) is not None:
            value = manifest[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    stopped = manifest.get("stopped_early")
    if stopped:
        console.print(
            f"[yellow]stopped early[/] at step {stopped['step']}: retain loss {stopped['retain_loss']:.4f} "
            f"passed run.stop_when_retain_loss_above = {stopped['limit']}",
            highlight=False,
        )
    console.print(
        f"saved model, tokenizer, recipe.toml and manifest.json to [bold]{escape(str(folder.path))}[/]",
        soft_wrap=True,
    )
