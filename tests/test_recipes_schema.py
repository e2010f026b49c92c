"""Validated values are what the components get: `trainer.args` converted the way pydantic checked them."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearn_cli.recipes import load_recipe

TOY = """plugins = ["unlearn_toy_plugin"]
[trainer]
handler = "toy_trainer"
[trainer.args]
num_train_epochs = 2
"""


@pytest.fixture
def toy_recipe(tmp_path: Path, toy_plugin_dir: Path) -> str:
    path = tmp_path / "toy.toml"
    path.write_text(TOY, encoding="utf-8")
    return str(path)


def test_training_arguments_given_as_text_are_converted(
    toy_recipe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNLEARN_TEST_LR", raising=False)
    recipe = load_recipe(
        toy_recipe,
        ['trainer.args.learning_rate="1e-3"', "trainer.args.weight_decay=${env:UNLEARN_TEST_LR,0.01}"],
    )
    assert recipe.trainer is not None
    args = recipe.trainer.args
    assert args["learning_rate"] == 1e-3 and isinstance(args["learning_rate"], float)
    assert args["weight_decay"] == 0.01 and isinstance(args["weight_decay"], float)


def test_converted_training_arguments_build_transformers_training_arguments(
    toy_recipe: str, tmp_path: Path
) -> None:
    from transformers import TrainingArguments
    from transformers.trainer_utils import IntervalStrategy, SchedulerType

    recipe = load_recipe(
        toy_recipe,
        [
            'trainer.args.learning_rate="2e-5"',
            'trainer.args.num_train_epochs="3"',
            "trainer.args.report_to=none",
            'trainer.args.report_to=["tensorboard"]',
            "trainer.args.lr_scheduler_type=cosine",
            "trainer.args.eval_strategy=steps",
            "trainer.args.eval_steps=10",
            "trainer.args.bf16=false",
            "trainer.args.logging_steps=5",
            "trainer.args.warmup_steps=0.2",
            "trainer.args.optim=adamw_torch",
            "trainer.args.per_device_train_batch_size=4",
        ],
    )
    assert recipe.trainer is not None
    args = recipe.trainer.args
    assert args["lr_scheduler_type"] == "cosine" and type(args["lr_scheduler_type"]) is str

    built = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, **args)

    assert built.learning_rate == 2e-5
    assert built.num_train_epochs == 3
    assert built.report_to == ["tensorboard"]
    assert built.lr_scheduler_type is SchedulerType.COSINE
    assert built.eval_strategy is IntervalStrategy.STEPS
    assert built.bf16 is False
    assert built.logging_steps == 5
    assert built.per_device_train_batch_size == 4
