"""Model and tokenizer loading: argument checks, CPU fallbacks, and clear errors for what users get wrong."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from pydantic import ValidationError
from tokenizers import Tokenizer, models, pre_tokenizers

from unlearn_cli.builtin import resolve_builtin
from unlearn_cli.errors import UserError
from unlearn_cli.models import loading
from unlearn_cli.models.loading import (
    AutoModelForCausalLM,
    CausalLMArgs,
    load_tokenizer,
    looks_like_hub_id,
    usable_attention,
)

REPO = Path(__file__).resolve().parents[1]
PATH_KEY = "model.model_args.pretrained_model_name_or_path"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNLEARN_CLI_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield resolve_builtin("builtin://tiny-llama")


@pytest.fixture
def cache(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UNLEARN_CLI_CACHE", str(tiny_dir.parent))
    return tiny_dir.parent


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace from_pretrained with a recorder, so argument handling is tested without loading anything."""
    calls: dict[str, Any] = {}

    def fake(path: str, **kwargs: Any) -> str:
        calls["path"], calls["kwargs"] = path, kwargs
        return "model"

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake)
    return calls


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("fp32", "float32"),
        ("float32", "float32"),
        ("bf16", "bfloat16"),
        ("BF16", "bfloat16"),
        ("torch.bfloat16", "bfloat16"),
        ("fp16", "float16"),
        ("half", "float16"),
        ("auto", "auto"),
        (None, None),
    ],
)
def test_dtype_aliases(given: str | None, name: str | None) -> None:
    args = CausalLMArgs(pretrained_model_name_or_path="x", dtype=given)
    assert args.dtype == name


def test_dtype_becomes_a_torch_dtype_only_at_load(captured: dict[str, Any]) -> None:
    args = CausalLMArgs(pretrained_model_name_or_path="org/name", dtype="bf16")
    assert args.dtype == "bfloat16"  # still a name: recipes stay serialisable
    AutoModelForCausalLM(args)
    assert captured["kwargs"]["dtype"] is torch.bfloat16
    AutoModelForCausalLM(CausalLMArgs(pretrained_model_name_or_path="org/name", dtype="auto"))
    assert captured["kwargs"]["dtype"] == "auto"
    AutoModelForCausalLM(CausalLMArgs(pretrained_model_name_or_path="org/name"))
    assert "dtype" not in captured["kwargs"]


def test_old_torch_dtype_key_is_renamed() -> None:
    assert CausalLMArgs.model_validate(
        {"pretrained_model_name_or_path": "x", "torch_dtype": "bf16"}
    ).dtype == ("bfloat16")
    with pytest.raises(ValidationError, match="give `dtype` only"):
        CausalLMArgs.model_validate(
            {"pretrained_model_name_or_path": "x", "torch_dtype": "bf16", "dtype": "fp16"}
        )


@pytest.mark.parametrize("bad", [{"dtype": "int8"}, {"attn_implementation": "flash"}, {}])
def test_invalid_model_args_are_rejected(bad: dict[str, Any]) -> None:
    given = {"pretrained_model_name_or_path": "x", **bad} if bad else {}
    with pytest.raises(ValidationError):
        CausalLMArgs.model_validate(given)


def test_a_plain_dict_is_validated_into_a_user_error() -> None:
    with pytest.raises(UserError) as caught:
        AutoModelForCausalLM({"pretrained_model_name_or_path": "x", "dtype": "int8"})  # type: ignore[arg-type]
    assert caught.value.key == "model.model_args.dtype"


def test_extra_kwargs_pass_through(captured: dict[str, Any]) -> None:
    args = CausalLMArgs.model_validate(
        {"pretrained_model_name_or_path": "org/name", "low_cpu_mem_usage": True, "revision": "main"}
    )
    assert AutoModelForCausalLM(args) == "model"
    assert captured["path"] == "org/name"
    assert captured["kwargs"] == {"low_cpu_mem_usage": True, "revision": "main"}


