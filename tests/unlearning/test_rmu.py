"""RMU: its activation loss on hand-computed tensors, its frozen reference and frozen parameters, its error
for a bad `module_regex`, and its own signal of unlearning on the fine-tuned tiny model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.unlearning.conftest import UNLEARN, Unlearn, forget_rise, retain_rise
from unlearn_cli.trainers.rmu import (
    activation_distance_loss,
    captured_output,
    random_control_vector,
    token_mask,
)

SMALL = "builtin://fictitious-authors?authors=4&facts=5"
TINY_RUN = [
    "finetuned_model=builtin://tiny-llama",
    f'data.forget.authors_forget.args.hf_args.path="{SMALL}"',
    f'data.retain.authors_retain.args.hf_args.path="{SMALL}"',
    'forget_split="forget10"',
    'retain_split="retain90"',
    "trainer.handler=RMU",
    "~trainer.method_args",
    "trainer.method_args.module_regex='model\\.layers\\.1'",
]


# --- the pure loss -----------------------------------------------------------------------------------------


def test_activation_distance_loss_against_one_vector() -> None:
    activations = torch.tensor([[[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]]])
    control = torch.tensor([1.0, 0.0])
    mask = torch.tensor([[False, True, True]])
    # position 0 is masked out; position 1: ((3-1)^2 + 0^2) / 2 = 2; position 2: ((0-1)^2 + 0^2) / 2 = 0.5
    assert activation_distance_loss(activations, control, mask).item() == pytest.approx(2.5 / 2)
    assert activation_distance_loss(activations, control, mask, num_tokens=5).item() == pytest.approx(0.5)


def test_activation_distance_loss_against_per_position_targets() -> None:
    activations = torch.tensor([[[1.0, 2.0], [3.0, 0.0]], [[2.0, 2.0], [0.0, 4.0]]])
    targets = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    # (0 + 1)/2 = 0.5; (9 + 0)/2 = 4.5; (4 + 0)/2 = 2; the masked (0 + 16)/2 = 8 does not count
    assert activation_distance_loss(activations, targets, mask).item() == pytest.approx(7.0 / 3)
    assert activation_distance_loss(activations, targets, mask, num_tokens=7).item() == pytest.approx(1.0)


def test_token_mask_marks_labelled_tokens_after_the_first_position() -> None:
    labels = torch.tensor([[-100, -100, 5, 6], [7, 8, -100, -100]])
    expected = torch.tensor([[False, False, True, True], [False, True, False, False]])
    assert torch.equal(token_mask(labels), expected)


def test_control_vector_is_a_seeded_nonnegative_direction_of_the_given_length() -> None:
    vector = random_control_vector(16, 2.0, seed=3)
    assert vector.shape == (16,)
    assert vector.norm().item() == pytest.approx(2.0)
    assert bool((vector >= 0).all())
    assert torch.equal(vector, random_control_vector(16, 2.0, seed=3))
    assert not torch.equal(vector, random_control_vector(16, 2.0, seed=4))


# --- the trainer -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_reference_and_untrainable_parameters_never_change(tmp_path: Path) -> None:
    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe

    recipe = load_recipe(
        "quickstart/unlearn",
        [
            *TINY_RUN,
            "trainer.method_args.trainable_params_regex=['model\\.layers\\.1\\.mlp\\..*']",
            "trainer.args.max_steps=3",
            "trainer.args.learning_rate=1e-2",
            "trainer.args.per_device_train_batch_size=2",
        ],
    )
    trainer = pipeline_for(recipe, output_dir=tmp_path).trainer()
    reference = trainer.reference.model
    reference_before = {k: v.clone() for k, v in reference.state_dict().items()}
    model_before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()

    for name, parameter in reference.named_parameters():
        assert not parameter.requires_grad and parameter.grad is None, name
        assert torch.equal(parameter, reference_before[name]), name
    trainable = {"model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight"}
    trainable.add("model.layers.1.mlp.down_proj.weight")
    assert set(trainer.trainable_names) == trainable
    for name, parameter in trainer.model.named_parameters():
        if name in trainable:
            assert not torch.equal(parameter, model_before[name]), name
        else:
            assert not parameter.requires_grad and torch.equal(parameter, model_before[name]), name


def test_the_reference_forward_stops_after_the_steered_module(tmp_path: Path) -> None:
    """The frozen copy's activations are the full forward's, and the layers after the module never run."""
    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe

    recipe = load_recipe(
        "quickstart/unlearn", [*TINY_RUN, "trainer.method_args.module_regex='model\\.layers\\.0'"]
    )
    trainer = pipeline_for(recipe, output_dir=tmp_path).trainer()
    reference = trainer.reference.model
    batch = trainer.data_collator([trainer.train_dataset[i]["retain"] for i in range(3)])
    with torch.no_grad(), captured_output(reference.get_submodule("model.layers.0")) as outputs:
        reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    later = [reference.get_submodule("model.layers.1"), reference.get_submodule("lm_head")]
    with captured_output(later[0]) as after_layer, captured_output(later[1]) as after_head:
        activations = trainer._reference_activations(batch)
    assert after_layer == [] and after_head == []
    assert torch.equal(activations, outputs[0])
    assert all(not module._forward_hooks for module in reference.modules())


@pytest.mark.slow
def test_a_module_regex_matching_no_module_or_several_is_a_clear_error(
    run_unlearn: Callable[..., Any], tmp_path: Path
) -> None:
    common = ["unlearn", "quickstart/unlearn", *TINY_RUN]
    none = run_unlearn(
        *common,
        "trainer.method_args.module_regex='model\\.layer\\.9'",
        f"run.output_dir={tmp_path / 'none'}",
    )
    assert none.code == 2, none
    assert "trainer.method_args.module_regex" in none.stderr
    assert "matches no module" in none.stderr and "model.layers.0" in none.stderr
    assert "Traceback" not in none.stderr

    several = run_unlearn(
        *common,
        "trainer.method_args.module_regex='model\\.layers\\.\\d+'",
        f"run.output_dir={tmp_path / 'several'}",
    )
    assert several.code == 2, several
    assert "matches 2 modules" in several.stderr and "model.layers.1" in several.stderr


def _activations_at(model: Any, module: str, dataset: Any, collator: Any) -> torch.Tensor:
    """The module's output at the steered (labelled) positions of every item, stacked [N, D]."""
    rows = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(dataset), 16):
            batch = collator([dataset[i] for i in range(start, min(start + 16, len(dataset)))])
            with captured_output(model.get_submodule(module)) as outputs:
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            rows.append(outputs[0][token_mask(batch["labels"])])
    return torch.cat(rows).float()


