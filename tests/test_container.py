"""The container's own logic: model/tokenizer agreement and arguments it fills in for the trainer."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from unlearn_cli.container import build_model


class _Tokenizer:
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def _recipe_with(model: torch.nn.Module) -> SimpleNamespace:
    component = SimpleNamespace(load=lambda: lambda **_: model)
    return SimpleNamespace(model=SimpleNamespace(component=component, args={}), recipe=None)


def test_embeddings_grow_when_the_tokenizer_gained_a_token() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    def tiny() -> LlamaForCausalLM:
        config = LlamaConfig(
            vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2
        )
        return LlamaForCausalLM(config)

    model = build_model(_recipe_with(tiny()), _Tokenizer(11))  # type: ignore[arg-type]
    assert model.get_input_embeddings().num_embeddings == 11
    same = build_model(_recipe_with(tiny()), _Tokenizer(10))  # type: ignore[arg-type]
    assert same.get_input_embeddings().num_embeddings == 10


def test_training_arguments_take_the_run_seed_unless_the_trainer_sets_one(tmp_path) -> None:
    from unlearn_cli.container import training_arguments
    from unlearn_cli.recipes import load_recipe

    recipe = load_recipe("quickstart/finetune", ["run.seed=7"])
    args = training_arguments(recipe, tmp_path)
    assert (args.seed, args.output_dir, args.report_to) == (7, str(tmp_path), [])
    assert args.dataloader_pin_memory is torch.cuda.is_available()
    explicit = training_arguments(
        load_recipe("quickstart/finetune", ["run.seed=7", "trainer.args.seed=3"]), tmp_path
    )
    assert explicit.seed == 3


def test_transformers_rejections_become_user_errors(tmp_path) -> None:
    import pytest

    from unlearn_cli.container import training_arguments
    from unlearn_cli.errors import UserError
    from unlearn_cli.recipes import load_recipe

    recipe = load_recipe("quickstart/finetune", ['trainer.args.lr_scheduler_type="sideways"'])
    with pytest.raises(UserError) as raised:
        training_arguments(recipe, tmp_path)
    assert raised.value.key == "trainer.args" and "rejected" in raised.value.problem


def test_output_dir_expands_the_home_folder(monkeypatch, tmp_path) -> None:
    from unlearn_cli.recipes import load_recipe

    monkeypatch.setenv("HOME", str(tmp_path))
    recipe = load_recipe("quickstart/finetune", ['run.output_dir="~/runs/a"'])
    assert recipe.output_dir == tmp_path / "runs" / "a"
    assert load_recipe("quickstart/finetune", ['run.name="b"', "~run.output_dir"]).output_dir.as_posix() == (
        "outputs/b"
    )