def test_loads_builtin_tiny_llama_with_options(cache: Path, tiny_dir: Path) -> None:
    args = CausalLMArgs.model_validate(
        {
            "pretrained_model_name_or_path": "builtin://tiny-llama",
            "dtype": "bf16",
            "attn_implementation": "eager",
            "low_cpu_mem_usage": True,
        }
    )
    model = AutoModelForCausalLM(args)
    assert model.dtype == torch.bfloat16
    assert model.config._attn_implementation == "eager"
    assert model.config.vocab_size == len(load_tokenizer({}, default_path="builtin://tiny-llama"))


def test_flash_attention_falls_back_to_sdpa_with_one_warning(cache: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("the fallback is for machines without a GPU")
    args = CausalLMArgs(
        pretrained_model_name_or_path="builtin://tiny-llama", attn_implementation="flash_attention_2"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = AutoModelForCausalLM(args)
    fallback = [w for w in caught if "flash_attention_2" in str(w.message)]
    assert len(fallback) == 1
    assert "using 'sdpa' instead" in str(fallback[0].message)
    assert "\n" not in str(fallback[0].message)
    assert model.config._attn_implementation == "sdpa"


def test_usable_attention_keeps_what_runs_anywhere() -> None:
    for name in ("eager", "sdpa", "flex_attention"):
        assert usable_attention(name) == name


@pytest.mark.parametrize("path", ["./no/such/model", "/no/such/model", "../models/x", "~/nope/deeper/model"])
def test_missing_local_folder_is_a_user_error(path: str) -> None:
    with pytest.raises(UserError, match="does not exist") as caught:
        AutoModelForCausalLM(CausalLMArgs(pretrained_model_name_or_path=path))
    assert caught.value.key == PATH_KEY


def test_hub_id_detection() -> None:
    assert looks_like_hub_id("meta-llama/Llama-3.2-1B-Instruct")
    assert looks_like_hub_id("gpt2")
    assert not looks_like_hub_id("./local/model")
    assert not looks_like_hub_id("a/b/c")
    assert not looks_like_hub_id("../x")


def test_unreachable_hub_model_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(path: str, **kwargs: Any) -> None:
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", offline)
    with pytest.raises(UserError) as caught:
        AutoModelForCausalLM(CausalLMArgs(pretrained_model_name_or_path="some-org/some-model"))
    error = caught.value
    assert error.key == PATH_KEY
    assert "some-org/some-model" in error.problem
    assert "HF_HUB_OFFLINE" in (error.hint or "") and "local folder" in (error.hint or "")


def test_unknown_from_pretrained_kwarg_is_a_user_error(cache: Path) -> None:
    args = CausalLMArgs.model_validate(
        {"pretrained_model_name_or_path": "builtin://tiny-llama", "bogus_kw": 1}
    )
    with pytest.raises(UserError, match="bogus_kw") as caught:
        AutoModelForCausalLM(args)
    assert caught.value.key == "model.model_args"


def test_unknown_builtin_model_names_the_key(cache: Path) -> None:
    with pytest.raises(UserError, match="did you mean 'tiny-llama'") as caught:
        AutoModelForCausalLM(CausalLMArgs(pretrained_model_name_or_path="builtin://tiny-lama"))
    assert caught.value.key == PATH_KEY


def test_tokenizer_defaults_to_the_model_path(cache: Path) -> None:
    tokenizer = load_tokenizer({}, default_path="builtin://tiny-llama")
    assert tokenizer.is_fast
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("</s>", "<pad>")
    assert tokenizer.chat_template


def test_tokenizer_args_pass_through(tiny_dir: Path) -> None:
    tokenizer = load_tokenizer({"pretrained_model_name_or_path": str(tiny_dir), "padding_side": "left"})
    assert tokenizer.padding_side == "left"


def test_tokenizer_without_a_path_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no tokenizer path") as caught:
        load_tokenizer({})
    assert caught.value.key == "model.tokenizer_args.pretrained_model_name_or_path"


def test_missing_tokenizer_folder_is_a_user_error() -> None:
    with pytest.raises(UserError, match="does not exist") as caught:
        load_tokenizer({"pretrained_model_name_or_path": "./missing/tokenizer"})
    assert caught.value.key == "model.tokenizer_args.pretrained_model_name_or_path"


def _save_bare_tokenizer(folder: Path, *, with_eos_word: bool = True, **special: str) -> Path:
    vocab = {"[UNK]": 0, "hello": 1, "world": 2, **({"</s>": 3} if with_eos_word else {})}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=backend, **special).save_pretrained(folder)
    return folder


def test_missing_pad_becomes_eos(tmp_path: Path) -> None:
    folder = _save_bare_tokenizer(tmp_path / "tok", eos_token="</s>")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenizer = load_tokenizer({"pretrained_model_name_or_path": str(folder)})
    assert tokenizer.eos_token == "</s>"
    assert tokenizer.pad_token == "</s>" and tokenizer.pad_token_id == 3


def test_missing_eos_and_pad_are_added(tmp_path: Path) -> None:
    folder = _save_bare_tokenizer(tmp_path / "tok")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # '</s>' was already in the vocabulary: nothing to resize
        tokenizer = load_tokenizer({"pretrained_model_name_or_path": str(folder)})
    assert tokenizer.eos_token == "</s>" and tokenizer.eos_token_id == 3
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert tokenizer("hello world</s>").input_ids[-1] == 3


def test_a_tokenizer_without_eos_must_be_given_one(tmp_path: Path) -> None:
    folder = _save_bare_tokenizer(tmp_path / "tok", with_eos_word=False)
    with pytest.raises(UserError) as caught:
        load_tokenizer({"pretrained_model_name_or_path": str(folder)})
    assert caught.value.key == "model.tokenizer_args"
    assert "no end-of-sequence (eos) token" in caught.value.problem
    assert 'eos_token = "..."' in (caught.value.hint or "")
    tokenizer = load_tokenizer({"pretrained_model_name_or_path": str(folder), "eos_token": "</s>"})
    assert (tokenizer.eos_token, tokenizer.eos_token_id, tokenizer.pad_token_id) == ("</s>", 3, 3)


def test_slow_tokenizers_are_refused(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path) -> None:
    class Slow:
        is_fast = False

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: Slow())
    with pytest.raises(UserError, match="only fast tokenizers") as caught:
        load_tokenizer({"pretrained_model_name_or_path": str(tiny_dir), "use_fast": False})
    assert caught.value.key == "model.tokenizer_args"


