"""The container assembles every run: the real `Pipeline`, with providers overridden where a test needs it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from dependency_injector import providers

from unlearn_cli.container import build_model, pipeline_for
from unlearn_cli.errors import UserError
from unlearn_cli.recipes import load_recipe

SMALL = "builtin://fictitious-authors?authors=4&facts=5"
UNLEARN = [
    "finetuned_model=builtin://tiny-llama",
    f'data.forget.authors_forget.args.hf_args.path="{SMALL}"',
    f'data.retain.authors_retain.args.hf_args.path="{SMALL}"',
    'forget_split="forget10"',
    'retain_split="retain90"',
]


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


def test_training_arguments_take_the_run_seed_unless_the_trainer_sets_one(tmp_path: Path) -> None:
    pipeline = pipeline_for(load_recipe("quickstart/finetune", ["run.seed=7"]), output_dir=tmp_path)
    args = pipeline.training_args()
    assert (args.seed, args.output_dir, args.report_to) == (7, str(tmp_path), [])
    assert args.dataloader_pin_memory is torch.cuda.is_available()
    explicit = pipeline_for(load_recipe("quickstart/finetune", ["run.seed=7", "trainer.args.seed=3"]))
    assert explicit.training_args().seed == 3


def test_training_arguments_layer_toolkit_then_trainer_then_recipe_defaults() -> None:
    unlearning = pipeline_for(load_recipe("quickstart/unlearn", UNLEARN)).training_args()
    assert unlearning.remove_unused_columns is False  # the unlearning trainers' default
    finetune = pipeline_for(load_recipe("quickstart/finetune")).training_args()
    assert finetune.remove_unused_columns is True  # transformers' own default, untouched
    given = pipeline_for(load_recipe("quickstart/unlearn", [*UNLEARN, "trainer.args.logging_steps=7"]))
    assert given.training_args().logging_steps == 7


def test_transformers_rejections_become_user_errors() -> None:
    recipe = load_recipe("quickstart/finetune", ['trainer.args.lr_scheduler_type="sideways"'])
    with pytest.raises(UserError) as raised:
        pipeline_for(recipe).training_args()
    assert raised.value.key == "trainer.args" and "rejected" in raised.value.problem


def test_output_dir_expands_the_home_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    recipe = load_recipe("quickstart/finetune", ['run.output_dir="~/runs/a"'])
    assert recipe.output_dir == tmp_path / "runs" / "a"
    assert load_recipe("quickstart/finetune", ['run.name="b"', "~run.output_dir"]).output_dir.as_posix() == (
        "outputs/b"
    )


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    from unlearn_cli.builtin import resolve_builtin

    return AutoModelForCausalLM.from_pretrained(resolve_builtin("builtin://tiny-llama"))


def test_the_container_assembles_an_unlearning_run(tiny_model: torch.nn.Module, tmp_path: Path) -> None:
    from unlearn_cli.data.forget_retain import ForgetRetainDataset
    from unlearn_cli.trainers.npo import NPO

    pipeline = pipeline_for(load_recipe("quickstart/unlearn", UNLEARN), output_dir=tmp_path)
    pipeline.model.override(providers.Object(tiny_model))
    trainer = pipeline.trainer()
    assert isinstance(trainer, NPO) and trainer.model is tiny_model
    assert trainer.method.beta == 0.1 and trainer.reference is None  # cached log-probs: no second model
    dataset = trainer.train_dataset
    assert isinstance(dataset, ForgetRetainDataset) and len(dataset) == 5  # 1 author of 4, 5 facts
    item = dataset[0]
    assert set(item) == {"forget", "retain"} and "ref_logp" in item["forget"]
    assert "ref_logp" not in item["retain"]
    assert trainer.args.output_dir == str(tmp_path) and trainer.args.remove_unused_columns is False
    assert pipeline.split_datasets()["retain"] is dataset.retain


@pytest.mark.parametrize("handler", ["GradAscent", "CEU", "TaskVector"])
def test_a_forget_only_method_gets_batches_without_retain_items(
    tiny_model: torch.nn.Module, tmp_path: Path, handler: str
) -> None:
    recipe = load_recipe(
        "quickstart/unlearn", [*UNLEARN, f"trainer.handler={handler}", "~trainer.method_args"]
    )
    pipeline = pipeline_for(recipe, output_dir=tmp_path)
    pipeline.model.override(providers.Object(tiny_model))
    trainer = pipeline.trainer()
    assert len(pipeline.split_datasets()["retain"]) == 15  # still scored before and after unlearning
    assert trainer.train_dataset.retain is None
    batch = next(iter(trainer.get_train_dataloader()))
    assert set(batch) == {"forget"}


def test_retain_items_anchoring_a_forget_only_method_stay_paired(tiny_model: torch.nn.Module) -> None:
    recipe = load_recipe(
        "quickstart/unlearn",
        [*UNLEARN, "trainer.handler=GradAscent", "~trainer.method_args", 'data.anchor="retain"'],
    )
    pipeline = pipeline_for(recipe)
    pipeline.model.override(providers.Object(tiny_model))
    dataset = pipeline.train_dataset()
    assert len(dataset) == 15 and set(dataset[0]) == {"forget", "retain"}


def test_cached_reference_log_probs_are_the_initial_models(tiny_model: torch.nn.Module) -> None:
    from unlearn_cli.evals.nll import token_nll_sum

    pipeline = pipeline_for(load_recipe("quickstart/unlearn", UNLEARN))
    pipeline.model.override(providers.Object(tiny_model))
    forget = pipeline.split_datasets()["forget"]
    cached = pipeline.reference_log_probs()["forget"][()]
    collator = pipeline.collator()
    for index in range(len(forget)):
        batch = collator([forget[index]])
        with torch.no_grad():
            logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        total, _ = token_nll_sum(logits, batch["labels"])
        assert float(cached[index]) == pytest.approx(-float(total), rel=1e-5)


def test_a_kl_retain_term_gets_a_frozen_copy_and_per_step_log_probs_no_cache(
    tiny_model: torch.nn.Module,
) -> None:
    from unlearn_cli.trainers.reference import FrozenReference

    pipeline = pipeline_for(
        load_recipe("quickstart/unlearn", [*UNLEARN, 'trainer.method_args.retain_loss_type="KL"'])
    )
    pipeline.model.override(providers.Object(tiny_model))
    reference = pipeline.reference_model()
    assert isinstance(reference, FrozenReference) and reference.model is not tiny_model
    assert not reference.model.training
    assert all(not p.requires_grad for p in reference.model.parameters())
    assert pipeline.reference_log_probs() == {}  # the model is kept, so nothing is precomputed
    assert "ref_logp" not in pipeline.train_dataset()[0]["forget"]


def test_the_finetune_container_concatenates_the_train_datasets(tiny_model: torch.nn.Module) -> None:
    from torch.utils.data import ConcatDataset

    recipe = load_recipe(
        "quickstart/finetune",
        [
            f'data.train.authors_full.args.hf_args.path="{SMALL}"',
            "data.train.more.handler=QADataset",
            f'data.train.more.args.hf_args={{path="{SMALL}", name="forget10", split="train"}}',
        ],
    )
    pipeline = pipeline_for(recipe)
    pipeline.model.override(providers.Object(tiny_model))
    dataset = pipeline.train_dataset()
    assert isinstance(dataset, ConcatDataset) and len(dataset) == 20 + 5
    assert pipeline.reference_model() is None and pipeline.reference_log_probs() == {}


def test_an_unlearning_run_end_to_end_through_an_overridden_container(
    tiny_model: torch.nn.Module, tmp_path: Path
) -> None:
    """The real command pipeline over the real container, with the model swapped for an in-memory one."""
    import copy

    from unlearn_cli.pipelines.run import run

    output_dir = tmp_path / "run"
    recipe = load_recipe("quickstart/unlearn", [*UNLEARN, "trainer.args.num_train_epochs=2"])
    pipeline = pipeline_for(recipe, output_dir=output_dir)
    pipeline.model.override(providers.Object(copy.deepcopy(tiny_model)))
    manifest = run("unlearn", "quickstart/unlearn", None, overwrite=False, pipeline=pipeline)
    assert manifest["trainer"] == "NPO" and manifest["global_steps"] == 2
    assert manifest["forget_items"] == 5 and manifest["retain_items"] == 15
    for name in ("model.safetensors", "recipe.toml", "manifest.json", "loss_log.jsonl"):
        assert (output_dir / name).is_file(), name
    logged = [json.loads(line) for line in (output_dir / "loss_log.jsonl").read_text().splitlines()]
    assert logged and {"forget_loss", "retain_loss", "loss", "learning_rate", "grad_norm"} <= set(logged[0])
