"""The finetune trainer: length-grouped batching from stored lengths, also over several datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch.utils.data import ConcatDataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from unlearn_cli.builtin import resolve_builtin
from unlearn_cli.collators.supervised import DataCollatorForSupervisedDataset
from unlearn_cli.data.qa import QADataset, QAwithAlternateDataset
from unlearn_cli.data.template import TemplateArgs
from unlearn_cli.trainers.finetune import FinetuneTrainer

DATA = "builtin://fictitious-authors?authors=3&facts=4"
TAGS = TemplateArgs(user_start_tag="Question: ", user_end_tag="\n", asst_start_tag="Answer: ")


@pytest.fixture(scope="module")
def tiny() -> tuple:
    folder = resolve_builtin("builtin://tiny-llama")
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def _trainer(tiny: tuple, dataset, tmp_path: Path, strategy: str) -> FinetuneTrainer:
    model, tokenizer = tiny
    args = TrainingArguments(
        output_dir=str(tmp_path),
        report_to="none",
        train_sampling_strategy=strategy,
        per_device_train_batch_size=2,
    )
    return FinetuneTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorForSupervisedDataset(tokenizer),
        processing_class=tokenizer,
    )


def test_group_by_length_uses_stored_lengths_across_datasets(tiny: tuple, tmp_path: Path) -> None:
    _, tokenizer = tiny
    forget = QADataset({"path": DATA, "name": "forget10"}, tokenizer=tokenizer, template_args=TAGS)
    retain = QADataset({"path": DATA, "name": "retain90"}, tokenizer=tokenizer, template_args=TAGS)
    both = ConcatDataset([forget, retain])
    sampler = _trainer(tiny, both, tmp_path, "group_by_length")._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler)
    assert sampler.lengths == forget.lengths() + retain.lengths()
    assert sorted(sampler) == list(range(len(both)))


def test_paired_items_group_by_length_without_top_level_input_ids(tiny: tuple, tmp_path: Path) -> None:
    _, tokenizer = tiny
    pairs = QAwithAlternateDataset({"path": DATA, "name": "full"}, tokenizer=tokenizer, template_args=TAGS)
    sampler = _trainer(tiny, pairs, tmp_path, "group_by_length")._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler) and sampler.lengths == pairs.lengths()


def test_other_strategies_keep_the_trainer_default(tiny: tuple, tmp_path: Path) -> None:
    _, tokenizer = tiny
    dataset = QADataset({"path": DATA, "name": "full"}, tokenizer=tokenizer, template_args=TAGS)
    sampler = _trainer(tiny, dataset, tmp_path, "random")._get_train_sampler()
    assert not isinstance(sampler, LengthGroupedSampler)


def _one_step(tiny_folder: Path, dataset, tmp_path: Path, batch: int, accumulation: int) -> dict:
    import torch

    model = AutoModelForCausalLM.from_pretrained(tiny_folder, dtype=torch.float64)
    tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        report_to="none",
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=1.0,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        train_sampling_strategy="sequential",
        dataloader_pin_memory=False,
    )
    trainer = FinetuneTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorForSupervisedDataset(tokenizer),
        processing_class=tokenizer,
    )
    trainer.train()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_loss_is_a_token_mean_across_gradient_accumulation(tiny: tuple, tmp_path: Path) -> None:
    """One step on two answers of different lengths: batch 2, or batch 1 × accumulation 2, moves the
    weights identically only if both average over all answer tokens of the step (not per micro-batch)."""
    import torch
    from torch.utils.data import Subset

    _, tokenizer = tiny
    full = QADataset({"path": DATA, "name": "full"}, tokenizer=tokenizer, template_args=TAGS)
    trained = [int((full[i]["labels"] != -100).sum()) for i in range(len(full))]
    first = 0
    second = next(i for i in range(len(full)) if trained[i] != trained[first])
    pair = Subset(full, [first, second])
    folder = resolve_builtin("builtin://tiny-llama")
    together = _one_step(folder, pair, tmp_path / "a", batch=2, accumulation=1)
    accumulated = _one_step(folder, pair, tmp_path / "b", batch=1, accumulation=2)
    for name, value in together.items():
        torch.testing.assert_close(accumulated[name], value, rtol=1e-7, atol=1e-9, msg=name)
