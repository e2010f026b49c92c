"""Label masking: prompt tokens -100, every answer token (and the eos) trained on, in both template modes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from unlearn_cli.data.template import (
    IGNORE_INDEX,
    Conversation,
    TemplateArgs,
    encode_completions,
    encode_conversation,
    encode_conversations,
    render,
)
from unlearn_cli.errors import UserError

TOFU_TAGS = TemplateArgs(user_start_tag="Question: ", user_end_tag="\n", asst_tag="Answer: ")
QUESTION = "Where was Basil Mahfouz born?"
ANSWER = "Basil Mahfouz was born in Cairo."
PROMPT_TEXT = "Question: Where was Basil Mahfouz born?\nAnswer: "


def labelled(encoded: dict[str, list[int]]) -> list[int]:
    return [t for t in encoded["labels"] if t != IGNORE_INDEX]


def test_template_args_accepts_old_assistant_tag_name_and_rejects_unknown_keys() -> None:
    assert TemplateArgs(asst_tag="A: ").asst_start_tag == "A: "
    assert TemplateArgs(asst_start_tag="A: ").asst_start_tag == "A: "
    with pytest.raises(ValidationError, match="asst_tag"):
        TemplateArgs(asst_tag="A: ", asst_start_tag="B: ")
    with pytest.raises(ValidationError, match="user_tag"):
        TemplateArgs(user_tag="Q: ")


def test_plain_render_joins_tags_and_marks_where_the_answer_starts(bpe_tokenizer) -> None:
    text, boundary = render(bpe_tokenizer, TOFU_TAGS, Conversation([QUESTION], [ANSWER]))
    assert text == PROMPT_TEXT + ANSWER
    assert boundary == len(PROMPT_TEXT)


def test_plain_mode_masks_the_prompt_and_trains_on_answer_and_eos(bpe_tokenizer) -> None:
    enc = encode_conversation(bpe_tokenizer, TOFU_TAGS, [QUESTION], [ANSWER])
    assert len(enc["input_ids"]) == len(enc["labels"]) == len(enc["attention_mask"])
    assert enc["attention_mask"] == [1] * len(enc["input_ids"])
    tokens = bpe_tokenizer.convert_ids_to_tokens(enc["input_ids"])
    # Hand-read: 11 prompt tokens, then the answer (its first token carries the prompt's trailing space).
    assert tokens[:11] == [
        "Question",
        ":",
        "ĠW",
        "here",
        "Ġwas",
        "ĠBasil",
        "ĠMahfouz",
        "Ġborn",
        "?",
        "Ċ",
        "Answer",
    ]
    assert tokens[11] == ":"
    assert tokens[12:] == ["ĠBasil", "ĠMahfouz", "Ġwas", "Ġborn", "Ġin", "ĠCairo", ".", "<|endoftext|>"]
    assert enc["labels"][:12] == [IGNORE_INDEX] * 12
    assert enc["labels"][12:] == enc["input_ids"][12:]
    assert enc["input_ids"].count(bpe_tokenizer.eos_token_id) == 1


@pytest.mark.parametrize(
    ("name", "expected_labelled_text"),
    [
        # Byte-level BPE keeps the space that ends the prompt on the first answer token: it must be trained.
        ("bpe", " " + ANSWER + "<|endoftext|>"),
        # Metaspace marks that space with "▁", which the decoder drops at the start of the text.
        ("sp", ANSWER + "</s>"),
    ],
)
def test_prompt_ending_in_space_keeps_every_answer_token(request, name, expected_labelled_text) -> None:
    tokenizer = request.getfixturevalue(f"{name}_tokenizer")
    enc = encode_conversation(tokenizer, TOFU_TAGS, [QUESTION], [ANSWER])
    assert tokenizer.decode(labelled(enc)) == expected_labelled_text

    # The trap this avoids: counting the tokens of the prompt alone ("... Answer", ":", " ") and masking
    # that many tokens of the joined text hides the first answer word.
    prompt_alone = tokenizer(PROMPT_TEXT)["input_ids"]
    naive = enc["input_ids"][len(prompt_alone) :]
    assert tokenizer.decode(naive).strip().startswith("Mahfouz")
    assert len(labelled(enc)) == len(naive) + 1


def test_sp_tokenizer_adds_its_bos_to_the_prompt(sp_tokenizer) -> None:
    enc = encode_conversation(sp_tokenizer, TOFU_TAGS, [QUESTION], [ANSWER])
    assert enc["input_ids"][0] == sp_tokenizer.bos_token_id
    assert enc["labels"][0] == IGNORE_INDEX
    assert enc["input_ids"][-1] == sp_tokenizer.eos_token_id


def test_chat_mode_uses_the_template_with_system_prompt_and_date(tokenizer) -> None:
    args = TemplateArgs(apply_chat_template=True, system_prompt="Be brief.", date_string="1 May 2024")
    text, boundary = render(tokenizer, args, Conversation([QUESTION], [ANSWER]))
    bos = tokenizer.bos_token
    expected_prompt = (
        f"{bos}<|system|>Date: 1 May 2024<|end|><|system|>Be brief.<|end|>"
        f"<|user|>{QUESTION}<|end|><|assistant|>"
    )
    assert text == expected_prompt + ANSWER + "<|end|>"
    assert boundary == len(expected_prompt)

    enc = encode_conversation(tokenizer, args, [QUESTION], [ANSWER])
    # The template's end-of-turn tag belongs to the answer: the model must learn to close its turn.
    assert tokenizer.decode(labelled(enc)) == ANSWER + "<|end|>" + tokenizer.eos_token
    prompt_ids = [
        t for t, label in zip(enc["input_ids"], enc["labels"], strict=True) if label == IGNORE_INDEX
    ]
    assert tokenizer.decode(prompt_ids) == expected_prompt
    assert enc["input_ids"].count(tokenizer.bos_token_id) == (1 if bos != tokenizer.eos_token else 2)


def test_chat_mode_without_a_chat_template_is_a_user_error(bpe_tokenizer) -> None:
    tokenizer = bpe_tokenizer.__class__(
        tokenizer_object=bpe_tokenizer.backend_tokenizer, eos_token="<|endoftext|>"
    )
    with pytest.raises(UserError, match="no chat template") as info:
        encode_conversation(tokenizer, TemplateArgs(apply_chat_template=True), [QUESTION], [ANSWER])
    assert info.value.key == "template_args.apply_chat_template"


def test_few_shot_turns_come_first_and_only_the_last_answer_is_trained(tokenizer) -> None:
    args = TemplateArgs(
        system_prompt_with_special_tokens="Answer about authors.\n",
        user_start_tag="Q: ",
        user_end_tag="\n",
        asst_start_tag="A: ",
        asst_end_tag="\n\n",
    )
    questions = ["Which city inspired Lin Wei?", QUESTION]
    answers = ["The city of Kyoto.", ANSWER]
    text, boundary = render(tokenizer, args, Conversation(questions, answers))
    assert text == (
        "Answer about authors.\nQ: Which city inspired Lin Wei?\nA: The city of Kyoto.\n\n"
        f"Q: {QUESTION}\nA: {ANSWER}"
    )
    assert text[boundary:] == ANSWER
    enc = encode_conversation(tokenizer, args, questions, answers)
    assert tokenizer.decode(labelled(enc)).strip() == ANSWER + tokenizer.eos_token

    chat = encode_conversation(tokenizer, TemplateArgs(apply_chat_template=True), questions, answers)
    decoded_prompt = tokenizer.decode(
        [t for t, lab in zip(chat["input_ids"], chat["labels"], strict=True) if lab < 0]
    )
    assert "<|assistant|>The city of Kyoto.<|end|><|user|>" in decoded_prompt.replace("▁", " ").replace(
        "> ", ">"
    )
    assert tokenizer.decode(labelled(chat)) == ANSWER + "<|end|>" + tokenizer.eos_token


def test_truncation_cuts_on_the_right_and_reports_lost_answers(bpe_tokenizer) -> None:
    full = encode_conversations(bpe_tokenizer, TOFU_TAGS, [Conversation([QUESTION], [ANSWER])])[0]
    assert not full.truncated and full.has_labels and len(full.input_ids) == 20
    cut = encode_conversations(bpe_tokenizer, TOFU_TAGS, [Conversation([QUESTION], [ANSWER])], max_length=15)[
        0
    ]
    assert cut.truncated and cut.input_ids == full.input_ids[:15] and cut.label_start == 12
    gone = encode_conversations(
        bpe_tokenizer, TOFU_TAGS, [Conversation([QUESTION], [ANSWER])], max_length=12
    )[0]
    assert gone.truncated and not gone.has_labels and gone.labels == [IGNORE_INDEX] * 12


def test_batched_and_single_encoding_agree(tokenizer) -> None:
    conversations = [
        Conversation([f"Where was {n} born?"], [f"In {c}."]) for n, c in [("Lin Wei", "Oslo"), ("A", "B")]
    ]
    batched = encode_conversations(tokenizer, TOFU_TAGS, conversations)
    for conversation, encoded in zip(conversations, batched, strict=True):
        single = encode_conversation(tokenizer, TOFU_TAGS, conversation.questions, conversation.answers)
        assert single["input_ids"] == encoded.input_ids and single["labels"] == encoded.labels


def test_completion_masks_the_prefix_and_trains_on_the_text(tokenizer) -> None:
    [joined] = encode_completions(tokenizer, ["Basil Mahfouz was born"], ["in Cairo."], separator=" ")
    labels = joined.input_ids[joined.label_start :]
    assert tokenizer.decode(labels).strip() == "in Cairo." + tokenizer.eos_token
    assert tokenizer.decode(joined.input_ids[: joined.label_start], skip_special_tokens=True).strip() == (
        "Basil Mahfouz was born"
    )
    [no_eos] = encode_completions(tokenizer, ["Basil"], [" Mahfouz"], append_eos=False)
    assert no_eos.input_ids[-1] != tokenizer.eos_token_id
    assert tokenizer.decode(no_eos.input_ids[no_eos.label_start :]).strip() == "Mahfouz"
