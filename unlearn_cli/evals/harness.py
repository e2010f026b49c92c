"""Benchmarks of EleutherAI's lm-evaluation-harness (WMDP, MMLU, ...) on the in-memory model.

An optional extra (`pip install "unlearn-cli[lm-eval]"`), imported only when an `[eval.NAME]` section with
``handler = "LMEval"`` evaluates. Tasks are lm-eval task names (or task dicts), found among its own tasks
and in `include_path` (a folder of task YAML files of your own). Results go to the same files as every
benchmark: `LMEval_EVAL.json` (per task: its metrics and, per document, the per-sample metrics, target and
responses), `LMEval_SUMMARY.json` (``task/metric``: value) and fingerprints, so identical earlier results
are reused like those of TOFU and MUSE.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unlearn_cli.errors import UserError
from unlearn_cli.evals.distributed import World
from unlearn_cli.evals.engine import (
    Benchmark,
    Evaluation,
    evaluation_mode,
    plain_json,
    value_digest,
    weights_digest,
)
from unlearn_cli.evals.report import Reporter
from unlearn_cli.registry import register


@register("benchmark", "LMEval")
class LMEval(Benchmark):
    """lm-evaluation-harness tasks (WMDP, MMLU, your own YAML tasks) on the model being evaluated.

    `tasks` are task or group names (or task dicts); `include_path` a folder of task YAML files;
    `include_default_tasks = false` skips indexing lm-eval's own tasks (faster when all are your own).
    `simple_evaluate_args` go to `lm_eval.simple_evaluate`. `tokenizer` and `template_args` are injected.
    Needs the `lm-eval` extra.
    """

    name = "LMEval"

    def __init__(
        self,
        tokenizer: Any,
        template_args: Any = None,
        tasks: list[str | dict[str, Any]] = ["wmdp_bio", "wmdp_cyber"],  # noqa: B006 (never mutated)
        include_path: str | None = None,
        include_default_tasks: bool = True,
        num_fewshot: int | None = None,
        limit: float | None = None,
        batch_size: int = 8,
        simple_evaluate_args: dict[str, Any] = {},  # noqa: B006
    ) -> None:
        if not tasks:
            raise UserError("no tasks given", key="tasks", hint='e.g. tasks = ["wmdp_bio", "mmlu"]')
        if include_path is not None and not Path(include_path).expanduser().is_dir():
            raise UserError(f"include_path {include_path} is not a folder", key="include_path")
        self.tokenizer = tokenizer
        self.tasks = list(tasks)
        self.include_path = str(Path(include_path).expanduser()) if include_path else None
        self.include_default_tasks = include_default_tasks
        self.num_fewshot = num_fewshot
        self.limit = limit
        self.batch_size = batch_size
        self.simple_evaluate_args = dict(simple_evaluate_args)
        self.settings = {"tasks": [task_name(task) for task in self.tasks]}

    def evaluate(
        self,
        model: Any,
        *,
        output_dir: Path | None = None,
        overwrite: bool = False,
        reporter: Reporter | None = None,
        model_digest: str | None = None,
    ) -> Evaluation:
        """Run every task not reusable from `output_dir`, on rank 0 (lm-eval drives an in-memory model in
        one process); every rank gets the results. `model_digest` as for `Evaluator.evaluate`."""
        reporter = reporter or Reporter()
        world = World.current()
        clock = time.perf_counter()
        _require_lm_eval()
        stamps: dict[str, str] = {}
        if output_dir is not None:
            stamps = self._fingerprints(model_digest if model_digest is not None else weights_digest(model))
        previous = {} if overwrite or output_dir is None else self._reusable(output_dir, stamps)
        results: dict[str, Any] = {}
        if world.is_main:
            with evaluation_mode(model):
                manager = None
                for task in self.tasks:
                    name = task_name(task)
                    if name in previous:
                        results[name] = previous[name]
                        reporter.metric_done(self.name, name, results[name]["agg_value"], 0.0, True)
                        continue
                    manager = manager or self._task_manager()
                    started = time.perf_counter()
                    results[name] = self._run(model, task, manager)
                    seconds = time.perf_counter() - started
                    reporter.metric_done(self.name, name, results[name]["agg_value"], seconds, False)
        if world.size > 1:
            results = world.gather({0: results} if world.is_main else {})[0]
        summary = {
            f"{name}/{metric}": value
            for name, result in results.items()
            for metric, value in result["metrics"].items()
        }
        reused = {name for name in results if name in previous}
        evaluation = Evaluation(self.name, results, summary, reused, time.perf_counter() - clock)
        if output_dir is not None and world.is_main:
            evaluation.files = self._write(output_dir, results, summary, stamps)
        world.barrier()
        return evaluation

    def _task_manager(self) -> Any:
        """lm-eval's index of the tasks (its own unless left out, and those in `include_path`): built once
        per evaluation, as indexing reads every task file."""
        from lm_eval.tasks import TaskManager

        return TaskManager(include_path=self.include_path, include_defaults=self.include_default_tasks)

    def _run(self, model: Any, task: str | dict[str, Any], manager: Any) -> dict[str, Any]:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM

        from unlearn_cli.evals.scoring import _input_device

        language_model = HFLM(
            pretrained=model,
            tokenizer=self.tokenizer,
            batch_size=self.batch_size,
            device=str(_input_device(model)),
        )
        try:
            output = simple_evaluate(
                model=language_model,
                tasks=[task],
                num_fewshot=self.num_fewshot,
                limit=self.limit,
                task_manager=manager,
                log_samples=True,
                **self.simple_evaluate_args,
            )
        except (KeyError, ValueError) as exc:
            raise UserError(
                f"lm-eval could not run task {task_name(task)!r}: {exc}",
                key="tasks",
                hint="check the task name (`lm-eval ls tasks`) or the YAML files in include_path",
            ) from None
        return task_result(output, task_name(task))

    def _fingerprints(self, model_digest: str) -> dict[str, str]:
        import lm_eval

        files = sorted(Path(self.include_path).rglob("*.yaml")) if self.include_path else []
        definitions = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
        return {
            task_name(task): value_digest(
                {
                    "task": task,
                    "definitions": definitions,
                    "defaults": self.include_default_tasks,
                    "num_fewshot": self.num_fewshot,
                    "limit": self.limit,
                    "args": self.simple_evaluate_args,
                    "lm_eval": getattr(lm_eval, "__version__", None),
                    "model": model_digest,
                }
            )
            for task in self.tasks
        }


def _require_lm_eval() -> None:
    try:
        import lm_eval  # noqa: F401
    except ImportError as exc:
        raise UserError(
            f"the LMEval benchmark needs lm-evaluation-harness, which is not installed ({exc})",
            hint='pip install "unlearn-cli[lm-eval]"',
        ) from None


def task_name(task: str | dict[str, Any]) -> str:
    if isinstance(task, str):
        return task
    if isinstance(task, dict) and isinstance(task.get("task"), str):
        return task["task"]
    raise UserError(f"a task is a name or a table with a 'task' name, got {task!r}", key="tasks")


def task_result(output: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One task's (or group's) metrics without lm-eval's filter suffixes, and its per-document samples."""
    source = output.get("groups", {}).get(name) or output.get("results", {}).get(name, {})
    metrics = {
        key.split(",", 1)[0]: float(value)
        for key, value in source.items()
        if key not in ("alias", "name", "sample_len")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }
    main = next((value for key, value in metrics.items() if not key.endswith("_stderr")), None)
    by_index: dict[str, Any] = {}
    for sample in output.get("samples", {}).get(name, []):
        by_index[str(sample["doc_id"])] = plain_json(
            {
                **{metric: sample.get(metric) for metric in sample.get("metrics", [])},
                "target": sample.get("target"),
                "responses": sample.get("filtered_resps"),
            }
        )
    return {"agg_value": main, "metrics": metrics, "value_by_index": by_index}
