"""Collators: turn a list of dataset items into one padded batch of tensors.

Importing this package loads nothing heavy; `DataCollatorForSupervisedDataset` loads torch on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unlearn_cli.collators.supervised import DataCollatorForSupervisedDataset

__all__ = ["DataCollatorForSupervisedDataset"]


def __getattr__(name: str) -> Any:
    if name == "DataCollatorForSupervisedDataset":
        return importlib.import_module(f"{__name__}.supervised").DataCollatorForSupervisedDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
