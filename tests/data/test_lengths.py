"""Lengths for `inspect-data` and length-grouped sampling, and a light package import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from transformers.trainer_pt_utils import LengthGroupedSampler

from unlearn_cli.data import QADataset, QAwithAlternateDataset, TemplateArgs, length_grouped_sampler

TAGS = TemplateArgs(user_start_tag="Q: ", user_end_tag="\n", asst_start_tag="A: ")


@pytest.fixture
def varied(write_jsonl, bpe_tokenizer) -> QADataset:
    rows = [
        {"question": "Where was Lin Wei born?" + " Really?" * (i % 7), "answer": "In Oslo." * (1 + i % 3)}
        for i in range(40)
    ]
    return QADataset(write_jsonl(rows), tokenizer=bpe_tokenizer, template_args=TAGS)


def test_lengths_match_items(varied) -> None:
    assert varied.lengths() == [len(varied[i]["input_ids"]) for i in range(len(varied))]
    summary = varied.summary()
    assert summary["tokens"] == sum(varied.lengths())
    assert summary["max_tokens"] == max(varied.lengths()) and summary["min_tokens"] == min(varied.lengths())
    labels = sum(int((varied[i]["labels"] != -100).sum()) for i in range(len(varied)))
    assert summary["trainable_tokens"] == labels


def test_transformers_sampler_infers_the_same_lengths(varied) -> None:
    # What Trainer does for a non-`datasets` dataset: read every item's input_ids.
    inferred = LengthGroupedSampler(4, dataset=varied)
    assert inferred.lengths == varied.lengths()
    ours = length_grouped_sampler(varied, batch_size=4)
    assert ours.lengths == varied.lengths()
    order = list(ours)
    assert sorted(order) == list(range(len(varied)))
    # The first mega-batch starts with the longest item, as LengthGroupedSampler promises.
    assert varied.lengths()[order[0]] == max(varied.lengths())


def test_paired_items_get_lengths_without_reading_items(bpe_tokenizer, write_jsonl) -> None:
    rows = [{"question": "Q?", "answer": "A." * (i + 1), "paraphrased_answer": "B."} for i in range(6)]
    ds = QAwithAlternateDataset(write_jsonl(rows), tokenizer=bpe_tokenizer, template_args=TAGS)
    with pytest.raises(ValueError, match="input_ids"):
        LengthGroupedSampler(2, dataset=ds)
    assert length_grouped_sampler(ds, batch_size=2).lengths == ds.lengths()


def test_trainer_group_by_length_uses_item_lengths(varied, bpe_tokenizer, tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(bpe_tokenizer), n_positions=64, n_embd=8, n_layer=1, n_head=1)
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        train_sampling_strategy="group_by_length",
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=varied, processing_class=bpe_tokenizer)
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler)
    assert sampler.lengths == varied.lengths()


def test_importing_the_packages_loads_no_heavy_library() -> None:
    code = (
        "import sys, unlearn_cli.data, unlearn_cli.collators\n"
        "from unlearn_cli.data import TemplateArgs, load_hf_dataset\n"
        "TemplateArgs(asst_tag='A: ')\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
