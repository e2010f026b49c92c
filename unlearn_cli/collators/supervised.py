"""Pad supervised items (input_ids, labels, attention_mask, index) into batches, nested items included."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch.nn.utils.rnn import pad_sequence

from unlearn_cli.data.template import IGNORE_INDEX
from unlearn_cli.errors import UserError
from unlearn_cli.registry import register


@register("collator")
class DataCollatorForSupervisedDataset:
    """Pads input_ids (pad id), labels (-100) and attention_mask (0); recurses into nested items.

    `tokenizer` is injected. Dict-valued fields (``forget``/``retain``, ``original``/``alternate``...) are
    collated on their own, so composite datasets batch like simple ones. The `index` field becomes a tensor
    of item indices (None: dropped). Other fields are stacked when they are tensors of one shape, else
    passed on as lists. `padding_side="left"` suits generation: prompts then end at the same position.
    """

    def __init__(
        self,
        tokenizer: Any,
        padding_side: Literal["right", "left"] = "right",
        index: str | None = "index",
        pad_to_multiple_of: int | None = None,
    ) -> None:
        if padding_side not in ("right", "left"):
            raise UserError(
                f"padding_side must be 'right' or 'left', got {padding_side!r}", key="padding_side"
            )
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise UserError(
                f"pad_to_multiple_of must be 1 or more, got {pad_to_multiple_of}", key="pad_to_multiple_of"
            )
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise UserError(
                "the tokenizer has neither a pad token nor an eos token to pad with",
                hint="set a pad token on the tokenizer (e.g. the model's eos token)",
            )
        self.tokenizer = tokenizer
        self.pad_token_id = int(pad_id)
        self.padding_side = padding_side
        self.index = index
        self.pad_to_multiple_of = pad_to_multiple_of
        self._pad_values = {"input_ids": self.pad_token_id, "labels": IGNORE_INDEX, "attention_mask": 0}

    def __call__(self, instances: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not instances:
            raise ValueError("cannot collate an empty batch")
        first = instances[0]
        batch: dict[str, Any] = {}
        for key, value in first.items():
            values = [instance[key] for instance in instances]
            if isinstance(value, Mapping):
                batch[key] = self(values)
            elif key == self.index:
                batch[key] = self._indices(values)
            elif key in self._pad_values:
                batch[key] = self._pad(values, self._pad_values[key])
            else:
                batch[key] = self._other(values)
        if "input_ids" in batch and "attention_mask" not in batch:
            batch["attention_mask"] = self._pad(
                [torch.ones(len(v), dtype=torch.long) for v in (i["input_ids"] for i in instances)], 0
            )
        if self.index is None:
            batch.pop("index", None)
        return batch

    def _pad(self, sequences: Sequence[Any], value: int) -> torch.Tensor:
        tensors = [torch.as_tensor(s, dtype=torch.long) for s in sequences]
        out = pad_sequence(tensors, batch_first=True, padding_value=value, padding_side=self.padding_side)
        if self.pad_to_multiple_of and out.shape[1] % self.pad_to_multiple_of:
            extra = self.pad_to_multiple_of - out.shape[1] % self.pad_to_multiple_of
            sides = (0, extra) if self.padding_side == "right" else (extra, 0)
            out = torch.nn.functional.pad(out, sides, value=value)
        return out

    @staticmethod
    def _indices(values: list[Any]) -> torch.Tensor:
        if all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in values):
            return torch.stack(values).long()
        return torch.as_tensor([int(v) for v in values], dtype=torch.long)

    @staticmethod
    def _other(values: list[Any]) -> Any:
        if all(isinstance(v, torch.Tensor) for v in values) and len({v.shape for v in values}) == 1:
            return torch.stack(values)
        return values
