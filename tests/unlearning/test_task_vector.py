"""TaskVector: the negation on hand-computed values, the saved weights equal θ − α(θ_r − θ) for the reinforced
weights θ_r the fine-tuning reached, and unlearning on the fine-tuned tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from tests.unlearning.conftest import Unlearn, forget_rise
from unlearn_cli.trainers.task_vector import negated_task_vector

SMALL = "builtin://fictitious-authors?authors=4&facts=5"


def test_negated_task_vector_by_hand() -> None:
    initial, reinforced = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 0.0])
    # α = 1: [1 - (1.5 - 1), 2 - (0 - 2)] = [0.5, 4]; α = 0.5: [1 - 0.25, 2 + 1] = [0.75, 3]
    assert torch.equal(negated_task_vector(initial, reinforced, 1.0), torch.tensor([0.5, 4.0]))
    assert torch.equal(negated_task_vector(initial, reinforced, 0.5), torch.tensor([0.75, 3.0]))
    assert torch.equal(negated_task_vector(initial, reinforced, 0.0), initial)


class _Reinforced(TrainerCallback):
    """Captures the weights when fine-tuning ends, before the trainer negates them."""

    def __init__(self) -> None:
        self.weights: dict[str, torch.Tensor] = {}

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.weights = {k: v.detach().clone() for k, v in model.named_parameters()}


def task_vector_recipe() -> Any:
    from unlearn_cli.recipes import load_recipe

    return load_recipe(
        "quickstart/unlearn",
        [
            "finetuned_model=builtin://tiny-llama",
            f'data.forget.authors_forget.args.hf_args.path="{SMALL}"',
            f'data.retain.authors_retain.args.hf_args.path="{SMALL}"',
            "trainer.handler=TaskVector",
            "~trainer.method_args",
            "trainer.method_args.alpha=0.5",
            "trainer.args.max_steps=2",
            "trainer.args.learning_rate=1e-2",
            "trainer.args.per_device_train_batch_size=2",
        ],
    )


@pytest.mark.slow
def test_the_output_is_the_initial_weights_minus_alpha_times_the_task_vector(tmp_path: Path) -> None:
    from unlearn_cli.container import pipeline_for

    trainer = pipeline_for(task_vector_recipe(), output_dir=tmp_path).trainer()
    initial = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    captured = _Reinforced()
    trainer.add_callback(captured)
    trainer.train()

    assert captured.weights.keys() == initial.keys()
    moved = 0
    for name, parameter in trainer.model.named_parameters():
        reinforced = captured.weights[name]
        moved += not torch.equal(reinforced, initial[name])
        expected = initial[name] - 0.5 * (reinforced - initial[name])
        torch.testing.assert_close(parameter.detach(), expected, rtol=0, atol=1e-6)
    assert moved > 0  # fine-tuning changed the weights, so the check above compares something


@pytest.mark.slow
def test_task_vector_negation_forgets(unlearn: Unlearn) -> None:
    manifest = unlearn(
        "TaskVector",
        "trainer.args.learning_rate=1e-3",
        "trainer.args.num_train_epochs=5",
        "trainer.method_args.alpha=3.0",
    )
    assert manifest["final_forget_loss"] < 0.05, manifest  # the reinforced model fits the forget answers
    assert forget_rise(manifest) > 2.0, manifest


def test_sharded_weights_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ZeRO-3 each process would copy and negate empty shards and save the forget-tuned model."""
    from unlearn_cli.container import pipeline_for
    from unlearn_cli.errors import UserError
    from unlearn_cli.trainers import task_vector

    monkeypatch.setattr(task_vector, "zero3_enabled", lambda: True)
    with pytest.raises(UserError, match="ZeRO-3 or FSDP") as refused:
        pipeline_for(task_vector_recipe(), output_dir=tmp_path).trainer()
    assert "DDP or ZeRO-2" in (refused.value.hint or "")
