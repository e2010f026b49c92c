"""Alternate preference optimisation, AltPO (Mekala et al., 2024, "Alternate Preference Optimization for
Unlearning Factual Knowledge in Large Language Models", arXiv:2409.13474).

Negative feedback alone (gradient ascent, NPO) pushes forget answers down and leaves the model saying
nonsense; AltPO adds in-domain positive feedback: for each forget question it prefers a plausible *alternate*
answer over the true one, with a DPO loss against the initial model, plus a retain term:

    γ · −(2/β) · mean log σ(β·[(log π(ỹ|x) − log π_ref(ỹ|x)) − (log π(y|x) − log π_ref(y|x))]) + α · retain

where y is the forget answer and ỹ an alternate (one pair per alternate when a question has several).
Alternates come from the data (`QAwithAlternateDataset`, e.g. TOFU's `perturbed_answer`) or are generated
once by the model before training (`QAwithGeneratedAlternateDataset`, cached on disk), as the paper does.

Reference log-probabilities of both answers are computed once before training by default
(`ref_log_probs = "cached"`, exact, no second model in memory); "per_step" keeps a frozen reference model.
The reference framework runs AltPO as its DPO trainer over a file of generated alternates; the loss (with the
2/β scale of the authors' code) and the defaults (`beta=0.1, alpha=1, gamma=1`, NLL retain) are the same.
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


def alternate_preference_loss(
    alternate_log_probs: torch.Tensor,
    alternate_ref_log_probs: torch.Tensor,
    original_log_probs: torch.Tensor,
    original_ref_log_probs: torch.Tensor,
    beta: float,
    num_pairs: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """−(2/β) · Σ log σ(β·(Δ_alternate − Δ_original)) / num_pairs, Δ = log π − log π_ref per sequence.

    Every argument but `beta` is a [B] tensor of summed answer log-probabilities. The loss falls as the
    alternate answer gains probability relative to the forget answer (both measured against the reference).
    """
    device = alternate_log_probs.device
    alternate = alternate_log_probs - alternate_ref_log_probs.to(device)
    original = original_log_probs - original_ref_log_probs.to(device)
    per_pair = F.logsigmoid(beta * (alternate - original))
    return -(2.0 / beta) * per_pair.sum() / denominator(num_pairs, len(per_pair)).to(device)


class AltPOArgs(ReferenceLogProbArgs, UnlearningArgs):
    beta: float = Field(0.1, gt=0, description="inverse temperature of the preference loss")


ALTPO_CONTRACT: TrainerContract = replace(FORGET_RETAIN, item_shapes={"forget": "pair"})
"""Forget items are {original, alternate} pairs; retain items plain question/answer sequences."""


@register("trainer", "AltPO")
class AltPO(UnlearningTrainer):
    """Prefer alternate answers over the forget answers (DPO against the initial model) + a retain term."""

    contract: ClassVar[TrainerContract] = ALTPO_CONTRACT
    MethodArgs: ClassVar[type[BaseModel]] = AltPOArgs

    @classmethod
    def reference_need(cls, method_args: Any) -> ReferenceNeed:
        per_step = method_args.ref_log_probs == "per_step"
        return ReferenceNeed(
            model=per_step or method_args.retain_loss_type == "KL",
            log_probs=() if per_step else ("forget.original", "forget.alternate"),
        )

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        original, alternate = inputs["forget"]["original"], inputs["forget"]["alternate"]
        original_log_probs = sequence_log_probs(model(**model_inputs(original)).logits, original["labels"])
        alternate_log_probs = sequence_log_probs(model(**model_inputs(alternate)).logits, alternate["labels"])
        forget_term = alternate_preference_loss(
            alternate_log_probs,
            self.reference_log_probs(alternate),
            original_log_probs,
            self.reference_log_probs(original),
            self.method.beta,
            counts["forget.original"].sequences,
        )
        return {"forget": forget_term, "retain": self.retain_loss(model, inputs["retain"], counts["retain"])}
