"""What every tokenized dataset shares: cached batched tokenization, flat token storage, counts and lengths.

Tokenization runs once, batched, through `datasets.map` with a fingerprint this module computes itself from
the raw data's fingerprint, the tokenizer's content, the handler's settings (template included), the source
of the code that tokenizes, the `transformers`/`tokenizers` versions and, for a chat template that reads the
clock, today's date. `datasets` then finds its earlier output on disk, so building the same dataset again
tokenizes nothing. (Letting `datasets` hash the map function instead is fragile: a fast tokenizer's hash
changes when it is called with other truncation settings, which silently turns every rebuild into a cache
miss.)

After mapping, token ids are pulled out of Arrow into one flat int32 array plus offsets, so `__getitem__`
is a numpy slice and `lengths()` a `numpy.diff`, with no per-item Arrow or Python decoding.
"""

from __future__ import annotations

import datetime
import gc
import hashlib
import json
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import datasets
import numpy as np
import torch
from pydantic import Field
from torch.utils.data import Dataset

from unlearn_cli.data.template import IGNORE_INDEX, TemplateArgs
from unlearn_cli.errors import UserError, did_you_mean

logger = logging.getLogger("unlearn_cli.data")

PositiveInt = Annotated[int, Field(ge=1)]
"""An argument that must be at least 1 (`max_length`): recipe validation checks it before any data loads."""
NonNegativeInt = Annotated[int, Field(ge=0)]

TOKENS = datasets.List(datasets.Value("int32"))


# Per tokenizer object: (its backend's id and cheap state when hashed, the fingerprint). Hashing the backend
# re-dumps the whole tokenizer JSON (about a second for a 128k vocabulary), and a run builds several datasets
# with one tokenizer.
_FINGERPRINTS: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, Any], str]] = weakref.WeakKeyDictionary()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything about a tokenizer that changes its output, and nothing that does not.

    Only fast tokenizers reach here (the model layer refuses slow ones: offsets need a fast tokenizer). The
    result is remembered per tokenizer object and recomputed when its cheaply read state changes (added
    tokens, special tokens, chat template, bos/eos flags, a replaced backend); an in-place edit of the backend
    pipeline itself (normalizer, post-processor) is not noticed within the process.
    """
    backend = tokenizer.backend_tokenizer
    state = _cheap_state(tokenizer)
    remembered = _FINGERPRINTS.get(tokenizer)
    if remembered is not None and remembered[:2] == (id(backend), state):
        return remembered[2]
    fingerprint = _digest({**state, "backend": _backend_config(backend)})
    _FINGERPRINTS[tokenizer] = (id(backend), state, fingerprint)
    return fingerprint


def _cheap_state(tokenizer: Any) -> dict[str, Any]:
    """What can change on a tokenizer object after loading, read without serializing the backend."""
    return {
        "class": type(tokenizer).__name__,
        "size": len(tokenizer),
        "special": {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())},
        "chat_template": getattr(tokenizer, "chat_template", None),
        "eos": getattr(tokenizer, "eos_token_id", None),
        "add_bos": getattr(tokenizer, "add_bos_token", None),
        "add_eos": getattr(tokenizer, "add_eos_token", None),
    }


def _backend_config(backend: Any) -> dict[str, Any]:
    """The backend's JSON without its truncation and padding state, which callers change freely."""
    config: dict[str, Any] = json.loads(backend.to_str())
    config.pop("truncation", None)
    config.pop("padding", None)
    return config


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=_jsonable, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, set | frozenset):
        return sorted(value)
    # repr() could hold a memory address, which would turn every rebuild into a silent cache miss.
    raise TypeError(f"cannot fingerprint a {type(value).__name__}; settings must be plain data")


