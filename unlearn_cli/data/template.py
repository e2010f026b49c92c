"""Turn (question, answer) conversations into token ids and labels, with the loss on the answer only.

Two ways to lay out a conversation exist, chosen by `TemplateArgs.apply_chat_template`: the tokenizer's
own chat template (instruction-tuned models), or plain text joined from the recipe's tags (base models,
TOFU's ``Question: ... Answer: ...`` style).

The prompt/answer boundary is found on *characters*, never by tokenizing the prompt on its own: a prompt
that ends in a space tokenizes alone as ``... "Answer", ":", " "`` but joined with its answer as
``... "Answer", ":", " Paris"``, so counting prompt tokens would mask the first answer token. Here the whole
text is tokenized once with offsets, and every token holding at least one answer character is trained on.

`TemplateArgs.answer_mask = "prompt_length"` switches to the reference framework's (open-unlearning) rule
instead — mask as many tokens as the prompt has when tokenized alone — only so that its published numbers
can be reproduced for the same model and data; it drops that first answer token from every loss and score.

This module imports no torch/transformers, so the recipe layer can validate `TemplateArgs` cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from unlearn_cli.errors import UserError

IGNORE_INDEX = -100


class TemplateArgs(BaseModel):
    """How a conversation is laid out as text: a chat template, or tags around each turn."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    apply_chat_template: bool = False
    system_prompt: str | None = None
    system_prompt_with_special_tokens: str | None = None
    date_string: str | None = None
    user_start_tag: str = ""
    user_end_tag: str = ""
    asst_start_tag: str = Field("", validation_alias=AliasChoices("asst_start_tag", "asst_tag"))
    asst_end_tag: str = ""
    answer_mask: Literal["offsets", "prompt_length"] = "offsets"
    """Which tokens are the answer: those holding an answer character ("offsets"), or all tokens after the
    first len(tokenize(prompt alone)) ("prompt_length", the reference framework's rule; see the module)."""

    @model_validator(mode="before")
    @classmethod
    def _one_assistant_tag(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and "asst_tag" in data
            and "asst_start_tag" in data
            and data["asst_tag"] != data["asst_start_tag"]
        ):
            raise ValueError("'asst_tag' is the old name of 'asst_start_tag'; give only one of them")
        return data


@dataclass(frozen=True)
class Conversation:
    """Earlier (few-shot) turns plus the final question whose answer is trained on or generated."""

    questions: Sequence[str]
    answers: Sequence[str]

    def __post_init__(self) -> None:
        if len(self.questions) != len(self.answers) or not self.questions:
            raise ValueError("a conversation needs as many answers as questions, and at least one of each")


@dataclass(frozen=True)
class Encoded:
    """One tokenized conversation: `label_start` is the first trained (answer) token."""

    input_ids: list[int]
    label_start: int
    truncated: bool

    @property
    def labels(self) -> list[int]:
        start = min(self.label_start, len(self.input_ids))
        return [IGNORE_INDEX] * start + self.input_ids[start:]

    @property
    def attention_mask(self) -> list[int]:
        return [1] * len(self.input_ids)

    @property
    def has_labels(self) -> bool:
        return self.label_start < len(self.input_ids)


def render(tokenizer: Any, template_args: TemplateArgs, conversation: Conversation) -> tuple[str, int]:
    """The full conversation text and the character offset where the final answer starts."""
    return render_many(tokenizer, template_args, [conversation])[0]


def render_many(
    tokenizer: Any, template_args: TemplateArgs, conversations: Sequence[Conversation]
) -> list[tuple[str, int]]:
    """`render` for many conversations (chat templates render in one batched call, much faster)."""
    if template_args.apply_chat_template:
        return _render_chat(tokenizer, template_args, conversations)
    return [_render_plain(template_args, conversation) for conversation in conversations]


