"""Evaluation during `train` and `unlearn`: the recipe's `[eval.NAME]` benchmarks at `eval_strategy` points.

The container adds an `EvaluationCallback` to the trainer when the recipe has evaluators. With
`trainer.args.eval_strategy` = "steps" or "epoch" it evaluates before the first step and at every
evaluation point; it always evaluates once more at the end of training. Each evaluation's aggregates are
appended to `<run>/eval_log.jsonl` (step, epoch, benchmark, metrics) and printed; the final one also writes
the full files (`TOFU_EVAL.json`, `TOFU_SUMMARY.json`, fingerprints) into `<run>/eval/`, where a later
`unlearn eval` of the saved model with the same settings finds and reuses them.

A recipe without eval data (`[data.eval]`) still gets its evaluation points: transformers refuses an
`eval_strategy` without an eval dataset, so the strategy is hidden from the trainer's constructor and the
callback consumes the evaluation requests itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from unlearn_cli.errors import UserError
from unlearn_cli.evals.engine import weights_digest
from unlearn_cli.evals.report import format_value
from unlearn_cli.run_folder import EVAL_FOLDER, EVAL_LOG


class EvaluationCallback(TrainerCallback):
    """Runs evaluators on the model being trained at its evaluation points and at the end."""

    def __init__(
        self,
        evaluators: Mapping[str, Any],
        run_dir: Path,
        *,
        has_eval_dataset: bool,
        recipe_file: str | None = None,
    ) -> None:
        self.evaluators = dict(evaluators)
        self.run_dir = run_dir
        self.has_eval_dataset = has_eval_dataset
        self.recipe_file = recipe_file
        self.final: dict[str, dict[str, Any]] = {}
        self._last_step: int | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        if _strategy(args) != "no" and state.global_step == 0:  # a resumed run logged its start already
            self._evaluate(model, state, "start")

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        self._at_point(state, control, model)

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        self._at_point(state, control, model)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        self.final = self._evaluate(model, state, "end", output_dir=self.run_dir / EVAL_FOLDER)

    def _at_point(self, state: Any, control: Any, model: Any) -> None:
        if not control.should_evaluate:
            return
        if state.global_step != self._last_step:
            self._evaluate(model, state, "step")
        if not self.has_eval_dataset:
            control.should_evaluate = False  # nothing for the trainer's own evaluate() to read

    def _evaluate(
        self, model: Any, state: Any, when: str, output_dir: Path | None = None
    ) -> dict[str, dict[str, Any]]:
        from unlearn_cli.console import console
        from unlearn_cli.outputs import is_main_process

        self._last_step = state.global_step
        summaries = {}
        digest = weights_digest(model) if output_dir is not None else None  # once for all benchmarks
        for name, evaluator in self.evaluators.items():
            try:
                evaluation = evaluator.evaluate(model, output_dir=output_dir, model_digest=digest)
            except UserError as exc:
                raise exc.under(f"eval.{name}.args").located(file=self.recipe_file) from None
            summaries[name] = evaluation.summary
            if is_main_process():
                record = {
                    "step": state.global_step,
                    "epoch": state.epoch,
                    "when": when,
                    "benchmark": name,
                    "seconds": round(evaluation.seconds, 2),
                    "metrics": evaluation.summary,
                }
                with (self.run_dir / EVAL_LOG).open("a", encoding="utf-8") as log:
                    log.write(json.dumps(record) + "\n")
                shown = ", ".join(f"{k} {format_value(v)}" for k, v in evaluation.summary.items())
                console.print(
                    f"[dim]eval {name} @ step {state.global_step} ({when}):[/] {shown}", highlight=False
                )
        return summaries


def _strategy(args: Any) -> str:
    strategy = getattr(args, "eval_strategy", "no")
    return str(getattr(strategy, "value", strategy))


@contextmanager
def schedule_without_eval_dataset(
    training_args: Any, callbacks: list[Any], eval_dataset: Any
) -> Iterator[None]:
    """While the trainer is constructed, hide an evaluation strategy that only the evaluators will serve."""
    if not callbacks or eval_dataset is not None or _strategy(training_args) == "no":
        yield
        return
    strategy = training_args.eval_strategy
    training_args.eval_strategy = type(strategy)("no") if not isinstance(strategy, str) else "no"
    try:
        yield
    finally:
        training_args.eval_strategy = strategy


def final_summaries(trainer: Any) -> dict[str, Any]:
    """The aggregates of the end-of-training evaluation, for the run manifest (empty without evaluators)."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, EvaluationCallback) and callback.final:
            return {"evaluation": callback.final}
    return {}
