"""Raw-text datasets (MUSE/WMDP style): a corpus cut into blocks, or prefixes continued by a text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from unlearn_cli.data import base, template
from unlearn_cli.data.base import PositiveInt
from unlearn_cli.data.loading import load_hf_dataset
from unlearn_cli.data.template import TemplateArgs
from unlearn_cli.errors import UserError
from unlearn_cli.registry import register

_CODE_FILES = (__file__, base.__file__, template.__file__)


def _texts(batch: Mapping[str, list[Any]], column: str, arg: str, positions: list[int]) -> list[str]:
    values = batch[column]
    for value, position in zip(values, positions, strict=True):
        if not isinstance(value, str):
            raise UserError(
                f"row {position + 1}: column '{column}' must hold text, got {type(value).__name__}", key=arg
            )
    return values


def encode_documents_batch(
    batch: Mapping[str, list[Any]], positions: list[int], *, tokenizer: PreTrainedTokenizerBase, text_key: str
) -> dict[str, list[Any]]:
    """The `datasets.map` function of `PretrainingDataset`: each document's tokens followed by eos."""
    texts = _texts(batch, text_key, "text_key", positions)
    template.quiet_length_warning(tokenizer)
    ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    return {"input_ids": [list(d) + eos for d in ids], "index": list(positions)}


@register("dataset")
class PretrainingDataset(base.TokenizedDataset):
    """A text corpus joined with eos and cut into blocks of `max_length` tokens, the loss on every token.

    `tokenizer` and `template_args` are injected (`template_args` is unused: raw text has no template).
    Items are ``{input_ids, labels, attention_mask, index}`` with `index` the block's number; only the last
    block may be shorter.
    """

    def __init__(
        self,
        hf_args: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        template_args: TemplateArgs | None = None,
        text_key: str = "text",
        max_length: PositiveInt = 2048,
    ) -> None:
        base.check_max_length(max_length)
        raw = load_hf_dataset(hf_args, key="hf_args")
        base.check_columns(raw, {"text_key": text_key})
        tokenized = base.tokenize_cached(
            raw,
            encode_documents_batch,
            tokenizer=tokenizer,
            settings={"text_key": text_key},
            fn_kwargs={"tokenizer": tokenizer, "text_key": text_key},
            features=datasets.Features({"input_ids": base.TOKENS, "index": datasets.Value("int64")}),
            code_files=_CODE_FILES,
            desc="Tokenizing PretrainingDataset",
        )
        documents = base.TokenColumn.from_dataset(tokenized, "input_ids")
        values = documents.values[documents.offsets[0] : documents.offsets[-1]]
        total = len(values)
        offsets = np.append(np.arange(0, total, max_length, dtype=np.int64), total)
        blocks = len(offsets) - 1
        slot = base.Slot(
            base.TokenColumn(values, offsets), np.zeros(blocks, np.int64), np.zeros(blocks, bool)
        )
        self._set(
            tokenized, {"": slot}, np.arange(blocks, dtype=np.int64), rows=len(raw), max_length=max_length
        )

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self._item("", self._row(item))


@dataclass(frozen=True)
class _CompletionPlan:
    prefix_key: str | None
    text_key: str
    separator: str
    append_eos: bool
    max_length: int
    index_key: str | None
    answer_mask: str = "offsets"
    for_generation: bool = False


def encode_completions_batch(
    batch: Mapping[str, list[Any]],
    positions: list[int],
    *,
    tokenizer: PreTrainedTokenizerBase,
    plan: _CompletionPlan,
) -> dict[str, list[Any]]:
    """The `datasets.map` function of `CompletionDataset`."""
    texts = _texts(batch, plan.text_key, "text_key", positions)
    prefixes = (
        [""] * len(texts)
        if plan.prefix_key is None
        else _texts(batch, plan.prefix_key, "prefix_key", positions)
    )
    encoded = template.encode_completions(
        tokenizer,
        prefixes,
        texts,
        separator=plan.separator,
        append_eos=plan.append_eos,
        max_length=plan.max_length,
        answer_mask=plan.answer_mask,  # type: ignore[arg-type]
        for_generation=plan.for_generation,
    )
    return {
        "index": base.source_indices(batch, positions, plan.index_key),
        "input_ids": [e.input_ids for e in encoded],
        "label_start": [e.label_start for e in encoded],
        "truncated": [e.truncated for e in encoded],
    }


@register("dataset")
class CompletionDataset(base.TokenizedDataset):
    """A prefix continued by a text (MUSE verbatim, WMDP corpora), the loss on the text only.

    `tokenizer` and `template_args` are injected (only its `answer_mask` is read). The model reads
    ``prefix + (" " if insert_space) + text`` (tokenizer's bos added, eos appended when `append_eos`); a null
    `prefix_key` trains on the whole text. With `predict_with_generate`, `input_ids` is the prefix only and
    `labels` the text.
    """

    def __init__(
        self,
        hf_args: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        template_args: TemplateArgs | None = None,
        prefix_key: str | None = "prompt",
        text_key: str = "text",
        insert_space: bool = False,
        append_eos: bool = True,
        max_length: PositiveInt = 2048,
        predict_with_generate: bool = False,
        index_key: str | None = "index",
    ) -> None:
        base.check_max_length(max_length)
        self.predict_with_generate = predict_with_generate
        raw = load_hf_dataset(hf_args, key="hf_args")
        base.check_columns(raw, {"prefix_key": prefix_key, "text_key": text_key})
        mask = template_args.answer_mask if template_args is not None else "offsets"
        plan = _CompletionPlan(
            prefix_key,
            text_key,
            " " if insert_space else "",
            append_eos,
            max_length,
            index_key,
            answer_mask=mask,
            for_generation=predict_with_generate and mask == "prompt_length",
        )
        tokenized = base.tokenize_cached(
            raw,
            encode_completions_batch,
            tokenizer=tokenizer,
            settings={"plan": plan},
            fn_kwargs={"tokenizer": tokenizer, "plan": plan},
            features=datasets.Features(
                {
                    "index": datasets.Value("int64"),
                    "input_ids": base.TOKENS,
                    "label_start": datasets.Value("int32"),
                    "truncated": datasets.Value("bool"),
                }
            ),
            code_files=_CODE_FILES,
            desc="Tokenizing CompletionDataset",
        )
        self._finish(tokenized, [""], rows=len(raw), max_length=max_length)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self._item("", self._row(item))
