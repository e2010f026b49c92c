"""Mean negative log-likelihood of the trained (labelled) tokens.

The mean is over tokens, not sequences or batches: the sum of per-token NLL over every labelled token in the
data divided by their count, so long answers weigh as much as their length and padding never counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from unlearn_cli.trainers.losses import token_nll


def token_nll_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of next-token NLL over labelled positions, and how many there were.

    `logits[:, t]` predicts `labels[:, t + 1]`, as in causal language modelling.
    """
    nll, mask = token_nll(logits, labels)
    return nll.sum(), mask.sum()


@torch.no_grad()
def mean_answer_nll(
    model: Any,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    batch_size: int = 16,
) -> float:
    """Token-level mean NLL of the labelled tokens of `dataset` under `model` (eval mode, no gradients).

    Paired items ({original, alternate}, as preference methods read) are scored by their original answer.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64)
    count = torch.zeros((), dtype=torch.long)
    for batch in _batches(dataset, collator, batch_size):
        input_ids = batch["input_ids"].to(device)
        labels = batch["labels"].to(device)
        attention_mask = batch["attention_mask"].to(device)
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        batch_sum, batch_count = token_nll_sum(logits, labels)
        total += batch_sum.double().cpu()
        count += batch_count.cpu()
    model.train(was_training)
    if count == 0:
        raise ValueError("the dataset has no labelled tokens to score")
    return float(total / count)


def _scored(item: dict[str, Any]) -> dict[str, Any]:
    """The sequence an item is scored by: itself, or the original answer of an {original, alternate} pair."""
    return item["original"] if "input_ids" not in item and "original" in item else item


def _batches(dataset: Any, collator: Callable, batch_size: int) -> Iterable[dict[str, torch.Tensor]]:
    for start in range(0, len(dataset), batch_size):
        yield collator([_scored(dataset[i]) for i in range(start, min(start + batch_size, len(dataset)))])
