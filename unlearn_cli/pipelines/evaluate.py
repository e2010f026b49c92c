"""`unlearn eval`: ask the container for the model and the recipe's benchmarks, run them, show and save.

The evaluation folder (`run.output_dir`) is meant to be come back to: results of an earlier evaluation in it
are reused when their fingerprint (model weights, tokenized data, metric settings and code) is identical,
and the table marks them; everything else is recomputed, `--overwrite` recomputes all. Under `accelerate
launch` every process scores its share and rank 0 writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from unlearn_cli.console import console, console_err
from unlearn_cli.errors import UserError
from unlearn_cli.evals.report import Reporter, format_value
from unlearn_cli.outputs import is_main_process, run_record
from unlearn_cli.run_folder import (
    MANIFEST,
    RECIPE_FILE,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    FolderState,
    RunInterrupted,
    RunStatus,
    inspect_folder,
    now,
    write_atomically,
    write_json,
)


def run_evaluation(
    reference: str, overrides: list[str] | None, *, overwrite: bool = False, pipeline: Any = None
) -> dict[str, Any]:
    """Validate the recipe, build its evaluators and model, evaluate, write files, print the table; returns
    the evaluations by recipe name. `pipeline` replaces the container built from the recipe (tests).

    SIGINT/SIGTERM stop it at once (exit 130/143): each benchmark's files are written whole at its end, so
    an interrupted evaluation leaves the results of the benchmarks it finished, which a rerun reuses."""
    from unlearn_cli.container import pipeline_for
    from unlearn_cli.evals.engine import weights_digest
    from unlearn_cli.interrupt import stop_requests
    from unlearn_cli.recipes import load_recipe
    from unlearn_cli.recipes.machine import check_machine
    from unlearn_cli.recipes.saving import saved_recipe_text

    evaluations: dict[str, Any] = {}
    output_dir, before = None, None
    with stop_requests():
        try:
            recipe = pipeline.recipe() if pipeline is not None else load_recipe(reference, overrides)
            recipe.require("model", "eval", command="eval")
            if pipeline is None:
                check_machine(recipe)
            pipeline = pipeline if pipeline is not None else pipeline_for(recipe)
            output_dir = Path(pipeline.output_dir()).expanduser().absolute()
            evaluators = pipeline.evaluators()  # arguments and metric names checked before any weights load
            _check_device_map(recipe)
            before = prepare_eval_folder(output_dir, [evaluator.name for evaluator in evaluators.values()])
            started, clock = now(), time.perf_counter()
            _start_processes()
            model = place_for_evaluation(pipeline.model())
            reporter = ConsoleReporter() if is_main_process() else Reporter()
            digest = weights_digest(model)  # once for all benchmarks
            for name, evaluator in evaluators.items():
                try:
                    evaluations[name] = evaluator.evaluate(
                        model,
                        output_dir=output_dir,
                        overwrite=overwrite,
                        reporter=reporter,
                        model_digest=digest,
                    )
                except UserError as exc:
                    origin = recipe.recipe.origin(("eval", name))
                    raise exc.under(f"eval.{name}.args").located(file=origin) from None
            if is_main_process():
                write_atomically(output_dir / RECIPE_FILE, saved_recipe_text(recipe, output_dir=output_dir))
                record = _manifest(recipe, evaluations, started, time.perf_counter() - clock)
                record["files"] = _written_files(output_dir, evaluations, before)
                write_json(output_dir / MANIFEST, record)
                print_results(evaluations, recipe.run.name, output_dir)
        except RunInterrupted as stopped:
            if is_main_process():
                created = before is not None and before.kind == "absent"
                _report_interrupted(stopped, output_dir, evaluations, created)
            raise
    return evaluations


def _report_interrupted(
    stopped: RunInterrupted, output_dir: Path | None, evaluations: dict[str, Any], created: bool
) -> None:
    """What an interrupted evaluation kept: the files of each benchmark it finished, which the same command
    reuses; a folder it made and left empty is removed."""
    finished = [path.name for evaluation in evaluations.values() for path in evaluation.files]
    if finished:
        kept = f"kept {', '.join(finished)} in {output_dir}; the same command reuses them"
    else:
        kept = "nothing was written"
        if created and output_dir is not None:
            with suppress(OSError):
                output_dir.rmdir()  # only when empty
    console_err.print(
        f"[yellow]interrupted ({escape(stopped.message or str(stopped))})[/]: {escape(kept)}",
        highlight=False,
        soft_wrap=True,
    )


def prepare_eval_folder(output_dir: Path, prefixes: list[str]) -> FolderState | None:
    """Create the evaluation folder, or accept one that holds earlier evaluations of ours; returns what it
    held before (None on the ranks other than 0, which leave the folder to rank 0).

    Refused: a folder of a `train`/`unlearn` run (its recipe.toml and manifest.json would be replaced), a
    `manifest.json` this toolkit did not write, a non-empty folder that is no evaluation folder, and
    `<NAME>_EVAL.json` files without the fingerprints this toolkit writes next to its own (someone else's
    results are never overwritten, even with --overwrite).
    """
    key = "run.output_dir"
    if not is_main_process():
        return None
    before = inspect_folder(output_dir)
    if before.kind == "file":
        raise UserError(f"output path {output_dir} exists and is not a folder", key=key)
    if before.entries:
        command = before.marker.get("command") if before.marker else None
        if before.marker is None and MANIFEST in before.entries:
            raise UserError(
                f"{output_dir / MANIFEST} was not written by unlearn-cli; refusing to replace it",
                key=key,
                hint="evaluate into another folder: run.output_dir=path/to/new_folder",
            )
        if command not in (None, "eval"):
            raise UserError(
                f"{output_dir} is the folder of an `unlearn {command}` run; evaluating into it would replace "
                "its recipe.toml and manifest.json",
                key=key,
                hint=f"evaluate into a folder of its own, e.g. run.output_dir={output_dir / 'eval'}",
            )
        for prefix in prefixes:
            if (output_dir / f"{prefix}_EVAL.json").is_file() and not (
                output_dir / f"{prefix}_FINGERPRINTS.json"
            ).is_file():
                raise UserError(
                    f"{output_dir / f'{prefix}_EVAL.json'} was not written by unlearn-cli (no fingerprints "
                    "next to it); refusing to replace it, even with --overwrite",
                    key=key,
                    hint="evaluate into another folder: run.output_dir=path/to/new_folder",
                )
        if command != "eval" and not any(output_dir.glob("*_FINGERPRINTS.json")):
            raise UserError(
                f"output folder {output_dir} is not empty and holds no earlier evaluation; refusing to write "
                "into it",
                key=key,
                hint="choose a new or empty folder: run.output_dir=path/to/new_folder",
            )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {output_dir}: {exc.strerror or exc}", key=key) from None
    return before


def _check_device_map(recipe: Any) -> None:
    """A CUDA device map without CUDA fails deep inside transformers; say so up front."""
    import torch

    model_args = recipe.model.args["model_args"]
    extra = getattr(model_args, "model_extra", None) or {}
    device_map = extra.get("device_map")
    if device_map is None or torch.cuda.is_available():
        return
    if "cuda" in str(device_map) or (isinstance(device_map, int) and not isinstance(device_map, bool)):
        raise UserError(
            f"device_map = {device_map!r} needs a CUDA GPU, and there is none",
            file=recipe.recipe.origin(("model", "model_args", "device_map")),
            key="model.model_args.device_map",
            hint="remove device_map: `unlearn eval` puts the model on the GPU if there is one, else the CPU",
        )


def _start_processes() -> None:
    """Join the process group of an `accelerate launch` (gloo on CPUs, NCCL on GPUs)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch
    from accelerate import PartialState

    PartialState(cpu=not torch.cuda.is_available())


