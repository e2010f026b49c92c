"""`[model.peft]`: peft's own config names checked up front, adapter training for fine-tuning and every
unlearning method, the model with its adapter disabled as the reference, checkpointing, `--merge`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from unlearn_cli.container import pipeline_for
from unlearn_cli.errors import UserError
from unlearn_cli.recipes import load_recipe

SMALL = "builtin://fictitious-authors?authors=4&facts=5"
FINETUNE = [
    f'data.train.authors_full.args.hf_args.path="{SMALL}"',
    "trainer.args.per_device_train_batch_size=4",
]
UNLEARN = [
    "finetuned_model=builtin://tiny-llama",
    f'data.forget.authors_forget.args.hf_args.path="{SMALL}"',
    f'data.retain.authors_retain.args.hf_args.path="{SMALL}"',
    "trainer.args.per_device_train_batch_size=4",
]
ALL_LINEAR = '["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]'
LORA = f'model.peft={{peft_type="LORA", r=4, lora_alpha=8, target_modules={ALL_LINEAR}}}'


def _tiny_base() -> Any:
    from transformers import AutoModelForCausalLM

    from unlearn_cli.builtin import resolve_builtin

    return AutoModelForCausalLM.from_pretrained(resolve_builtin("builtin://tiny-llama"))


# --- validation: peft's own names and types, reported as recipe errors ---------------------------------


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ('model.peft={peft_type="LORA", lora_alpah=8}', "model.peft.lora_alpah", "did you mean 'lora_alpha'"),
        ('model.peft={peft_type="LORRA", r=8}', "model.peft.peft_type", "did you mean 'LORA'"),
        ('model.peft={peft_type="LORA", r="eight"}', "model.peft.r", "valid integer"),
        ("model.peft={r=8}", "model.peft.peft_type", 'peft_type = "LORA"'),
        ('model.peft={peft_type="LORA", task_type="SEQ_CLS"}', "model.peft.task_type", "causal"),
        ('model.peft={peft_type="LORA", layers_pattern="layers"}', "model.peft", "layers_to_transform"),
    ],
)
def test_peft_sections_are_checked_with_peft_s_own_config_classes(
    run_unlearn: Any, override: str, key: str, expected: str
) -> None:
    result = run_unlearn("recipe", "validate", "quickstart/finetune", override)
    assert result.code == 2, result.stdout
    assert f"key '{key}'" in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_any_peft_method_validates_into_its_config_object() -> None:
    from peft import IA3Config, LoraConfig

    lora = load_recipe("quickstart/finetune", [LORA]).model
    assert lora is not None and isinstance(lora.peft, LoraConfig)
    assert (lora.peft.r, lora.peft.lora_alpha, lora.peft.task_type) == (4, 8, "CAUSAL_LM")
    ia3 = load_recipe(
        "quickstart/finetune",
        ['model.peft={peft_type="IA3", target_modules=["down_proj"], feedforward_modules=["down_proj"]}'],
    ).model
    assert ia3 is not None and isinstance(ia3.peft, IA3Config)


def test_target_modules_the_model_lacks_name_the_ones_it_has() -> None:
    recipe = load_recipe("quickstart/finetune", ['model.peft={peft_type="LORA", target_modules=["query"]}'])
    with pytest.raises(UserError) as raised:
        pipeline_for(recipe).model()
    assert raised.value.key == "model.peft.target_modules"
    assert "q_proj" in (raised.value.hint or "") and "down_proj" in (raised.value.hint or "")


# --- training the adapter ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reentrant", [True, False])
def test_every_lora_b_trains_under_activation_checkpointing(tmp_path: Path, reentrant: bool) -> None:
    """The trap of the reference framework: adapters inside checkpointed layers getting no gradient."""
    overrides = [
        *FINETUNE,
        LORA,
        "trainer.args.activation_checkpointing=true",
        f"trainer.args.activation_checkpointing_kwargs={{use_reentrant={str(reentrant).lower()}}}",
        "trainer.args.max_steps=3",
        f"run.output_dir={tmp_path}",
    ]
    trainer = pipeline_for(load_recipe("quickstart/finetune", overrides)).trainer()
    base = {name: p.detach().clone() for name, p in _tiny_base().named_parameters()}
    trainer.train()
    parameters = dict(trainer.model.named_parameters())
    lora_b = {name: p for name, p in parameters.items() if "lora_B" in name}
    assert len(lora_b) == 2 * 7  # 2 layers × 7 linear modules
    unchanged = [name for name, p in lora_b.items() if float(p.detach().abs().max()) == 0.0]
    assert unchanged == []  # B starts at zero: every one moved
    for name, p in parameters.items():
        if "lora_" not in name:  # base weights never train
            original = name.replace("base_model.model.", "").replace(".base_layer", "")
            torch.testing.assert_close(p.detach(), base[original], rtol=0, atol=0, msg=name)


def _unlearning_methods() -> list[str]:
    from unlearn_cli.registry import Catalog
    from unlearn_cli.trainers.contract import contract_of

    catalog = Catalog.discover()
    return [
        name
        for name in catalog.names("trainer")
        if contract_of(catalog.get("trainer", name).load()).command == "unlearn"
    ]


METHOD_ARGS = {
    "PDU": ["trainer.method_args.retain_loss_eps=0.5"],  # required: no published default
    "RMU": ["trainer.method_args.module_regex='model\\.layers\\.1'"],  # the tiny model has 2 layers
}
"""What a method needs beyond its defaults to run on the tiny model."""

FULL_WEIGHTS_ONLY = {"TaskVector"}
"""Methods whose result is defined on the full weights: they refuse an adapter."""


@pytest.mark.slow
@pytest.mark.parametrize("method", _unlearning_methods())
def test_every_unlearning_method_trains_only_an_adapter(method: str, tmp_path: Path) -> None:
    from unlearn_cli.errors import UserError
    from unlearn_cli.pipelines.run import run_unlearning
    from unlearn_cli.registry import Catalog
    from unlearn_cli.trainers.contract import contract_of

    overrides = [
        *UNLEARN,
        LORA,
        f"trainer.handler={method}",
        "~trainer.method_args",
        *METHOD_ARGS.get(method, []),
        "trainer.args.max_steps=2",
    ]
    contract = contract_of(Catalog.discover().get("trainer", method).load())
    for split in ("forget", "retain"):
        if contract.item_shape(split) == "pair":
            name = f"authors_{split}"
            overrides += [
                f'data.{split}.{name}.handler="QAwithIdkDataset"',
                f"data.{split}.{name}.args.paired=true",
            ]
    output_dir = tmp_path / method
    if method in FULL_WEIGHTS_ONLY:
        with pytest.raises(UserError, match="PEFT"):
            run_unlearning("quickstart/unlearn", [*overrides, f"run.output_dir={output_dir}"])
        return
    manifest = run_unlearning(
        "quickstart/unlearn", [*overrides, f"run.output_dir={output_dir}"], overwrite=False
    )
    assert (output_dir / "adapter_model.safetensors").is_file()
    assert not (output_dir / "model.safetensors").exists()  # the adapter is the run's output
    peft = manifest["launch"]["peft"]
    assert (
        peft["config"]["peft_type"] == "LORA" and 0 < peft["trainable_parameters"] < peft["total_parameters"]
    )
    assert manifest["forget_nll_after"] != pytest.approx(manifest["forget_nll_before"], abs=1e-6)


@pytest.mark.parametrize(
    "override", ['trainer.method_args.ref_log_probs="per_step"', 'trainer.method_args.retain_loss_type="KL"']
)
def test_a_peft_model_is_its_own_reference_with_the_adapter_disabled(override: str, tmp_path: Path) -> None:
    """No second copy: the reference is the trained model itself, whose base weights never change."""
    from unlearn_cli.trainers.reference import AdapterDisabledReference

    overrides = [*UNLEARN, LORA, override, "trainer.args.max_steps=3", f"run.output_dir={tmp_path}"]
    pipeline = pipeline_for(load_recipe("quickstart/unlearn", overrides))
    trainer = pipeline.trainer()
    assert (
        isinstance(trainer.reference, AdapterDisabledReference) and trainer.reference.model is trainer.model
    )
    trainer.train()
    batch = pipeline.collator()([pipeline.split_datasets()["forget"][i] for i in range(3)])
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        base_logits = _tiny_base()(**inputs).logits
        trained_logits = trainer.model(**inputs).logits
    torch.testing.assert_close(trainer.reference(**inputs).logits, base_logits, rtol=1e-5, atol=1e-5)
    assert float((trained_logits - base_logits).abs().max()) > 1e-3  # while the adapter did change the model
    assert trainer.model.training  # the reference forward left the model in training mode


def test_cached_reference_log_probs_come_from_the_model_without_its_adapter() -> None:
    """A randomly initialised adapter (B ≠ 0) changes the model; the cache holds the base model's values."""
    from unlearn_cli.trainers.reference import compute_reference_log_probs

    lora = f'model.peft={{peft_type="LORA", r=4, init_lora_weights=false, target_modules={ALL_LINEAR}}}'
    pipeline = pipeline_for(load_recipe("quickstart/unlearn", [*UNLEARN, lora]))
    forget, collator = pipeline.split_datasets()["forget"], pipeline.collator()
    cached = pipeline.reference_log_probs()["forget"][()]
    base = compute_reference_log_probs(_tiny_base(), forget, collator, [()])[()]
    with_adapter = compute_reference_log_probs(pipeline.model(), forget, collator, [()])[()]
    torch.testing.assert_close(cached, base, rtol=1e-5, atol=1e-4)
    assert float((with_adapter - base).abs().max()) > 1e-2


