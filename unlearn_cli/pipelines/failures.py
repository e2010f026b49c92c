"""Errors during setup and training, reported for what they are.

Out of memory becomes memory advice naming the settings that matter; a missing optional package names the
package (and the recipe key that asked for it, when one did). Anything else is left alone: an unexpected
error keeps its traceback, since hiding it would hide a bug.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from unlearn_cli.errors import RunFailed, UserError
from unlearn_cli.run_folder import RunInterrupted

_OOM_MESSAGES = ("out of memory", "CUDA error: out of memory", "MPS backend out of memory")
PACKAGE_KEYS: dict[str, tuple[str, ...]] = {
    "bitsandbytes": ("trainer.args.optim", "model.model_args.quantization_config"),
    "torchao": ("trainer.args.optim",),
    "galore_torch": ("trainer.args.optim",),
    "apollo_torch": ("trainer.args.optim",),
    "schedulefree": ("trainer.args.optim",),
    "lomo_optim": ("trainer.args.optim",),
    "grokadamw": ("trainer.args.optim",),
    "deepspeed": ("trainer.args.deepspeed",),
    "flash_attn": ("model.model_args.attn_implementation",),
    "liger_kernel": ("trainer.args.use_liger_kernel",),
    "wandb": ("trainer.args.report_to",),
    "tensorboard": ("trainer.args.report_to",),
    "tensorboardX": ("trainer.args.report_to",),
    "mlflow": ("trainer.args.report_to",),
    "comet_ml": ("trainer.args.report_to",),
    "clearml": ("trainer.args.report_to",),
    "peft": ("model",),
}
"""For a missing package, the recipe keys that may have asked for it (the first one the recipe sets wins)."""
_MISSING = re.compile(r"requires \S+ to be installed|\bpip install\b")
_PIP_NAMES = {"flash_attn": "flash-attn", "liger_kernel": "liger-kernel", "comet_ml": "comet-ml"}


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in _OOM_MESSAGES)


def _recipe_value(recipe: Any, key: str) -> Any:
    node: Any = recipe.values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def memory_advice(exc: BaseException, recipe: Any, phase: str, training_args: Any = None) -> RunFailed:
    where = "GPU memory" if "cuda" in str(exc).lower() or "gpu" in str(exc).lower() else "memory"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    advice = []
    if training_args is not None and phase == "training":
        batch = training_args.per_device_train_batch_size
        accumulation = training_args.gradient_accumulation_steps
        advice.append(
            f"lower trainer.args.per_device_train_batch_size (now {batch}) and raise "
            f"gradient_accumulation_steps (now {accumulation}) to keep the effective batch"
        )
        if not training_args.gradient_checkpointing:
            advice.append("set trainer.args.gradient_checkpointing=true")
        if not (training_args.bf16 or training_args.fp16):
            advice.append("train in bf16 on a GPU that supports it (trainer.args.bf16=true)")
        method_args = getattr(getattr(recipe, "trainer", None), "method_args", None)
        if getattr(method_args, "ref_log_probs", None) == "per_step":
            advice.append('use trainer.method_args.ref_log_probs="cached" (no reference model in memory)')
    advice.append("lower max_length of the datasets")
    advice.append(
        'load the model in a smaller dtype (model.model_args.dtype="bfloat16") or use a smaller model'
    )
    return RunFailed(
        f"out of {where} while {phase}: {first}",
        key="trainer.args.per_device_train_batch_size" if phase == "training" else None,
        hint="; ".join(advice),
    )


def _missing_package(exc: ImportError) -> str | None:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return exc.name.split(".")[0]
    text = str(exc)
    for pattern in (
        r"pip install (?:-U )?[`'\"]?([A-Za-z0-9_.\-]+)",
        r"requires (?:the )?`([A-Za-z0-9_.\-]+)`",
        r"`([A-Za-z0-9_.\-]+)` (?:is|to be) (?:not )?installed",
    ):
        found = re.search(pattern, text)
        if found:
            return found.group(1).rstrip(".`'\"")
    return None


def missing_package(exc: ImportError, recipe: Any, phase: str) -> UserError:
    package = _missing_package(exc)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    keys = PACKAGE_KEYS.get((package or "").replace("-", "_"), ())
    key = next((k for k in keys if _recipe_value(recipe, k) is not None), None)
    file = recipe.recipe.origin(tuple(key.split("."))) if key else None
    if package is None:
        return UserError(
            f"a package this run needs cannot be imported while {phase}: {message}",
            file=file,
            key=key,
            hint="install the package the message names",
        )
    pip_name = _PIP_NAMES.get(package, package)
    hint = f"pip install {pip_name}"
    if key:
        hint += f", or change {key} so that it does not need it"
    return UserError(
        f"this run needs the Python package '{package}', which is not installed ({message})",
        file=file,
        key=key,
        hint=hint,
    )


@contextmanager
def explained(recipe: Any, phase: str, training_args: Any = None) -> Iterator[None]:
    """Turn out-of-memory and missing-package errors raised inside into clear messages (cause kept)."""
    try:
        yield
    except (UserError, RunInterrupted):
        raise
    except ImportError as exc:
        raise missing_package(exc, recipe, phase) from exc
    except BaseException as exc:
        if is_out_of_memory(exc):
            raise memory_advice(exc, recipe, phase, training_args) from exc
        if isinstance(exc, RuntimeError | ValueError) and _MISSING.search(str(exc)):
            # e.g. transformers' "WandbCallback requires wandb to be installed. Run `pip install wandb`."
            raise missing_package(ImportError(str(exc)), recipe, phase) from exc
        raise
