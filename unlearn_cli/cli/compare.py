"""`unlearn compare RUN_DIR...`: the evaluation summaries of many runs side by side, as CSV and plots."""

from __future__ import annotations

import typer


def compare(
    runs: list[str] = typer.Argument(..., help="Run folders (or their eval/ folders) to compare."),
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON instead."),
    output: str = typer.Option(
        None,
        "--output",
        "-o",
        help="Where to write the CSV and plots (default: comparison/ next to the runs).",
    ),
) -> None:
    """Compare runs: one table of their summary metrics (method, split, forget quality, model utility,
    forget probability, privleak...), written as comparison.csv and comparison.json, with plots: forget
    quality against model utility across runs, and each run's metrics across its evaluation steps.
    """
    from unlearn_cli.pipelines.compare import run_comparison

    run_comparison(runs, as_json=as_json, output=output)
