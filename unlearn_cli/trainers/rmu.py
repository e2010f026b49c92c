"""Representation misdirection for unlearning, RMU (Li et al., 2024, "The WMDP Benchmark", arXiv:2403.03218).

On forget tokens, the hidden states of one layer are pushed toward a fixed random direction scaled by
`steering_coeff`; on retain tokens they are held at the frozen reference model's. Only the parameters the
recipe names (`trainable_params_regex`) are trained.

Differences from the reference framework (open-unlearning):

- The paper writes each term as a squared ℓ2 distance per token; its code and the reference framework take
  the mean over the hidden dimension instead (a constant factor 1/d). We keep the per-dimension mean, because
  the published steering coefficients, α and learning rates (with gradient clipping) were tuned with it.
- Token means run over the labelled tokens of the whole optimizer step (all micro-batches and ranks), not per
  sequence and then per batch, so that an update does not depend on how the step's batch was split.
- The random direction comes from a generator seeded with the run's seed, so a rerun steers toward the same
  vector (the reference framework draws it from the global random state).
- Parameters outside `trainable_params_regex` are frozen (no gradient is computed for them), where the
  reference framework only leaves them out of the optimizer.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, Field

from unlearn_cli.data.template import IGNORE_INDEX
from unlearn_cli.distributed import zero3_enabled
from unlearn_cli.errors import UserError
from unlearn_cli.registry import register
from unlearn_cli.trainers.base import (
    FORGET_RETAIN,
    UNLEARNING_ARGS,
    BatchCounts,
    UnlearningArgs,
    UnlearningTrainer,
    model_inputs,
)
from unlearn_cli.trainers.contract import ReferenceNeed, TrainerContract
from unlearn_cli.trainers.losses import denominator
from unlearn_cli.trainers.reference import AdapterDisabledReference

PEFT_PREFIX = "base_model.model."


def activation_distance_loss(
    activations: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    num_tokens: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Σ over masked positions of mean_d (activation − target)² / num_tokens.

    `activations` [B, T, D]; `targets` [B, T, D] or [D] (one vector for every position); `mask` [B, T] marks
    the positions that count. Left out, `num_tokens` is the number of masked positions.
    """
    squared = (activations.float() - targets.float().to(activations.device)).pow(2).mean(dim=-1)
    mask = mask.to(squared.device)
    return (squared * mask).sum() / denominator(num_tokens, mask.sum()).to(squared.device)


def token_mask(labels: torch.Tensor) -> torch.Tensor:
    """Positions whose hidden state is steered: labelled tokens after the first position [B, T].

    Exactly the tokens the step's counts cover (`labels[:, 1:] != -100`), so the denominators match; for
    question/answer data this is every answer token.
    """
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, 1:] = labels[:, 1:] != IGNORE_INDEX
    return mask


def random_control_vector(dim: int, steering_coeff: float, seed: int) -> torch.Tensor:
    """`steering_coeff` × a unit vector drawn uniformly from [0, 1)^dim and normalised, seeded (float32)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    direction = torch.rand(dim, generator=generator)
    return direction / direction.norm() * steering_coeff


class RMUArgs(UnlearningArgs):
    steering_coeff: float = Field(
        2.0, description="length of the random vector forget activations are steered to"
    )
    retain_loss_type: Literal["EMBED_DIFF", "NLL", "KL"] = Field(  # type: ignore[assignment]
        "EMBED_DIFF",
        description="retain term: 'EMBED_DIFF' (distance to the reference's activations at the module), "
        "NLL of retain answers, or KL to the reference",
    )
    module_regex: str = Field(
        r"model\.layers\.7", description="the one module (full match of its name) whose output is steered"
    )
    trainable_params_regex: list[str] = Field(
        default_factory=lambda: [".*"],
        min_length=1,
        description="parameters (full match of their names) that are trained; all others are frozen",
    )


def _matches(pattern: str, name: str) -> bool:
    """Full match of a module or parameter name, also without a PEFT model's wrapper prefix."""
    if re.fullmatch(pattern, name):
        return True
    return name.startswith(PEFT_PREFIX) and re.fullmatch(pattern, name[len(PEFT_PREFIX) :]) is not None


