"""`answer_mask = "prompt_length"` reproduces the reference framework's labels: on a prompt ending in a space
the two rules differ by exactly the first answer token; where the boundary is clean they agree."""

from __future__ import annotations

from typing import Any

from unlearn_cli.data.template import Conversation, TemplateArgs, encode_completions, encode_conversations

TAGS = {"user_start_tag": "Question: ", "user_end_tag": "\n", "asst_start_tag": "Answer: "}
CONVERSATION = Conversation(["What is the capital city of France?"], ["Paris is the capital."])


def test_a_prompt_ending_in_a_space_loses_exactly_the_first_answer_token(tiny_tokenizer: Any) -> None:
    ours = encode_conversations(tiny_tokenizer, TemplateArgs(**TAGS), [CONVERSATION])[0]
    theirs = encode_conversations(
        tiny_tokenizer, TemplateArgs(**TAGS, answer_mask="prompt_length"), [CONVERSATION]
    )[0]
    assert theirs.input_ids == ours.input_ids
    assert theirs.label_start == ours.label_start + 1
    first = tiny_tokenizer.decode([ours.input_ids[ours.label_start]])
    # the prompt's trailing space joined the answer's first word: the token that rule drops is answer text
    assert first.startswith(" ") and "Paris".startswith(first.strip()) and first.strip()
    assert tiny_tokenizer.decode(ours.input_ids[ours.label_start :], skip_special_tokens=True).strip() == (
        "Paris is the capital."
    )


def test_generation_prompts_follow_each_rule(tiny_tokenizer: Any) -> None:
    ours = encode_conversations(tiny_tokenizer, TemplateArgs(**TAGS), [CONVERSATION], for_generation=True)[0]
    theirs = encode_conversations(
        tiny_tokenizer, TemplateArgs(**TAGS, answer_mask="prompt_length"), [CONVERSATION], for_generation=True
    )[0]
    prompt_alone = tiny_tokenizer("Question: What is the capital city of France?\nAnswer: ")["input_ids"]
    # the reference framework generates from the prompt tokenized alone (ending in a lone space token) ...
    assert theirs.input_ids[: theirs.label_start] == prompt_alone
    assert tiny_tokenizer.decode(prompt_alone[-1:]) == " "
    # ... we from the training prompt, which ends before " Paris"; both keep the whole answer as the target
    assert ours.input_ids[: ours.label_start] == prompt_alone[:-1]
    assert theirs.input_ids[theirs.label_start :] == ours.input_ids[ours.label_start :]


def test_the_rules_agree_where_the_template_ends_on_a_token_boundary(tiny_tokenizer: Any) -> None:
    chat = {"apply_chat_template": True, "system_prompt": "You are a helpful assistant."}
    ours = encode_conversations(tiny_tokenizer, TemplateArgs(**chat), [CONVERSATION])[0]
    theirs = encode_conversations(
        tiny_tokenizer, TemplateArgs(**chat, answer_mask="prompt_length"), [CONVERSATION]
    )[0]
    assert (theirs.input_ids, theirs.label_start) == (ours.input_ids, ours.label_start)


def test_completions_follow_the_rule_too(tiny_tokenizer: Any) -> None:
    ours = encode_completions(tiny_tokenizer, ["The capital of France is "], ["Paris."])[0]
    theirs = encode_completions(
        tiny_tokenizer, ["The capital of France is "], ["Paris."], answer_mask="prompt_length"
    )[0]
    assert theirs.label_start == ours.label_start + 1
    empty = encode_completions(tiny_tokenizer, [""], ["Paris."], answer_mask="prompt_length")[0]
    assert empty.label_start == 1  # never the bos
