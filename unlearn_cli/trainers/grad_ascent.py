"""Gradient ascent: raise the loss of the forget answers (the simplest unlearning baseline)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel

from unlearn_cli.registry import register
from unlearn_cli.trainers.base import FORGET_ONLY, BatchCounts, UnlearningTrainer, model_inputs
from unlearn_cli.trainers.contract import NoMethodArgs, TrainerContract
from unlearn_cli.trainers.losses import nll_loss


def gradient_ascent_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_tokens: torch.Tensor | int | None = None
) -> torch.Tensor:
    """−Σ answer-token NLL / num_tokens: minimising it maximises the NLL of the forget answers."""
    return -nll_loss(logits, labels, num_tokens)


@register("trainer", "GradAscent")
class GradAscent(UnlearningTrainer):
    """Gradient ascent on the forget answers' NLL (token mean); no retain term, no reference."""

    contract: ClassVar[TrainerContract] = FORGET_ONLY
    MethodArgs: ClassVar[type[BaseModel]] = NoMethodArgs

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget = inputs["forget"]
        logits = model(**model_inputs(forget)).logits
        return {"forget": gradient_ascent_loss(logits, forget["labels"], counts["forget"].tokens)}

    def term_weights(self) -> dict[str, float]:
        return {"forget": 1.0}
