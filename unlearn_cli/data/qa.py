"""Question/answer datasets (TOFU-style): the loss is on the answer, the question is context only."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from unlearn_cli.data import base, template
from unlearn_cli.data.base import NonNegativeInt, PositiveInt
from unlearn_cli.data.loading import load_hf_dataset
from unlearn_cli.data.template import Conversation, TemplateArgs
from unlearn_cli.errors import UserError
from unlearn_cli.registry import register

DEFAULT_IDK_PATH = Path(__file__).resolve().parent / "assets" / "idontknow.txt"
_CODE_FILES = (__file__, base.__file__, template.__file__)
_SUFFIXES = ("", "_alt")


@dataclass(frozen=True)
class _Plan:
    """Everything that decides the tokenized output besides the data and the tokenizer (the cache key)."""

    question_key: str
    answer_keys: tuple[str | None, ...]
    answer_args: tuple[str, ...]
    index_key: str | None
    max_length: int
    few_shot: tuple[tuple[str, str], ...]
    idk_phrases: tuple[str, ...] = ()
    idk_seed: int = 0
    for_generation: bool = False


def _as_answers(value: Any, column: str, arg: str, row: int) -> list[str]:
    values = value if isinstance(value, list | tuple) else [value]
    if not all(isinstance(v, str) for v in values):
        raise UserError(
            f"row {row + 1}: column '{column}' must hold text or lists of texts, got {type(value).__name__} "
            f"{value!r:.80}",
            key=arg,
        )
    return list(values)


def _pair(slots: list[list[str]], row: int, keys: Sequence[str]) -> list[tuple[str, ...]]:
    """Answers of one row per slot -> one tuple per item; a single answer is repeated against a list."""
    sizes = {len(s) for s in slots if len(s) != 1}
    if len(sizes) > 1:
        raise UserError(
            f"row {row + 1}: the answer lists have different lengths ({', '.join(map(str, sorted(sizes)))}) "
            "and cannot be paired",
            key=keys[-1],
        )
    count = sizes.pop() if sizes else 1  # no size other than 1: every slot holds one answer
    return list(zip(*(s if len(s) == count else s * count for s in slots), strict=True))


def encode_qa_batch(
    batch: Mapping[str, list[Any]],
    positions: list[int],
    *,
    tokenizer: PreTrainedTokenizerBase,
    template_args: TemplateArgs,
    plan: _Plan,
    idk_choices: Sequence[int] = (),
) -> dict[str, list[Any]]:
    """The `datasets.map(batched=True)` function: rows in, one tokenized item per (row, answer) out."""
    indices = base.source_indices(batch, positions, plan.index_key)
    few_q = [q for q, _ in plan.few_shot]
    few_a = [a for _, a in plan.few_shot]
    per_slot: list[list[Conversation]] = [[] for _ in plan.answer_keys]
    out_index: list[int] = []
    questions = batch[plan.question_key]
    columns = [None if key is None else batch[key] for key in plan.answer_keys]
    for offset, (position, index) in enumerate(zip(positions, indices, strict=True)):
        question = questions[offset]
        if not isinstance(question, str):
            raise UserError(
                f"row {position + 1}: column '{plan.question_key}' must hold text, got "
                f"{type(question).__name__}",
                key="question_key",
            )
        slots = [
            [plan.idk_phrases[idk_choices[position]]]
            if column is None
            else _as_answers(column[offset], str(key), arg, position)
            for key, arg, column in zip(plan.answer_keys, plan.answer_args, columns, strict=True)
        ]
        for answers in _pair(slots, position, plan.answer_args):
            for conversations, answer in zip(per_slot, answers, strict=True):
                conversations.append(Conversation([*few_q, question], [*few_a, answer]))
            out_index.append(index)
    out: dict[str, list[Any]] = {"index": out_index}
    for suffix, conversations in zip(_SUFFIXES, per_slot, strict=False):
        encoded = template.encode_conversations(
            tokenizer,
            template_args,
            conversations,
            max_length=plan.max_length,
            for_generation=plan.for_generation,
        )
        out["input_ids" + suffix] = [e.input_ids for e in encoded]
        out["label_start" + suffix] = [e.label_start for e in encoded]
        out["truncated" + suffix] = [e.truncated for e in encoded]
    return out


def _features(slots: int) -> datasets.Features:
    columns: dict[str, Any] = {"index": datasets.Value("int64")}
    for suffix in _SUFFIXES[:slots]:
        columns["input_ids" + suffix] = base.TOKENS
        columns["label_start" + suffix] = datasets.Value("int32")
        columns["truncated" + suffix] = datasets.Value("bool")
    return datasets.Features(columns)


def read_idk_phrases(idk_path: str | None) -> tuple[str, ...]:
    """The non-empty lines of an "I don't know" file (the packaged one when `idk_path` is None)."""
    path = Path(idk_path).expanduser() if idk_path else DEFAULT_IDK_PATH
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read the idk file {path}: {exc.strerror or exc}", key="idk_path") from exc
    except UnicodeDecodeError as exc:
        raise UserError(
            f"the idk file {path} is not UTF-8 text (byte {exc.start}: {exc.reason})",
            key="idk_path",
            hint="save it as UTF-8, one phrase per line",
        ) from exc
    phrases = tuple(line.strip() for line in lines if line.strip())
    if not phrases:
        raise UserError(f"the idk file {path} has no phrases (one per line)", key="idk_path")
    return phrases


class _QABase(base.TokenizedDataset):
    def _build(
        self,
        *,
        hf_args: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        template_args: TemplateArgs | None,
        question_key: str,
        answer_key: str,
        answer_keys: dict[str, str | None],
        max_length: int,
        predict_with_generate: bool,
        few_shot_dataset_hf_args: dict[str, Any] | None,
        num_few_shot: int | None,
        index_key: str | None,
        idk_phrases: tuple[str, ...] = (),
        idk_seed: int = 0,
    ) -> None:
        base.check_max_length(max_length)
        if num_few_shot is not None and num_few_shot < 0:
            raise UserError(f"num_few_shot must be 0 or more, got {num_few_shot}", key="num_few_shot")
        if num_few_shot and few_shot_dataset_hf_args is None:
            raise UserError(
                f"num_few_shot is {num_few_shot} but no few-shot data is given",
                key="num_few_shot",
                hint="set few_shot_dataset_hf_args to the data the examples come from, or drop num_few_shot",
            )
        template_args = template_args or TemplateArgs.model_validate({})
        self.predict_with_generate = predict_with_generate
        raw = load_hf_dataset(hf_args, key="hf_args")
        base.check_columns(raw, {"question_key": question_key, **answer_keys})
        for column in answer_keys.values():
            if column is not None:
                base.warn_empty_answers(raw, column, type(self).__name__)
        few_shot = self._few_shot(few_shot_dataset_hf_args, num_few_shot, question_key, answer_key)
        plan = _Plan(
            question_key=question_key,
            answer_keys=tuple(answer_keys.values()),
            answer_args=tuple(answer_keys),
            index_key=index_key,
            max_length=max_length,
            few_shot=few_shot,
            idk_phrases=idk_phrases,
            idk_seed=idk_seed,
            # only the reference framework's answer mask builds generation prompts differently
            for_generation=predict_with_generate and template_args.answer_mask == "prompt_length",
        )
        rng = random.Random(idk_seed)
        choices = [rng.randrange(len(idk_phrases)) for _ in range(len(raw))] if idk_phrases else []
        tokenized = base.tokenize_cached(
            raw,
            encode_qa_batch,
            tokenizer=tokenizer,
            settings={"plan": plan},
            template_args=template_args,
            fn_kwargs={
                "tokenizer": tokenizer,
                "template_args": template_args,
                "plan": plan,
                "idk_choices": choices,
            },
            features=_features(len(answer_keys)),
            code_files=_CODE_FILES,
            desc=f"Tokenizing {type(self).__name__}",
        )
        self._finish(tokenized, _SUFFIXES[: len(answer_keys)], rows=len(raw), max_length=max_length)

    @staticmethod
    def _few_shot(
        hf_args: dict[str, Any] | None,
        num_few_shot: int | None,
        question_key: str,
        answer_key: str,
    ) -> tuple[tuple[str, str], ...]:
        """The (question, first answer) pairs put before every conversation, checked like the main data:
        a bad row would otherwise become a "None" question or an IndexError in every prompt."""
        if hf_args is None or num_few_shot == 0:
            return ()
        examples = load_hf_dataset(hf_args, key="few_shot_dataset_hf_args")
        if num_few_shot is not None:  # rows past num_few_shot are not used, so they are not checked
            sources = getattr(examples, "unlearn_source_files", None)
            examples = examples.select(range(min(num_few_shot, len(examples))))
            examples.unlearn_source_files = sources
        try:
            base.check_columns(examples, {"question_key": question_key, "answer_key": answer_key})
        except UserError as exc:
            raise UserError(
                f"few-shot data: {exc.problem}", key="few_shot_dataset_hf_args", hint=exc.hint
            ) from exc
        pairs = []
        for row, (question, answer) in enumerate(
            zip(examples[question_key], examples[answer_key], strict=True)
        ):
            if not isinstance(question, str):
                raise UserError(
                    f"few-shot data, row {row + 1}: column '{question_key}' must hold text, got "
                    f"{type(question).__name__} {question!r:.80}",
                    key="few_shot_dataset_hf_args",
                )
            try:
                answers = _as_answers(answer, answer_key, "few_shot_dataset_hf_args", row)
            except UserError as exc:
                raise UserError(f"few-shot data, {exc.problem}", key=exc.key, hint=exc.hint) from exc
            if not answers:
                raise UserError(
                    f"few-shot data, row {row + 1}: column '{answer_key}' holds an empty list of answers",
                    key="few_shot_dataset_hf_args",
                    hint="every few-shot example needs an answer (the first of a list is used)",
                )
            pairs.append((question, answers[0]))
        return tuple(pairs)


@register("dataset")
class QADataset(_QABase):
    """Question/answer pairs with the loss on the answer; list-valued answers give one item each.

    `tokenizer` and `template_args` are injected by the recipe layer. Items are
    ``{input_ids, labels, attention_mask, index}`` (torch tensors; `index` is the row's `index_key` column, or
    its position). With `predict_with_generate`, `input_ids` is the prompt only (ending with the generation
    prompt) and `labels` the answer tokens plus eos, for generation-based evaluation; the prompt is cut from
    the tokenized training sequence, so generation starts from exactly the tokens training conditioned on
    (a tag's trailing space stays with the answer's first token, as in training). Few-shot examples
    (`few_shot_dataset_hf_args`, the first `num_few_shot` rows, all when None) become earlier turns.
    """

    def __init__(
        self,
        hf_args: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        template_args: TemplateArgs | None = None,
        question_key: str = "question",
        answer_key: str = "answer",
        max_length: PositiveInt = 512,
        predict_with_generate: bool = False,
        few_shot_dataset_hf_args: dict[str, Any] | None = None,
        num_few_shot: NonNegativeInt | None = None,
        index_key: str | None = "index",
    ) -> None:
        self._build(
            hf_args=hf_args,
            tokenizer=tokenizer,
            template_args=template_args,
            question_key=question_key,
            answer_key=answer_key,
            answer_keys={"answer_key": answer_key},
            max_length=max_length,
            predict_with_generate=predict_with_generate,
            few_shot_dataset_hf_args=few_shot_dataset_hf_args,
            num_few_shot=num_few_shot,
            index_key=index_key,
        )

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self._item("", self._row(item))

    @staticmethod
    def item_shape(args: Mapping[str, Any]) -> str:
        """Single question/answer sequences (what recipe validation compares with a trainer's needs)."""
        return "sequence"


@register("dataset")
class QAwithIdkDataset(_QABase):
    """Questions answered with a refusal ("I don't know") drawn per row from `idk_path`, seeded.

    The phrase for each row depends only on `seed` and the row's position, so rebuilding gives the same items.
    With `paired`, items are ``{"original": question+answer, "alternate": question+refusal}`` (as preference
    losses such as DPO need) instead of the refusal item alone.
    """

    def __init__(
        self,
        hf_args: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        template_args: TemplateArgs | None = None,
        question_key: str = "question",
        answer_key: str = "answer",
        idk_path: str | None = None,
        seed: int = 0,
        paired: bool = False,
        max_length: PositiveInt = 512,
        predict_with_generate: bool = False,
        few_shot_dataset_hf_args: dict[str, Any] | None = None,
        num_few_shot: NonNegativeInt | None = None,
        index_key: str | None = "index",
    ) -> None:
        self.paired = paired
        keys: dict[str, str | None] = (
            {"answer_key": answer_key, "idk_path": None} if paired else {"idk_path": None}
        )
        self._build(
            hf_args=hf_args,
            tokenizer=tokenizer,
            template_args=template_args,
            question_key=question_key,
            answer_key=answer_key,
            answer_keys=keys,
            max_length=max_length,
            predict_with_generate=predict_with_generate,
            few_shot_dataset_hf_args=few_shot_dataset_hf_args,
            num_few_shot=num_few_shot,
            index_key=index_key,
            idk_phrases=read_idk_phrases(idk_path),
            idk_seed=seed,
        )

    def __getitem__(self, item: int) -> dict[str, Any]:
        row = self._row(item)
        if self.paired:
            return {"original": self._item("", row), "alternate": self._item("_alt", row)}
        return self._item("", row)

    @staticmethod
    def item_shape(args: Mapping[str, Any]) -> str:
        """{original, alternate} pairs with `paired = true`, else refusal sequences."""
        return "pair" if args.get("paired") else "sequence"


@register("dataset")
class QAwithAlternateDataset(_QABase):
    """Pairs of the same question with its answer and with an alternate answer (paraphrased, perturbed...).

    Items are ``{"original": item, "alternate": item}``. A list-valued column gives one item per element,
    paired with the other column's element at the same position (a single text is repeated to match).
    """

    def __init__(
        self,
        hf_args: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        template_args: TemplateArgs | None = None,
        question_key: str = "question",
        answer_key: str = "answer",
        alternate_key: str = "paraphrased_answer",
        max_length: PositiveInt = 512,
        predict_with_generate: bool = False,
        few_shot_dataset_hf_args: dict[str, Any] | None = None,
        num_few_shot: NonNegativeInt | None = None,
        index_key: str | None = "index",
    ) -> None:
        self._build(
            hf_args=hf_args,
            tokenizer=tokenizer,
            template_args=template_args,
            question_key=question_key,
            answer_key=answer_key,
            answer_keys={"answer_key": answer_key, "alternate_key": alternate_key},
            max_length=max_length,
            predict_with_generate=predict_with_generate,
            few_shot_dataset_hf_args=few_shot_dataset_hf_args,
            num_few_shot=num_few_shot,
            index_key=index_key,
        )

    def __getitem__(self, item: int) -> dict[str, Any]:
        row = self._row(item)
        return {"original": self._item("", row), "alternate": self._item("_alt", row)}

    @staticmethod
    def item_shape(args: Mapping[str, Any]) -> str:
        """Always {original, alternate} pairs."""
        return "pair"
