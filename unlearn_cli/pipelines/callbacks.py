"""Trainer callbacks every run gets: the loss log, stopping on a signal, the divergence guard, early stop.

All of them act at optimizer-step boundaries, where a checkpoint is a consistent state (model, optimizer,
scheduler, RNG and data position), so a stopped run can be resumed exactly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from unlearn_cli.interrupt import StopRequest


def _any_rank(flags: list[float], device: Any) -> list[float]:
    """Element-wise maximum of `flags` over every rank (the same list when not distributed)."""
    import torch
    import torch.distributed as dist

    values = torch.tensor(flags, dtype=torch.float32, device=device)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values.tolist()


def _logged_step(line: str) -> int | None:
    try:
        step = json.loads(line).get("step")
    except (ValueError, AttributeError):  # a line cut short by a killed process
        return None
    return step if isinstance(step, int) else None


def keep_steps_up_to(path: Path, step: int) -> None:
    """Drop the lines of a JSON-lines step log written after `step` (a resumed run continues from there),
    and any line a killed process cut short, so the log reads as one run."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        logged = _logged_step(line)
        if logged is not None and logged <= step:
            kept.append(line + "\n")
    path.write_text("".join(kept), encoding="utf-8")


class LossLog(TrainerCallback):
    """Append every logged training step as JSON: total loss, each loss term, learning rate, grad norm and
    whatever else the method logs with them (e.g. PDU's `retain_weight`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        record: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch}
        record.update({k: v for k, v in logs.items() if isinstance(v, int | float) and k != "epoch"})
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")


class StopOnSignal(TrainerCallback):
    """After each optimizer step, stop and save a checkpoint if any rank received SIGINT/SIGTERM."""

    def __init__(self, request: StopRequest) -> None:
        self.request = request
        self.stopped_at: int | None = None
        self.signum: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        local = float(self.request.signum or 0)
        signum = int(_any_rank([local], args.device)[0]) if args.world_size > 1 else int(local)
        if signum:
            self.signum = signum
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True


@dataclass
class Divergence:
    """Where the loss stopped being a number."""

    step: int
    terms: dict[str, float] = field(default_factory=dict)
    """Each term's value at that step (the weighted contribution to the loss), non-finite ones first."""
    bad_terms: list[str] = field(default_factory=list)
    gradient: bool = False


class DivergenceGuard(TrainerCallback):
    """Before each optimizer step, check the loss terms and the gradient; stop before a non-finite one
    reaches the weights.

    The check costs one norm over the gradients and one device sync per step. On a non-finite value the
    gradients are dropped (the optimizer leaves the weights as they were), nothing is saved, and training
    stops: the last checkpoint on disk is the last good state.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.divergence: Divergence | None = None
        self._check_gradients = True

    def _gradient_norm(self, model: Any, device: Any) -> Any:
        """The sum of the gradients' norms (non-finite if any gradient is), or 0 where gradients are not
        plain tensors on the parameters (DeepSpeed keeps them elsewhere): then only the loss terms count."""
        import torch

        grads = [p.grad for p in model.parameters() if p.grad is not None] if self._check_gradients else []
        if grads:
            try:
                norms = torch._foreach_norm(grads)
                return torch.stack([norm.float().to(device) for norm in norms]).sum()
            except (RuntimeError, TypeError, NotImplementedError):  # sharded gradients (FSDP DTensors)
                self._check_gradients = False
        return torch.zeros((), device=device)

    def _terms(self) -> dict[str, Any]:
        terms = getattr(self.trainer, "step_terms", {})
        weights = self.trainer.term_weights() if hasattr(self.trainer, "term_weights") else {}
        return {name: value * weights.get(name, 1.0) for name, value in terms.items()}

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch

        model = kwargs.get("model") or self.trainer.model
        terms = self._terms()
        device = args.device
        checks = [self._gradient_norm(model, device)]
        names = sorted(terms)
        checks.extend(terms[name].float().reshape(()).to(device) for name in names)
        stacked = torch.stack(checks)
        flags = (~torch.isfinite(stacked)).float().tolist()
        if args.world_size > 1:
            flags = _any_rank(flags, device)
        if not any(flags):
            return
        values = stacked.tolist()
        self.divergence = Divergence(
            step=state.global_step + 1,
            terms={name: values[i + 1] for i, name in enumerate(names)},
            bad_terms=[name for i, name in enumerate(names) if flags[i + 1]],
            gradient=bool(flags[0]),
        )
        for parameter in model.parameters():
            parameter.grad = None
        control.should_training_stop = True

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self.divergence is not None:
            control.should_save = False
            control.should_evaluate = False
            control.should_training_stop = True

    on_epoch_end = on_step_end


@dataclass
class EarlyStop:
    step: int
    retain_loss: float
    limit: float


class RetainLossLimit(TrainerCallback):
    """Stop an unlearning run once its logged retain loss exceeds `run.stop_when_retain_loss_above`."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.stopped: EarlyStop | None = None

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any
    ) -> None:
        value = (logs or {}).get("retain_loss")
        if value is None or self.stopped is not None:
            return
        if math.isfinite(value) and value > self.limit:
            self.stopped = EarlyStop(state.global_step, float(value), self.limit)
            control.should_training_stop = True


class RecordCheckpoints(TrainerCallback):
    """Keep the run marker's file list and latest checkpoint current after every save."""

    def __init__(self, folder: Any) -> None:
        self.folder = folder

    def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if state.is_world_process_zero:
            self.folder.update(
                last_checkpoint=f"checkpoint-{state.global_step}", global_step=state.global_step
            )