def _render_plain(t: TemplateArgs, conversation: Conversation) -> tuple[str, int]:
    parts = [t.system_prompt_with_special_tokens or ""]
    last = len(conversation.questions) - 1
    for i, (question, answer) in enumerate(zip(conversation.questions, conversation.answers, strict=True)):
        parts.append(t.user_start_tag + question + t.user_end_tag + t.asst_start_tag)
        if i < last:
            parts.append(answer + t.asst_end_tag)
    prompt = "".join(parts)
    # asst_end_tag separates few-shot turns; the final answer ends with the eos the encoder appends.
    return prompt + conversation.answers[-1], len(prompt)


def _chat_messages(template_args: TemplateArgs, conversation: Conversation) -> list[dict[str, str]]:
    messages = []
    if template_args.system_prompt:
        messages.append({"role": "system", "content": template_args.system_prompt})
    for question, answer in zip(conversation.questions, conversation.answers, strict=True):
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    return messages


def _render_chat(
    tokenizer: Any, template_args: TemplateArgs, conversations: Sequence[Conversation]
) -> list[tuple[str, int]]:
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            "apply_chat_template is true but the tokenizer has no chat template",
            key="template_args.apply_chat_template",
            hint="set apply_chat_template = false and give user/assistant tags, or use an instruct model's "
            "tokenizer",
        )
    kwargs: dict[str, Any] = {"tokenize": False}
    if template_args.date_string is not None:
        kwargs["date_string"] = template_args.date_string
    chats = [_chat_messages(template_args, c) for c in conversations]
    fulls = tokenizer.apply_chat_template(chats, add_generation_prompt=False, **kwargs)
    prompts = tokenizer.apply_chat_template([c[:-1] for c in chats], add_generation_prompt=True, **kwargs)
    rendered = []
    for full, prompt, conversation in zip(fulls, prompts, conversations, strict=True):
        shared = len(os.path.commonprefix([prompt, full]))  # noqa: RUF071
        # Templates may add text between the generation prompt and the answer (e.g. empty "thinking"
        # blocks); that is not the answer, so the boundary is where the answer itself begins, if found.
        answer = conversation.answers[-1]
        found = full.find(answer, shared) if answer else -1
        rendered.append((full, found if found >= 0 else shared))
    return rendered


def _answer_start(offsets: Sequence[tuple[int, int]], boundary: int) -> int:
    """Index of the first token holding an answer character; every token after it is trained on too."""
    for i, (start, end) in enumerate(offsets):
        # Prompt tokens end by the boundary and start before it; zero-width (0, 0) tokens are a leading bos.
        if not (end <= boundary and (start < boundary or end == 0)):
            return i
    return len(offsets)


def quiet_length_warning(tokenizer: Any) -> None:
    """The toolkit cuts sequences to `max_length` itself, after tokenizing whole texts: transformers'
    "sequence length is longer than the specified maximum (N > 512)" warning would be wrong, so it is off."""
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):
        warned["sequence-length-is-longer-than-the-specified-maximum"] = True


def encode_conversations(
    tokenizer: Any,
    template_args: TemplateArgs,
    conversations: Sequence[Conversation],
    *,
    max_length: int | None = None,
    for_generation: bool = False,
) -> list[Encoded]:
    """Tokenize many conversations in one fast-tokenizer call (the batched form `datasets.map` uses).

    Every sequence ends with the eos token (added unless the template already ends in it), which is trained
    on so the model learns to stop. Sequences longer than `max_length` are cut on the right; a cut that
    removes the whole answer leaves `label_start == len(input_ids)`, which callers drop. `for_generation`
    matters only with ``answer_mask = "prompt_length"``: the prompt is then the prompt tokenized alone (as
    the reference framework generates from it), followed by the answer's tokens.
    """
    if not conversations:
        return []
    texts, boundaries = zip(*render_many(tokenizer, template_args, conversations), strict=True)
    quiet_length_warning(tokenizer)
    add_special = not template_args.apply_chat_template
    encoding = tokenizer(
        list(texts), add_special_tokens=add_special, return_offsets_mapping=True, return_attention_mask=False
    )
    starts = [
        _answer_start(offsets, boundary)
        for offsets, boundary in zip(encoding["offset_mapping"], boundaries, strict=True)
    ]
    ids = [list(row) for row in encoding["input_ids"]]
    if template_args.answer_mask == "prompt_length":
        prompts = [text[:boundary] for text, boundary in zip(texts, boundaries, strict=True)]
        ids, starts = _mask_by_prompt_length(tokenizer, prompts, ids, starts, add_special, for_generation)
    return [
        _finish(row, start, tokenizer.eos_token_id, max_length)
        for row, start in zip(ids, starts, strict=True)
    ]


