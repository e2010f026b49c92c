"""`unlearn quickstart`: the whole offline chain on the built-in tiny model, in a few minutes on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer


def quickstart(
    output: Path = typer.Option(Path("outputs/quickstart"), "--output", "-o", help="Where the runs go."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo runs whose folders already exist."),
    threads: int = typer.Option(
        1,
        "--threads",
        min=1,
        help="torch intra-op threads. 1 (default) gives the same numbers on every machine (the README's); "
        "more is faster on an idle multi-core machine, with differences in the 4th decimal.",
    ),
) -> None:
    """Fine-tune the tiny model on synthetic authors (target) and on all but the forget authors (retain),
    unlearn the forget authors from the target with NPO and with GradDiff, evaluate all four on TOFU, and
    compare them: a table, comparison.csv and a forget quality vs model utility plot.

    Each step is an ordinary command (`unlearn train / unlearn / eval / compare` with a packaged
    quickstart recipe); each is printed before it runs.
    """
    from unlearn_cli.quickstart import run_chain

    run_chain(output, overwrite=overwrite, threads=threads)
