"""DPO for unlearning: prefer an alternate answer (e.g. "I don't know") over the answer to forget.

Rafailov et al., 2023 (arXiv:2305.18290), used for unlearning as TOFU's "IdkDPO" (Maini et al., 2024,
arXiv:2401.06121). The forget split's items are {original, alternate} pairs; the original answer is the
dispreferred one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from unlearn_cli.data.template import IGNORE_INDEX
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


def concatenated(*parts: Mapping[str, Any]) -> dict[str, Any]:
    """Batch parts stacked into one batch (one forward for all), padded on the right to a common length.

    Right of every real token, padding changes no real position's logits under causal attention (and
    shifts no position, whichever side the parts were padded on). `ref_logp` is kept when every part has it.
    """
    length = max(part["input_ids"].shape[1] for part in parts)
    pad_values = {"input_ids": 0, "attention_mask": 0, "labels": IGNORE_INDEX}
    batch = {
        key: torch.cat([F.pad(part[key], (0, length - part[key].shape[1]), value=value) for part in parts])
        for key, value in pad_values.items()
        if key in parts[0]
    }
    if all("ref_logp" in part for part in parts):
        batch["ref_logp"] = torch.cat([part["ref_logp"] for part in parts])
    return batch


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
        both = concatenated(alternate, original)
        log_probs = sequence_log_probs(model(**model_inputs(both)).logits, both["labels"])
        ref_log_probs = self.reference_log_probs(both)
        pairs = len(alternate["labels"])
        forget_term = dpo_loss(
            log_probs[:pairs],
            ref_log_probs[:pairs],
            log_probs[pairs:],
            ref_log_probs[pairs:],
            self.method.beta,
            counts["forget.original"].sequences,
        )
        return {"forget": forget_term, "retain": self.retain_loss(model, inputs["retain"], counts["retain"])}
