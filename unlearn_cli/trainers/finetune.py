"""Supervised fine-tuning, the first step of every unlearning experiment (e.g. TOFU's "full" model)."""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from unlearn_cli.registry import register


def dataset_lengths(dataset: Any) -> list[int] | None:
    """Token length of every item, read from the datasets' stored lengths (no item is materialised)."""
    from torch.utils.data import ConcatDataset

    if isinstance(dataset, ConcatDataset):
        parts = [dataset_lengths(part) for part in dataset.datasets]
        return None if any(p is None for p in parts) else [n for p in parts for n in p or []]
    return list(dataset.lengths()) if hasattr(dataset, "lengths") else None


@register("trainer", "finetune")
class FinetuneTrainer(Trainer):
    """Supervised fine-tuning: transformers.Trainer, loss on the labelled (answer) tokens.

    The loss is the token-level mean over every labelled token of an optimizer step, also across gradient
    accumulation and ranks, because transformers passes `num_items_in_batch` to the model's loss.
    With `train_sampling_strategy = "group_by_length"`, batches group items of similar length using the
    lengths the datasets stored when tokenizing, instead of reading every item.
    """

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = dataset_lengths(dataset) if dataset is not None else None
        if self.args.train_sampling_strategy != "group_by_length" or lengths is None:
            return super()._get_train_sampler(train_dataset)
        from transformers.trainer_pt_utils import LengthGroupedSampler

        return LengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            dataset=dataset,
            lengths=lengths,
        )
