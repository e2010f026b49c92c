"""The offline quickstart, end to end: `unlearn quickstart [--output DIR] [--overwrite]` (also
`python -m unlearn_cli.quickstart`).

On the built-in tiny model and fictitious authors, on a CPU, in a few minutes: fine-tune the target (the
authors plus general knowledge), fine-tune a retain model that never sees the forget authors, unlearn the
forget authors from the target with NPO and with GradDiff, evaluate all four on TOFU (forget quality against
the retain model), and compare them in one table and one plot. Each step is an ordinary command, run in
this one process to save the start-up of nine; the equivalent command is printed before each.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

GRADDIFF_EPOCHS = 3
"""GradDiff's gradient-ascent term is unbounded: at the 5 epochs NPO gets it wrecks the tiny model."""


def steps(output: Path) -> list[tuple[str, str, list[str]]]:
    """(command, recipe, overrides) of every step, in order."""
    retain_logs = output / "retain" / "eval" / "TOFU_EVAL.json"
    evaluations = [
        ("eval", "quickstart/eval", [f"model_path={output / run}", f"retain_logs_path={retain_logs}"])
        for run in ("retain", "target", "NPO", "GradDiff")
    ]
    return [
        ("train", "quickstart/target", [f"run.output_dir={output / 'target'}"]),
        ("train", "quickstart/retain", [f"run.output_dir={output / 'retain'}"]),
        (
            "unlearn",
            "quickstart/unlearn",
            [f"finetuned_model={output / 'target'}", f"run.output_dir={output / 'NPO'}"],
        ),
        (
            "unlearn",
            "quickstart/unlearn",
            [
                f"finetuned_model={output / 'target'}",
                "trainer.handler=GradDiff",
                "~trainer.method_args",
                f"trainer.args.num_train_epochs={GRADDIFF_EPOCHS}",
                f"run.output_dir={output / 'GradDiff'}",
            ],
        ),
        # the retain model first, without reference logs: its results are the reference of all the others
        ("eval", "quickstart/eval", [f"model_path={output / 'retain'}"]),
        *evaluations,
    ]


RUNS = ("target", "retain", "NPO", "GradDiff")


def check_run_folders(output: Path, overwrite: bool) -> None:
    """Before anything runs, every training step's folder is planned as its command will plan it, so a
    folder that would stop the chain halfway stops it now; finished runs get the quickstart's own fix."""
    from unlearn_cli.errors import UserError
    from unlearn_cli.run_folder import RunStatus, inspect_folder, plan_run_folder

    finished = [name for name in RUNS if inspect_folder(output / name).status == RunStatus.FINISHED]
    if finished and not overwrite:
        raise UserError(
            f"{output} already holds the finished quickstart run(s) {', '.join(finished)}; refusing to "
            "overwrite earlier results",
            hint="`unlearn quickstart --overwrite` redoes the chain (each earlier run is kept as "
            "<run>.previous until its replacement finishes), or choose another folder with --output",
        )
    for command, _, overrides in steps(output):
        folders = [o.removeprefix("run.output_dir=") for o in overrides if o.startswith("run.output_dir=")]
        if command != "eval":
            plan_run_folder(Path(folders[0]), overwrite=overwrite, command=command)


def run(output: Path, overwrite: bool) -> dict[str, Any]:
    from unlearn_cli.console import console
    from unlearn_cli.pipelines.compare import run_comparison
    from unlearn_cli.pipelines.evaluate import run_evaluation
    from unlearn_cli.pipelines.run import run_training, run_unlearning

    commands: dict[str, Callable[..., Any]] = {
        "train": run_training,
        "unlearn": run_unlearning,
        "eval": run_evaluation,
    }
    check_run_folders(output, overwrite)
    for command, recipe, overrides in steps(output):
        flag = " --overwrite" if overwrite and command != "eval" else ""
        console.rule(f"[bold]$ unlearn {command} {recipe} {' '.join(overrides)}{flag}", align="left")
        commands[command](recipe, overrides, overwrite=overwrite and command != "eval")
    runs = [str(output / name) for name in RUNS]
    console.rule(f"[bold]$ unlearn compare {' '.join(runs)} --output {output / 'comparison'}", align="left")
    return run_comparison(runs, output=str(output / "comparison"))


def run_chain(output: Path, *, overwrite: bool = False, threads: int = 1) -> dict[str, Any]:
    """The chain with `threads` torch intra-op threads (1: the same numbers on every machine)."""
    import torch

    torch.set_num_threads(max(1, threads))
    return run(output, overwrite)


def main(argv: list[str] | None = None) -> None:
    """`python -m unlearn_cli.quickstart [options]`: the same as `unlearn quickstart [options]`."""
    from unlearn_cli.cli import main as cli_main

    sys.argv = ["unlearn", "quickstart", *(sys.argv[1:] if argv is None else argv)]
    cli_main()


if __name__ == "__main__":
    main()
