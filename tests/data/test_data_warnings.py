"""Warnings of the data layer: none that misleads (a length the toolkit cuts itself), one where data is
suspicious (every answer empty)."""

from __future__ import annotations

import logging
from typing import Any

import pytest


def test_no_sequence_length_warning_where_the_toolkit_cuts_itself(
    bpe_tokenizer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from unlearn_cli.data.template import Conversation, TemplateArgs, encode_conversations

    bpe_tokenizer.model_max_length = 8
    with caplog.at_level(logging.WARNING):
        encoded = encode_conversations(
            bpe_tokenizer,
            TemplateArgs(apply_chat_template=False),
            [Conversation(["q " * 40], ["a " * 40])],
            max_length=16,
        )
    assert len(encoded[0].input_ids) == 16
    assert "longer than the specified maximum" not in caplog.text


def test_a_training_set_whose_every_answer_is_empty_warns(
    bpe_tokenizer: Any, write_jsonl: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from unlearn_cli.data.qa import QADataset
    from unlearn_cli.data.template import TemplateArgs

    rows = [{"question": "Q?", "answer": ""}, {"question": "R?", "answer": " "}]
    with caplog.at_level(logging.WARNING, logger="unlearn_cli.data"):
        QADataset(
            write_jsonl(rows), tokenizer=bpe_tokenizer, template_args=TemplateArgs(apply_chat_template=False)
        )
    assert "every answer in column 'answer' is empty (2 rows)" in caplog.text
