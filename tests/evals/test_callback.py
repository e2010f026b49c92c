"""Evaluation during training: when the callback evaluates, and what a resumed run's logs keep."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from unlearn_cli.evals import callback as callback_module
from unlearn_cli.evals.callback import EvaluationCallback
from unlearn_cli.pipelines.callbacks import keep_steps_up_to


class CountingEvaluator:
    def __init__(self) -> None:
        self.calls: list[Path | None] = []
        self.digests: list[str | None] = []

    def evaluate(self, model: Any, output_dir: Path | None = None, model_digest: str | None = None) -> Any:
        self.calls.append(output_dir)
        self.digests.append(model_digest)
        return SimpleNamespace(summary={"forget_Q_A_Prob": 0.5}, seconds=0.1)


def test_a_fresh_run_evaluates_at_the_start_and_a_resumed_one_does_not(tmp_path: Path) -> None:
    args = SimpleNamespace(eval_strategy="steps")
    for global_step, expected in ((0, 1), (6, 0)):
        evaluator = CountingEvaluator()
        callback = EvaluationCallback({"TOFU": evaluator}, tmp_path, has_eval_dataset=False)
        state = SimpleNamespace(global_step=global_step, epoch=0.0)
        callback.on_train_begin(args, state, SimpleNamespace(), model=None)
        assert len(evaluator.calls) == expected, global_step
    logged = [json.loads(line) for line in (tmp_path / "eval_log.jsonl").read_text().splitlines()]
    assert [(e["step"], e["when"], e["benchmark"]) for e in logged] == [(0, "start", "TOFU")]


def test_a_run_without_evaluation_points_evaluates_only_at_the_end(tmp_path: Path) -> None:
    evaluator = CountingEvaluator()
    callback = EvaluationCallback({"TOFU": evaluator}, tmp_path, has_eval_dataset=False)
    state = SimpleNamespace(global_step=0, epoch=0.0)
    model = torch.nn.Linear(2, 2)
    callback.on_train_begin(SimpleNamespace(eval_strategy="no"), state, SimpleNamespace(), model=model)
    callback.on_train_end(SimpleNamespace(eval_strategy="no"), state, SimpleNamespace(), model=model)
    assert evaluator.calls == [tmp_path / "eval"]
    assert callback.final == {"TOFU": {"forget_Q_A_Prob": 0.5}}


def test_the_final_evaluation_hashes_the_weights_once_for_all_benchmarks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[Any] = []
    monkeypatch.setattr(callback_module, "weights_digest", lambda model: hashed.append(model) or "digest")
    evaluators = {"TOFU": CountingEvaluator(), "MUSE": CountingEvaluator()}
    callback = EvaluationCallback(evaluators, tmp_path, has_eval_dataset=False)
    state = SimpleNamespace(global_step=4, epoch=1.0)
    control = SimpleNamespace(should_evaluate=True)
    callback.on_step_end(SimpleNamespace(eval_strategy="steps"), state, control, model="model")
    assert hashed == []  # evaluations during training write no files: no fingerprints
    callback.on_train_end(SimpleNamespace(eval_strategy="steps"), state, control, model="model")
    assert hashed == ["model"]
    assert [e.digests for e in evaluators.values()] == [[None, "digest"], [None, "digest"]]


def test_keep_steps_up_to_drops_later_and_cut_lines(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 3, "loss": 2.0}\n{"step": 4}\nnot json\n{"step": "x"}\n{"st')
    keep_steps_up_to(log, 3)
    assert log.read_text() == '{"step": 1}\n{"step": 3, "loss": 2.0}\n'
    keep_steps_up_to(tmp_path / "absent.jsonl", 3)
    assert not (tmp_path / "absent.jsonl").exists()


def test_evaluation_during_training_is_refused_under_zero3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearn_cli import container
    from unlearn_cli.errors import UserError
    from unlearn_cli.recipes import load_recipe

    recipe = load_recipe(
        "quickstart/unlearn",
        ["finetuned_model=builtin://tiny-llama", "eval.TOFU.handler=TOFU", f"run.output_dir={tmp_path}"],
    )
    assert container.pipeline_for(recipe).evaluation_callbacks()  # one callback without ZeRO-3
    monkeypatch.setattr(container, "zero3_enabled", lambda: True)
    with pytest.raises(UserError, match="under DeepSpeed ZeRO-3") as refused:
        container.pipeline_for(recipe).evaluation_callbacks()
    assert refused.value.key == "eval" and "unlearn eval" in (refused.value.hint or "")