def _examples(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def steered_module_name(model: Any, pattern: str) -> str:
    """The name of the one module whose name fully matches `pattern`, or a UserError listing candidates."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UserError(f"'{pattern}' is not a valid regular expression: {exc}", key="module_regex") from None
    names = [name for name, _ in model.named_modules() if name]
    matched = [name for name in names if _matches(compiled.pattern, name)]
    if len(matched) == 1:
        return matched[0]
    layers = [name for name in names if re.search(r"layers\.\d+$", name)] or names
    if not matched:
        raise UserError(
            f"'{pattern}' matches no module of the model",
            key="module_regex",
            hint=f"the pattern must match a whole module name, e.g. one of: {_examples(layers)}",
        )
    raise UserError(
        f"'{pattern}' matches {len(matched)} modules ({_examples(matched)}); RMU steers exactly one",
        key="module_regex",
        hint="make the pattern match one module name, e.g. " + re.escape(matched[0]),
    )


def freeze_untrainable(model: Any, patterns: list[str]) -> list[str]:
    """Freeze every parameter whose name matches none of `patterns`; the names left trainable."""
    for index, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UserError(
                f"'{pattern}' is not a valid regular expression: {exc}",
                key=f"trainable_params_regex[{index}]",
            ) from None
    trainable = []
    candidates = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        candidates.append(name)
        if any(_matches(pattern, name) for pattern in patterns):
            trainable.append(name)
        else:
            parameter.requires_grad_(False)
    if not trainable:
        raise UserError(
            "no trainable parameter matches trainable_params_regex",
            key="trainable_params_regex",
            hint=f"patterns must match whole parameter names, e.g. {_examples(candidates)}",
        )
    return trainable


class _Captured(Exception):
    """Ends a forward once the steered module's output is captured: nothing reads the layers after it."""


@contextlib.contextmanager
def captured_output(module: torch.nn.Module, *, stop: bool = False) -> Iterator[list[torch.Tensor]]:
    """Collect the module's output (its first element, for tuples) on every forward while inside; with
    `stop`, end each forward right there (a forward cut short that way returns nothing)."""
    outputs: list[torch.Tensor] = []

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        outputs.append(output[0] if isinstance(output, tuple) else output)
        if stop:
            raise _Captured

    handle = module.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


RMU_CONTRACT: TrainerContract = replace(
    FORGET_RETAIN, default_args={**UNLEARNING_ARGS, "ddp_find_unused_parameters": True}
)
"""Layers after the steered module get no gradient from the activation terms: DDP must allow that."""


@register("trainer", "RMU")
class RMU(UnlearningTrainer):
    """Steer one layer's forget-token activations to a random vector; keep retain activations (RMU)."""

    contract: ClassVar[TrainerContract] = RMU_CONTRACT
    MethodArgs: ClassVar[type[BaseModel]] = RMUArgs

    @classmethod
    def reference_need(cls, method_args: Any) -> ReferenceNeed:
        return ReferenceNeed(model=method_args.retain_loss_type in ("EMBED_DIFF", "KL"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.module_name = steered_module_name(self.model, self.method.module_regex)
        self.trainable_names = freeze_untrainable(self.model, self.method.trainable_params_regex)
        self._control: torch.Tensor | None = None

    def control_vector(self, dim: int) -> torch.Tensor:
        if self._control is None or self._control.numel() != dim:
            self._control = random_control_vector(dim, self.method.steering_coeff, self.args.seed)
        return self._control

    def _activations(self, model: Any, part: Mapping[str, Any]) -> torch.Tensor:
        with captured_output(self.model.get_submodule(self.module_name)) as outputs:
            model(**model_inputs(part))
        return outputs[0]

    def _reference_activations(self, part: Mapping[str, Any]) -> torch.Tensor:
        if self.reference is None:
            raise RuntimeError(
                "retain_loss_type 'EMBED_DIFF' needs a reference model; the container gives one"
            )
        # A copy of its own stops after the steered module; not a ZeRO-3 engine, which gathers and releases
        # weights around each layer, nor the trained model itself with its adapter off.
        stop = not isinstance(self.reference, AdapterDisabledReference) and not zero3_enabled()
        with (
            self.reference.active() as reference,
            torch.no_grad(),
            captured_output(reference.get_submodule(self.module_name), stop=stop) as outputs,
            contextlib.suppress(_Captured),
        ):
            reference(**model_inputs(part))
        return outputs[0]

    def loss_terms(self, model: Any, inputs: dict[str, Any], counts: BatchCounts) -> dict[str, torch.Tensor]:
        forget, retain = inputs["forget"], inputs["retain"]
        activations = self._activations(model, forget)
        forget_term = activation_distance_loss(
            activations,
            self.control_vector(activations.shape[-1]),
            token_mask(forget["labels"]),
            counts["forget"].tokens,
        )
        if self.method.retain_loss_type == "EMBED_DIFF":
            retain_term = activation_distance_loss(
                self._activations(model, retain),
                self._reference_activations(retain),
                token_mask(retain["labels"]),
                counts["retain"].tokens,
            )
        else:
            retain_term = self.retain_loss(model, retain, counts["retain"])
        return {"forget": forget_term, "retain": retain_term}
