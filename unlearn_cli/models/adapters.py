"""PEFT adapters (LoRA and every other `peft` method) from a recipe's `[model.peft]` section.

`[model.peft]` holds a peft config in peft's own names — `peft_type = "LORA"`, `r`, `lora_alpha`,
`lora_dropout`, `target_modules`, ... — checked against that peft config class before anything loads, so a
misspelt or mistyped field is an error naming its key. With it, fine-tuning and every unlearning method
train the adapter only, and the model with its adapter disabled *is* the model before training: unlearning
reads its reference from there (per-step forwards or cached log-probabilities) instead of a second copy.

After training the run folder holds the adapter (`adapter_config.json`, `adapter_model.safetensors`);
`--merge` also writes `merged/`, the base model with the adapter folded in, which loads with plain
transformers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import typing
import warnings
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from unlearn_cli.errors import UserError, did_you_mean

PEFT_KEY = "model.peft"
MERGED_FOLDER = "merged"
DEFAULT_TASK_TYPE = "CAUSAL_LM"
PEFT_HINT = "install peft (`pip install 'peft>=0.17'`; unlearn-cli depends on it, so reinstalling it helps)"

BASE_CHANGING_INITS = ("pissa", "olora", "corda", "loftq")
"""LoRA initialisations that rewrite the base weights, so the model with its adapter disabled is no longer the
model before training (peft's docs: the residual model)."""


def _peft() -> Any:
    try:
        import peft
    except ImportError as exc:
        raise UserError(f"[model.peft] needs the peft package: {exc}", key=PEFT_KEY, hint=PEFT_HINT) from None
    return peft


@cache
def _field_types(config_class: type) -> dict[str, Any]:
    """The dataclass fields of a peft config class with their resolved annotations."""
    peft = _peft()
    names = {"TaskType": peft.TaskType, "PeftType": peft.PeftType}
    try:
        hints = typing.get_type_hints(config_class, localns=names)
    except Exception:  # an annotation peft did not make resolvable: check the names, not the types
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(config_class) if f.init}


def validate_peft_config(section: Mapping[str, Any]) -> Any:
    """`[model.peft]` as peft's own config object (a `LoraConfig`, ...); every problem is one UserError."""
    from pydantic import TypeAdapter, ValidationError

    peft = _peft()
    values = dict(section)
    kind = values.pop("peft_type", None)
    types = sorted(t.value for t in peft.PEFT_TYPE_TO_CONFIG_MAPPING)
    if kind is None:
        raise UserError(
            "[model.peft] needs peft_type", key=f"{PEFT_KEY}.peft_type", hint='e.g. peft_type = "LORA"'
        )
    name = str(kind).upper()
    if name not in types:
        raise UserError(
            f"unknown peft_type {kind!r}",
            key=f"{PEFT_KEY}.peft_type",
            hint=did_you_mean(name, types) or f"peft's types: {', '.join(types)}",
        )
    config_class = peft.PEFT_TYPE_TO_CONFIG_MAPPING[peft.PeftType(name)]
    fields = _field_types(config_class)
    for key in values:
        if key not in fields:
            raise UserError(
                f"unknown field '{key}' for peft's {config_class.__name__}",
                key=f"{PEFT_KEY}.{key}",
                hint=did_you_mean(key, fields) or f"its fields: {', '.join(sorted(fields))}",
            )
    values.setdefault("task_type", DEFAULT_TASK_TYPE)
    if str(values["task_type"]).upper() != DEFAULT_TASK_TYPE:
        raise UserError(
            f"task_type {values['task_type']!r} is not a causal language model's",
            key=f"{PEFT_KEY}.task_type",
            hint=f'remove it (the default is "{DEFAULT_TASK_TYPE}")',
        )
    converted = {}
    for key, value in values.items():
        try:
            converted[key] = TypeAdapter(fields[key]).validate_python(value)
        except ValidationError as exc:
            expected = str(fields[key]).replace("typing.", "")
            raise UserError(
                f"{exc.errors()[0]['msg']} (got {type(value).__name__} {value!r})",
                key=f"{PEFT_KEY}.{key}",
                hint=f"expected {expected}",
            ) from None
        except Exception:  # a type pydantic cannot check: peft's own __post_init__ checks it below
            converted[key] = value
    try:
        return config_class(**converted)
    except (TypeError, ValueError) as exc:
        raise UserError(
            f"peft rejected [model.peft]: {exc}",
            key=PEFT_KEY,
            hint="see peft's documentation of " + config_class.__name__,
        ) from None