@pytest.mark.slow
def test_rmu_steers_forget_activations_and_keeps_retain_activations(
    unlearn: Unlearn, finetuned_authors: Path, tmp_path: Path
) -> None:
    """RMU's own signal: at the steered layer, forget-token hidden states move most of the way to the control
    vector, while retain-token hidden states stay close to the initial model's (a small fraction of the
    forget tokens' movement). The forget NLL rises too, the retain NLL much less."""
    from transformers import AutoModelForCausalLM

    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe

    manifest = unlearn(
        "RMU",
        "trainer.args.learning_rate=1e-3",
        "trainer.args.num_train_epochs=5",
        "trainer.method_args.module_regex='model\\.layers\\.1'",
    )
    assert forget_rise(manifest) > 2.0, manifest
    assert retain_rise(manifest) < 0.3 * forget_rise(manifest), manifest

    recipe = load_recipe("quickstart/unlearn", [f"finetuned_model={finetuned_authors}", *UNLEARN])
    pipeline = pipeline_for(recipe)
    splits, collator = pipeline.split_datasets(), pipeline.collator()
    initial = AutoModelForCausalLM.from_pretrained(finetuned_authors)
    unlearned = AutoModelForCausalLM.from_pretrained(tmp_path / "unlearn-RMU")
    layer = "model.layers.1"
    forget_before = _activations_at(initial, layer, splits["forget"], collator)
    forget_after = _activations_at(unlearned, layer, splits["forget"], collator)
    control = random_control_vector(forget_after.shape[-1], 2.0, seed=manifest["seed"])

    def distance(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).pow(2).mean())

    assert distance(forget_after, control) < 0.25 * distance(forget_before, control)
    retain_before = _activations_at(initial, layer, splits["retain"], collator)
    retain_after = _activations_at(unlearned, layer, splits["retain"], collator)
    assert distance(retain_after, retain_before) < 0.25 * distance(forget_after, forget_before)
