"""Negative preference optimisation (Zhang et al., 2024, arXiv:2404.05868)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from unlearn_cli.registry import register
from unlearn_cli.trainers.base import (
    BatchCounts,
    ReferenceLogProbArgs,
    UnlearningArgs,
    UnlearningTrainer,
    model_inputs,
)
from unlearn_cli.trainers.contract import ReferenceNeed
from unlearn_cli.trainers.losses import denominator, sequence_log_probs


def npo_loss(
    log_probs: torch.Tensor,
    ref_log_probs: torch.Tensor,
    beta: float,
    num_sequences: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """−(2/β) · Σ log σ(−β · (log π(y|x) − log π_ref(y|x))) / num_sequences.

    `log_probs` and `ref_log_probs` are summed answer log-probabilities per sequence. As β → 0 this becomes
    gradient ascent on log π; its gradient vanishes once π(y|x) falls well below π_ref(y|x).
    """
    per_sequence = F.logsigmoid(-beta * (log_probs - ref_log_probs.to(log_probs.device)))
    return (
        -(2.0 / beta) * per_sequence.sum() / denominator(num_sequences, len(log_probs)).to(log_probs.device)
    )


class NPOArgs(ReferenceLogProbArgs, UnlearningArgs):
    beta: float = Field(0.1, gt=0, description="inverse temperature of the preference loss")


@register("trainer", "NPO")
class NPO(UnlearningTrainer):
    """NPO on the forget answers (sequence log-prob ratio to the reference) + GradDiff's retain term."""

    MethodArgs: ClassVar[type[BaseModel]] = NPOArgs

    @classmethod
    def reference_need(cls, method_args: Any) -> ReferenceNeed:
        per_step = method_args.ref_log_probs == "per_step"
        return ReferenceNeed(
            model=per_step or method_args.retain_loss_type == "KL",
            log_probs=() if per_step else ("forget",),
        )

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget = inputs["forget"]
        log_probs = sequence_log_probs(model(**model_inputs(forget)).logits, forget["labels"])
        forget_term = npo_loss(
            log_probs, self.reference_log_probs(forget), self.method.beta, counts["forget"].sequences
        )
        return {"forget": forget_term, "retain": self.retain_loss(model, inputs["retain"], counts["retain"])}
