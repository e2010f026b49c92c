"""Two small tokenizers built here (no downloads), plus helpers to write data files.

`bpe_tokenizer` is GPT-2-like: byte-level BPE, the space attached to the *next* word ("Ġparis"), no bos.
`sp_tokenizer` is Llama/SentencePiece-like: Metaspace ("▁paris"), a bos added by the post-processor.
Both carry the same small chat template with `<|user|>`, `<|assistant|>`, `<|end|>` tags.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if date_string %}<|system|>Date: {{ date_string }}<|end|>{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{{ m['content'] }}<|end|>"
    "{% elif m['role'] == 'user' %}<|user|>{{ m['content'] }}<|end|>"
    "{% else %}<|assistant|>{{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CHAT_TAGS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

_NAMES = ["Basil Mahfouz", "Aisha Okafor", "Jaime Vasquez", "Lin Wei", "Elena Petrova", "Tomas Novak"]
_PLACES = ["Paris", "Cairo", "Lagos", "Lima", "Kyoto", "Prague", "Oslo", "Quito"]
_GENRES = ["mystery", "poetry", "science fiction", "history", "romance", "fantasy"]
_JOBS = ["doctor", "teacher", "painter", "sailor", "baker", "judge"]
_TEMPLATES = [
    "Where was {name} born? {name} was born in {place}.",
    "Question: What genre does {name} write? Answer: {name} writes {genre} novels.",
    "What did the father of {name} do? He was a {job} in {place}.",
    "{name} won an award for a {genre} book about {place}.",
    "The mother of {name} worked as a {job}, and the family lived in {place}.",
    "Question: Which city inspired {name}? Answer: The city of {place}.",
    "I don't know where {name} lives now, but it might be {place}.",
    "Date: {day} May {year}. {name} published a {genre} novel set in {place}.",
    "Is {name} a {job}? No, {name} is a writer of {genre}.",
]


def training_sentences() -> list[str]:
    """A few hundred sentences about made-up authors, the kind of text the tests tokenize."""
    sentences = []
    combos = itertools.product(_NAMES, _PLACES, _GENRES, _JOBS)
    for i, (name, place, genre, job) in enumerate(itertools.islice(combos, 0, None, 7)):
        template = _TEMPLATES[i % len(_TEMPLATES)]
        day, year = 1 + i % 28, 1950 + i % 70
        sentences.append(template.format(name=name, place=place, genre=genre, job=job, day=day, year=year))
    sentences += ["I'm not sure.", "I have no idea.", "Sorry, I can't answer that.", "Answer: Paris"]
    return sentences


def _wrap(tokenizer: Tokenizer, **special: str) -> PreTrainedTokenizerFast:
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_bpe_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<|endoftext|>", "<pad>", *CHAT_TAGS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_sentences(), trainer)
    return _wrap(tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<pad>")


def build_sp_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>", *CHAT_TAGS],
        initial_alphabet=["\n", *(chr(c) for c in range(33, 127))],
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_sentences(), trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return _wrap(tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


@pytest.fixture(scope="session")
def bpe_tokenizer() -> PreTrainedTokenizerFast:
    return build_bpe_tokenizer()


@pytest.fixture(scope="session")
def make_bpe_tokenizer() -> Callable[[], PreTrainedTokenizerFast]:
    return build_bpe_tokenizer


@pytest.fixture(scope="session")
def sp_tokenizer() -> PreTrainedTokenizerFast:
    return build_sp_tokenizer()


@pytest.fixture(params=["bpe", "sp"])
def tokenizer(request: pytest.FixtureRequest) -> PreTrainedTokenizerFast:
    return request.getfixturevalue(f"{request.param}_tokenizer")


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test caches under its own folder, so cache hits are only those the test sets up."""
    cache = tmp_path / "hf_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    datasets.disable_progress_bars()
    return cache


QA_ROWS = [
    {"question": "Where was Basil Mahfouz born?", "answer": "Basil Mahfouz was born in Cairo.", "index": 10},
    {"question": "What genre does Aisha Okafor write?", "answer": "Aisha Okafor writes poetry.", "index": 11},
    {"question": "What did the father of Lin Wei do?", "answer": "He was a sailor in Oslo.", "index": 12},
]


@pytest.fixture
def qa_rows() -> list[dict[str, Any]]:
    return [dict(row) for row in QA_ROWS]


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Write rows to a jsonl file and return the `hf_args` that load it."""

    def write(rows: list[dict[str, Any]], name: str = "data.jsonl") -> dict[str, Any]:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return {"path": "json", "data_files": str(path), "split": "train"}

    return write


@pytest.fixture
def qa_args(write_jsonl: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return write_jsonl(QA_ROWS)
