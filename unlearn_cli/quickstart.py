"""The offline quickstart, end to end: `unlearn quickstart [--output DIR] [--overwrite]` (also
`python -m unlearn_cli.quickstart`).

On the built-in tiny model and fictitious authors, on a CPU, in a few minutes: fine-tune the target (the
authors plus general knowledge), fine-tune a retain model that never sees the forget authors, unlearn the
forget authors from the target with NPO and with GradDiff, evaluate all four on TOFU (forget quality against
the retain model), and compare them in one table and one plot. Each step is an ordinary command, run in
this one process to save the start-up of nine; the equivalent command is printed before each.
"""

from __future__ import annotations

import argparse
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


def refuse_finished_runs(output: Path) -> None:
    """Before anything runs: an earlier chain's finished runs are named with the quickstart's own fix."""
    from unlearn_cli.errors import UserError
    from unlearn_cli.run_folder import RunStatus, inspect_folder

    finished = [name for name in RUNS if inspect_folder(output / name).status == RunStatus.FINISHED]
    if finished:
        raise UserError(
            f"{output} already holds the finished quickstart run(s) {', '.join(finished)}; refusing to "
            "overwrite earlier results",
            hint="`unlearn quickstart --overwrite` redoes the chain (each earlier run is kept as "
            "<run>.previous until its replacement finishes), or choose another folder with --output",
        )


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
    if not overwrite:
        refuse_finished_runs(output)
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
    from unlearn_cli.cli.common import console_err
    from unlearn_cli.errors import USER_ERROR_EXIT_CODE, UserError

    parser = argparse.ArgumentParser(
        prog="python -m unlearn_cli.quickstart", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--output", default="outputs/quickstart", help="where the runs go (outputs/quickstart)"
    )
    parser.add_argument("--overwrite", action="store_true", help="redo runs whose folders already exist")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: the tiny model's matrices are too small to gain from more; "
        "on a busy machine two threads ran the whole chain 4x slower)",
    )
    args = parser.parse_args(argv)
    try:
        run_chain(Path(args.output), overwrite=args.overwrite, threads=args.threads)
    except UserError as error:
        console_err.print(f"[bold red]error:[/] {error.render()}", highlight=False, soft_wrap=True)
        sys.exit(USER_ERROR_EXIT_CODE)


if __name__ == "__main__":
    main()
