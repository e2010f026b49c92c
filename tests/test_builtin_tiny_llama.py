"""builtin://tiny-llama: a loadable model, a fast tokenizer with a chat template, identical every build."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from unlearn_cli.builtin import resolve_builtin
from unlearn_cli.builtin.tiny_llama import CHAT_TAGS, DEFAULT_HIDDEN, DEFAULT_LAYERS, build_tiny_llama
from unlearn_cli.errors import UserError

MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Where was Tamsin Oakhurst born?"},
    {"role": "assistant", "content": "In Galway, Ireland."},
    {"role": "user", "content": "And when?"},
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNLEARN_CLI_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield resolve_builtin("builtin://tiny-llama")


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_dir)


def test_model_loads_and_runs(tiny_dir: Path, tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert model.config.model_type == "llama"
    assert model.config.hidden_size == DEFAULT_HIDDEN
    assert model.config.num_hidden_layers == DEFAULT_LAYERS
    assert model.config.vocab_size == len(tokenizer)
    assert (tiny_dir / "model.safetensors").is_file()
    batch = tokenizer(["Question: Who?\nAnswer: Nobody.</s>"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(tokenizer))


def test_tokenizer_is_fast_with_special_tokens(tokenizer) -> None:
    assert tokenizer.is_fast
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (
        "<s>",
        "</s>",
        "<pad>",
        "<unk>",
    )
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}) == 3
    assert 2000 <= len(tokenizer) <= 4000


def test_bos_is_prepended_and_eos_text_is_one_token(tokenizer) -> None:
    ids = tokenizer("Question: Who wrote it?\nAnswer: Wren Ashgrove.</s>").input_ids
    assert ids[0] == tokenizer.bos_token_id
    assert ids[-1] == tokenizer.eos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1


def test_author_text_is_compact_and_any_text_round_trips(tokenizer) -> None:
    # about one token per word (62 characters); the vocabulary also covers the evaluation splits' text
    assert len(tokenizer("Florian Coldharbour was born in the city of Hobart, Australia.").input_ids) <= 16
    unseen = "Zyxt qwöp — 42 ünïcode ✓ emojis 🙂 and tabs\tstill encode."
    ids = tokenizer(unseen).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == unseen


def test_chat_template_renders_turns(tokenizer) -> None:
    assert tokenizer.chat_template
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<s><|system|>\nAnswer briefly.<|end|>\n"
        "<|user|>\nWhere was Tamsin Oakhurst born?<|end|>\n"
        "<|assistant|>\nIn Galway, Ireland.<|end|>\n"
        "<|user|>\nAnd when?<|end|>\n"
        "<|assistant|>\n"
    )
    without = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert without.endswith("<|user|>\nAnd when?<|end|>\n")


def test_chat_tags_are_single_special_tokens(tokenizer) -> None:
    for tag in CHAT_TAGS:
        assert len(tokenizer(tag, add_special_tokens=False).input_ids) == 1
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.convert_tokens_to_ids("<|assistant|>") in ids


def test_chat_template_accepts_content_parts_and_rejects_other_roles(tokenizer) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}]}]
    assert tokenizer.apply_chat_template(parts, tokenize=False) == "<s><|user|>\nHi!<|end|>\n"
    with pytest.raises(Exception, match="system, user and assistant"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_generation_stops_at_eos_or_end_tag(tiny_dir: Path, tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    end_id = tokenizer.convert_tokens_to_ids("<|end|>")
    assert set(model.generation_config.eos_token_id) == {tokenizer.eos_token_id, end_id}
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


def test_two_builds_are_identical(tmp_path: Path) -> None:
    first = build_tiny_llama(tmp_path / "a")
    second = build_tiny_llama(tmp_path / "b")
    weights_a = load_file(first / "model.safetensors")
    weights_b = load_file(second / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[name], weights_b[name]) for name in weights_a)
    for name in ("tokenizer.json", "config.json", "chat_template.jinja"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_another_seed_gives_other_weights_and_leaves_global_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(7)
    expected = torch.rand(1)
    torch.manual_seed(7)
    build_tiny_llama(tmp_path / "a", seed=0)
    assert torch.equal(torch.rand(1), expected)
    build_tiny_llama(tmp_path / "b", seed=1)
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert not torch.equal(a["model.embed_tokens.weight"], b["model.embed_tokens.weight"])


def test_second_resolve_reuses_the_cache(tiny_dir: Path) -> None:
    weights = tiny_dir / "model.safetensors"
    stamps = (tiny_dir.stat().st_mtime_ns, weights.stat().st_mtime_ns)
    time.sleep(0.01)
    assert resolve_builtin("builtin://tiny-llama") == tiny_dir
    assert (tiny_dir.stat().st_mtime_ns, weights.stat().st_mtime_ns) == stamps


def test_parameters_choose_the_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNLEARN_CLI_CACHE", str(tmp_path))
    folder = resolve_builtin("builtin://tiny-llama?hidden=64&layers=1")
    assert folder.name == "tiny-llama-hidden64-layers1-seed0-v2"
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (64, 1)


@pytest.mark.parametrize("query", ["hidden=0", "hidden=100", "layers=0"])
def test_impossible_sizes_are_user_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    monkeypatch.setenv("UNLEARN_CLI_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="not a valid size"):
        resolve_builtin(f"builtin://tiny-llama?{query}")
    assert list(tmp_path.iterdir()) == []
