"""CE-U, cross-entropy unlearning (Yang, 2025, "CE-U: Cross Entropy Unlearning", arXiv:2503.01224).

At each answer position the target is the model's own (detached) next-token distribution with the true token
removed: the loss moves probability off the true token onto the tokens the model already finds plausible,
and, unlike gradient ascent's −NLL, it is bounded below (a cross-entropy, never negative).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from unlearn_cli.data.template import IGNORE_INDEX
from unlearn_cli.registry import register
from unlearn_cli.trainers.base import FORGET_ONLY, BatchCounts, UnlearningTrainer, model_inputs
from unlearn_cli.trainers.contract import TrainerContract
from unlearn_cli.trainers.losses import denominator, shifted

COUNTED_TOKENS = "forget_counted_tokens"


def counted_positions(labels: torch.Tensor, ignore_first_n_answer_tokens: int) -> torch.Tensor:
    """Next-token positions [B, T-1] that count: labelled, after each sequence's first n labelled ones."""
    mask = labels[:, 1:] != IGNORE_INDEX
    return mask & (mask.cumsum(dim=1) > ignore_first_n_answer_tokens)


def ceu_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_first_n_answer_tokens: int = 1,
    num_tokens: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Σ_t CE(q_t, π(·|prefix_t)) / num_tokens over the counted answer positions, where
    q_t = softmax(z_t with z_t[y_t] = −∞), z_t the model's own logits, detached."""
    next_logits, next_labels, _ = shifted(logits, labels)
    counted = counted_positions(labels, ignore_first_n_answer_tokens)
    selected = next_logits[counted]  # [N, V]
    target_logits = selected.detach().scatter(1, next_labels[counted].unsqueeze(1), float("-inf"))
    target = F.softmax(target_logits, dim=-1)
    per_position = -(target * F.log_softmax(selected, dim=-1)).sum(dim=-1)
    return per_position.sum() / denominator(num_tokens, counted.sum()).to(per_position.device)


class CEUArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ignore_first_n_answer_tokens: int = Field(
        1, ge=0, description="answer tokens at the start of each answer left out of the loss"
    )


@register("trainer", "CEU")
class CEU(UnlearningTrainer):
    """Cross-entropy toward the model's own distribution without the true token, on forget answers only."""

    contract: ClassVar[TrainerContract] = FORGET_ONLY
    MethodArgs: ClassVar[type[BaseModel]] = CEUArgs

    def extra_counts(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The positions the loss averages over: not every labelled token when answers are short."""
        labels = batch["forget"]["labels"]
        return {COUNTED_TOKENS: counted_positions(labels, self.method.ignore_first_n_answer_tokens).sum()}

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget = inputs["forget"]
        logits = model(**model_inputs(forget)).logits
        n = self.method.ignore_first_n_answer_tokens
        return {"forget": ceu_loss(logits, forget["labels"], n, counts.extra[COUNTED_TOKENS])}

    def term_weights(self) -> dict[str, float]:
        return {"forget": 1.0}
