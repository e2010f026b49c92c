"""What a trainer declares about itself, so the container can assemble its run and a recipe can be checked
against it before any weights or data load.

A trainer class carries a `contract` (a `TrainerContract`) and, for methods with knobs, a pydantic model
`MethodArgs` whose fields are its `[trainer.method_args]` (names and defaults as published). Everything else
the trainer receives — model, datasets, collator, a reference model, reference log-probabilities — is
injected by the container and can never be set from a recipe.

This module imports neither torch nor transformers: validation reads contracts cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ItemShape = Literal["sequence", "pair"]
"""`sequence`: items of input_ids + labels. `pair`: items of {original, alternate} sequences."""

ALWAYS_ALLOWED_SPLITS = ("eval",)


class NoMethodArgs(BaseModel):
    """A method without knobs: `[trainer.method_args]` must be empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ReferenceNeed:
    """What a method needs from the model as it was before training.

    `model`: a frozen copy kept for the whole run (reference logits or activations every step).
    `log_probs`: item parts (e.g. "forget", "forget.original") whose summed answer log-probabilities
    under the initial model the method reads; computed once before training when `model` is False.
    """

    model: bool = False
    log_probs: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainerContract:
    """A trainer's requirements, read by recipe validation and by the container.

    command: the CLI verb that runs it (`train` for fine-tuning, `unlearn` for unlearning methods).
    splits: data splits the recipe must give (`[data.<split>.NAME]`); optional_splits may be given.
    item_shapes: per split, the item shape the method reads (default "sequence").
    default_args: its `TrainingArguments` defaults (the recipe's `trainer.args` override them).
    fixed_args: `TrainingArguments` values it cannot work without; a recipe setting another value is refused.
    injected: constructor arguments the container provides (never recipe-settable).
    """

    command: Literal["train", "unlearn"] = "train"
    splits: tuple[str, ...] = ("train",)
    optional_splits: tuple[str, ...] = ()
    item_shapes: Mapping[str, ItemShape] = field(default_factory=dict)
    default_args: Mapping[str, Any] = field(default_factory=dict)
    fixed_args: Mapping[str, Any] = field(default_factory=dict)
    injected: frozenset[str] = frozenset()

    @property
    def allowed_splits(self) -> tuple[str, ...]:
        return (*self.splits, *self.optional_splits, *ALWAYS_ALLOWED_SPLITS)

    def item_shape(self, split: str) -> ItemShape:
        return self.item_shapes.get(split, "sequence")


FINETUNE_CONTRACT = TrainerContract()
"""Plain `transformers.Trainer` subclasses (and plugins that declare nothing) fine-tune on `[data.train]`."""


def contract_of(trainer_class: Any) -> TrainerContract:
    """The class's declared contract, or fine-tuning's for a trainer that declares none."""
    contract = getattr(trainer_class, "contract", None)
    return contract if isinstance(contract, TrainerContract) else FINETUNE_CONTRACT


def method_args_model(trainer_class: Any) -> type[BaseModel] | None:
    """The trainer's `MethodArgs` pydantic model, or None for a trainer whose knobs are keyword-only
    `__init__` parameters (plain Trainer subclasses, third-party plugins)."""
    model = getattr(trainer_class, "MethodArgs", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def reference_need(trainer_class: Any, method_args: Any) -> ReferenceNeed:
    """What the method needs from the initial model, given its validated method_args."""
    decide = getattr(trainer_class, "reference_need", None)
    return decide(method_args) if callable(decide) else ReferenceNeed()
