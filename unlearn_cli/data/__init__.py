"""Datasets: load a split, lay it out with a template, tokenize it once (cached), serve torch tensors.

Importing this package is cheap (no torch/transformers/datasets); the names below load their module on first
use. Handlers (`QADataset`, `QAwithIdkDataset`, `QAwithAlternateDataset`, `PretrainingDataset`,
`CompletionDataset`, `QAwithGeneratedAlternateDataset`) are built as
``Handler(**args, tokenizer=tok, template_args=template_args)``: `tokenizer` and `template_args` are injected
by the recipe layer (and `model`, for a handler that names that parameter), every other parameter comes from
the recipe's ``[data.<split>.<NAME>.args]`` table.

Error keys: a handler raises `UserError` with `key` relative to its own ``args`` table (``"hf_args.split"``,
``"question_key"``, ``"max_length"``...). The recipe layer turns that into the full path with
`UserError.under("data.train.TOFU_QA_full.args")`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unlearn_cli.data.base import TokenizedDataset, length_grouped_sampler, tokenizer_fingerprint
    from unlearn_cli.data.generated_alternates import QAwithGeneratedAlternateDataset
    from unlearn_cli.data.loading import load_hf_dataset
    from unlearn_cli.data.pretraining import CompletionDataset, PretrainingDataset
    from unlearn_cli.data.qa import QADataset, QAwithAlternateDataset, QAwithIdkDataset
    from unlearn_cli.data.template import (
        IGNORE_INDEX,
        TemplateArgs,
        encode_conversation,
        encode_conversations,
    )

_LAZY = {
    "TemplateArgs": "template",
    "IGNORE_INDEX": "template",
    "encode_conversation": "template",
    "encode_conversations": "template",
    "load_hf_dataset": "loading",
    "TokenizedDataset": "base",
    "length_grouped_sampler": "base",
    "tokenizer_fingerprint": "base",
    "QADataset": "qa",
    "QAwithIdkDataset": "qa",
    "QAwithAlternateDataset": "qa",
    "PretrainingDataset": "pretraining",
    "CompletionDataset": "pretraining",
    "QAwithGeneratedAlternateDataset": "generated_alternates",
}

__all__ = [
    "IGNORE_INDEX",
    "CompletionDataset",
    "PretrainingDataset",
    "QADataset",
    "QAwithAlternateDataset",
    "QAwithGeneratedAlternateDataset",
    "QAwithIdkDataset",
    "TemplateArgs",
    "TokenizedDataset",
    "encode_conversation",
    "encode_conversations",
    "length_grouped_sampler",
    "load_hf_dataset",
    "tokenizer_fingerprint",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
