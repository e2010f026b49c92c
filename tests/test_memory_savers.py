"""Memory savers set from a recipe, on the tiny model: mixed precision the hardware can run (and a clear error
where it cannot), gradient checkpointing that leaves the update unchanged, 8-bit optimizer states."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from unlearn_cli.container import pipeline_for
from unlearn_cli.errors import UserError
from unlearn_cli.precision import check_mixed_precision
from unlearn_cli.recipes import load_recipe

SMALL = "builtin://fictitious-authors?authors=4&facts=5"
ONE_STEP = [
    f'data.train.authors_full.args.hf_args.path="{SMALL}"',
    "trainer.args.per_device_train_batch_size=8",
    "trainer.args.max_steps=1",
    'trainer.args.optim="sgd"',
    "trainer.args.learning_rate=1.0",
    "trainer.args.max_grad_norm=0",
]


def test_fp16_without_a_gpu_is_refused_before_anything_loads(run_unlearn: Any, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_unlearn(
        "train", "quickstart/finetune", "trainer.args.fp16=true", f"run.output_dir={tmp_path}", "--dry-run"
    )
    assert result.code == 2
    assert "key 'trainer.args.fp16'" in result.stderr and "this machine has none" in result.stderr
    assert "trainer.args.fp16=false" in result.stderr


def test_bf16_on_a_gpu_without_bfloat16_names_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100-SXM2-32GB")
    recipe = load_recipe("quickstart/finetune", ["trainer.args.bf16=true"])
    with pytest.raises(UserError) as raised:
        check_mixed_precision(recipe, {"bf16": True})
    assert raised.value.key == "trainer.args.bf16" and "Tesla V100" in raised.value.problem
    assert "fp16 = true" in (raised.value.hint or "")


def test_fp16_needs_float32_weights_unless_an_adapter_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    full = load_recipe("quickstart/finetune", ['model.model_args.dtype="bfloat16"'])
    with pytest.raises(UserError) as raised:
        check_mixed_precision(full, {"fp16": True})
    assert raised.value.key == "model.model_args.dtype" and "bfloat16" in raised.value.problem
    lora = load_recipe(
        "quickstart/finetune", ['model.model_args.dtype="bfloat16"', 'model.peft={peft_type="LORA"}']
    )
    assert check_mixed_precision(lora, {"fp16": True}) == {"fp16": True}


def test_bf16_runs_on_the_cpu_when_asked_to(run_unlearn: Any, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    refused = run_unlearn("train", "quickstart/finetune", "trainer.args.bf16=true", "--dry-run")
    assert refused.code == 2 and "trainer.args.use_cpu=true" in refused.stderr  # a GPU recipe, by mistake
    recipe = load_recipe(
        "quickstart/finetune",
        [*ONE_STEP, "trainer.args.bf16=true", "trainer.args.use_cpu=true", f"run.output_dir={tmp_path}"],
    )
    trainer = pipeline_for(recipe).trainer()
    assert trainer.args.use_cpu and trainer.accelerator.mixed_precision == "bf16"
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))


def _one_step(tmp_path: Path, *overrides: str) -> tuple[float, dict[str, torch.Tensor]]:
    recipe = load_recipe("quickstart/finetune", [*ONE_STEP, *overrides, f"run.output_dir={tmp_path}"])
    trainer = pipeline_for(recipe).trainer()
    loss = trainer.train().training_loss
    return loss, {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


def test_activation_checkpointing_leaves_the_update_unchanged(tmp_path: Path) -> None:
    """Recomputing activations in the backward pass trades time for memory, never the result."""
    plain_loss, plain = _one_step(tmp_path / "plain")
    checkpointing = "trainer.args.activation_checkpointing=true"
    checkpointed_loss, checkpointed = _one_step(tmp_path / "ckpt", checkpointing)
    assert checkpointed_loss == pytest.approx(plain_loss, rel=1e-6)
    for name, weight in plain.items():
        torch.testing.assert_close(checkpointed[name], weight, rtol=1e-5, atol=1e-6, msg=name)


def test_an_8_bit_optimizer_keeps_one_byte_states(tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    recipe = load_recipe(
        "quickstart/finetune",
        [
            *ONE_STEP[:3],
            "trainer.args.max_steps=2",
            'trainer.args.optim="adamw_bnb_8bit"',
            "trainer.args.learning_rate=1e-3",
            f"run.output_dir={tmp_path}",
        ],
    )
    trainer = pipeline_for(recipe).trainer()
    weight = trainer.model.model.layers[
        0
    ].mlp.gate_proj.weight  # (embeddings stay 32-bit, as transformers sets)
    before = weight.detach().clone()
    trainer.train()
    state = trainer.optimizer.state[weight]
    assert state["state1"].dtype == torch.uint8 and state["state2"].dtype == torch.uint8
    assert state["state1"].shape == weight.shape  # one byte per parameter and moment, not four
    assert float((weight.detach() - before).abs().max()) > 0


def test_a_missing_8_bit_optimizer_package_is_a_clear_error(
    run_unlearn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers.trainer_optimizer

    monkeypatch.setattr(transformers.trainer_optimizer, "is_bitsandbytes_available", lambda: False)
    result = run_unlearn(
        "train",
        "quickstart/finetune",
        *ONE_STEP[:2],
        'trainer.args.optim="adamw_bnb_8bit"',
        f"run.output_dir={tmp_path}",
    )
    assert result.code == 2 and "Traceback" not in result.stderr
    assert "key 'trainer.args.optim'" in result.stderr and "bitsandbytes" in result.stderr


def test_recipe_precision_reaches_the_trainer_unchanged() -> None:
    recipe = SimpleNamespace(
        recipe=SimpleNamespace(origin=lambda path: "recipe.toml"),
        model=SimpleNamespace(args={}, peft=None),
    )
    assert check_mixed_precision(recipe, {}) == {}
