"""SatImp: saturation-importance reweighted gradient ascent (Yang et al., 2025, "Exploring Criteria of Loss
Reweighting to Enhance LLM Unlearning", arXiv:2505.11953)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, Field

from unlearn_cli.registry import register
from unlearn_cli.trainers.base import BatchCounts, UnlearningArgs, UnlearningTrainer, model_inputs
from unlearn_cli.trainers.losses import denominator, token_nll


def satimp_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    beta1: float,
    beta2: float,
    num_tokens: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """−Σ p(y_t)^β1 · (1 − p(y_t))^β2 · NLL(y_t) / num_tokens over the answer tokens, weights held constant.

    The weight peaks at intermediate probabilities: p^β1 (saturation) fades the push on tokens already
    unlikely, (1 − p)^β2 (importance) on tokens the model is nearly certain of.
    """
    nll, mask = token_nll(logits, labels)
    p = torch.exp(-nll.detach())
    weight = p**beta1 * (1 - p) ** beta2
    return -(weight * nll * mask).sum() / denominator(num_tokens, mask.sum()).to(nll.device)


class SatImpArgs(UnlearningArgs):
    beta1: float = Field(5.0, ge=0, description="exponent of the saturation weight p^beta1")
    beta2: float = Field(1.0, ge=0, description="exponent of the importance weight (1 - p)^beta2")
    gamma: float = Field(0.1, ge=0, allow_inf_nan=False, description="weight of the forget term")


@register("trainer", "SatImp")
class SatImp(UnlearningTrainer):
    """Gradient ascent on forget tokens weighted by p^beta1·(1−p)^beta2 (token mean) + a retain term."""

    MethodArgs: ClassVar[type[BaseModel]] = SatImpArgs

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget = inputs["forget"]
        logits = model(**model_inputs(forget)).logits
        forget_term = satimp_loss(
            logits, forget["labels"], self.method.beta1, self.method.beta2, counts["forget"].tokens
        )
        return {"forget": forget_term, "retain": self.retain_loss(model, inputs["retain"], counts["retain"])}
