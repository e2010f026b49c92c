"""PDU: the logit-margin flattening loss and the dual update on hand-computed values, the dual variable's
schedule in a real run (per step, per epoch, after warm-up; saved in checkpoints and restored on resume), and
unlearning on the fine-tuned tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.unlearning.conftest import Unlearn, forget_rise, retain_rise
from unlearn_cli.trainers.pdu import DUAL_STATE_KEY, dual_ascent, logit_margin_flattening_loss

SMALL = "builtin://fictitious-authors?authors=4&facts=5"  # forget10: 5 items, retain90: 15
TINY_RUN = [
    "finetuned_model=builtin://tiny-llama",
    f'data.forget.authors_forget.args.hf_args.path="{SMALL}"',
    f'data.retain.authors_retain.args.hf_args.path="{SMALL}"',
    'forget_split="forget10"',
    'retain_split="retain90"',
    "trainer.handler=PDU",
    "~trainer.method_args",
    "trainer.method_args.alpha=1.0",
    "trainer.method_args.dual_step_size=0.5",
    "trainer.args.learning_rate=1e-3",
    "trainer.args.logging_steps=1",
    "trainer.args.per_device_train_batch_size=1",
    "trainer.args.gradient_accumulation_steps=2",  # 5 items: 3 optimizer steps per epoch (2 + 2 + 1 items)
]


# --- the pure functions ------------------------------------------------------------------------------------


def test_logit_margin_flattening_loss_by_hand() -> None:
    logits = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 6.0], [5.0, 5.0, 5.0]]])
    # position 0 predicts label 7: (max 3 - mean 2)^2 = 1; position 1 predicts label 8: (6 - 2)^2 = 16
    both = torch.tensor([[-100, 7, 8]])
    assert logit_margin_flattening_loss(logits, both).item() == pytest.approx(17 / 2)
    assert logit_margin_flattening_loss(logits, both, num_tokens=4).item() == pytest.approx(17 / 4)
    last_only = torch.tensor([[-100, -100, 8]])
    assert logit_margin_flattening_loss(logits, last_only).item() == pytest.approx(16.0)


def test_uniform_logits_have_no_margin() -> None:
    logits = torch.full((2, 4, 5), 3.0)
    labels = torch.tensor([[-100, 1, 2, 3], [-100, -100, 4, -100]])
    assert logit_margin_flattening_loss(logits, labels).item() == 0.0


def test_dual_ascent_by_hand() -> None:
    # ε = 0.3, η = 5: 1 + 5·(0.5 − 0.3) = 2; 2 + 5·(0.1 − 0.3) = 1; 1 + 5·(0 − 0.3) = −0.5 → projected to 0
    weight = dual_ascent(1.0, 0.5, 0.3, 5.0)
    assert weight == pytest.approx(2.0)
    weight = dual_ascent(weight, 0.1, 0.3, 5.0)
    assert weight == pytest.approx(1.0)
    assert dual_ascent(weight, 0.0, 0.3, 5.0) == 0.0
    assert dual_ascent(3.0, 0.9, 0.3, 0.0) == 3.0  # a zero step size keeps λ


# --- the dual variable in real runs -----------------------------------------------------------------------


def _trainer(tmp_path: Path, *overrides: str) -> Any:
    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe

    recipe = load_recipe("quickstart/unlearn", [*TINY_RUN, *overrides])
    return pipeline_for(recipe, output_dir=tmp_path).trainer()


def _per_step(log_history: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {entry["step"]: entry for entry in log_history if "retain_weight" in entry}


@pytest.mark.slow
def test_step_updates_start_after_the_warmup_epochs_and_use_each_steps_retain_loss(tmp_path: Path) -> None:
    trainer = _trainer(
        tmp_path,
        "trainer.method_args.retain_loss_eps=0.5",
        "trainer.method_args.dual_warmup_epochs=1",
        "trainer.args.num_train_epochs=2",
    )
    trainer.train()
    steps = _per_step(trainer.state.log_history)
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]
    assert [steps[s]["retain_weight"] for s in (1, 2, 3)] == [1.0, 1.0, 1.0]  # the warm-up epoch
    weight = 1.0
    for step in (4, 5, 6):
        weight = max(0.0, weight + 0.5 * (steps[step]["retain_loss"] - 0.5))
        assert steps[step]["retain_weight"] == pytest.approx(weight, rel=1e-5), step
    assert trainer.retain_weight == pytest.approx(weight, rel=1e-5)
    assert trainer.term_weights()["retain"] == trainer.retain_weight


@pytest.mark.slow
def test_epoch_updates_happen_once_per_epoch_after_the_warmup(tmp_path: Path) -> None:
    trainer = _trainer(
        tmp_path,
        "trainer.method_args.retain_loss_eps=0.5",
        "trainer.method_args.dual_update_upon='epoch'",
        "trainer.method_args.dual_warmup_epochs=2",
        "trainer.args.num_train_epochs=3",
    )
    measured: list[float] = []
    measure = trainer.epoch_retain_loss

    def recording() -> float:
        measured.append(measure())
        return measured[-1]

    trainer.epoch_retain_loss = recording
    trainer.train()
    steps = _per_step(trainer.state.log_history)
    weights = [steps[step]["retain_weight"] for step in sorted(steps)]
    assert len(measured) == 2  # the ends of epochs 2 and 3
    after_two = max(0.0, 1.0 + 0.5 * (measured[0] - 0.5))
    after_three = max(0.0, after_two + 0.5 * (measured[1] - 0.5))
    assert weights[:5] == [1.0] * 5  # unchanged until the last step of epoch 2
    assert weights[5] == pytest.approx(after_two) and weights[6:8] == [weights[5]] * 2
    assert weights[8] == pytest.approx(after_three)


@pytest.mark.parametrize("retain_loss_type", ["NLL", "KL"])
def test_the_epoch_retain_loss_is_the_token_mean_over_the_retain_items_paired_in_that_epoch(
    tmp_path: Path, retain_loss_type: str
) -> None:
    """Every pair of the epoch counts its retain item (one paired twice counts twice); a sum over all their
    labelled tokens divided by their number."""
    from unlearn_cli.trainers.losses import kl_to_reference, token_nll
    from unlearn_cli.trainers.reference import model_inputs

    trainer = _trainer(
        tmp_path,
        "trainer.method_args.retain_loss_eps=0.5",
        f"trainer.method_args.retain_loss_type='{retain_loss_type}'",
        "trainer.args.per_device_eval_batch_size=4",
    )
    with torch.no_grad():  # away from the reference, so that the KL is not 0
        generator = torch.Generator().manual_seed(0)
        for parameter in trainer.model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    dataset = trainer.train_dataset
    dataset.set_epoch(4)
    partners = dataset.partners().tolist()
    assert len(set(partners)) < len(partners) == 5  # a retain item paired twice counts twice
    total, tokens = 0.0, 0
    trainer.model.eval()
    with torch.no_grad():
        for index in range(len(dataset)):
            retain = trainer.data_collator([dataset[index]["retain"]])
            logits = trainer.model(**model_inputs(retain)).logits
            nll, mask = token_nll(logits, retain["labels"])
            if retain_loss_type == "KL":
                reference_logits = trainer.reference(**retain).logits
                total += float(kl_to_reference(logits, reference_logits, retain["labels"], num_tokens=1))
            else:
                total += float(nll.sum())
            tokens += int(mask.sum())
    trainer.model.train()
    assert trainer.epoch_retain_loss() == pytest.approx(total / tokens, rel=1e-6)
    assert trainer.model.training


@pytest.mark.slow
def test_the_dual_variable_is_saved_with_checkpoints_and_restored_on_resume(tmp_path: Path) -> None:
    run = [
        "trainer.method_args.retain_loss_eps=0.5",
        "trainer.method_args.dual_warmup_epochs=0",
        "trainer.args.max_steps=4",
        "trainer.args.save_strategy='steps'",
        "trainer.args.save_steps=2",
    ]
    first = _trainer(tmp_path, *run)
    first.train()
    at_two = _per_step(first.state.log_history)[2]["retain_weight"]
    assert at_two != 1.0
    saved = json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())
    assert saved["stateful_callbacks"][DUAL_STATE_KEY]["retain_weight"] == pytest.approx(at_two)

    resumed = _trainer(tmp_path, *run)
    assert resumed.retain_weight == 1.0
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    step_three = _per_step(resumed.state.log_history)[3]
    expected = max(0.0, at_two + 0.5 * (step_three["retain_loss"] - 0.5))
    assert step_three["retain_weight"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_pdu_forgets_and_keeps_the_retain_loss_low(unlearn: Unlearn) -> None:
    manifest = unlearn(
        "PDU",
        "trainer.args.learning_rate=1e-3",
        "trainer.args.num_train_epochs=5",
        "trainer.method_args.retain_loss_eps=0.05",
        "trainer.method_args.dual_warmup_epochs=1",
    )
    assert forget_rise(manifest) > 2.0, manifest
    assert retain_rise(manifest) < 0.3 * forget_rise(manifest), manifest
