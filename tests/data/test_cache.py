"""Tokenization runs once: rebuilding the same dataset reads `datasets`' cache and tokenizes nothing."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from unlearn_cli.data import PretrainingDataset, QADataset, TemplateArgs, template, tokenizer_fingerprint

TAGS = TemplateArgs(user_start_tag="Question: ", user_end_tag="\n", asst_start_tag="Answer: ")


@pytest.fixture
def count_encodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = template.encode_conversations

    def counting(*args, **kwargs):
        calls.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(template, "encode_conversations", counting)
    return calls


def test_second_construction_tokenizes_nothing(
    bpe_tokenizer, make_bpe_tokenizer, qa_args, count_encodes, _datasets_cache
) -> None:
    first = QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS)
    assert sum(count_encodes) == 3
    cache_files = [f["filename"] for f in first.tokenized.cache_files]
    assert cache_files and all(Path(f).is_relative_to(_datasets_cache) for f in cache_files)

    count_encodes.clear()
    # A separately built, identical tokenizer (and one whose truncation state was changed) hashes the same.
    other = make_bpe_tokenizer()
    other(["x " * 50], truncation=True, max_length=4)
    second = QADataset(dict(qa_args), tokenizer=other, template_args=TemplateArgs(**TAGS.model_dump()))
    assert count_encodes == []
    assert [f["filename"] for f in second.tokenized.cache_files] == cache_files
    assert [second[i]["input_ids"].tolist() for i in range(3)] == [
        first[i]["input_ids"].tolist() for i in range(3)
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"max_length": 64},
        {"template_args": TemplateArgs(apply_chat_template=True)},
        {"predict_with_generate": True, "_same": True},
        {"answer_key": "question"},
    ],
)
def test_changed_settings_tokenize_again(bpe_tokenizer, qa_args, count_encodes, change) -> None:
    QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS)
    count_encodes.clear()
    same = change.pop("_same", False)
    QADataset(qa_args, **{"tokenizer": bpe_tokenizer, "template_args": TAGS, **change})
    # predict_with_generate only changes how items are read, so it shares the training tokenization.
    assert (count_encodes == []) == same


def test_changed_tokenizer_or_data_tokenizes_again(bpe_tokenizer, sp_tokenizer, qa_args, write_jsonl) -> None:
    assert tokenizer_fingerprint(bpe_tokenizer) != tokenizer_fingerprint(sp_tokenizer)
    a = QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS)
    b = QADataset(qa_args, tokenizer=sp_tokenizer, template_args=TAGS)
    assert a.tokenized.cache_files != b.tokenized.cache_files
    changed = write_jsonl([{"question": "Q?", "answer": "A."}], name="data.jsonl")
    c = QADataset(changed, tokenizer=bpe_tokenizer, template_args=TAGS)
    assert len(c) == 1


def test_tokenizer_fingerprint_is_remembered_until_the_tokenizer_changes(
    make_bpe_tokenizer, monkeypatch
) -> None:
    from unlearn_cli.data import base

    tokenizer = make_bpe_tokenizer()
    serialized: list[int] = []
    real = base._backend_config
    monkeypatch.setattr(base, "_backend_config", lambda backend: serialized.append(1) or real(backend))
    first = tokenizer_fingerprint(tokenizer)
    tokenizer(["x " * 50], truncation=True, max_length=4)
    assert tokenizer_fingerprint(tokenizer) == first and len(serialized) == 1
    assert tokenizer_fingerprint(make_bpe_tokenizer()) == first and len(serialized) == 2

    seen = {first}
    for change in (
        lambda: setattr(tokenizer, "chat_template", "{{ messages }}"),
        lambda: tokenizer.add_tokens(["<new>"]),
        lambda: tokenizer.add_special_tokens({"pad_token": "<|end|>"}),
    ):
        change()
        fingerprint = tokenizer_fingerprint(tokenizer)
        assert fingerprint not in seen
        seen.add(fingerprint)
    assert len(serialized) == 5


def test_library_versions_are_part_of_the_key(bpe_tokenizer, qa_args, count_encodes, monkeypatch) -> None:
    import tokenizers
    import transformers

    QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS)
    for module in (transformers, tokenizers):
        count_encodes.clear()
        monkeypatch.setattr(module, "__version__", "0.0.1")
        QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS)
        assert count_encodes, f"a new {module.__name__} version reused the cache"


def test_a_chat_template_that_reads_the_date_is_tokenized_again_on_another_day(
    make_bpe_tokenizer, qa_args, count_encodes, monkeypatch
) -> None:
    from unlearn_cli.data import base

    dated = make_bpe_tokenizer()
    dated.chat_template = (
        '{% if date_string is not defined %}{% set date_string = strftime_now("%d %b %Y") %}{% endif %}'
        + dated.chat_template
    )
    chat = TemplateArgs(apply_chat_template=True)
    fixed = TemplateArgs(apply_chat_template=True, date_string="1 Jan 2030")

    def build_on(day: datetime.date, tokenizer, template_args: TemplateArgs) -> bool:
        """Build as if today were `day`; whether it tokenized anything."""
        monkeypatch.setattr(base, "datetime", SimpleNamespace(date=SimpleNamespace(today=lambda: day)))
        count_encodes.clear()
        ds = QADataset(qa_args, tokenizer=tokenizer, template_args=template_args)
        assert len(ds) == 3
        return bool(count_encodes)

    today, tomorrow = datetime.date(2030, 1, 1), datetime.date(2030, 1, 2)
    assert build_on(today, dated, chat)
    assert not build_on(today, dated, chat)
    assert build_on(tomorrow, dated, chat)
    # A fixed date_string, or a template that never reads the clock, keeps the cache across days.
    assert build_on(today, dated, fixed) and not build_on(tomorrow, dated, fixed)
    plain = make_bpe_tokenizer()
    assert build_on(today, plain, chat) and not build_on(tomorrow, plain, chat)


def test_pretraining_rebuild_is_cached_too(bpe_tokenizer, write_jsonl, monkeypatch) -> None:
    from unlearn_cli.data import pretraining

    args = write_jsonl([{"text": "Basil Mahfouz was born in Cairo."}])
    first = PretrainingDataset(args, tokenizer=bpe_tokenizer, max_length=4)
    monkeypatch.setattr(pretraining, "encode_documents_batch", lambda *a, **k: pytest.fail("tokenized again"))
    second = PretrainingDataset(args, tokenizer=bpe_tokenizer, max_length=4)
    assert second.lengths() == first.lengths()


_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[2])
import datasets
datasets.config.HF_DATASETS_CACHE = sys.argv[3]
datasets.disable_progress_bars()
from conftest import build_bpe_tokenizer
from unlearn_cli.data import QADataset, TemplateArgs, template
calls = []
real = template.encode_conversations
template.encode_conversations = lambda *a, **k: calls.append(1) or real(*a, **k)
tags = TemplateArgs(user_start_tag="Question: ", user_end_tag="\\n", asst_start_tag="Answer: ")
ds = QADataset(json.loads(sys.argv[1]), tokenizer=build_bpe_tokenizer(), template_args=tags)
print(json.dumps({"calls": len(calls), "files": [f["filename"] for f in ds.tokenized.cache_files]}))
"""


def test_cache_is_reused_by_a_new_process(bpe_tokenizer, qa_args, _datasets_cache, count_encodes) -> None:
    """The fingerprint must not depend on per-process state (hash seeds, object ids)."""
    here = QADataset(qa_args, tokenizer=bpe_tokenizer, template_args=TAGS)
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(qa_args), str(Path(__file__).parent), str(_datasets_cache)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child == {"calls": 0, "files": [f["filename"] for f in here.tokenized.cache_files]}
