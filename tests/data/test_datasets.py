"""Dataset handlers: items, list answers, idk, alternates, corpora, truncation counts, errors, formats."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from unlearn_cli.data import (
    CompletionDataset,
    PretrainingDataset,
    QADataset,
    QAwithAlternateDataset,
    QAwithIdkDataset,
    TemplateArgs,
)
from unlearn_cli.data.qa import DEFAULT_IDK_PATH
from unlearn_cli.data.template import IGNORE_INDEX
from unlearn_cli.errors import UserError

TAGS = TemplateArgs(user_start_tag="Question: ", user_end_tag="\n", asst_start_tag="Answer: ")


def answer_text(tokenizer, item: dict[str, torch.Tensor]) -> str:
    """The trained-on tokens decoded, without the eos and the space a byte-level BPE keeps in front."""
    ids = item["labels"][item["labels"] != IGNORE_INDEX].tolist()
    assert ids[-1] == tokenizer.eos_token_id
    return tokenizer.decode(ids[:-1]).strip()


def test_qa_items_are_tensors_with_masked_prompt_and_source_index(qa_rows, tokenizer, qa_args) -> None:
    ds = QADataset(qa_args, tokenizer=tokenizer, template_args=TAGS)
    assert len(ds) == 3
    item = ds[1]
    assert set(item) == {"input_ids", "labels", "attention_mask", "index"}
    assert item["input_ids"].dtype == item["labels"].dtype == torch.long
    assert item["input_ids"].shape == item["labels"].shape == item["attention_mask"].shape
    assert item["index"].item() == 11
    assert item["index"].dtype == torch.long and item["index"].dim() == 0
    assert answer_text(tokenizer, item) == qa_rows[1]["answer"]
    prompt = item["input_ids"][item["labels"] == IGNORE_INDEX].tolist()
    assert tokenizer.decode(prompt, skip_special_tokens=True).strip() == (
        "Question: What genre does Aisha Okafor write?\nAnswer:"
    )
    assert [ds[i]["index"].item() for i in range(3)] == [10, 11, 12]
    assert ds[-1]["index"].item() == 12
    with pytest.raises(IndexError):
        ds[3]


def test_rows_are_numbered_by_position_without_an_index_column(qa_rows, tokenizer, write_jsonl) -> None:
    rows = [{"q": r["question"], "a": r["answer"]} for r in qa_rows]
    ds = QADataset(
        write_jsonl(rows), tokenizer=tokenizer, template_args=TAGS, question_key="q", answer_key="a"
    )
    assert [ds[i]["index"].item() for i in range(3)] == [0, 1, 2]


def test_list_answers_give_one_item_each_keeping_the_row_index(tokenizer, write_jsonl) -> None:
    rows = [
        {"question": "Where was Lin Wei born?", "answer": ["In Oslo.", "In Lima.", "In Kyoto."], "index": 7},
        {"question": "Where was Aisha Okafor born?", "answer": ["In Lagos."], "index": 8},
    ]
    ds = QADataset(write_jsonl(rows), tokenizer=tokenizer, template_args=TAGS)
    assert len(ds) == 4
    assert [answer_text(tokenizer, ds[i]) for i in range(4)] == [
        "In Oslo.",
        "In Lima.",
        "In Kyoto.",
        "In Lagos.",
    ]
    assert [ds[i]["index"].item() for i in range(4)] == [7, 7, 7, 8]
    assert ds.summary()["rows"] == 2 and ds.summary()["items"] == 4


def test_predict_with_generate_splits_prompt_and_answer(qa_rows, tokenizer, qa_args) -> None:
    train = QADataset(qa_args, tokenizer=tokenizer, template_args=TAGS)
    generate = QADataset(qa_args, tokenizer=tokenizer, template_args=TAGS, predict_with_generate=True)
    for i in range(3):
        item, full = generate[i], train[i]
        assert item["attention_mask"].shape == item["input_ids"].shape
        assert (item["labels"] != IGNORE_INDEX).all()
        # Prompt + target is exactly the training sequence, so generation sees the prompt as trained.
        assert torch.equal(torch.cat([item["input_ids"], item["labels"]]), full["input_ids"])
        assert torch.equal(item["labels"], full["labels"][full["labels"] != IGNORE_INDEX])
        assert tokenizer.decode(item["input_ids"], skip_special_tokens=True).rstrip().endswith("Answer:")
    assert generate.lengths() == [len(generate[i]["input_ids"]) for i in range(3)]

    chat = QADataset(
        qa_args,
        tokenizer=tokenizer,
        template_args=TemplateArgs(apply_chat_template=True),
        predict_with_generate=True,
    )
    assert tokenizer.decode(chat[0]["input_ids"]).endswith("<|assistant|>")
    assert tokenizer.decode(chat[0]["labels"]) == qa_rows[0]["answer"] + "<|end|>" + tokenizer.eos_token


def test_few_shot_examples_precede_every_question(qa_rows, tokenizer, qa_args, write_jsonl) -> None:
    shots = write_jsonl(
        [
            {"question": "Which city inspired Lin Wei?", "answer": "The city of Kyoto."},
            {"question": "Is Tomas Novak a judge?", "answer": ["No, a writer."]},
            {"question": "Unused?", "answer": "Unused."},
        ],
        name="shots.jsonl",
    )
    tags = TemplateArgs(user_start_tag="Q: ", user_end_tag="\n", asst_start_tag="A: ", asst_end_tag="\n\n")
    ds = QADataset(
        qa_args, tokenizer=tokenizer, template_args=tags, few_shot_dataset_hf_args=shots, num_few_shot=2
    )
    text = tokenizer.decode(ds[2]["input_ids"], skip_special_tokens=True)
    assert text.strip() == (
        "Q: Which city inspired Lin Wei?\nA: The city of Kyoto.\n\n"
        "Q: Is Tomas Novak a judge?\nA: No, a writer.\n\n"
        f"Q: {qa_rows[2]['question']}\nA: {qa_rows[2]['answer']}"
    )
    assert answer_text(tokenizer, ds[2]) == qa_rows[2]["answer"]
    everything = QADataset(qa_args, tokenizer=tokenizer, template_args=tags, few_shot_dataset_hf_args=shots)
    assert "Unused?" in tokenizer.decode(everything[0]["input_ids"])


def test_few_shot_data_is_checked_like_the_main_data(bpe_tokenizer, qa_args, write_jsonl) -> None:
    def build(shots: list[dict], **kwargs) -> QADataset:
        return QADataset(
            qa_args,
            tokenizer=bpe_tokenizer,
            template_args=TAGS,
            few_shot_dataset_hf_args=write_jsonl(shots, name="shots.jsonl"),
            **kwargs,
        )

    with pytest.raises(UserError, match=r"few-shot data, row 2: column 'answer' holds an empty list") as info:
        build([{"question": "Q?", "answer": ["A."]}, {"question": "R?", "answer": []}])
    assert info.value.key == "few_shot_dataset_hf_args"
    with pytest.raises(
        UserError,
        match=r"few-shot data: line 2 of .*shots.jsonl: 'question' is missing \(the row has: answer\)",
    ):
        build([{"question": "Q?", "answer": "A."}, {"question": None, "answer": "B."}])
    with pytest.raises(UserError, match=r"few-shot data, row 1: column 'answer' must hold text") as info:
        build([{"question": "Q?", "answer": 3}])
    assert info.value.key == "few_shot_dataset_hf_args"
    # Rows past num_few_shot are not used, so they are not checked either.
    assert (
        len(build([{"question": "Q?", "answer": "A."}, {"question": None, "answer": []}], num_few_shot=1))
        == 3
    )

    with pytest.raises(UserError, match="num_few_shot is 2 but no few-shot data is given") as info:
        QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS, num_few_shot=2)
    assert info.value.key == "num_few_shot" and "few_shot_dataset_hf_args" in (info.value.hint or "")
    assert len(QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS, num_few_shot=0)) == 3


def test_idk_answers_are_packaged_phrases_chosen_deterministically(bpe_tokenizer, qa_args) -> None:
    phrases = {line.strip() for line in DEFAULT_IDK_PATH.read_text().splitlines() if line.strip()}
    assert len(phrases) >= 100

    def answers(seed: int) -> list[str]:
        ds = QAwithIdkDataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS, seed=seed)
        return [answer_text(bpe_tokenizer, ds[i]) for i in range(len(ds))]

    first = answers(0)
    assert all(a in phrases for a in first)
    assert answers(0) == first
    assert any(answers(seed) != first for seed in (1, 2, 3))


def test_idk_reads_a_custom_file_and_pairs_on_request(
    qa_rows, bpe_tokenizer, qa_args, tmp_path: Path
) -> None:
    idk = tmp_path / "idk.txt"
    idk.write_text("No idea.\n\n", encoding="utf-8")
    ds = QAwithIdkDataset(
        qa_args, tokenizer=bpe_tokenizer, template_args=TAGS, idk_path=str(idk), paired=True
    )
    item = ds[0]
    assert set(item) == {"original", "alternate"}
    assert answer_text(bpe_tokenizer, item["original"]) == qa_rows[0]["answer"]
    assert answer_text(bpe_tokenizer, item["alternate"]) == "No idea."
    assert item["original"]["index"].item() == item["alternate"]["index"].item() == 10
    with pytest.raises(UserError, match="cannot read the idk file") as info:
        QAwithIdkDataset(
            qa_args, tokenizer=bpe_tokenizer, template_args=TAGS, idk_path=str(tmp_path / "no.txt")
        )
    assert info.value.key == "idk_path"


def test_idk_file_that_is_not_utf8_is_a_user_error(bpe_tokenizer, qa_args, tmp_path: Path) -> None:
    idk = tmp_path / "idk.txt"
    idk.write_bytes("Désolé, je ne sais pas.\n".encode("latin-1"))
    with pytest.raises(UserError, match="is not UTF-8 text") as info:
        QAwithIdkDataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS, idk_path=str(idk))
    assert info.value.key == "idk_path" and "UTF-8" in (info.value.hint or "")


def test_alternate_pairs_each_question_with_both_answers(tokenizer, write_jsonl) -> None:
    rows = [
        {
            "question": "Where was Lin Wei born?",
            "answer": "In Oslo.",
            "paraphrased_answer": "Oslo.",
            "index": 0,
        },
        {
            "question": "Where was Aisha Okafor born?",
            "answer": "In Lagos.",
            "paraphrased_answer": ["In Lima.", "In Quito."],
            "index": 1,
        },
    ]
    ds = QAwithAlternateDataset(write_jsonl(rows), tokenizer=tokenizer, template_args=TAGS)
    pairs = [
        (answer_text(tokenizer, ds[i]["original"]), answer_text(tokenizer, ds[i]["alternate"]))
        for i in range(3)
    ]
    assert pairs == [("In Oslo.", "Oslo."), ("In Lagos.", "In Lima."), ("In Lagos.", "In Quito.")]
    assert [ds[i]["alternate"]["index"].item() for i in range(3)] == [0, 1, 1]
    lengths = ds.lengths()
    assert lengths == [
        max(len(ds[i]["original"]["input_ids"]), len(ds[i]["alternate"]["input_ids"])) for i in range(3)
    ]


def test_alternate_lists_of_different_lengths_cannot_be_paired(bpe_tokenizer, write_jsonl) -> None:
    rows = [{"question": "Q?", "answer": ["a", "b"], "perturbed_answer": ["x", "y", "z"]}]
    with pytest.raises(UserError, match="different lengths"):
        QAwithAlternateDataset(
            write_jsonl(rows), tokenizer=bpe_tokenizer, template_args=TAGS, alternate_key="perturbed_answer"
        )


def test_pretraining_joins_documents_with_eos_and_cuts_blocks(tokenizer, write_jsonl) -> None:
    docs = ["Basil Mahfouz was born in Cairo.", "Lin Wei writes poetry.", "Oslo."]
    ds = PretrainingDataset(write_jsonl([{"text": d} for d in docs]), tokenizer=tokenizer, max_length=8)
    eos = tokenizer.eos_token_id
    stream = []
    for doc in docs:
        stream += tokenizer(doc, add_special_tokens=False)["input_ids"] + [eos]
    blocks = [ds[i] for i in range(len(ds))]
    assert len(ds) == -(-len(stream) // 8)
    assert torch.cat([b["input_ids"] for b in blocks]).tolist() == stream
    assert all(len(b["input_ids"]) == 8 for b in blocks[:-1]) and 1 <= len(blocks[-1]["input_ids"]) <= 8
    assert all(torch.equal(b["labels"], b["input_ids"]) for b in blocks)
    assert [b["index"].item() for b in blocks] == list(range(len(ds)))
    assert ds.lengths() == [len(b["input_ids"]) for b in blocks]
    assert ds.summary()["rows"] == 3 and ds.summary()["dropped_no_trainable_tokens"] == 0


def test_completion_trains_on_the_text_only(tokenizer, write_jsonl) -> None:
    rows = [{"prompt": "Basil Mahfouz was born", "text": "in Cairo.", "index": 3}]
    ds = CompletionDataset(write_jsonl(rows), tokenizer=tokenizer, insert_space=True)
    item = ds[0]
    assert answer_text(tokenizer, item) == "in Cairo."
    prompt = item["input_ids"][item["labels"] == IGNORE_INDEX].tolist()
    assert tokenizer.decode(prompt, skip_special_tokens=True).strip() == "Basil Mahfouz was born"
    assert item["index"].item() == 3

    generate = CompletionDataset(
        write_jsonl(rows), tokenizer=tokenizer, insert_space=True, predict_with_generate=True
    )
    assert torch.equal(torch.cat([generate[0]["input_ids"], generate[0]["labels"]]), item["input_ids"])

    whole = CompletionDataset(write_jsonl(rows), tokenizer=tokenizer, prefix_key=None, append_eos=False)
    assert tokenizer.decode(whole[0]["labels"][whole[0]["labels"] != IGNORE_INDEX]).strip() == "in Cairo."


def test_truncated_and_dropped_items_are_counted_and_warned_about(bpe_tokenizer, write_jsonl, caplog) -> None:
    rows = [
        {"question": "Where?", "answer": "Oslo."},
        {"question": "Where was Basil Mahfouz born?", "answer": "Basil Mahfouz was born in Cairo."},
        {
            "question": "Where was Basil Mahfouz born, and what did the father of Basil Mahfouz do?",
            "answer": "Cairo.",
        },
    ]
    caplog.set_level(logging.WARNING, logger="unlearn_cli.data")
    ds = QADataset(write_jsonl(rows), tokenizer=bpe_tokenizer, template_args=TAGS, max_length=16)
    summary = ds.summary()
    assert summary["items"] == len(ds) == 2
    assert summary["truncated"] == 1
    assert summary["dropped_no_trainable_tokens"] == 1
    assert max(ds.lengths()) == 16
    assert any("2 of 3 items cut at max_length=16; 1 dropped" in r.getMessage() for r in caplog.records)
    # Dropped rows leave no gap: items are the kept rows, in order.
    assert [ds[i]["index"].item() for i in range(2)] == [0, 1]

    with pytest.raises(UserError, match="no items left") as info:
        QADataset(write_jsonl(rows), tokenizer=bpe_tokenizer, template_args=TAGS, max_length=3)
    assert info.value.key == "max_length"


def test_dropped_items_are_counted_and_reported_by_cause(bpe_tokenizer, write_jsonl, caplog) -> None:
    rows = [
        {"prompt": "Basil Mahfouz was born", "text": "in Cairo."},
        {"prompt": "Lin Wei writes", "text": ""},
        {
            "prompt": "Where was Basil Mahfouz born, and what did the father of Basil Mahfouz do?",
            "text": "Cairo.",
        },
    ]
    caplog.set_level(logging.WARNING, logger="unlearn_cli.data")
    # Without eos an empty text has no token to train on however long max_length is; the long prefix is cut.
    ds = CompletionDataset(write_jsonl(rows), tokenizer=bpe_tokenizer, append_eos=False, max_length=12)
    summary = ds.summary()
    assert summary["items"] == len(ds) == 1 and ds[0]["index"].item() == 0
    assert summary["dropped_no_trainable_tokens"] == 2
    assert summary["dropped_truncated"] == 1 and summary["dropped_empty_answer"] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("1 of 3 items cut at max_length=12; 1 dropped" in m for m in messages)
    assert any("1 of 3 items dropped because their answer is empty" in m for m in messages)

    empty = [{"prompt": "Lin Wei writes", "text": ""}, {"prompt": "Oslo", "text": ""}]
    with pytest.raises(UserError, match="all 2 have an empty answer") as info:
        CompletionDataset(write_jsonl(empty, name="empty.jsonl"), tokenizer=bpe_tokenizer, append_eos=False)
    assert info.value.key == "hf_args" and "max_length" not in str(info.value)

    with pytest.raises(
        UserError, match="of its 2 items, 1 lose their whole answer to max_length 4 and 1 have"
    ) as info:
        CompletionDataset(
            write_jsonl(rows[1:], name="both.jsonl"), tokenizer=bpe_tokenizer, append_eos=False, max_length=4
        )
    assert info.value.key == "max_length"


def test_no_warning_when_nothing_is_cut(bpe_tokenizer, qa_args, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="unlearn_cli.data")
    QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS)
    assert not caplog.records


def test_missing_column_names_the_argument_and_the_columns(bpe_tokenizer, qa_args) -> None:
    with pytest.raises(UserError) as info:
        QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS, answer_key="answers")
    error = info.value
    assert error.key == "answer_key"
    assert "column 'answers' is not in the dataset" in error.problem
    assert "question, answer, index" in error.problem
    assert "did you mean 'answer'" in (error.hint or "")
    full = error.under("data.train.TOFU_QA_full.args", file="recipe.toml")
    assert full.key == "data.train.TOFU_QA_full.args.answer_key"
    assert str(full).startswith(
        "recipe.toml: key 'data.train.TOFU_QA_full.args.answer_key': column 'answers'"
    )


def test_zero_rows_is_a_user_error(bpe_tokenizer, write_jsonl, qa_args, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="zero rows") as info:
        QADataset(write_jsonl([], name="empty.jsonl"), tokenizer=bpe_tokenizer, template_args=TAGS)
    assert info.value.key == "hf_args.data_files"
    header_only = tmp_path / "header.csv"
    header_only.write_text("question,answer\n", encoding="utf-8")
    with pytest.raises(UserError, match="has zero rows") as info:
        QADataset({"path": str(header_only)}, tokenizer=bpe_tokenizer, template_args=TAGS)
    assert info.value.key == "hf_args"
    with pytest.raises(UserError, match=r"zero rows in split 'train\[:0\]'") as info:
        QADataset({**qa_args, "split": "train[:0]"}, tokenizer=bpe_tokenizer, template_args=TAGS)
    assert info.value.key == "hf_args"


def test_bad_arguments_are_user_errors(bpe_tokenizer, qa_args, write_jsonl) -> None:
    with pytest.raises(UserError) as info:
        QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS, max_length=0)
    assert info.value.key == "max_length"
    with pytest.raises(UserError, match="row 1: column 'answer' must hold text") as info:
        QADataset(write_jsonl([{"question": "Q?", "answer": 3}]), tokenizer=bpe_tokenizer, template_args=TAGS)
    assert info.value.key == "answer_key"
    with pytest.raises(UserError, match=r"line 1 of .*t\.jsonl: 'text' is missing") as info:
        PretrainingDataset(write_jsonl([{"text": None}], name="t.jsonl"), tokenizer=bpe_tokenizer)
    assert info.value.key == "text_key"
    with pytest.raises(UserError, match="whole numbers") as info:
        QADataset(write_jsonl([{"question": "Q?", "answer": "A", "index": "x"}]), tokenizer=bpe_tokenizer)
    assert info.value.key == "index_key"


def test_registry_lists_the_handlers_without_importing_them() -> None:
    from unlearn_cli.registry import builtin_components

    found = {(c.kind, c.name): c for c in builtin_components()}
    for name in (
        "QADataset",
        "QAwithIdkDataset",
        "QAwithAlternateDataset",
        "PretrainingDataset",
        "CompletionDataset",
    ):
        assert found[("dataset", name)].description
    assert found[("collator", "DataCollatorForSupervisedDataset")].description.startswith("Pads input_ids")


def test_handler_arguments_validate_with_pydantic_like_the_container_does() -> None:
    import inspect
    import typing

    from pydantic import ConfigDict, create_model

    from unlearn_cli.collators import DataCollatorForSupervisedDataset

    handlers = (QADataset, QAwithIdkDataset, QAwithAlternateDataset, PretrainingDataset, CompletionDataset)
    for handler in (*handlers, DataCollatorForSupervisedDataset):
        parameters = inspect.signature(handler).parameters
        injected = ["tokenizer", "template_args"] if handler in handlers else ["tokenizer"]
        assert [n for n in parameters if n in injected] == injected
        hints = typing.get_type_hints(handler.__init__)
        fields = {
            name: (hints[name], ... if p.default is inspect.Parameter.empty else p.default)
            for name, p in parameters.items()
            if name not in injected
        }
        model = create_model(f"{handler.__name__}Args", __config__=ConfigDict(extra="forbid"), **fields)
        if handler in handlers:
            assert [n for n, f in model.model_fields.items() if f.is_required()] == ["hf_args"]
    checked = model(padding_side="left", pad_to_multiple_of=8)
    assert checked.padding_side == "left" and checked.index == "index"


def test_records_read_from_json_array_keep_list_answers(bpe_tokenizer, tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text(json.dumps([{"question": "Q?", "answer": ["A.", "B."]}]), encoding="utf-8")
    ds = QADataset({"path": str(path)}, tokenizer=bpe_tokenizer, template_args=TAGS)
    assert len(ds) == 2
