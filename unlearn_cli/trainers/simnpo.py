"""SimNPO: reference-free NPO on length-normalised log-likelihoods (Fan et al., 2024, arXiv:2410.07163).

The margin `delta` (the paper's γ) is subtracted after scaling by β, as the paper writes
−(2/β)·log σ(−(β/|y|)·log π(y|x) − γ). open-unlearning's code subtracts it before scaling,
σ(β·(avgNLL − δ)), i.e. its δ is the paper's γ/β; the two agree at the default delta = 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from unlearn_cli.registry import register
from unlearn_cli.trainers.base import BatchCounts, UnlearningArgs, UnlearningTrainer, model_inputs
from unlearn_cli.trainers.losses import denominator, labelled_tokens, sequence_log_probs


def simnpo_loss(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    beta: float,
    delta: float = 0.0,
    num_sequences: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """−(2/β) · Σ log σ(−β · log π(y|x) / |y| − δ) / num_sequences.

    `log_probs` are summed answer log-probabilities per sequence, `lengths` their answer token counts |y|;
    sequences without answer tokens do not count. Unlike NPO no reference appears: the length-normalised
    likelihood alone is pushed down, and the gradient fades once it is low.
    """
    lengths = lengths.to(log_probs.device)
    answered = lengths > 0
    mean_nll = -log_probs / lengths.clamp(min=1)
    per_sequence = F.logsigmoid(beta * mean_nll - delta) * answered
    fallback = answered.sum()
    return -(2.0 / beta) * per_sequence.sum() / denominator(num_sequences, fallback).to(log_probs.device)


class SimNPOArgs(UnlearningArgs):
    delta: float = Field(0.0, description="reward margin γ of the paper, subtracted after scaling by beta")
    beta: float = Field(4.5, gt=0, description="inverse temperature of the length-normalised preference loss")
    gamma: float = Field(0.125, ge=0, allow_inf_nan=False, description="weight of the forget term")


@register("trainer", "SimNPO")
class SimNPO(UnlearningTrainer):
    """SimNPO on the forget answers (length-normalised, no reference) + GradDiff's retain term."""

    MethodArgs: ClassVar[type[BaseModel]] = SimNPOArgs

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget = inputs["forget"]
        log_probs = sequence_log_probs(model(**model_inputs(forget)).logits, forget["labels"])
        forget_term = simnpo_loss(
            log_probs,
            labelled_tokens(forget["labels"]),
            self.method.beta,
            self.method.delta,
            counts["forget"].sequences,
        )
        return {"forget": forget_term, "retain": self.retain_loss(model, inputs["retain"], counts["retain"])}
