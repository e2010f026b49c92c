"""Every packaged recipe validates (real recipes cannot run here, but must be correct)."""

from __future__ import annotations

import warnings

import pytest

from unlearn_cli.errors import UnlearnWarning
from unlearn_cli.recipes import load_recipe
from unlearn_cli.recipes.loading import packaged_recipe_names

NAMES = packaged_recipe_names()

EXPECTED_MODELS = [
    "Llama-3.2-1B-Instruct",
    "Llama-3.2-3B-Instruct",
    "Llama-3.1-8B-Instruct",
    "Llama-2-7b-hf",
    "Llama-2-7b-chat-hf",
    "Qwen2.5-1.5B-Instruct",
    "Qwen2.5-3B-Instruct",
    "Qwen2.5-7B-Instruct",
    "Phi-3.5-mini-instruct",
    "phi-1_5",
    "gemma-7b-it",
    "zephyr-7b-beta",
    "tiny-llama",
]


def test_the_expected_recipes_are_packaged() -> None:
    for model in EXPECTED_MODELS:
        assert f"models/{model}" in NAMES
    assert {"tofu_finetune", "quickstart/finetune"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_packaged_recipe_validates(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnlearnWarning)  # e.g. a knob nothing uses
        recipe = load_recipe(name)
    assert recipe.model is not None
    if recipe.trainer is not None:
        assert recipe.data and recipe.collators


def test_tofu_finetune_uses_the_published_hyperparameters() -> None:
    recipe = load_recipe("tofu_finetune")
    assert recipe.trainer is not None
    args = recipe.trainer.args
    assert args["learning_rate"] == 1e-5
    assert args["num_train_epochs"] == 5
    assert args["weight_decay"] == 0.01
    assert args["bf16"] is True
    assert args["warmup_steps"] == pytest.approx(1 / 5)  # one epoch of five
    two_gpus = 2
    assert args["per_device_train_batch_size"] * args["gradient_accumulation_steps"] * two_gpus == 32
    hf_args = recipe.data["train"]["TOFU_QA_full"].args["hf_args"]
    assert hf_args == {"path": "locuslab/TOFU", "name": "full", "split": "train"}
    assert recipe.model is not None
    model_args = recipe.model.args["model_args"]
    assert model_args.pretrained_model_name_or_path == "meta-llama/Llama-3.2-1B-Instruct"
