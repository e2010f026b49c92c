"""Supervised fine-tuning, the first step of every unlearning experiment (e.g. TOFU's "full" model)."""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from unlearn_cli.registry import register


@register("trainer", "finetune")
class FinetuneTrainer(Trainer):
    """Supervised fine-tuning: transformers.Trainer, loss on the labelled (answer) tokens.

    The loss is the token-level mean over every labelled token of an optimizer step, also across gradient
    accumulation and ranks, because transformers passes `num_items_in_batch` to the model's loss.
    With `train_sampling_strategy = "group_by_length"`, batches group items of similar length using the
    lengths the datasets stored when tokenizing, instead of reading every item.
    """

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        from unlearn_cli.data.base import dataset_lengths, length_grouped_sampler

        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or dataset_lengths(dataset) is None:
            return super()._get_train_sampler(train_dataset)
        return length_grouped_sampler(
            dataset, self.args.train_batch_size * self.args.gradient_accumulation_steps
        )
