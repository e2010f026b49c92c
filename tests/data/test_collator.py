"""`DataCollatorForSupervisedDataset`: padding on either side, nested items, the index field."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from unlearn_cli.collators import DataCollatorForSupervisedDataset
from unlearn_cli.data import QAwithAlternateDataset, TemplateArgs
from unlearn_cli.errors import UserError


class FakeTokenizer:
    pad_token_id = 0
    eos_token_id = 9


def item(ids: list[int], prompt: int, index: int) -> dict[str, torch.Tensor]:
    ids_t = torch.tensor(ids)
    labels = ids_t.clone()
    labels[:prompt] = -100
    return {
        "input_ids": ids_t,
        "labels": labels,
        "attention_mask": torch.ones_like(ids_t),
        "index": torch.tensor(index),
    }


BATCH = [item([5, 6, 7], 1, 4), item([8], 0, 2)]


def test_right_padding() -> None:
    batch = DataCollatorForSupervisedDataset(FakeTokenizer())(BATCH)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["index"].tolist() == [4, 2]
    assert all(v.dtype == torch.long for v in batch.values())


def test_left_padding_and_multiple_of() -> None:
    collate = DataCollatorForSupervisedDataset(FakeTokenizer(), padding_side="left", pad_to_multiple_of=4)
    batch = collate(BATCH)
    assert batch["input_ids"].tolist() == [[0, 5, 6, 7], [0, 0, 0, 8]]
    assert batch["labels"].tolist() == [[-100, -100, 6, 7], [-100, -100, -100, 8]]
    assert batch["attention_mask"].tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]


def test_nested_items_are_collated_per_part() -> None:
    nested = [
        {"forget": BATCH[0], "retain": {"original": BATCH[1], "alternate": BATCH[0]}},
        {"forget": BATCH[1], "retain": {"original": BATCH[0], "alternate": BATCH[1]}},
    ]
    batch = DataCollatorForSupervisedDataset(FakeTokenizer())(nested)
    assert batch["forget"]["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["retain"]["original"]["labels"].tolist() == [[8, -100, -100], [-100, 6, 7]]
    assert batch["retain"]["alternate"]["index"].tolist() == [4, 2]


def test_index_field_name_and_missing_attention_mask() -> None:
    plain = [{"input_ids": [1, 2], "labels": [1, 2], "idx": 7}, {"input_ids": [3], "labels": [3], "idx": 8}]
    batch = DataCollatorForSupervisedDataset(FakeTokenizer(), index="idx")(plain)
    assert batch["idx"].tolist() == [7, 8]
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]
    dropped = DataCollatorForSupervisedDataset(FakeTokenizer(), index=None)(BATCH)
    assert "index" not in dropped


def test_pads_with_eos_when_there_is_no_pad_token_and_rejects_bad_settings() -> None:
    class NoPad(FakeTokenizer):
        pad_token_id = None

    assert DataCollatorForSupervisedDataset(NoPad())(BATCH)["input_ids"][1].tolist() == [8, 9, 9]
    with pytest.raises(UserError) as info:
        DataCollatorForSupervisedDataset(FakeTokenizer(), padding_side="middle")  # type: ignore[arg-type]
    assert info.value.key == "padding_side"


def test_batches_a_paired_dataset_through_a_dataloader(bpe_tokenizer, write_jsonl) -> None:
    rows = [
        {
            "question": "Where was Lin Wei born?",
            "answer": "In Oslo.",
            "paraphrased_answer": "Oslo, it seems.",
        },
        {"question": "Where?", "answer": "In the city of Lagos.", "paraphrased_answer": "Lagos."},
    ]
    tags = TemplateArgs(user_start_tag="Q: ", user_end_tag="\n", asst_start_tag="A: ")
    ds = QAwithAlternateDataset(write_jsonl(rows), tokenizer=bpe_tokenizer, template_args=tags)
    collate = DataCollatorForSupervisedDataset(bpe_tokenizer)
    [batch] = list(DataLoader(ds, batch_size=2, collate_fn=collate))
    for part in ("original", "alternate"):
        ids, mask = batch[part]["input_ids"], batch[part]["attention_mask"]
        assert ids.shape == batch[part]["labels"].shape == mask.shape
        assert (ids[mask == 0] == bpe_tokenizer.pad_token_id).all()
        assert (batch[part]["labels"][mask == 0] == -100).all()
        assert batch[part]["index"].tolist() == [0, 1]
