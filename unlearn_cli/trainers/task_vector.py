"""Task-vector negation (Ilharco et al., 2023, "Editing Models with Task Arithmetic", arXiv:2212.04089), the
unlearning baseline of MUSE (Shi et al., 2024).

Fine-tune the model on the forget set (plain descent on the forget answers' NLL) for the run's epochs to get
the "reinforced" weights θ_r; the difference θ_r − θ is the task vector of the forget data. The output is the
initial weights with that vector subtracted: θ − alpha·(θ_r − θ). The reference framework has no such method.

A CPU copy of the initial trainable weights is kept for the whole run (the model's size in host memory); the
negation is applied when `train()` returns, so the saved model is the negated one. Adapters (PEFT) are
refused: negating LoRA factors is not negating the weights' task vector; so are ZeRO-3 and FSDP, whose
processes hold only shards of the weights.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from unlearn_cli.distributed import zero3_enabled
from unlearn_cli.errors import UserError
from unlearn_cli.registry import register
from unlearn_cli.trainers.base import FORGET_ONLY, BatchCounts, UnlearningTrainer, model_inputs
from unlearn_cli.trainers.contract import TrainerContract
from unlearn_cli.trainers.losses import nll_loss


def negated_task_vector(initial: torch.Tensor, reinforced: torch.Tensor, alpha: float) -> torch.Tensor:
    """θ − alpha·(θ_r − θ): the initial weights moved away from the fine-tuned ones (float32 arithmetic)."""
    base = initial.float()
    return base - alpha * (reinforced.float() - base)


class TaskVectorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(1.0, allow_inf_nan=False, description="scale of the subtracted task vector")


@register("trainer", "TaskVector")
class TaskVector(UnlearningTrainer):
    """Fine-tune on the forget answers, then subtract alpha × that change from the initial weights."""

    contract: ClassVar[TrainerContract] = FORGET_ONLY
    MethodArgs: ClassVar[type[BaseModel]] = TaskVectorArgs

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if hasattr(self.model, "peft_config"):
            raise UserError(
                "TaskVector negates full weights, and the model is a PEFT (adapter) model",
                hint="unlearn with TaskVector without LoRA, or merge the adapter into the model first",
            )
        if zero3_enabled() or self.is_fsdp_enabled:
            raise UserError(
                "TaskVector copies and negates whole weights, and under DeepSpeed ZeRO-3 or FSDP each "
                "process holds only a shard of them (the saved model would be the forget-tuned one)",
                hint="run TaskVector on one device or with the DDP or ZeRO-2 accelerate config",
            )
        self.initial_weights = {
            name: parameter.detach().to("cpu", copy=True)
            for name, parameter in self.model.named_parameters()
            if parameter.requires_grad
        }

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget = inputs["forget"]
        logits = model(**model_inputs(forget)).logits
        return {"forget": nll_loss(logits, forget["labels"], counts["forget"].tokens)}

    def term_weights(self) -> dict[str, float]:
        return {"forget": 1.0}

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """Fine-tune to the reinforced weights, then replace them by the negated task vector."""
        output = super().train(*args, **kwargs)
        self.negate()
        return output

    @torch.no_grad()
    def negate(self) -> None:
        """θ ← θ_0 − alpha·(θ − θ_0) for every trained parameter (θ: the reinforced weights now held)."""
        for name, parameter in self.model.named_parameters():
            initial = self.initial_weights.get(name)
            if initial is not None:
                value = negated_task_vector(initial.to(parameter.device), parameter, self.method.alpha)
                parameter.copy_(value.to(parameter.dtype))
