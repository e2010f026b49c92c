"""Property: whatever TOML and overrides a user writes, loading and validating ends in a valid recipe or in
one clean UserError, never in a Python traceback; and a valid recipe saves to text that loads back equal."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unlearn_cli.errors import UserError
from unlearn_cli.recipes import load_recipe, recipe_text, resolve_recipe

KEYS = [
    "run", "name", "seed", "output_dir", "measure_answer_nll", "stop_when_retain_loss_above",
    "model", "handler", "model_args", "tokenizer_args", "template_args", "pretrained_model_name_or_path",
    "dtype", "apply_chat_template", "data", "train", "forget", "retain", "eval", "anchor", "authors_full",
    "args", "hf_args", "path", "split", "max_length", "question_key", "answer_key", "collator",
    "DataCollatorForSupervisedDataset", "padding_side", "trainer", "method_args", "learning_rate",
    "per_device_train_batch_size", "num_train_epochs", "max_steps", "gamma", "beta", "vars", "extends",
    "_replace_", "x", "ünïcode", "a.b", "",
]  # fmt: skip
NAMED = [
    "QADataset", "finetune", "NPO", "GradDiff", "AutoModelForCausalLM", "builtin://tiny-llama",
    "builtin://fictitious-authors", "${run.name}", "${vars.a}", "${env:HOME}", "${env:UNSET_FOR_FUZZ,dflt}",
    "${nope}", "${a", "$${literal}", "quickstart/finetune", "forget", "retain", "float32", "inf",
]  # fmt: skip

keys = st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=8))
scalars = st.one_of(
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(NAMED),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=4)),
    max_leaves=12,
)
documents = st.dictionaries(keys.filter(lambda key: key != "plugins"), values, max_size=6)
dotted = st.lists(keys.filter(lambda key: key != "plugins"), min_size=1, max_size=3).map(".".join)
literals = st.one_of(
    st.sampled_from(["1", "1e-3", "-1", "true", "[1,", "{a = 1}", "[]", '"s"', "nan", ""]),
    st.text(max_size=8),
)
overrides = st.lists(
    st.one_of(
        st.builds(lambda key, value: f"{key}={value}", dotted, literals),
        st.builds(lambda key: f"~{key}", dotted),
        st.text(max_size=12),
    ),
    max_size=3,
)


def _write(document: dict[str, Any], on_base: bool, folder: Path) -> Path | None:
    if on_base:
        document = {
            "extends": ["quickstart/finetune"],
            **{k: v for k, v in document.items() if k != "extends"},
        }
    try:
        text = tomli_w.dumps(document)
    except (TypeError, ValueError):  # not expressible as TOML (e.g. a key with a control character)
        return None
    path = folder / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.filterwarnings("ignore::unlearn_cli.errors.UnlearnWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents, on_base=st.booleans(), arguments=overrides)
def test_loading_any_document_ends_in_a_recipe_or_one_user_error(
    document: dict[str, Any], on_base: bool, arguments: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _write(document, on_base, Path(folder))
        if path is None:
            return
        try:
            recipe = load_recipe(str(path), arguments)
        except UserError as error:
            assert error.render().strip()
            return
        saved = Path(folder) / "saved.toml"
        saved.write_text(recipe_text(recipe.recipe), encoding="utf-8")
        assert resolve_recipe(str(saved)).values == recipe.values
