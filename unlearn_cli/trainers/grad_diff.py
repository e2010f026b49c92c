"""Gradient difference: ascend on the forget answers while descending on the retain answers."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel

from unlearn_cli.registry import register
from unlearn_cli.trainers.base import BatchCounts, UnlearningArgs, UnlearningTrainer, model_inputs
from unlearn_cli.trainers.grad_ascent import gradient_ascent_loss


@register("trainer", "GradDiff")
class GradDiff(UnlearningTrainer):
    """gamma·(−NLL forget) + alpha·(NLL retain, or KL to the reference on retain); token means."""

    MethodArgs: ClassVar[type[BaseModel]] = UnlearningArgs

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget = inputs["forget"]
        logits = model(**model_inputs(forget)).logits
        return {
            "forget": gradient_ascent_loss(logits, forget["labels"], counts["forget"].tokens),
            "retain": self.retain_loss(model, inputs["retain"], counts["retain"]),
        }
