"""Primal-dual unlearning, PDU (Entesari et al., 2025, "Constrained Entropic Unlearning: A Primal-Dual
Framework for Large Language Models", arXiv:2506.05314).

Unlearning as a constrained problem: minimise a forget loss subject to retain loss ≤ ε. The forget loss,
*logit-margin flattening*, drives the output distribution on forget answers toward uniform without a softmax:
the squared gap between the largest logit and the mean logit at each answer position. The constraint enters
through its Lagrangian, γ·L_forget + λ·(L_retain − ε), and the dual variable λ (the retain weight, `alpha` at
the start) is updated by projected dual ascent, λ ← max(0, λ + η·(L_retain − ε)), once per optimizer step or
once per epoch, after `dual_warmup_epochs` epochs.

Differences from the reference framework (open-unlearning):

- The forget loss is taken at the positions that *predict* answer tokens (`logits[:, t]` for
  `labels[:, t + 1]`), as every other loss here; the reference masks the unshifted positions, i.e. skips the
  prediction of the first answer token and includes the position after the last.
- A "step" dual update uses the retain loss of the whole optimizer step (token mean over all micro-batches
  and ranks, so every rank holds the same λ); the reference updates after every micro-batch with that
  micro-batch's loss. An "epoch" update uses the token mean over the epoch's retain items (the reference
  averages per-batch means).
- The logged total `loss` is γ·L_forget + λ·L_retain, without the constant −λ·ε (gradients are the same).
  λ is logged as `retain_weight`.
- `loss_names` (the reference's names for its logs) is not a knob: terms are logged as `forget_loss` and
  `retain_loss`.

λ is saved with every checkpoint (in `trainer_state.json`, under `stateful_callbacks`) and restored when a
run resumes from one.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, Field
from torch.utils.data import DataLoader, Subset
from transformers import TrainerCallback

from unlearn_cli.distributed import share_across_ranks
from unlearn_cli.registry import register
from unlearn_cli.trainers.base import BatchCounts, UnlearningArgs, UnlearningTrainer, model_inputs
from unlearn_cli.trainers.losses import denominator, shifted

DUAL_STATE_KEY = "PDUDualVariable"
"""Where λ lives in `TrainerState.stateful_callbacks`, which checkpoints save and resumed runs load."""


def logit_margin_flattening_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_tokens: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Σ over answer-predicting positions of (max_v z_v − mean_v z_v)² / num_tokens.

    Zero exactly when every logit at the position is equal (a uniform next-token distribution).
    """
    next_logits, _, mask = shifted(logits, labels)
    margin = next_logits.max(dim=-1).values - next_logits.mean(dim=-1)
    return (margin.pow(2) * mask).sum() / denominator(num_tokens, mask.sum()).to(margin.device)


def dual_ascent(weight: float, retain_loss: float, retain_loss_eps: float, step_size: float) -> float:
    """One projected dual-ascent step on λ: max(0, λ + step_size · (retain_loss − ε))."""
    return max(0.0, weight + step_size * (retain_loss - retain_loss_eps))


class PDUArgs(UnlearningArgs):
    retain_loss_eps: float = Field(
        description="ε, the bound on the retain loss (required; a little above the initial model's)"
    )
    primal_dual: bool = Field(
        True, description="update the retain weight λ by dual ascent (false: λ = alpha)"
    )
    dual_step_size: float = Field(1.0, ge=0, description="η, the dual ascent step size")
    dual_update_upon: Literal["step", "epoch"] = Field(
        "step", description="update λ after every optimizer step, or after every epoch"
    )
    dual_warmup_epochs: int = Field(5, ge=0, description="epochs trained with λ fixed before updates start")


class _DualAscent(TrainerCallback):
    """Moves the trainer's λ at the end of each step (or epoch), and restores it when a run resumes."""

    def __init__(self, trainer: PDU) -> None:
        self.trainer = trainer

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        saved = (state.stateful_callbacks or {}).get(DUAL_STATE_KEY)
        if isinstance(saved, dict) and "retain_weight" in saved:
            self.trainer.retain_weight = float(saved["retain_weight"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer.end_of_step(state)


@register("trainer", "PDU")
class PDU(UnlearningTrainer):
    """Logit-margin flattening on forget answers, retain loss ≤ ε by a dual-ascent retain weight (PDU)."""

    MethodArgs: ClassVar[type[BaseModel]] = PDUArgs

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retain_weight: float = float(self.method.alpha)
        self.add_callback(_DualAscent(self))

    def term_weights(self) -> dict[str, float]:
        return {"forget": self.method.gamma, "retain": self.retain_weight}

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget = inputs["forget"]
        logits = model(**model_inputs(forget)).logits
        return {
            "forget": logit_margin_flattening_loss(logits, forget["labels"], counts["forget"].tokens),
            "retain": self.retain_loss(model, inputs["retain"], counts["retain"]),
        }

    # --- the dual variable ---------------------------------------------------------------------------------

    def end_of_step(self, state: Any) -> None:
        """Update λ with this step's retain loss (step mode), or the epoch's when this step ended one."""
        if self.method.primal_dual:
            retain_loss = self._constraint_value(state)
            if retain_loss is not None:
                self.retain_weight = dual_ascent(
                    self.retain_weight, retain_loss, self.method.retain_loss_eps, self.method.dual_step_size
                )
        if state.stateful_callbacks is None:
            state.stateful_callbacks = {}
        state.stateful_callbacks[DUAL_STATE_KEY] = {"retain_weight": self.retain_weight}

    def _constraint_value(self, state: Any) -> float | None:
        """The retain loss λ is updated with after this step, or None when λ stays (warm-up, mid-epoch)."""
        warmup = self.method.dual_warmup_epochs
        if self.method.dual_update_upon == "step":
            epoch_index = math.ceil(state.epoch - 1e-6) - 1  # the (0-based) epoch this step belongs to
            step_retain = self.step_terms.get("retain")
            if epoch_index < warmup or step_retain is None:
                return None
            # Each rank's term is its share of the step's token mean, times the ranks (BatchCounts.scale).
            return float(self.accelerator.reduce(step_retain, reduction="mean"))
        ends_epoch = abs(state.epoch - round(state.epoch)) < 1e-6
        if not ends_epoch or round(state.epoch) < warmup:
            return None
        return self.epoch_retain_loss()

    @torch.no_grad()
    def epoch_retain_loss(self) -> float:
        """Token-mean retain loss over the retain items paired in the epoch that just ended, in eval mode.

        The ranks score equal shares of the items and each receives every item's sums, so all agree on λ.
        """
        retain = self.train_dataset.paired_retain()
        was_training = self.model.training
        self.model.eval()
        try:
            sums = share_across_ranks(len(retain), partial(self._retain_sums, retain), self.args.device)
        finally:
            self.model.train(was_training)
        return float(sums["loss"].sum() / sums["tokens"].sum().clamp(min=1))

    def _retain_sums(self, retain: Any, indices: list[int]) -> dict[str, torch.Tensor]:
        """Each retain item's summed retain loss and its labelled tokens, for the items at `indices`."""
        loader = DataLoader(
            Subset(retain, indices), batch_size=self.args.eval_batch_size, collate_fn=self.data_collator
        )
        losses, tokens = [], []
        for batch in loader:
            per_token, mask = self.retain_token_losses(self.model, self._prepare_inputs(batch))
            losses.append(per_token.sum(dim=1))
            tokens.append(mask.sum(dim=1))
        return {"loss": torch.cat(losses), "tokens": torch.cat(tokens)}

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs["retain_weight"] = self.retain_weight
        super().log(logs, start_time)
