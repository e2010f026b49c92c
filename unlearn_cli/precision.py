"""Mixed precision the hardware can run, decided before anything loads.

`trainer.args.bf16` / `fp16` are transformers' own switches. Where the machine cannot honour one, the run
stops with a clear error instead of failing later inside the optimizer, or silently running in float32:

- fp16 autocast needs a CUDA GPU; it keeps float32 master weights, so the model itself must be loaded in
  float32 (a LoRA adapter is float32 anyway).
- bf16 needs a GPU with bfloat16 support (Ampere or newer), or the CPU, which runs bfloat16 autocast
  (transformers wants `use_cpu` for that; it is set for you when there is no GPU).
"""

from __future__ import annotations

from typing import Any

from unlearn_cli.errors import UserError

ARGS_KEY = "trainer.args"


def check_mixed_precision(recipe: Any, args: dict[str, Any]) -> dict[str, Any]:
    """`args` (the training arguments being built) checked against the hardware; `use_cpu` added if needed."""
    import torch

    file = recipe.recipe.origin(("trainer", "args"))
    cuda = torch.cuda.is_available()
    if args.get("fp16"):  # without any GPU, the machine check (recipes/machine.py) refuses it first
        dtype = _model_dtype(recipe)
        if dtype in ("float16", "bfloat16") and getattr(recipe.model, "peft", None) is None:
            raise UserError(
                f"fp16 mixed precision trains float32 weights with a loss scale, but the model is loaded in "
                f"{dtype}",
                file=recipe.recipe.origin(("model", "model_args", "dtype")),
                key="model.model_args.dtype",
                hint='load it with dtype = "float32", or use bf16 = true on a GPU that supports it',
            )
    if args.get("bf16"):
        if cuda and not torch.cuda.is_bf16_supported():
            raise UserError(
                f"bf16 needs a GPU with bfloat16 support (Ampere or newer); {torch.cuda.get_device_name()} "
                "has none",
                file=file,
                key=f"{ARGS_KEY}.bf16",
                hint='use fp16 = true with the model loaded in float32 (dtype = "float32")',
            )
        if not cuda:
            args.setdefault("use_cpu", True)
    return args


def _model_dtype(recipe: Any) -> str | None:
    model_args = recipe.model.args.get("model_args") if recipe.model is not None else None
    return getattr(model_args, "dtype", None)
