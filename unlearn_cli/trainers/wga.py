"""Weighted gradient ascent (Wang et al., 2025, "Rethinking LLM Unlearning Objectives", arXiv:2502.19301)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, Field

from unlearn_cli.registry import register
from unlearn_cli.trainers.base import BatchCounts, UnlearningArgs, UnlearningTrainer, model_inputs
from unlearn_cli.trainers.losses import denominator, token_nll


def wga_loss(
    logits: torch.Tensor, labels: torch.Tensor, beta: float, num_tokens: torch.Tensor | int | None = None
) -> torch.Tensor:
    """−Σ p(y_t)^β · NLL(y_t) / num_tokens over the answer tokens, the weight p^β held constant.

    Gradient ascent whose push fades on tokens the model already finds unlikely, so effort goes to what it
    still knows instead of driving forgotten tokens' likelihood ever lower.
    """
    nll, mask = token_nll(logits, labels)
    weight = torch.exp(-nll.detach()) ** beta
    return -(weight * nll * mask).sum() / denominator(num_tokens, mask.sum()).to(nll.device)


class WGAArgs(UnlearningArgs):
    beta: float = Field(1.0, ge=0, description="exponent of the token-probability weight p^beta")


@register("trainer", "WGA")
class WGA(UnlearningTrainer):
    """Weighted gradient ascent on the forget answers (token weight p^beta, token mean) + a retain term."""

    MethodArgs: ClassVar[type[BaseModel]] = WGAArgs

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget = inputs["forget"]
        logits = model(**model_inputs(forget)).logits
        return {
            "forget": wga_loss(logits, forget["labels"], self.method.beta, counts["forget"].tokens),
            "retain": self.retain_loss(model, inputs["retain"], counts["retain"]),
        }
