"""The reference model of an unlearning run: the model as it was before unlearning, never trained.

Two forms, chosen by the container from what the method declares (`ReferenceNeed`):

- **cached log-probabilities** (NPO, DPO, AltPO by default): the summed answer log-probability of every
  forget item under the initial model, computed in one pass before training and attached to the items as
  `ref_logp`. Exact (the initial model *is* the reference), and no second model is held during training.
- **a frozen model** (KL retain term, UNDIAL, RMU, or per-step log-probs): a copy in eval mode whose
  parameters never require gradients, called under `torch.no_grad()`. A PEFT model can instead serve as its
  own reference with its adapter disabled (`AdapterDisabledReference`), with no copy at all.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from unlearn_cli.trainers.losses import sequence_log_probs

MODEL_INPUTS = ("input_ids", "attention_mask")


def model_inputs(part: Mapping[str, Any]) -> dict[str, Any]:
    """The model's inputs: ids and mask (no labels, so the model computes no loss of its own)."""
    return {key: part[key] for key in MODEL_INPUTS if key in part}


class FrozenReference:
    """A frozen copy of the initial model: eval mode, no gradients, never wrapped for training.

    `copy_model=False` takes `model` itself (a separately loaded model: a ZeRO-3 partitioned model cannot be
    deep-copied). `place` puts it where the trained model runs: on each rank's device, or under ZeRO-3 into
    a DeepSpeed inference engine partitioned like the trained model.
    """

    def __init__(self, model: Any, *, copy_model: bool = True) -> None:
        self.model = copy.deepcopy(model) if copy_model else model
        self.model.eval()
        self.model.requires_grad_(False)

    def to(self, device: Any) -> FrozenReference:
        self.model.to(device)
        return self

    def place(self, trainer: Any) -> FrozenReference:
        """Ready it for the trainer's forwards, once its accelerator exists."""
        from unlearn_cli.distributed import deepspeed_inference_engine, zero3_enabled

        if trainer.is_deepspeed_enabled and zero3_enabled():
            self.model = deepspeed_inference_engine(self.model, trainer.accelerator)
            return self
        return self.to(trainer.args.device)

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        """The module to run as the reference (hooks for activations attach to it)."""
        yield self.model

    def __call__(self, **inputs: Any) -> Any:
        with torch.no_grad(), self.active() as model:
            return model(**model_inputs(inputs))


class AdapterDisabledReference(FrozenReference):
    """The trained PEFT model itself with its adapters switched off: the base weights, which never change.

    Nothing to copy and nothing to place: the forwards go through the trained model (whatever engine wraps
    its layers), in eval mode and without gradients, with the adapter disabled.
    """

    def __init__(self, peft_model: Any) -> None:
        self.model = peft_model

    def to(self, device: Any) -> AdapterDisabledReference:
        return self

    def place(self, trainer: Any) -> AdapterDisabledReference:
        return self

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        was_training = self.model.training
        self.model.eval()
        try:
            with self.model.disable_adapter():
                yield self.model
        finally:
            self.model.train(was_training)


def part_of(item: dict[str, Any], path: Sequence[str]) -> dict[str, Any]:
    """The nested item at `path` (("original",) → item["original"]; () → the item itself)."""
    for key in path:
        item = item[key]
    return item


def distinct_items(dataset: Any, path: Sequence[str]) -> tuple[list[int], torch.Tensor]:
    """The first item of each distinct sequence at `path`, and for every item the row of its sequence among
    those firsts.

    Pairs made of one question and answer with each of several alternates (TOFU's perturbed answers) repeat
    the original sequence: scoring it once is enough. Sequences are compared by their tokens and labels, not
    by `index`, which concatenated datasets may share.
    """
    firsts: list[int] = []
    rows: list[int] = []
    seen: dict[tuple[bytes, ...], int] = {}
    for position in range(len(dataset)):
        part = part_of(dataset[position], path)
        key = tuple(
            torch.as_tensor(part[name]).numpy().tobytes() if name in part else b""
            for name in (*MODEL_INPUTS, "labels")
        )
        row = seen.setdefault(key, len(firsts))
        if row == len(firsts):
            firsts.append(position)
        rows.append(row)
    return firsts, torch.tensor(rows, dtype=torch.long)


@torch.no_grad()
def compute_reference_log_probs(
    model: Any,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], dict[str, Any]],
    parts: Sequence[tuple[str, ...]],
    *,
    device: Any = None,
    batch_size: int = 16,
    indices: Sequence[int] | None = None,
) -> dict[tuple[str, ...], torch.Tensor]:
    """log π_ref(y|x) of the items of `dataset` at `indices` (default: all) for each part path, under `model`
    in eval mode (float32), one row per index."""
    was_training = model.training
    model.eval()
    device = device if device is not None else next(model.parameters()).device
    result: dict[tuple[str, ...], torch.Tensor] = {}
    positions = list(range(len(dataset))) if indices is None else list(indices)
    try:
        for path in parts:
            values = []
            for start in range(0, len(positions), batch_size):
                items = [part_of(dataset[i], path) for i in positions[start : start + batch_size]]
                batch = collator(items)
                logits = model(**{k: v.to(device) for k, v in model_inputs(batch).items()}).logits
                values.append(sequence_log_probs(logits, batch["labels"].to(device)).cpu())
            result[tuple(path)] = torch.cat(values) if values else torch.zeros(0)
    finally:
        model.train(was_training)
    return result


class WithReferenceLogProbs(Dataset):
    """A dataset whose items (or item parts) carry `ref_logp`, their precomputed reference log-probability."""

    def __init__(self, dataset: Any, log_probs: dict[tuple[str, ...], torch.Tensor]) -> None:
        for path, values in log_probs.items():
            if len(values) != len(dataset):
                raise ValueError(f"{len(values)} reference log-probs for part {path} of {len(dataset)} items")
        self.dataset = dataset
        self.log_probs = log_probs

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = copy.copy(self.dataset[index])
        for path, values in self.log_probs.items():
            if not path:
                item["ref_logp"] = values[index]
                continue
            parent = item
            for key in path[:-1]:
                parent[key] = copy.copy(parent[key])
                parent = parent[key]
            parent[path[-1]] = {**parent[path[-1]], "ref_logp": values[index]}
        return item

    def lengths(self) -> list[int] | None:
        from unlearn_cli.data.base import dataset_lengths

        return dataset_lengths(self.dataset)
