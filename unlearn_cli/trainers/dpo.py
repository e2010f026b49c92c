"""DPO for unlearning: prefer an alternate answer (e.g. "I don't know") over the answer to forget.

Rafailov et al., 2023 (arXiv:2305.18290), used for unlearning as TOFU's "IdkDPO" (Maini et al., 2024,
arXiv:2401.06121). The forget split's items are {original, alternate} pairs; the original answer is the
dispreferred one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from unlearn_cli.registry import register
from unlearn_cli.trainers.base import (
    FORGET_RETAIN,
    BatchCounts,
    ReferenceLogProbArgs,
    UnlearningArgs,
    UnlearningTrainer,
    model_inputs,
)
from unlearn_cli.trainers.contract import ReferenceNeed, TrainerContract
from unlearn_cli.trainers.losses import denominator, sequence_log_probs


def dpo_loss(
    preferred_log_probs: torch.Tensor,
    preferred_ref_log_probs: torch.Tensor,
    dispreferred_log_probs: torch.Tensor,
    dispreferred_ref_log_probs: torch.Tensor,
    beta: float,
    num_sequences: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """−(2/β) · Σ log σ(β · ((log π_w − log π_ref_w) − (log π_l − log π_ref_l))) / num_sequences.

    Each argument holds one summed answer log-probability per pair (w: preferred, l: dispreferred). The
    2/β scale matches NPO's, so the two losses are on the same footing.
    """
    device = preferred_log_probs.device
    margin = (preferred_log_probs - preferred_ref_log_probs.to(device)) - (
        dispreferred_log_probs - dispreferred_ref_log_probs.to(device)
    )
    per_pair = F.logsigmoid(beta * margin)
    return -(2.0 / beta) * per_pair.sum() / denominator(num_sequences, len(margin)).to(device)


class DPOArgs(ReferenceLogProbArgs, UnlearningArgs):
    beta: float = Field(0.1, gt=0, description="inverse temperature of the preference loss")


@register("trainer", "DPO")
class DPO(UnlearningTrainer):
    """DPO on forget pairs (alternate preferred over original, ratios to the reference) + a retain term."""

    contract: ClassVar[TrainerContract] = replace(FORGET_RETAIN, item_shapes={"forget": "pair"})
    MethodArgs: ClassVar[type[BaseModel]] = DPOArgs

    @classmethod
    def reference_need(cls, method_args: Any) -> ReferenceNeed:
        per_step = method_args.ref_log_probs == "per_step"
        return ReferenceNeed(
            model=per_step or method_args.retain_loss_type == "KL",
            log_probs=() if per_step else ("forget.original", "forget.alternate"),
        )

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        original, alternate = inputs["forget"]["original"], inputs["forget"]["alternate"]
        preferred = sequence_log_probs(model(**model_inputs(alternate)).logits, alternate["labels"])
        dispreferred = sequence_log_probs(model(**model_inputs(original)).logits, original["labels"])
        forget_term = dpo_loss(
            preferred,
            self.reference_log_probs(alternate),
            dispreferred,
            self.reference_log_probs(original),
            self.method.beta,
            counts["forget.original"].sequences,
        )
        return {"forget": forget_term, "retain": self.retain_loss(model, inputs["retain"], counts["retain"])}