def test_model_component_is_registered_without_importing_torch() -> None:
    from unlearn_cli.registry import builtin_components

    found = [c for c in builtin_components() if (c.kind, c.name) == ("model", "AutoModelForCausalLM")]
    assert len(found) == 1
    assert found[0].import_path == "unlearn_cli.models.loading:AutoModelForCausalLM"
    assert found[0].description == loading.AutoModelForCausalLM.__doc__.splitlines()[0]
    code = (
        "import sys, unlearn_cli.models.loading; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=dict(os.environ),
    )
    assert result.stdout.split() == ["False", "False"]


def test_flash_attention_uses_transformers_own_availability_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers.utils

    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: True)
    assert usable_attention("flash_attention_2") == "flash_attention_2"
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: False)
    with pytest.warns(UserWarning, match="using 'sdpa' instead"):
        assert usable_attention("flash_attention_2") == "sdpa"


def test_an_attention_backend_transformers_cannot_import_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(path: str, **kwargs: Any) -> None:
        raise ImportError("FlashAttention2 has been toggled on, but it cannot be used")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", missing)
    with pytest.raises(UserError) as caught:
        AutoModelForCausalLM(CausalLMArgs(pretrained_model_name_or_path="some-org/some-model"))
    assert caught.value.key == "model.model_args.attn_implementation"
    assert "sdpa" in (caught.value.hint or "")
