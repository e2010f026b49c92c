"""UNDIAL: self-distillation with adjusted logits (Dong et al., 2024, arXiv:2402.10052).

The model is distilled toward the frozen reference's next-token distribution with the true token's logit
lowered by β, on the answer tokens, as the paper defines it. open-unlearning's code averages the
cross-entropy over every position of the batch (prompt and padding included, where its one-hot index is
the label −100, i.e. the vocabulary's 100th-last token); here only labelled answer positions count, and
their mean is taken over the step's answer tokens.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from unlearn_cli.registry import register
from unlearn_cli.trainers.base import BatchCounts, UnlearningArgs, UnlearningTrainer, model_inputs
from unlearn_cli.trainers.contract import ReferenceNeed
from unlearn_cli.trainers.losses import denominator, shifted


def undial_loss(
    logits: torch.Tensor,
    reference_logits: torch.Tensor,
    labels: torch.Tensor,
    beta: float,
    num_tokens: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Σ_t CE(softmax(z_ref,t − β·onehot(y_t)), π(·|prefix_t)) / num_tokens over the answer positions."""
    next_logits, next_labels, mask = shifted(logits, labels)
    selected = next_logits[mask]  # [N, V]
    targets = next_labels[mask].unsqueeze(1)
    reference = reference_logits[:, :-1, :][mask].detach().float()
    adjusted = reference.scatter_add(1, targets, torch.full_like(targets, -beta, dtype=reference.dtype))
    per_position = -(F.softmax(adjusted, dim=-1) * F.log_softmax(selected, dim=-1)).sum(dim=-1)
    return per_position.sum() / denominator(num_tokens, mask.sum()).to(per_position.device)


class UNDIALArgs(UnlearningArgs):
    beta: float = Field(10.0, ge=0, description="how far the true token's reference logit is lowered")
    alpha: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="weight of the retain term (0: no retain forward pass)"
    )


@register("trainer", "UNDIAL")
class UNDIAL(UnlearningTrainer):
    """Self-distillation toward the reference, the true token's logit lowered by beta (+ a retain term)."""

    MethodArgs: ClassVar[type[BaseModel]] = UNDIALArgs

    @classmethod
    def reference_need(cls, method_args: Any) -> ReferenceNeed:
        return ReferenceNeed(model=True)

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget = inputs["forget"]
        if self.reference is None:
            raise RuntimeError("UNDIAL needs a reference model; the container gives one")
        logits = model(**model_inputs(forget)).logits
        reference_logits = self.reference(**forget).logits
        terms = {
            "forget": undial_loss(
                logits, reference_logits, forget["labels"], self.method.beta, counts["forget"].tokens
            )
        }
        if self.method.alpha != 0:
            terms["retain"] = self.retain_loss(model, inputs["retain"], counts["retain"])
        return terms
