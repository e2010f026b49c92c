"""Supervised fine-tuning, the first step of every unlearning experiment (e.g. TOFU's "full" model)."""

from __future__ import annotations

from transformers import Trainer

from unlearn_cli.registry import register


@register("trainer", "finetune")
class FinetuneTrainer(Trainer):
    """Supervised fine-tuning: transformers.Trainer, loss on the labelled (answer) tokens.

    The loss is the token-level mean over every labelled token of an optimizer step, also across gradient
    accumulation and ranks, because transformers passes `num_items_in_batch` to the model's loss.
    """