def _mask_by_prompt_length(
    tokenizer: Any,
    prompts: Sequence[str],
    ids: list[list[int]],
    answer_starts: Sequence[int],
    add_special_tokens: bool,
    for_generation: bool,
) -> tuple[list[list[int]], list[int]]:
    """The reference framework's labels: the first len(tokenize(prompt)) tokens of the text are masked.

    For generation its prompt is the prompt tokenized alone, so those ids replace the text's own prompt
    tokens and the answer keeps all its tokens (the ground truth a generation is compared with).
    """
    prompt_ids = tokenizer(list(prompts), add_special_tokens=add_special_tokens, return_attention_mask=False)
    if for_generation:
        joined = [
            list(p) + row[start:]
            for p, row, start in zip(prompt_ids["input_ids"], ids, answer_starts, strict=True)
        ]
        return joined, [len(p) for p in prompt_ids["input_ids"]]
    return ids, [min(len(p), len(row)) for p, row in zip(prompt_ids["input_ids"], ids, strict=True)]


def _finish(ids: Sequence[int], start: int, eos: int | None, max_length: int | None) -> Encoded:
    ids = list(ids)
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids = ids[:max_length]
    return Encoded(ids, min(start, len(ids)), truncated)


def encode_conversation(
    tokenizer: Any,
    template_args: TemplateArgs,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    max_length: int | None = None,
) -> dict[str, list[int]]:
    """`input_ids`, `labels` and `attention_mask` for one conversation (the last answer is trained on)."""
    encoded = encode_conversations(
        tokenizer, template_args, [Conversation(list(questions), list(answers))], max_length=max_length
    )[0]
    return {
        "input_ids": encoded.input_ids,
        "labels": encoded.labels,
        "attention_mask": encoded.attention_mask,
    }


def encode_completions(
    tokenizer: Any,
    prefixes: Sequence[str],
    texts: Sequence[str],
    *,
    separator: str = "",
    append_eos: bool = True,
    max_length: int | None = None,
    answer_mask: Literal["offsets", "prompt_length"] = "offsets",
    for_generation: bool = False,
) -> list[Encoded]:
    """Tokenize ``prefix + separator + text`` pairs with the loss on `text` only (MUSE/WMDP style).

    `answer_mask` and `for_generation` as in `encode_conversations` (the prefix plays the prompt).
    """
    fulls = [p + separator + t for p, t in zip(prefixes, texts, strict=True)]
    encoding = tokenizer(
        fulls, add_special_tokens=True, return_offsets_mapping=True, return_attention_mask=False
    )
    eos = tokenizer.eos_token_id if append_eos else None
    ids = [list(row) for row in encoding["input_ids"]]
    starts = [
        _answer_start(offsets, len(prefix) + len(separator))
        for offsets, prefix in zip(encoding["offset_mapping"], prefixes, strict=True)
    ]
    if answer_mask == "prompt_length":
        ids, starts = _mask_by_prompt_length(tokenizer, prefixes, ids, starts, True, for_generation)
        # the reference framework never labels position 0 (a prefix of nothing still holds the bos)
        starts = [max(start, 1) for start in starts]
    return [_finish(row, start, eos, max_length) for row, start in zip(ids, starts, strict=True)]
