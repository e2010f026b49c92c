"""The unlearning base trainer: step-global denominators, cached vs per-step reference, a frozen reference,
per-term logs, and the forget/retain pairing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from dependency_injector import providers

from unlearn_cli.builtin import resolve_builtin
from unlearn_cli.container import pipeline_for
from unlearn_cli.data.forget_retain import ForgetRetainDataset
from unlearn_cli.recipes import load_recipe

SMALL = "builtin://fictitious-authors?authors=6&facts=5"  # its first two forget answers differ in length
RECIPE = [
    "finetuned_model=builtin://tiny-llama",
    f'data.forget.authors_forget.args.hf_args.path="{SMALL}"',
    f'data.retain.authors_retain.args.hf_args.path="{SMALL}"',
]
ONE_SGD_STEP = [
    "trainer.args.max_steps=1",
    "trainer.args.learning_rate=1.0",
    'trainer.args.optim="sgd"',
    'trainer.args.lr_scheduler_type="constant"',
    "trainer.args.weight_decay=0.0",
    "trainer.args.max_grad_norm=0.0",
    'trainer.args.train_sampling_strategy="sequential"',
    "trainer.args.dataloader_pin_memory=false",
]


@pytest.fixture(scope="module")
def tiny64() -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve_builtin("builtin://tiny-llama"), dtype=torch.float64)


def _trainer(model: torch.nn.Module, tmp_path: Path, *overrides: str) -> Any:
    recipe = load_recipe("quickstart/unlearn", [*RECIPE, *overrides])
    pipeline = pipeline_for(recipe, output_dir=tmp_path)
    pipeline.model.override(providers.Object(copy.deepcopy(model)))
    return pipeline.trainer()


def _weights_after_one_step(
    model: torch.nn.Module, tmp_path: Path, batch: int, accumulation: int, *extra: str
):
    trainer = _trainer(
        model,
        tmp_path,
        *ONE_SGD_STEP,
        f"trainer.args.per_device_train_batch_size={batch}",
        f"trainer.args.gradient_accumulation_steps={accumulation}",
        *extra,
    )
    trainer.train()
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


@pytest.mark.parametrize(
    "method",
    [
        # token means of both terms (forget answers of different lengths)
        ["trainer.handler=GradDiff", "~trainer.method_args"],
        # a sequence mean (forget) next to a token mean (retain)
        ["trainer.handler=NPO"],
    ],
    ids=["GradDiff", "NPO"],
)
def test_each_term_averages_over_the_whole_step(
    tiny64: torch.nn.Module, tmp_path: Path, method: list[str]
) -> None:
    """Batch 2, or batch 1 × accumulation 2, must move the weights identically: each term divides by the
    step's count of its own tokens (or sequences), not by each micro-batch's."""
    forget = _trainer(tiny64, tmp_path / "probe", *method).train_dataset.forget
    answer_tokens = [int((forget[i]["labels"] != -100).sum()) for i in range(2)]
    assert answer_tokens[0] != answer_tokens[1]  # otherwise a per-micro-batch mean would pass too
    together = _weights_after_one_step(tiny64, tmp_path / "a", 2, 1, *method)
    accumulated = _weights_after_one_step(tiny64, tmp_path / "b", 1, 2, *method)
    moved = 0
    for name, value in together.items():
        torch.testing.assert_close(accumulated[name], value, rtol=1e-9, atol=1e-12, msg=name)
        moved += int(not torch.equal(value, dict(tiny64.named_parameters())[name].detach()))
    assert moved > 0


def _first_batch(trainer: Any) -> dict[str, Any]:
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer._prepare_inputs(batch)


def test_cached_and_per_step_reference_log_probs_give_the_same_loss(
    tiny64: torch.nn.Module, tmp_path: Path
) -> None:
    model = copy.deepcopy(tiny64)
    with torch.no_grad():  # move away from the reference, so the log-ratio (and the loss) is not trivial
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter, generator=torch.Generator().manual_seed(0)))
    cached = _trainer(tiny64, tmp_path / "c", 'trainer.args.train_sampling_strategy="sequential"')
    per_step = _trainer(
        tiny64,
        tmp_path / "p",
        'trainer.args.train_sampling_strategy="sequential"',
        'trainer.method_args.ref_log_probs="per_step"',
    )
    assert cached.reference is None and per_step.reference is not None
    batch_cached, batch_per_step = _first_batch(cached), _first_batch(per_step)
    assert "ref_logp" in batch_cached["forget"] and "ref_logp" not in batch_per_step["forget"]
    losses = []
    for trainer, batch in ((cached, batch_cached), (per_step, batch_per_step)):
        trainer.model.load_state_dict(model.state_dict())
        with torch.no_grad():
            losses.append(float(trainer.compute_loss(trainer.model, batch)))
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    assert abs(losses[0]) > 1e-3


def test_the_reference_model_never_receives_gradients(tiny64: torch.nn.Module, tmp_path: Path) -> None:
    trainer = _trainer(
        tiny64,
        tmp_path,
        "trainer.handler=GradDiff",
        "~trainer.method_args",
        'trainer.method_args.retain_loss_type="KL"',
        "trainer.args.max_steps=3",
        "trainer.args.learning_rate=1e-2",
    )
    reference = trainer.reference.model
    before = {name: p.detach().clone() for name, p in reference.named_parameters()}
    trainer.train()
    for name, parameter in reference.named_parameters():
        assert not parameter.requires_grad and parameter.grad is None, name
        assert torch.equal(parameter, before[name]), name
    trained = dict(trainer.model.named_parameters())
    assert any(not torch.equal(trained[name], before[name]) for name in before)


def test_forget_and_retain_terms_are_logged_separately(tiny64: torch.nn.Module, tmp_path: Path) -> None:
    trainer = _trainer(
        tiny64,
        tmp_path,
        "trainer.handler=GradDiff",
        "~trainer.method_args",
        "trainer.args.max_steps=2",
        "trainer.args.logging_steps=1",
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2
    for entry in logged:
        # gamma = alpha = 1: the total is the sum of the terms; the forget term is a negated NLL
        assert entry["loss"] == pytest.approx(entry["forget_loss"] + entry["retain_loss"], rel=1e-4)
        assert entry["forget_loss"] < 0 < entry["retain_loss"]


class _Items:
    """A stand-in split: item i is i."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return index


