"""`unlearn eval RECIPE [overrides]`: evaluate a model with the recipe's benchmarks (TOFU, MUSE, lm-eval)."""

from __future__ import annotations

import typer

from unlearn_cli.cli.common import RECIPE_HELP, overrides_argument


def evaluate(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = overrides_argument(),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Recompute every metric, also those an identical earlier evaluation in the folder computed.",
    ),
) -> None:
    """Evaluate: run the recipe's [eval.NAME] benchmarks on its model; print a table of the aggregates.

    Writes `<NAME>_EVAL.json` (every metric per item, the reference framework's layout),
    `<NAME>_SUMMARY.json` (aggregates), the fingerprints of what each result was computed from, recipe.toml
    and manifest.json into run.output_dir. Results of an earlier evaluation there are reused only when
    model, data and metric settings are identical (the table marks them). Try `unlearn eval
    quickstart/eval`; docs/evaluation.md defines every metric.
    """
    from unlearn_cli.pipelines.evaluate import run_evaluation

    run_evaluation(recipe, overrides, overwrite=overwrite)