def is_peft_model(model: Any) -> bool:
    """Whether `model` is a peft model (an adapter over a base model it can disable)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def apply_adapter(model: Any, config: Any) -> Any:
    """`model` wrapped by peft with a fresh adapter: only the adapter's parameters train.

    transformers' activation checkpointing makes the embedding outputs require gradients, so the adapters
    inside checkpointed layers get gradients also with `use_reentrant = true` (tests check every LoRA B).
    """
    peft = _peft()
    try:
        adapted = peft.get_peft_model(model, config)
    except ValueError as exc:
        if "target" in str(exc).lower():
            raise UserError(
                f"peft: {exc}",
                key=f"{PEFT_KEY}.target_modules",
                hint=f"this model's linear layers: {', '.join(linear_layer_names(model))}",
            ) from None
        raise UserError(f"peft could not add the adapter: {exc}", key=PEFT_KEY) from None
    return adapted


def linear_layer_names(model: Any) -> list[str]:
    """The distinct names of the model's linear layers (what `target_modules` may list)."""
    import torch

    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name
        }
    )


def check_reference_source(config: Any) -> None:
    """Refuse an adapter whose initialisation rewrites the base weights when a method needs the reference."""
    init = getattr(config, "init_lora_weights", True)
    if isinstance(init, str) and init.lower().startswith(BASE_CHANGING_INITS):
        raise UserError(
            f"init_lora_weights = {init!r} rewrites the base weights, so the model with its adapter disabled "
            "is not the model before unlearning, which this method reads as its reference",
            key=f"{PEFT_KEY}.init_lora_weights",
            hint='use init_lora_weights = true (LoRA starts as the identity: B = 0), or "gaussian"',
        )


@contextlib.contextmanager
def adapter_disabled(model: Any) -> Iterator[Any]:
    """The model with its adapter switched off (a model without one, unchanged)."""
    if not is_peft_model(model):
        yield model
        return
    with model.disable_adapter():
        yield model


def adapter_record(model: Any) -> dict[str, Any] | None:
    """The adapter's peft config as plain JSON data (None without an adapter), for the run manifest."""
    if not is_peft_model(model):
        return None
    config = model.peft_config.get("default") or next(iter(model.peft_config.values()))
    record = json.loads(json.dumps(config.to_dict(), default=_plain))
    # under ZeRO-3 a parameter's own numel is its local shard's; ds_numel is the whole
    sizes = [(getattr(p, "ds_numel", p.numel()), p.requires_grad) for p in model.parameters()]
    trainable = sum(size for size, trains in sizes if trains)
    total = sum(size for size, _ in sizes)
    return {"config": record, "trainable_parameters": trainable, "total_parameters": total}


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def check_merge(recipe: Any, merge: bool) -> None:
    """`--merge` folds an adapter into its base model: refused up front for a recipe without [model.peft]."""
    if merge and getattr(recipe.model, "peft", None) is None:
        raise UserError(
            "--merge folds a trained adapter into its base model, but the recipe has no [model.peft] section",
            file=str(recipe.recipe.source),
            key=PEFT_KEY,
            hint='remove --merge, or train an adapter: add [model.peft] with peft_type = "LORA" '
            "(docs/distributed.md)",
        )


def save_merged(recipe: Any, tokenizer: Any, adapter_dir: Path) -> Path:
    """Load the base model afresh, fold in the adapter saved in `adapter_dir`, save to `adapter_dir/merged`.

    A fresh load (on the CPU, in the recipe's dtype) rather than the trained object: after a sharded run
    (FSDP, ZeRO-3) no process holds the whole model, while the saved adapter is complete.
    """
    from unlearn_cli.container import build_model
    from unlearn_cli.distributed import loading_whole

    peft = _peft()
    with loading_whole():
        base = build_model(recipe, tokenizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft notes that the base model is now modified in place
        merged = peft.PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    target = adapter_dir / MERGED_FOLDER
    merged.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
