"""What the evaluation tests share: the built-in tiny model's tokenizer and small TOFU-shaped data."""

from __future__ import annotations

from typing import Any

import pytest

SMALL_AUTHORS = "builtin://fictitious-authors?authors=10&facts=4"


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from unlearn_cli.builtin import resolve_builtin

    return AutoTokenizer.from_pretrained(resolve_builtin("builtin://tiny-llama"))


@pytest.fixture(scope="session")
def tiny_model() -> Any:
    from transformers import AutoModelForCausalLM

    from unlearn_cli.builtin import resolve_builtin

    return AutoModelForCausalLM.from_pretrained(resolve_builtin("builtin://tiny-llama")).eval()