def test_an_initialisation_that_rewrites_the_base_weights_cannot_be_the_reference() -> None:
    pissa = f'model.peft={{peft_type="LORA", r=4, init_lora_weights="pissa", target_modules={ALL_LINEAR}}}'
    pipeline = pipeline_for(load_recipe("quickstart/unlearn", [*UNLEARN, pissa]))
    with pytest.raises(UserError) as raised:
        pipeline.reference_log_probs()
    assert (
        raised.value.key == "model.peft.init_lora_weights"
        and "rewrites the base weights" in raised.value.problem
    )


# --- what a run saves -------------------------------------------------------------------------------------


def test_merge_saves_a_model_plain_transformers_loads(run_unlearn: Any, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    output_dir = tmp_path / "lora"
    result = run_unlearn(
        "train",
        "quickstart/finetune",
        *FINETUNE,
        LORA,
        "trainer.args.max_steps=2",
        "trainer.args.learning_rate=0.05",
        f"run.output_dir={output_dir}",
        "--merge",
    )
    assert result.code == 0, result.stderr
    assert (output_dir / "adapter_config.json").is_file() and not (output_dir / "model.safetensors").exists()
    merged = AutoModelForCausalLM.from_pretrained(output_dir / "merged")
    adapted = PeftModel.from_pretrained(_tiny_base(), output_dir)
    ids = torch.tensor([[1, 50, 60, 70, 80, 90]])
    with torch.no_grad():
        merged_logits, adapted_logits, base_logits = (
            merged(ids).logits,
            adapted(ids).logits,
            _tiny_base()(ids).logits,
        )
    torch.testing.assert_close(merged_logits, adapted_logits, rtol=1e-4, atol=1e-4)
    assert float((merged_logits - base_logits).abs().max()) > 1e-3
    manifest = json.loads((output_dir / "manifest.json").read_text())
    assert manifest["launch"]["peft"]["merged_model"] == str(output_dir / "merged")


def test_merge_without_an_adapter_is_refused_before_training(run_unlearn: Any, tmp_path: Path) -> None:
    result = run_unlearn("train", "quickstart/finetune", f"run.output_dir={tmp_path / 'x'}", "--merge")
    assert result.code == 2 and "no [model.peft] section" in result.stderr
    assert not (tmp_path / "x").exists()