def test_pairing_is_seeded_per_epoch_and_the_same_in_every_instance() -> None:
    first = ForgetRetainDataset(_Items(5), _Items(100), seed=3)
    second = ForgetRetainDataset(_Items(5), _Items(100), seed=3)
    assert len(first) == 5
    epoch0 = [first[i]["retain"] for i in range(5)]
    assert epoch0 == [second[i]["retain"] for i in range(5)]
    assert [first[i]["forget"] for i in range(5)] == [0, 1, 2, 3, 4]
    first.set_epoch(1)
    epoch1 = [first[i]["retain"] for i in range(5)]
    assert epoch1 != epoch0
    second.set_epoch(1)
    assert epoch1 == [second[i]["retain"] for i in range(5)]
    assert epoch0 != [ForgetRetainDataset(_Items(5), _Items(100), seed=4)[i]["retain"] for i in range(5)]


def test_retain_anchor_pairs_each_retain_item_with_a_forget_item() -> None:
    dataset = ForgetRetainDataset(_Items(3), _Items(10), anchor="retain", seed=0)
    assert len(dataset) == 10
    items = [dataset[i] for i in range(10)]
    assert [item["retain"] for item in items] == list(range(10))
    assert all(0 <= item["forget"] < 3 for item in items)
    assert np.array_equal(dataset.partners(), np.random.default_rng([0, 0]).integers(0, 3, size=10))


def test_pairing_is_the_same_in_dataloader_workers() -> None:
    from torch.utils.data import DataLoader

    dataset = ForgetRetainDataset(_Items(8), _Items(50), seed=1)
    dataset.set_epoch(2)
    in_process = [dataset[i]["retain"] for i in range(8)]
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=lambda items: items)
    from_workers = [item["retain"] for batch in loader for item in batch]
    assert from_workers == in_process


def test_the_trainer_moves_the_pairing_to_each_epoch(tiny64: torch.nn.Module, tmp_path: Path) -> None:
    trainer = _trainer(tiny64, tmp_path, "trainer.args.num_train_epochs=3", "trainer.args.learning_rate=1e-4")
    seen: list[int] = []
    dataset = trainer.train_dataset
    original = dataset.set_epoch

    def record(epoch: int) -> None:
        seen.append(int(epoch))
        original(epoch)

    dataset.set_epoch = record  # type: ignore[method-assign]
    trainer.train()
    assert sorted(set(seen)) == [0, 1, 2]


def test_an_unlearning_trainer_still_evaluates_plain_eval_data(
    tiny64: torch.nn.Module, tmp_path: Path
) -> None:
    trainer = _trainer(
        tiny64,
        tmp_path,
        "data.eval.held.handler=QADataset",
        f'data.eval.held.args.hf_args={{path="{SMALL}", name="forget10", split="train"}}',
    )
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] > 0
