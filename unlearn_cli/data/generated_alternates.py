"""Alternate answers written by the model itself, for preference methods (AltPO) on data that has none.

Before training, the run's model is asked, for every question, for another plausible answer that changes the
facts of the true one; the answers are cached on disk, keyed by everything that decides them (the model's
weights, the data, tokenizer and template, every generation setting), so later runs with the same settings
reuse them and a changed setting generates anew. Items are then built exactly like `QAwithAlternateDataset`'s:
``{"original": question+answer, "alternate": question+generated answer}``, one pair per generated answer.

The generation prompt is the request rendered as a user turn with the model's template and cut where the
training sequence's answer starts (as `QADataset` does with `predict_with_generate`), so the model continues
from exactly the tokens that precede an answer in training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from unlearn_cli.builtin import cache_root
from unlearn_cli.data import base, template
from unlearn_cli.data.loading import load_hf_dataset
from unlearn_cli.data.qa import _QABase
from unlearn_cli.data.template import Conversation, TemplateArgs
from unlearn_cli.errors import UserError
from unlearn_cli.evals.generation import cut_at_stop
from unlearn_cli.registry import register

logger = logging.getLogger("unlearn_cli.data")

GENERATOR_VERSION = 1
"""Bump when the prompt layout or the post-processing changes: cached alternates are then made anew."""

DEFAULT_INSTRUCTION = (
    "Question: {question}\nAnswer: {answer}\n"
    "Write a different answer to the same question: keep it plausible and in the same style, but change "
    "every fact the answer above states. Reply with the new answer only."
)


@dataclass(frozen=True)
class GenerationSettings:
    """Everything about the generation that changes the alternates (part of the cache key)."""

    instruction: str
    num_alternates: int
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    seed: int
    batch_size: int
    stop_strings: tuple[str, ...]


def model_fingerprint(model: Any) -> str:
    """A hash of the model's name and a strided sample of every parameter: changes when its weights do.

    Reading a few values per tensor costs milliseconds even for a 7B model, where hashing every weight
    would read all of them.
    """
    digest = hashlib.sha256(str(getattr(model.config, "_name_or_path", "")).encode())
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            flat = parameter.detach().reshape(-1)
            step = max(1, flat.numel() // 16)
            sample = flat[::step][:16].float().cpu().numpy()
            digest.update(name.encode() + str(tuple(parameter.shape)).encode() + sample.tobytes())
    return digest.hexdigest()[:32]


def generation_prompts(
    tokenizer: Any,
    template_args: TemplateArgs,
    questions: Sequence[str],
    answers: Sequence[str],
    instruction: str,
) -> list[list[int]]:
    """Token ids of each request, ending where the answer of a training sequence would start."""
    conversations = [
        Conversation([instruction.replace("{question}", q).replace("{answer}", a)], [a])
        for q, a in zip(questions, answers, strict=True)
    ]
    encoded = template.encode_conversations(tokenizer, template_args, conversations)
    return [e.input_ids[: e.label_start] for e in encoded]


@torch.no_grad()
def generate_alternates(
    model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], settings: GenerationSettings
) -> list[list[str]]:
    """`num_alternates` answers per prompt, batched with left padding, seeded (the global RNG untouched)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
    sampling = (
        {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
        if settings.do_sample
        else {"do_sample": False}
    )
    was_training = model.training
    model.eval()
    results: list[list[str]] = []
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(settings.seed)
            for start in range(0, len(prompts), settings.batch_size):
                chunk = prompts[start : start + settings.batch_size]
                width = max(len(p) for p in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, prompt in enumerate(chunk):
                    ids[row, width - len(prompt) :] = torch.as_tensor(prompt, dtype=torch.long)
                    mask[row, width - len(prompt) :] = 1
                output = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=settings.max_new_tokens,
                    num_return_sequences=settings.num_alternates,
                    pad_token_id=pad,
                    eos_token_id=eos,
                    **sampling,
                )
                texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
                for row in range(len(chunk)):
                    group = texts[row * settings.num_alternates : (row + 1) * settings.num_alternates]
                    results.append([cut_at_stop(t, settings.stop_strings) for t in group])
    finally:
        model.train(was_training)
    return results


def _on_generation_device(model: Any) -> None:
    """Move a model loaded on the CPU to this process's accelerator (training would move it there anyway)."""
    if getattr(model, "hf_device_map", None) or next(model.parameters()).device.type != "cpu":
        return
    from accelerate import PartialState

    target = PartialState().device
    if target.type != "cpu":
        model.to(target)


@register("dataset")
class QAwithGeneratedAlternateDataset(_QABase):
    """Question/answer pairs with alternate answers the run's model writes once before training (cached).

    `tokenizer`, `template_args` and `model` are injected (the model as loaded, before any training). For each
    row, `instruction` (with `{question}` and `{answer}` filled in) is sent as a user turn and
    `num_alternates` answers are sampled (`max_new_tokens`, `temperature`, `top_p`, `seed`; `do_sample =
    false` for greedy decoding), each cut at the first of `stop_strings`. Items are
    ``{"original": question+answer, "alternate": question+generated answer}``, one per non-empty generated
    answer. The answers are stored under the cache folder (`$UNLEARN_CLI_CACHE/alternates/`), keyed by the
    model's weights, data, tokenizer, template and these settings.
    """

    def __init__(
        self,
        hf_args: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        model: Any,
        template_args: TemplateArgs | None = None,
        question_key: str = "question",
        answer_key: str = "answer",
        instruction: str = DEFAULT_INSTRUCTION,
        num_alternates: int = 5,
        max_new_tokens: int = 200,
        do_sample: bool = True,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        generation_batch_size: int = 16,
        stop_strings: list[str] | None = None,
        max_length: int = 512,
        index_key: str | None = "index",
    ) -> None:
        template_args = template_args or TemplateArgs.model_validate({})
        settings = self._settings(
            instruction,
            num_alternates,
            max_new_tokens,
            do_sample,
            temperature,
            top_p,
            seed,
            generation_batch_size,
            ["Question:", "Q:"] if stop_strings is None else stop_strings,
        )
        raw = load_hf_dataset(hf_args, key="hf_args")
        base.check_columns(raw, {"question_key": question_key, "answer_key": answer_key})
        questions = self._texts(raw[question_key], question_key, "question_key")
        answers = self._texts(raw[answer_key], answer_key, "answer_key")
        indices = base.source_indices(raw.to_dict(), list(range(len(raw))), index_key)
        key = hashlib.sha256(
            json.dumps(
                {
                    "version": GENERATOR_VERSION,
                    "data": raw._fingerprint,
                    "columns": [question_key, answer_key, index_key],
                    "model": model_fingerprint(model),
                    "tokenizer": base.tokenizer_fingerprint(tokenizer),
                    "template": template_args.model_dump(),
                    "settings": asdict(settings),
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()[:32]
        self.alternates_path = cache_root() / "alternates" / f"{key}.jsonl"
        from accelerate import PartialState

        with PartialState().main_process_first():
            if self.alternates_path.is_file():
                logger.info("Reusing the generated alternate answers in %s", self.alternates_path)
            else:
                _on_generation_device(model)
                logger.info(
                    "Generating %d alternate answers for each of %d questions", num_alternates, len(questions)
                )
                prompts = generation_prompts(
                    tokenizer, template_args, questions, answers, settings.instruction
                )
                alternates = generate_alternates(model, tokenizer, prompts, settings)
                self._write(self.alternates_path, questions, answers, alternates, indices)
        self._build(
            hf_args={"path": "json", "data_files": str(self.alternates_path), "split": "train"},
            tokenizer=tokenizer,
            template_args=template_args,
            question_key="question",
            answer_key="answer",
            answer_keys={"answer_key": "answer", "alternate_key": "alternate"},
            max_length=max_length,
            predict_with_generate=False,
            few_shot_dataset_hf_args=None,
            num_few_shot=None,
            index_key="index",
        )

    @staticmethod
    def _settings(
        instruction: str,
        num_alternates: int,
        max_new_tokens: int,
        do_sample: bool,
        temperature: float,
        top_p: float,
        seed: int,
        batch_size: int,
        stop_strings: Sequence[str],
    ) -> GenerationSettings:
        if "{question}" not in instruction:
            raise UserError(
                "the instruction must contain {question}, where each question goes", key="instruction"
            )
        for name, value in (
            ("num_alternates", num_alternates),
            ("max_new_tokens", max_new_tokens),
            ("generation_batch_size", batch_size),
        ):
            if value < 1:
                raise UserError(f"{name} must be at least 1, got {value}", key=name)
        if do_sample and (temperature <= 0 or not 0 < top_p <= 1):
            raise UserError(
                f"sampling needs temperature > 0 and 0 < top_p <= 1, got {temperature} and {top_p}",
                key="temperature" if temperature <= 0 else "top_p",
                hint="for greedy decoding set do_sample = false",
            )
        if not do_sample and num_alternates > 1:
            raise UserError(
                f"greedy decoding (do_sample = false) gives one answer per question, not {num_alternates}",
                key="num_alternates",
                hint="set num_alternates = 1, or do_sample = true",
            )
        return GenerationSettings(
            instruction,
            num_alternates,
            max_new_tokens,
            do_sample,
            float(temperature) if do_sample else 0.0,
            float(top_p) if do_sample else 1.0,
            seed,
            batch_size,
            tuple(stop_strings),
        )

    @staticmethod
    def _texts(values: list[Any], column: str, arg: str) -> list[str]:
        for row, value in enumerate(values):
            if not isinstance(value, str):
                raise UserError(
                    f"row {row}: column '{column}' must hold one text per row, got {type(value).__name__}",
                    key=arg,
                )
        return values

    @staticmethod
    def _write(
        path: Path,
        questions: Sequence[str],
        answers: Sequence[str],
        alternates: Sequence[Sequence[str]],
        indices: Sequence[int],
    ) -> None:
        """The rows with their non-empty alternates, written whole or not at all."""
        kept = [[a for a in group if a] for group in alternates]
        empty = sum(len(group) for group in alternates) - sum(len(group) for group in kept)
        if not any(kept):
            raise UserError(
                "the model generated no usable alternate answer (every one was empty)",
                key="max_new_tokens",
                hint="raise max_new_tokens, check stop_strings and the instruction, or give alternates in "
                "the data (QAwithAlternateDataset)",
            )
        if empty:
            logger.warning("%d generated alternate answers were empty and are left out", empty)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        with partial.open("w", encoding="utf-8") as out:
            for question, answer, group, index in zip(questions, answers, kept, indices, strict=True):
                row = {"question": question, "answer": answer, "alternate": group, "index": index}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(partial, path)

    def __getitem__(self, item: int) -> dict[str, Any]:
        row = self._row(item)
        return {"original": self._item("", row), "alternate": self._item("_alt", row)}

    @staticmethod
    def item_shape(args: Mapping[str, Any]) -> str:
        """Always {original, alternate} pairs."""
        return "pair"