def place_for_evaluation(model: Any) -> Any:
    """The model on this process's GPU, or the CPU without one; a model its loader already spread over
    several devices (a `device_map`) stays where it is."""
    import torch

    if getattr(model, "hf_device_map", None):
        return model
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        return model.to(device)
    return model.to("cpu")


def _written_files(output_dir: Path, evaluations: dict[str, Any], before: FolderState | None) -> list[str]:
    """What this folder's evaluations wrote: this one's files and those an earlier one recorded."""
    earlier = (before.marker if before is not None else None) or {}
    names = set(earlier.get("files") or ()) | {MANIFEST, RECIPE_FILE}
    names |= {path.name for evaluation in evaluations.values() for path in evaluation.files}
    return sorted(name for name in names if (output_dir / name).exists() or name == MANIFEST)


def _manifest(recipe: Any, evaluations: dict[str, Any], started: str, seconds: float) -> dict[str, Any]:
    """The folder's marker (the toolkit's run format, status finished) with the shared run record."""
    fields = {
        "benchmarks": {
            name: {
                "benchmark": evaluation.benchmark,
                "summary": evaluation.summary,
                "reused": sorted(evaluation.reused),
                "seconds": round(evaluation.seconds, 2),
                "files": [path.name for path in evaluation.files],
            }
            for name, evaluation in evaluations.items()
        },
        "started_at": started,
        "finished_at": now(),
        "wall_seconds": round(seconds, 2),
    }
    marker = {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION, "status": RunStatus.FINISHED.value}
    return {**marker, **run_record("eval", recipe, extra=fields)}


def print_results(evaluations: dict[str, Any], run_name: str, output_dir: Path) -> None:
    table = Table(title=f"Evaluation: {run_name}", title_justify="left")
    table.add_column("benchmark")
    table.add_column("metric")
    table.add_column("value", justify="right")
    reused = sum(len(set(e.summary) & e.reused) for e in evaluations.values())
    if reused:
        table.add_column("", justify="left")
    for name, evaluation in evaluations.items():
        for metric, value in evaluation.summary.items():
            note = ["reused" if metric in evaluation.reused else ""] if reused else []
            table.add_row(name, metric, format_value(value), *note)
    console.print(table)
    if reused:
        console.print(
            f"[dim]reused: {reused} value(s) computed earlier from the identical model, data and settings "
            "(--overwrite recomputes)[/]"
        )
    files = ", ".join(path.name for e in evaluations.values() for path in e.files)
    console.print(f"saved {files} to [bold]{output_dir}[/]")


class ConsoleReporter(Reporter):
    """Progress bars for the shared passes and one line per metric, on the console."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        progress = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        with progress:
            task = progress.add_task(description, total=total)
            yield lambda done: progress.advance(task, done)

    def metric_done(self, benchmark: str, name: str, value: object, seconds: float, reused: bool) -> None:
        how = "[dim]reused[/]" if reused else f"[dim]{seconds:.1f} s[/]"
        console.print(f"  [green]✓[/] {benchmark} {name} = {format_value(value)} {how}", highlight=False)

    def warning(self, text: str) -> None:
        from unlearn_cli.console import console_err

        console_err.print(f"[yellow]warning:[/] {text}", highlight=False)