@cache
def _source_digest(files: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(Path(file).read_bytes())
    return digest.hexdigest()


def tokenize_cached(
    raw: datasets.Dataset,
    function: Callable[..., dict[str, list[Any]]],
    *,
    tokenizer: Any,
    settings: Mapping[str, Any],
    fn_kwargs: Mapping[str, Any],
    features: datasets.Features,
    code_files: Iterable[str],
    desc: str,
    template_args: TemplateArgs | None = None,
) -> datasets.Dataset:
    """`raw.map(function, batched=True)`, reusing the cached result when data, tokenizer and settings match.

    `settings` must hold every argument that changes the output (it is the cache key with the tokenizer and
    the source files of the code); `fn_kwargs` carries the objects the function uses and is not hashed.
    `template_args`, when the output is laid out with one, joins the key (with the date, for a chat template
    that reads the clock).
    """
    fingerprint = _digest(
        {
            "raw": raw._fingerprint,
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "settings": settings,
            "template": template_args,
            "today": _template_date(tokenizer, template_args),
            "code": _source_digest(tuple(sorted(set(code_files)))),
            "libraries": _library_versions(),
        }
    )
    return raw.map(
        _without_gc,
        batched=True,
        with_indices=True,
        remove_columns=raw.column_names,
        fn_kwargs={"function": function, **fn_kwargs},
        features=features,
        new_fingerprint=fingerprint,
        desc=desc,
    )


def _library_versions() -> dict[str, str]:
    """Versions whose change can change the tokens: chat-template rendering (transformers), offsets
    and pre-tokenization (tokenizers)."""
    import tokenizers
    import transformers

    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def _template_date(tokenizer: Any, template_args: TemplateArgs | None) -> str | None:
    """Today's date when the rendered text can hold it (a chat template calling `strftime_now` with no
    fixed `date_string`), so such a dataset is tokenized again on another day instead of keeping an old date.
    """
    if (
        template_args is None
        or not template_args.apply_chat_template
        or template_args.date_string is not None
    ):
        return None
    if "strftime_now" not in str(getattr(tokenizer, "chat_template", None) or ""):
        return None
    return datetime.date.today().isoformat()


def _without_gc(batch: Any, positions: list[int], *, function: Callable[..., Any], **kwargs: Any) -> Any:
    """Run one batch with the cyclic GC paused: tokenizer output is millions of small objects, and the full
    collections they trigger cost about a quarter of the tokenization time while finding no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return function(batch, positions, **kwargs)
    finally:
        if enabled:
            gc.enable()


def check_max_length(max_length: int) -> None:
    """Refuse a `max_length` below 1 up front, before any data is loaded or tokenized."""
    if max_length < 1:
        raise UserError(f"max_length must be at least 1, got {max_length}", key="max_length")


def check_columns(raw: datasets.Dataset, keys: Mapping[str, str | None]) -> None:
    """Raise a UserError naming the argument whose column the data lacks, with the columns it has; or the
    first row (its file and line) where a required column is missing."""
    from unlearn_cli.data.loading import row_location

    for arg, column in keys.items():
        if column is not None and column not in raw.column_names:
            have = ", ".join(raw.column_names)
            hint = did_you_mean(column, raw.column_names)
            raise UserError(
                f"column '{column}' is not in the dataset; its columns are: {have}",
                key=arg,
                hint=hint or f"set {arg} to one of the columns above",
            )
    for arg, column in keys.items():
        if column is None:
            continue
        values = raw.data.column(column)
        if values.null_count == 0:
            continue
        row = next(index for index, value in enumerate(values.is_null().to_pylist()) if value)
        found = [name for name, value in raw[row].items() if value is not None]
        raise UserError(
            f"{row_location(raw, row)}: '{column}' is missing (the row has: {', '.join(found) or 'nothing'})",
            key=arg,
            hint=f"give that row a '{column}', remove the row, or set {arg} to the column that holds it",
        )


def _blank(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple):
        return all(_blank(item) for item in value)
    return False


def warn_empty_answers(raw: datasets.Dataset, column: str, name: str) -> None:
    """Warn when answers are empty: such items still train (on the end-of-answer token alone), so a data
    set whose every answer is empty would silently teach the model to say nothing."""
    empty = sum(1 for value in raw[column] if _blank(value))
    if empty and empty == len(raw):
        logger.warning(
            "%s: every answer in column '%s' is empty (%d rows): training would only teach the model to end "
            "its answer at once; check answer_key and the data",
            name,
            column,
            empty,
        )
    elif empty:
        logger.warning("%s: %d of %d answers in column '%s' are empty", name, empty, len(raw), column)


def source_indices(batch: Mapping[str, list[Any]], positions: list[int], index_key: str | None) -> list[int]:
    """Each row's own `index` column when the data has one (TOFU-style ids), else its row position."""
    if index_key is None or index_key not in batch:
        return list(positions)
    try:
        return [int(v) for v in batch[index_key]]
    except (TypeError, ValueError) as exc:
        raise UserError(
            f"column '{index_key}' must hold whole numbers: {exc}",
            key="index_key",
            hint="set index_key to another column, or to an absent one to number rows by position",
        ) from exc


class TokenColumn:
    """A column of token sequences held as one flat array plus row offsets."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        self.values = values
        self.offsets = offsets

    @classmethod
    def from_dataset(cls, tokenized: datasets.Dataset, column: str) -> TokenColumn:
        chunked = tokenized.data.column(column)
        array = chunked.combine_chunks()
        if len(array) == 0:
            return cls(np.zeros(0, np.int32), np.zeros(1, np.int64))
        offsets = array.offsets.to_numpy().astype(np.int64)
        return cls(array.values.to_numpy(zero_copy_only=False), offsets)

    def __getitem__(self, row: int) -> np.ndarray:
        return self.values[self.offsets[row] : self.offsets[row + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class Slot:
    """One tokenized sequence per item (an item of a paired dataset has two)."""

    tokens: TokenColumn
    label_start: np.ndarray
    truncated: np.ndarray


class TokenizedDataset(Dataset):
    """Base of the handlers: items are rows of a tokenized table, each read as torch tensors."""

    predict_with_generate: bool = False

    def _finish(
        self,
        tokenized: datasets.Dataset,
        suffixes: Iterable[str],
        *,
        rows: int,
        max_length: int,
    ) -> None:
        """Take the mapped table's columns into flat arrays, count cut and dropped items, and warn."""
        slots = {
            suffix: Slot(
                TokenColumn.from_dataset(tokenized, "input_ids" + suffix),
                np.asarray(tokenized.data.column("label_start" + suffix).to_numpy(), np.int64),
                np.asarray(tokenized.data.column("truncated" + suffix).to_numpy(zero_copy_only=False), bool),
            )
            for suffix in suffixes
        }
        index = np.asarray(tokenized.data.column("index").to_numpy(), np.int64)
        self._set(tokenized, slots, index, rows=rows, max_length=max_length)

    def _set(
        self,
        tokenized: datasets.Dataset,
        slots: dict[str, Slot],
        index: np.ndarray,
        *,
        rows: int,
        max_length: int,
    ) -> None:
        self.tokenized = tokenized
        self.max_length = max_length
        self._rows = rows
        self._slots = slots
        self._index = index
        trainable = np.ones(len(index), bool)
        truncated = np.zeros(len(index), bool)
        empty = np.zeros(len(index), bool)
        for slot in slots.values():
            slot_trainable = slot.label_start < slot.tokens.lengths()
            trainable &= slot_trainable
            truncated |= slot.truncated
            # No trained token although nothing was cut: a longer max_length would not bring one back.
            empty |= ~slot_trainable & ~slot.truncated
        self._keep = np.flatnonzero(trainable)
        self._dropped_empty = int(empty.sum())
        self._dropped_truncated = int((~trainable & ~empty).sum())
        self._truncated = int((truncated & trainable).sum())
        self._report()

    @property
    def _dropped(self) -> int:
        return self._dropped_truncated + self._dropped_empty

    def _report(self) -> None:
        """Warn about cut and dropped items, naming the cause, since the fix differs (max_length vs data)."""
        name = type(self).__name__
        total = len(self._keep) + self._dropped
        if len(self) == 0:
            raise self._nothing_left(name)
        if self._dropped_truncated or self._truncated:
            logger.warning(
                "%s: %d of %d items cut at max_length=%d; %d dropped because no answer token was left "
                "(raise max_length to keep them)",
                name,
                self._truncated + self._dropped_truncated,
                total,
                self.max_length,
                self._dropped_truncated,
            )
        if self._dropped_empty:
            logger.warning(
                "%s: %d of %d items dropped because their answer is empty (no token to train on, not even "
                "an eos); check the data",
                name,
                self._dropped_empty,
                total,
            )

    def _nothing_left(self, name: str) -> UserError:
        """The error for a dataset whose every item was dropped, keyed and hinted by what dropped them."""
        cut, empty = self._dropped_truncated, self._dropped_empty
        if not cut and not empty:
            return UserError(f"{name} has no items")
        lost = f"lose their whole answer to max_length {self.max_length}"
        blank = "have an empty answer, with no token to train on"
        if cut and empty:
            problem = f"of its {cut + empty} items, {cut} {lost} and {empty} {blank}"
        else:
            problem = f"all {cut + empty} {lost if cut else blank}"
        if not cut:
            return UserError(
                f"{name} has no items left: {problem}",
                key="hf_args",
                hint="check the data's answer (or text) column: every item needs an answer token",
            )
        return UserError(f"{name} has no items left: {problem}", key="max_length", hint="raise max_length")

    def __len__(self) -> int:
        return len(self._keep)

    def _item(self, suffix: str, row: int) -> dict[str, torch.Tensor]:
        slot = self._slots[suffix]
        ids = slot.tokens[row].astype(np.int64)
        start = int(slot.label_start[row])
        index = torch.tensor(int(self._index[row]))
        if self.predict_with_generate:
            ids, labels = ids[:start], ids[start:]
        else:
            labels = ids.copy()
            labels[:start] = IGNORE_INDEX
        return {
            "input_ids": torch.from_numpy(ids),
            "labels": torch.from_numpy(labels),
            "attention_mask": torch.from_numpy(np.ones(len(ids), np.int64)),
            "index": index,
        }

    def _row(self, item: int) -> int:
        if item < 0:
            item += len(self._keep)
        if not 0 <= item < len(self._keep):
            raise IndexError(f"item {item} out of range for {len(self._keep)} items")
        return int(self._keep[item])

    def lengths(self) -> list[int]:
        """Tokens in each item's `input_ids` (the longest of a paired item's sequences), in item order."""
        per_slot = []
        for slot in self._slots.values():
            lengths = slot.label_start if self.predict_with_generate else slot.tokens.lengths()
            per_slot.append(lengths[self._keep])
        return np.maximum.reduce(per_slot).tolist()

    def summary(self) -> dict[str, Any]:
        """Counts for `inspect-data` and the run log: items, truncation, drops and token statistics."""
        lengths = np.asarray(self.lengths(), np.int64)
        trainable = sum(
            int((slot.tokens.lengths()[self._keep] - slot.label_start[self._keep]).sum())
            for slot in self._slots.values()
        )
        return {
            "handler": type(self).__name__,
            "rows": self._rows,
            "items": len(self),
            "truncated": self._truncated,
            "dropped_no_trainable_tokens": self._dropped,
            "dropped_truncated": self._dropped_truncated,
            "dropped_empty_answer": self._dropped_empty,
            "max_length": self.max_length,
            "tokens": int(lengths.sum()),
            "trainable_tokens": trainable,
            "min_tokens": int(lengths.min()) if len(lengths) else 0,
            "mean_tokens": float(lengths.mean()) if len(lengths) else 0.0,
            "max_tokens": int(lengths.max()) if len(lengths) else 0,
        }


def dataset_lengths(dataset: Any) -> list[int] | None:
    """Token length of every item from the lengths stored at tokenization (a `ConcatDataset` too), or None."""
    from torch.utils.data import ConcatDataset

    if isinstance(dataset, ConcatDataset):
        lengths: list[int] = []
        for part in dataset.datasets:
            part_lengths = dataset_lengths(part)
            if part_lengths is None:
                return None
            lengths += part_lengths
        return lengths
    if not hasattr(dataset, "lengths"):
        return None
    lengths = dataset.lengths()
    return None if lengths is None else list(lengths)


def length_grouped_sampler(dataset: Any, batch_size: int, generator: torch.Generator | None = None) -> Any:
    """A `transformers` LengthGroupedSampler fed from the stored lengths instead of reading every item.

    `Trainer` reads a length column only from a `datasets.Dataset`; for any other dataset it calls
    ``dataset[i]["input_ids"]`` for every item (and fails on paired items that have no top-level
    `input_ids`). Trainers build their sampler here for `train_sampling_strategy="group_by_length"`.
    """
    from transformers.trainer_pt_utils import LengthGroupedSampler

    return LengthGroupedSampler(
        batch_size, dataset=dataset, lengths=dataset_lengths(dataset), generator=generator
    )
